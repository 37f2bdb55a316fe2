"""Learning curves: `easyrl plot` (a subprocess) and easyrl.plotting.plot_runs on run folders with known
numbers. The PNG is opened and checked (size, not blank); the figure's artists show the band and legend."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
import yaml
from matplotlib.collections import PolyCollection

from easyrl.plotting import PlotError, curves, plot_runs, summary
from easyrl.runs import load_results
from tests.cli_run import assert_usage_error, block_module, run_cli

STEPS = np.array([1000, 2000, 3000])


def make_run(
    folder: Path, seed: int, means: list[float], learning_rate: float = 1e-3, walltime: bool = True
) -> Path:
    """A run folder as `easyrl train` writes it, with 2 evaluation episodes of returns mean ± 10."""
    folder.mkdir(parents=True)
    config: dict[str, Any] = {
        "algorithm": "sac", "env": "Pendulum-v1", "seed": seed, "tuned": True,
        "hyperparams": {"n_timesteps": 3000, "learning_rate": learning_rate},
        "run": {"eval_freq": 1000, "eval_episodes": 2, "save_freq": 0, "device": "cpu", "tensorboard": False},
    }  # fmt: skip
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    results = np.array([[m - 10, m + 10] for m in means])
    arrays = {"timesteps": STEPS, "results": results, "ep_lengths": np.full((3, 2), 200)}
    if walltime:
        arrays["walltime"] = np.array([10.0, 20.0, 30.0]) * (1 + seed / 10)
    np.savez(folder / "evaluations.npz", **arrays)
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """Three seeds of one configuration and one run of another (a different learning rate)."""
    base = tmp_path / "runs" / "sac" / "Pendulum-v1"
    seeds = [
        make_run(base / f"seed{s}", s, m)
        for s, m in enumerate([[-1200, -600, -200], [-1000, -400, -180], [-1100, -800, -160]])
    ]
    other = make_run(
        tmp_path / "other" / "sac" / "Pendulum-v1" / "seed0", 0, [-1300, -1000, -700], learning_rate=3e-4
    )
    return [*seeds, other]


def test_seeds_are_one_line_with_a_band_and_configs_get_a_legend_entry(
    runs: list[Path], tmp_path: Path
) -> None:
    figure = plot_runs(runs, tmp_path / "curve.png")
    axes = figure.axes[0]
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels == [
        "SAC Pendulum-v1 (learning_rate=0.001) (3 seeds)",
        "SAC Pendulum-v1 (learning_rate=0.0003)",
    ]
    lines = axes.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [-1100, -600, -180])  # the mean over the three seeds
    np.testing.assert_allclose(lines[1].get_ydata(), [-1300, -1000, -700])
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # one band: the single run has none
    vertices = bands[0].get_paths()[0].vertices
    spread = np.std([[-1200, -600, -200], [-1000, -400, -180], [-1100, -800, -160]], axis=0)
    assert np.isclose(vertices[:, 1].max(), (np.array([-1100, -600, -180]) + spread).max())
    assert axes.get_xlabel() == "env steps" and axes.get_ylabel() == "evaluation return"

    image = matplotlib.image.imread(tmp_path / "curve.png")
    assert image.shape[:2] == (500, 800)
    assert image[..., :3].std() > 0.05 and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50


def test_minmax_band_and_time_axis(runs: list[Path]) -> None:
    # The seeds' evaluations came at different times: each is interpolated on the range all of them cover.
    (curve, _) = curves([load_results(run) for run in runs], band="minmax", x="time")
    np.testing.assert_allclose(curve.x, [12, 20, 22, 24, 30])
    assert curve.low[-1] == pytest.approx(-480) and curve.high[-1] == pytest.approx(
        -200
    )  # seeds 2 and 0 at 30 s
    assert np.all(curve.low <= curve.mean) and np.all(curve.mean <= curve.high)
    figure = plot_runs(runs[:3], band="minmax", x="time", title="three seeds")
    assert (
        figure.axes[0].get_title() == "three seeds" and figure.axes[0].get_xlabel() == "wall-clock time (s)"
    )


def test_plot_command_writes_the_png_and_prints_a_summary(runs: list[Path], tmp_path: Path) -> None:
    result = run_cli("plot", *map(str, runs), "-o", "out/curve.png", "--band", "minmax", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = matplotlib.image.imread(tmp_path / "out/curve.png")
    assert image.shape[:2] == (500, 800) and image[..., :3].std() > 0.05
    table = result.stdout.splitlines()
    assert table[0].split() == ["run", "steps", "evals", "final", "return", "best", "return"]
    assert table[1].split()[-4:] == ["3,000", "3", "-200.0", "-200.0"]
    assert "SAC Pendulum-v1 (learning_rate=0.001): mean of 3" in result.stdout
    assert "-180.0 ± 16.3" in result.stdout  # the final returns' mean ± std over the seeds
    assert table[-1] == "Wrote out/curve.png"


def test_progress_csv_serves_when_there_are_no_evaluations(tmp_path: Path) -> None:
    folder = tmp_path / "sb3_run"
    folder.mkdir()
    with open(folder / "progress.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["rollout/ep_rew_mean", "time/time_elapsed", "time/total_timesteps"])
        writer.writerows([[-1500, 3, 800], [-900, 6, 1600], [-300, 9, 2400]])
    results = load_results(folder)
    assert results.source == "progress.csv (rollout/ep_rew_mean)"
    np.testing.assert_allclose(results.mean_returns, [-1500, -900, -300])
    figure = plot_runs([folder], x="time")
    np.testing.assert_allclose(figure.axes[0].get_lines()[0].get_xdata(), [3, 6, 9])
    assert figure.axes[0].get_ylabel() == "return"


def test_bad_folders_and_options_are_one_line(runs: list[Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_usage_error(
        run_cli("plot", "empty", "-o", "c.png", cwd=tmp_path),
        "empty holds no evaluations.npz or progress.csv",
    )
    assert_usage_error(run_cli("plot", "nowhere", "-o", "c.png", cwd=tmp_path), "nowhere is not a folder")
    no_times = make_run(tmp_path / "old" / "seed0", 0, [-1, -2, -3], walltime=False)
    assert_usage_error(
        run_cli("plot", str(no_times), "-o", "c.png", "--x", "time", cwd=tmp_path),
        "has no wall times",
        "--x steps",
    )
    result = run_cli("plot", str(runs[0]), "-o", "c.png", "--band", "iqr", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "invalid choice: 'iqr'" in result.stderr
        and len(result.stderr.splitlines()) == 1
    )
    blocked = run_cli(
        "plot", str(runs[0]), "-o", "c.png", cwd=tmp_path, env=block_module(tmp_path, "matplotlib")
    )
    assert_usage_error(blocked, "easyrl plot needs the matplotlib package", 'pip install "easyrl[plot]"')
    assert not (tmp_path / "c.png").exists()
    with pytest.raises(PlotError, match="Give one or more run folders"):
        plot_runs([])


def test_summary_lists_final_and_best_returns(runs: list[Path]) -> None:
    text = summary([load_results(run) for run in runs])
    assert text.splitlines()[1].split()[-2:] == ["-200.0", "-200.0"]
    assert "-1100.0" not in text  # the first evaluation is neither final nor best
