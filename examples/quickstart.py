"""Train SAC on Pendulum-v1 for a few thousand steps, evaluate it and save it.

    python examples/quickstart.py [--steps 5000] [--seed 0] [--out sac_pendulum.zip]

Takes one to two minutes on 2 CPU cores. A mean return above -250 means the pendulum is swung up
and balanced (random actions score about -1,200).
"""

from __future__ import annotations

import argparse

from easyrl import SAC, evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sac_pendulum.zip")
    args = parser.parse_args()

    model = SAC("Pendulum-v1", seed=args.seed, device="cpu")
    model.learn(args.steps, progress_bar=True)

    mean_return, std_return = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=10, deterministic=True)
    print(f"Evaluation over 10 episodes: mean return {mean_return:.1f} +/- {std_return:.1f}")

    path = model.save(args.out)
    print(f"Saved the model to {path}; load it with SAC.load({str(path)!r})")


if __name__ == "__main__":
    main()
