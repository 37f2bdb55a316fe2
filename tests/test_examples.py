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


# Every other example in its short mode (a flag capping the steps), so none can rot unnoticed; the
# patterns are what each one prints when it ran end to end.
WORKFLOW_SHORT = ["--steps", "200", "--seeds", "2", "--eval-freq", "100", "--eval-episodes", "1"]
SHORT_RUNS: dict[str, tuple[list[str], str]] = {
    "quickstart.py": (
        ["--steps", "150", "--out", "{tmp}/sac.zip"],
        r"Evaluation over 10 episodes: mean return -?\d",
    ),
    "td3_pendulum.py": (["--steps", "150", "--out", "{tmp}/td3.zip"], r"Saved the model to .*td3\.zip"),
    "ddpg_paper_setup.py": (["--steps", "150"], r"Evaluation over 10 episodes: mean return -?\d"),
    "early_stopping.py": (["--timesteps", "150"], r"Trained all 150 steps"),
    "ablation.py": (
        ["--steps", "120", "--seeds", "1", "--eval-episodes", "1", "--variants", "default", "n_steps=3"],
        r"\| `n_steps=3` \| -?\d",
    ),
    "seed_sweep.py": (
        ["--steps", "200", "--seeds", "1", "--output", "{tmp}/sweep"],
        r"learning_rate=0\.001: -?\d+\.\d ± nan \(1 seeds\)",
    ),
    "experiment_workflow.py": (
        [*WORKFLOW_SHORT, "--output", "{tmp}/runs", "--plot", "{tmp}/curve.png"],
        r"Learning curves \(mean ± 1 std over 2 seeds\)",
    ),
}
IN_OTHER_TESTS = {"her_point_goal.py", "her_fetch_reach.py", "pixels_pendulum.py"}


def test_every_example_is_run_by_a_test() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(SHORT_RUNS) | IN_OTHER_TESTS


@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_example_runs_in_its_short_mode(name: str, tmp_path: Path) -> None:
    args, pattern = SHORT_RUNS[name]
    out = run_example(name, *(arg.format(tmp=tmp_path) for arg in args))
    assert re.search(pattern, out), out[-3000:]
