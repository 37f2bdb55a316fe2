"""Train SAC with hindsight experience replay (HER) on FetchReach, and measure its success rate.

    python examples/her_fetch_reach.py [--steps 20000] [--seed 0]

Shows HER on a robotics task with a sparse reward: the Fetch arm's gripper must reach a 3-D goal
(-1 every step until it is within 5 cm). The settings are rl-zoo's for FetchReach (gamma 0.95,
learning rate 1e-3, [64, 64] networks, 4 relabelled goals per transition from the same episode's
future, observations and rewards normalised with running statistics saved in the model). Needs gymnasium-robotics on MuJoCo: ``pip install easyrl[robotics]`` (it pins mujoco
3.2.7: gymnasium-robotics 1.4.2's Fetch envs fail to build with mujoco 4). Runs headless, in about
three minutes on 2 CPU cores; the success rate over 20 deterministic episodes should be near 1.0
(random actions: about 0.02).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import gymnasium_robotics

from easyrl import SAC, HerReplayBuffer, evaluate_success_rate

gym.register_envs(gymnasium_robotics)  # registers FetchReach-v4 and the other robotics envs
ENV_ID = "FetchReach-v4"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = SAC(
        "MultiInputPolicy",
        ENV_ID,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        gamma=0.95,
        learning_rate=1e-3,
        batch_size=256,
        learning_starts=1_000,
        buffer_size=1_000_000,
        policy_kwargs=dict(net_arch=[64, 64]),
        normalize=True,  # rl-zoo's normalize: True; predict and evaluation take raw observations
        seed=args.seed,
        device="cpu",
    )
    model.learn(args.steps, progress_bar=True)
    rate = evaluate_success_rate(model, ENV_ID, n_eval_episodes=20, seed=10_000)
    print(f"Success rate over 20 deterministic episodes: {rate:.2f}")


if __name__ == "__main__":
    main()
