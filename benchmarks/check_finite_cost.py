"""What ``check_finite=True`` (the default) costs: the NaN/inf check of every env step's values.

Usage:
    python benchmarks/check_finite_cost.py                       # SAC on Pendulum-v1, 5 pairs of 2,000 steps
    python benchmarks/check_finite_cost.py --env HalfCheetah-v4 --pairs 3 --steps 3000

Two figures, both measured in this one run:

1. **Side by side**: training runs with ``check_finite=True`` and ``False`` alternate (same seed, same
   settings); the figure is the median over pairs of (steps/s with the check) / (steps/s without). On a
   busy machine this ratio carries a percent or two of noise either way.
2. **Direct**: the time spent inside the check itself, timed around each call during the checked
   runs, as a share of those runs' wall time. This is the check's cost without the noise.

The target (issue 19): under 1% of a step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import cpu_model  # this folder's machine description

from easyrl import SAC
from easyrl.algorithms import loop


class TimedCheck:
    """Stands in for the training loop's ``check_step``: the same check, with the time it takes added up."""

    def __init__(self) -> None:
        self.check = loop.check_step
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args: object) -> None:
        start = time.perf_counter()
        self.check(*args)  # type: ignore[arg-type]
        self.seconds += time.perf_counter() - start
        self.calls += 1


def run(env: str, steps: int, check_finite: bool, timer: TimedCheck) -> float:
    """Env steps per second of one training run (``learning_starts`` steps of warm-up are not timed)."""
    model = SAC(env, check_finite=check_finite, learning_starts=200, seed=0, device="cpu")
    model.learn(200)
    loop.check_step = timer if check_finite else timer.check
    try:
        start = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        return steps / (time.perf_counter() - start)
    finally:
        loop.check_step = timer.check


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=2_000, help="timed steps per run")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timer = TimedCheck()
    ratios, checked_seconds = [], 0.0
    for pair in range(args.pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        speeds = {}
        for check_finite in order:
            before = timer.seconds
            speeds[check_finite] = run(args.env, args.steps, check_finite, timer)
            if check_finite:
                checked_seconds += args.steps / speeds[True]
                assert timer.seconds > before, "the check was not timed"
        ratios.append(speeds[True] / speeds[False])
        print(f"pair {pair + 1}: {speeds[True]:.1f} steps/s checked, {speeds[False]:.1f} unchecked, "
              f"ratio {ratios[-1]:.4f}")  # fmt: skip
    per_call = timer.seconds / timer.calls
    print(f"CPU: {cpu_model()}, {args.threads} torch thread(s); SAC on {args.env}, {args.pairs} pairs of "
          f"{args.steps} timed steps")  # fmt: skip
    print(f"side by side: steps/s with the check / without = {statistics.median(ratios):.4f} (median of "
          f"{args.pairs} pairs; min {min(ratios):.4f}, max {max(ratios):.4f})")  # fmt: skip
    print(f"direct: {per_call * 1e6:.1f} us per step in the check = "
          f"{100 * timer.seconds / checked_seconds:.3f}% of the checked runs' time")  # fmt: skip


if __name__ == "__main__":
    main()
