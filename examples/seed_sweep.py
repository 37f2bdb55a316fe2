"""Seeds and a learning-rate grid on Ray: SAC on Pendulum-v1, one Ray Tune trial per run.

    pip install "easyrl[ray,plot]"
    python examples/seed_sweep.py [--steps 5000] [--seeds 3] [--output sweeps/lr]

Each (learning rate, seed) pair trains in its own run folder under ``--output``, one CPU and one torch thread
per trial, as many at once as the machine has cores (or on a cluster: set RAY_ADDRESS). The results table is
printed and saved as results.csv beside curves.png; this script then prints each learning rate's mean and
standard deviation over seeds. The defaults take about 4 minutes on 2 CPU cores. Run it again with
``--resume`` after an interruption: finished trials are not run again. docs/sweeps.md explains the rest.
"""

from __future__ import annotations

import argparse

from easyrl import SAC
from easyrl.experiment import run_many


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4])
    parser.add_argument("--output", default="sweeps/lr")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    table = run_many(
        SAC("Pendulum-v1"),
        [{"learning_rate": lr} for lr in args.learning_rates],
        seeds=range(args.seeds),
        total_timesteps=args.steps,
        n_eval_episodes=5,
        output_dir=args.output,
        resume=args.resume,
    )
    summary = table.groupby("learning_rate")["final_return"].agg(["mean", "std", "count"])
    print("\nFinal evaluation return by learning rate (over seeds):")
    for lr, row in summary.iterrows():
        print(f"  learning_rate={lr:g}: {row['mean']:.1f} ± {row['std']:.1f} ({int(row['count'])} seeds)")


if __name__ == "__main__":
    main()
