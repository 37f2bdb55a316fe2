"""The Pendulum-v1 cases of benchmarks/pendulum_options.py, run for the slow tests: seeds 0 and 1 at once, one
process each (one torch thread each, so both cores of the test machine work)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def pendulum_returns(case: str) -> list[float]:
    """The mean deterministic return of ``case`` after its budget (at most 8,000 steps), for seeds 0 and 1."""
    runs = [
        subprocess.Popen(
            [sys.executable, str(BENCHMARKS / "pendulum_options.py"), "--cases", case, "--seeds", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=BENCHMARKS,
        )
        for seed in (0, 1)
    ]  # fmt: skip
    returns = []
    for seed, run in enumerate(runs):
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        name, _, steps, row_seed, mean, *_ = out.strip().splitlines()[-1].split()
        assert (name, int(row_seed)) == (case, seed) and int(steps) <= 8_000, out
        returns.append(float(mean))
    return returns
