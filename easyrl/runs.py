"""Run folders of ``easyrl train``: where each file goes, and reading them back.

One folder per run, ``<output>/<algo>/<env id>/seed<k>/``, holding:

- ``config.yml``: the resolved settings (rl-zoo's keys) and the run options;
- ``progress.csv``: the logger's rows (training statistics, and ``eval/*`` after each evaluation);
- ``evaluations.npz``: SB3's arrays ``timesteps``, ``results`` (returns, n_evals x n_episodes) and
  ``ep_lengths``, plus ``walltime`` (seconds of training since the run began, across resumes);
- ``best_model.zip`` and ``final_model.zip``;
- ``checkpoints/rl_model_<steps>_steps.zip`` (every ``save_freq`` steps) and the newest
  ``checkpoints/rl_model_replay_buffer_<steps>_steps.zip``, from which ``--resume`` continues.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONFIG = "config.yml"
PROGRESS = "progress.csv"
EVALUATIONS = "evaluations.npz"
BEST_MODEL = "best_model.zip"
FINAL_MODEL = "final_model.zip"
CHECKPOINTS = "checkpoints"
PREFIX = "rl_model"
_CHECKPOINT = re.compile(rf"{PREFIX}_(replay_buffer_)?(\d+)_steps\.zip")


def run_folder(output: str | os.PathLike[str], algorithm: str, env_id: str, seed: int) -> Path:
    """``<output>/<algorithm>/<env_id>/seed<seed>``."""
    return Path(output) / algorithm / env_id / f"seed{seed}"


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it over, so a crash mid-write leaves the previous file whole."""
    path.with_suffix(".tmp").write_text(text, encoding="utf-8")
    os.replace(path.with_suffix(".tmp"), path)


def read_mapping(path: Path, parse: Callable[[str], Any]) -> dict[str, Any] | None:
    """The mapping ``parse`` reads from the text file ``path``, or None where there is none."""
    if not path.is_file():
        return None
    data = parse(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write the run's ``config.yml`` (whole, or not at all)."""
    replace_text(folder / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(folder: Path) -> dict[str, Any] | None:
    """The run's ``config.yml``, or None where there is none (a folder not written by ``easyrl train``)."""
    return read_mapping(folder / CONFIG, yaml.safe_load)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of a run: the model file and, where it was kept, the replay buffer's."""

    steps: int
    model: Path
    replay_buffer: Path | None


def checkpoints(folder: Path) -> list[Checkpoint]:
    """The run's checkpoints, oldest first."""
    models: dict[int, Path] = {}
    buffers: dict[int, Path] = {}
    for path in (folder / CHECKPOINTS).glob(f"{PREFIX}_*_steps.zip"):
        match = _CHECKPOINT.fullmatch(path.name)
        if match:
            (buffers if match.group(1) else models)[int(match.group(2))] = path
    return [Checkpoint(steps, models[steps], buffers.get(steps)) for steps in sorted(models)]


def newest_resumable(folder: Path) -> Checkpoint | None:
    """The newest checkpoint that has its replay buffer (what a run continues from), or None."""
    usable = [c for c in checkpoints(folder) if c.replay_buffer is not None]
    return usable[-1] if usable else None


def checkpoint_paths(folder: Path, steps: int) -> tuple[Path, Path]:
    """Where the checkpoint at ``steps`` goes: the model file and the replay buffer's (CheckpointCallback's names)."""
    base = folder / CHECKPOINTS
    return base / f"{PREFIX}_{steps}_steps.zip", base / f"{PREFIX}_replay_buffer_{steps}_steps.zip"


def read_evaluations(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays of the run's ``evaluations.npz``, or None where there is none."""
    path = folder / EVALUATIONS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_evaluations(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``evaluations.npz`` beside and rename it."""
    path = folder / EVALUATIONS
    with open(str(path) + ".tmp", "wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]
    os.replace(str(path) + ".tmp", path)


def truncate_evaluations(folder: Path, steps: int) -> dict[str, np.ndarray] | None:
    """Drop the evaluations made after ``steps`` (a resumed run redoes them); returns what is kept."""
    arrays = read_evaluations(folder)
    if arrays is None or "timesteps" not in arrays:
        return arrays
    keep = int(np.count_nonzero(arrays["timesteps"] <= steps))
    kept = {name: array[:keep] for name, array in arrays.items()}
    write_evaluations(folder, kept)
    return kept


def truncate_progress(folder: Path, steps: int) -> None:
    """Drop the rows of ``progress.csv`` logged after ``steps`` (a resumed run logs them again)."""
    path = folder / PROGRESS
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    if not rows or "time/total_timesteps" not in rows[0]:
        return
    column = rows[0].index("time/total_timesteps")
    kept = [rows[0]] + [row for row in rows[1:] if not _after(row, column, steps)]
    with open(str(path) + ".tmp", "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(kept)
    os.replace(str(path) + ".tmp", path)


def _after(row: list[str], column: int, steps: int) -> bool:
    try:
        return float(row[column]) > steps
    except (IndexError, ValueError):
        return False


@dataclass(frozen=True)
class RunResults:
    """A run's learning curve: evaluation returns by env step (and wall time, where known).

    ``returns`` has one row per evaluation (its episodes' returns; a single column when read from
    ``progress.csv``); ``source`` names the file the numbers came from.
    """

    folder: Path
    config: dict[str, Any] | None
    timesteps: np.ndarray
    returns: np.ndarray
    walltime: np.ndarray | None
    source: str

    @property
    def mean_returns(self) -> np.ndarray:
        """The mean return of each evaluation."""
        return np.asarray(self.returns.mean(axis=1), dtype=np.float64)


def load_results(folder: str | os.PathLike[str]) -> RunResults:
    """A run's learning curve, from ``evaluations.npz`` or else from ``progress.csv``.

    ``progress.csv`` gives ``eval/mean_reward`` rows where there are some, else the training episodes'
    ``rollout/ep_rew_mean`` (with ``time/time_elapsed`` as the wall time).

    Raises:
        ValueError: the folder holds neither file, or they hold no returns.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder: give run folders such as runs/sac/Pendulum-v1/seed0.")
    config = read_config(path)
    arrays = read_evaluations(path)
    if arrays is not None and {"timesteps", "results"} <= set(arrays) and len(arrays["timesteps"]):
        returns = np.asarray(arrays["results"], dtype=np.float64).reshape(len(arrays["timesteps"]), -1)
        walltime = arrays.get("walltime")
        if walltime is not None and len(walltime) != len(arrays["timesteps"]):
            walltime = None
        return RunResults(path, config, np.asarray(arrays["timesteps"]), returns, walltime, EVALUATIONS)
    return _from_progress(path, config)


def _from_progress(path: Path, config: dict[str, Any] | None) -> RunResults:
    csv_path = path / PROGRESS
    if not csv_path.is_file():
        raise ValueError(
            f"{path} holds no {EVALUATIONS} or {PROGRESS}: give the folder of a run of easyrl train "
            "(or of a run with EvalCallback(log_path=...))."
        )
    with open(csv_path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for key, time_key in (("eval/mean_reward", None), ("rollout/ep_rew_mean", "time/time_elapsed")):
        points = [
            (float(row["time/total_timesteps"]), float(row[key]), _number(row.get(time_key or "")))
            for row in rows
            if row.get(key) not in (None, "") and row.get("time/total_timesteps") not in (None, "")
        ]
        if points:
            steps, values, times = (
                np.array(column, dtype=np.float64) for column in zip(*points, strict=True)
            )
            walltime = None if np.isnan(times).any() else times
            return RunResults(path, config, steps, values[:, None], walltime, f"{PROGRESS} ({key})")
    raise ValueError(
        f"{csv_path} has no returns (no eval/mean_reward or rollout/ep_rew_mean values) to plot."
    )


def _number(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return float("nan")
