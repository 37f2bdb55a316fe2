"""Train TD3 on Pendulum-v1 with Gaussian exploration noise, evaluate it and save it.

    python examples/td3_pendulum.py [--steps 8000] [--seed 0] [--out td3_pendulum.zip]

Takes about a minute on 2 CPU cores. A mean return above -300 means the pendulum is swung up
and balanced (random actions score about -1,200). The settings are rl-zoo's for Pendulum
(gamma 0.98, Gaussian noise with sigma 0.1), with a shorter warm-up and smaller networks.
"""

from __future__ import annotations

import argparse

import numpy as np

from easyrl import TD3, evaluate_policy
from easyrl.noise import NormalActionNoise


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="td3_pendulum.zip")
    args = parser.parse_args()

    n_actions = 1  # Pendulum-v1's action space is Box(-2, 2, (1,))
    model = TD3(
        "Pendulum-v1",
        learning_starts=1_000,
        gamma=0.98,
        policy_kwargs=dict(net_arch=[128, 128]),
        action_noise=NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions)),
        seed=args.seed,
        device="cpu",
    )
    model.learn(args.steps, progress_bar=True)

    mean_return, std_return = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=10, deterministic=True)
    print(f"Evaluation over 10 episodes: mean return {mean_return:.1f} +/- {std_return:.1f}")

    path = model.save(args.out)
    print(f"Saved the model to {path}; load it with TD3.load({str(path)!r})")


if __name__ == "__main__":
    main()
