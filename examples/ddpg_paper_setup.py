"""DDPG with the hyperparameters of Lillicrap et al. (2015), expressed as constructor parameters.

    python examples/ddpg_paper_setup.py [--env Pendulum-v1] [--steps 20000] [--seed 0]

The paper's setup: soft target updates with tau = 0.001, Adam with learning rate 1e-4 for the
actor and 1e-3 for the critic, minibatches of 64, a replay buffer of 10^6 transitions,
gamma = 0.99, hidden layers of 400 and 300 units, and Ornstein-Uhlenbeck exploration noise
with theta = 0.15 and sigma = 0.2 (dt = 1: one unit of time per env step, as the paper writes
the process). Not reproduced: the critic's L2 weight decay, batch normalisation and the small
output-layer initialisation. See docs/algorithms/ddpg.md.

On Pendulum-v1, 20,000 steps take 4-10 minutes on 2 busy CPU cores; seed 0 reached a mean return
of -135.5 +/- 86.0 over 10 evaluation episodes (random actions score about -1,200).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from easyrl import DDPG, evaluate_policy
from easyrl.noise import OrnsteinUhlenbeckActionNoise


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n_actions = gym.make(args.env).action_space.shape[0]
    model = DDPG(
        args.env,
        tau=0.001,
        actor_learning_rate=1e-4,
        critic_learning_rate=1e-3,
        batch_size=64,
        buffer_size=1_000_000,
        gamma=0.99,
        policy_kwargs=dict(net_arch=[400, 300]),
        action_noise=OrnsteinUhlenbeckActionNoise(
            mean=np.zeros(n_actions), sigma=0.2 * np.ones(n_actions), theta=0.15, dt=1.0
        ),
        seed=args.seed,
    )
    print(model)
    model.learn(args.steps, progress_bar=True)

    mean_return, std_return = evaluate_policy(model, args.env, n_eval_episodes=10, deterministic=True)
    print(f"Evaluation over 10 episodes: mean return {mean_return:.1f} +/- {std_return:.1f}")


if __name__ == "__main__":
    main()
