"""What running seeds on Ray costs: ``run_many`` against the same runs one after another in one process.

Usage:
    python benchmarks/sweep_overhead.py                      # 4 seeds x 3,000 steps of SAC on Pendulum-v1
    python benchmarks/sweep_overhead.py --seeds 2 --steps 1000

Both sides do the same work: each seed is trained by the same trial code (``easyrl.trial_report.run_trial``:
a run folder with progress.csv, evaluations every tenth of the budget and checkpoints), with one torch thread
per run, so that the same seed gives the same result on both sides. The Ray side runs the seeds as Ray Tune
trials of one CPU each, as many at once as the machine has cores, including the time to start and stop a
local Ray. The sequential side runs them one after another in this process, first with one torch thread
(the same arithmetic as the trials, for the returns) and then with torch's default threads (what a user's
loop over seeds would do).

The target (issue 17): the Ray path is no slower than sequential (ratio <= 1.0), with the same returns.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model  # this folder's machine description

from easyrl import SAC
from easyrl.experiment import run_many
from easyrl.trial_report import run_trial


def estimator() -> SAC:
    return SAC("Pendulum-v1", device="cpu")


def sequential(
    seeds: list[int], options: dict[str, int], folder: Path, threads: int
) -> tuple[float, list[float]]:
    """Wall time and final returns of the seeds run one after another here with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    rows = [run_trial(estimator(), {}, seed, folder / f"seed{seed}", options) for seed in seeds]
    return time.perf_counter() - start, [row["final_return"] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3_000)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    seeds = list(range(args.seeds))
    eval_freq = args.steps // 10
    options = {
        "total_timesteps": args.steps,
        "eval_freq": eval_freq,
        "n_eval_episodes": 5,
        "save_freq": eval_freq,
    }
    cores = os.cpu_count() or 1
    print(f"CPU: {cpu_model()}, {cores} cores; SAC on Pendulum-v1, {args.seeds} seeds x {args.steps} steps, "
          f"evaluations and checkpoints every {eval_freq} steps")  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        table = run_many(estimator(), seeds=seeds, total_timesteps=args.steps, eval_freq=eval_freq,
                         n_eval_episodes=5, save_freq=eval_freq, output_dir=folder / "ray", verbose=0)  # fmt: skip
        ray_seconds = time.perf_counter() - start
        ray_returns = [float(table.loc[table["seed"] == seed, "final_return"].iloc[0]) for seed in seeds]
        one_seconds, one_returns = sequential(seeds, options, folder / "one", 1)
        many_seconds, _ = sequential(seeds, options, folder / "default", default_threads)
    print(f"run_many on Ray (1 CPU = 1 thread per trial): {ray_seconds:7.1f} s")
    print(
        f"sequential, 1 torch thread:                  {one_seconds:7.1f} s   ratio Ray/sequential {ray_seconds / one_seconds:.2f}"
    )
    print(f"sequential, {default_threads} torch threads (default):       {many_seconds:7.1f} s   ratio Ray/sequential {ray_seconds / many_seconds:.2f}")  # fmt: skip
    print("final evaluation return per seed (Ray | sequential, 1 thread):")
    for seed, ours, theirs in zip(seeds, ray_returns, one_returns, strict=True):
        print(f"  seed {seed}: {ours:9.2f} | {theirs:9.2f}   {'same' if ours == theirs else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
