"""Train SAC on Pendulum-v1 with easyrl's tuned settings for several seeds, then plot the learning curves:
what `easyrl train` and `easyrl plot` do, from Python (a notebook uses the same functions).

    python examples/experiment_workflow.py [--steps 20000] [--seeds 3] [--output runs] [--plot curve.png]

Each run goes to its own folder, runs/sac/Pendulum-v1/seed<k>/ (config.yml, progress.csv, evaluations.npz,
best_model.zip, checkpoints/, final_model.zip); an existing folder is trained again from scratch (force=True).
With the tuned budget of 20,000 steps each seed takes 3 to 6 minutes on 2 busy CPU cores and ends near
-150 (random actions score about -1,200). Needs the plot extra (matplotlib) for the figure.
"""

from __future__ import annotations

import argparse

from easyrl.experiment import train
from easyrl.plotting import load_all, plot_runs, summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="env steps per run (default: the tuned 20,000)"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-freq", type=int, default=None, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--output", default="runs")
    parser.add_argument("--plot", default="curve.png")
    args = parser.parse_args()

    folders = []
    for seed in range(args.seeds):
        model, folder = train(
            "sac", "Pendulum-v1", steps=args.steps, seed=seed, output=args.output, force=True,
            eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, device="cpu", progress=False,
        )  # fmt: skip
        print(f"seed {seed}: {model.num_timesteps:,} steps, run folder {folder}")
        folders.append(folder)

    plot_runs(folders, args.plot)
    print(summary(load_all(folders)))
    print(f"Learning curves (mean ± 1 std over {args.seeds} seeds): {args.plot}")


if __name__ == "__main__":
    main()
