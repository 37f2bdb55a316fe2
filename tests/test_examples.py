"""The examples of issue 14 run as a user runs them (a subprocess), with few steps, and print their result.

Whether they learn is what their docstrings say and the benchmarks measure; here they must run end to
end: build the env, train, evaluate and report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("name", ["her_point_goal.py", "her_fetch_reach.py"])
def test_her_examples_train_and_report_a_success_rate(name: str) -> None:
    out = run_example(name, "--steps", "150", "--seed", "1")
    rate = re.search(r"Success rate over 20 deterministic episodes: ([0-9.]+)", out)
    assert rate is not None and 0.0 <= float(rate.group(1)) <= 1.0, out


def test_pixels_example_trains_from_rendered_frames() -> None:
    out = run_example("pixels_pendulum.py", "--steps", "120", "--size", "36")
    assert re.search(r"Evaluation over 10 episodes: mean return -?[0-9.]+ \+/- [0-9.]+", out), out
