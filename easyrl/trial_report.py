"""One trial of a sweep or a study, as issue 16's run folder: the settings, the run, its result row.

:mod:`easyrl.sweeps` (Ray) and :mod:`easyrl.tuning` (Optuna) both train through
:func:`easyrl.experiment.train`'s machinery; this module holds what they share and imports neither Ray nor
Optuna: :class:`EvalReporter` (a callback that hands each evaluation to a function, which can stop the run)
and :func:`run_trial` (train ``clone(estimator).set_params(**config)`` into a run folder, continuing from its
newest checkpoint where the folder has one, and write ``trial.json``, the trial's row of the results table).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from easyrl import runs
from easyrl.callbacks import BaseCallback, CallbackList
from easyrl.run_training import learn_in_folder, resume_model

TRIAL = "trial.json"
"""A finished trial's row of the results table, in its run folder (what a resumed sweep reads back)."""

Report = Callable[[dict[str, Any]], bool]
"""Called after each evaluation with the metrics; returning False stops the run."""


class EvalReporter(BaseCallback):
    """After each evaluation of a run (every ``eval_freq`` env steps, run after the run's EvalCallback), call
    ``report`` with ``timesteps``, ``eval_return`` (the evaluation's mean return), ``best_return`` and
    ``steps_per_s``; the run stops when ``report`` returns False (a pruned trial)."""

    def __init__(self, folder: Path, eval_freq: int, report: Report) -> None:
        super().__init__()
        self.folder = folder
        self.eval_freq = eval_freq
        self.eval_every = 0
        self.report = report
        self._start = time.perf_counter()
        self._start_steps = 0

    def _init_callback(self) -> None:
        assert self.model is not None
        self.eval_every = max(self.eval_freq // self.model.num_envs, 1) if self.eval_freq > 0 else 0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._start_steps = self.num_timesteps

    def _on_step(self) -> bool:
        if self.eval_every <= 0 or self.n_calls % self.eval_every:
            return True
        means = evaluation_means(self.folder)
        if means is None or not len(means[1]):
            return True
        seconds = max(time.perf_counter() - self._start, 1e-9)
        metrics = {
            "timesteps": int(means[0][-1]),
            "eval_return": float(means[1][-1]),
            "best_return": float(means[1].max()),
            "steps_per_s": (self.num_timesteps - self._start_steps) / seconds,
        }
        return bool(self.report(metrics))


def evaluation_means(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's evaluation steps and mean returns, or None before its first evaluation."""
    arrays = runs.read_evaluations(folder)
    if arrays is None or "timesteps" not in arrays or not len(arrays["timesteps"]):
        return None
    results = np.asarray(arrays["results"], dtype=np.float64).reshape(len(arrays["timesteps"]), -1)
    return np.asarray(arrays["timesteps"]), results.mean(axis=1)


def plain(value: Any) -> Any:
    """``value`` as YAML and JSON can hold it: numbers, text, lists and mappings; anything else as its repr."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    return repr(value)


def run_trial(
    estimator: Any,
    config: Mapping[str, Any],
    seed: int,
    folder: Path,
    options: Mapping[str, Any],
    report: Report | None = None,
    callback: BaseCallback | None = None,
) -> dict[str, Any]:
    """Train ``clone(estimator).set_params(**config, seed=seed)`` for ``options["total_timesteps"]`` steps
    into ``folder`` (issue 16's layout), or continue the run there from its newest checkpoint with a
    replay buffer; returns the trial's row (also written to ``folder/trial.json``).

    ``options``: ``total_timesteps``, ``eval_freq``, ``n_eval_episodes``, ``save_freq``. An exception
    from the run is not caught here.
    """
    total = int(options["total_timesteps"])
    checkpoint = runs.newest_resumable(folder)
    saved = runs.read_config(folder)
    if checkpoint is not None and saved is not None and checkpoint.steps < total:
        resumed = True
        device = estimator.get_params().get("device", "auto")
        model = resume_model(type(estimator), folder, checkpoint, device, 0)
        start, run_config = checkpoint.steps, saved
    else:
        resumed = False
        shutil.rmtree(folder, ignore_errors=True)  # a trial that died before its first checkpoint
        # sklearn.base.clone's work, without scikit-learn: a new estimator from copies of the settings.
        model = type(estimator)(**copy.deepcopy(estimator.get_params())).set_params(**dict(config), seed=seed)
        env_id = model.get_params()["env"]
        if not isinstance(env_id, str):
            raise ValueError("run_many needs an estimator made with an env id (SAC('Pendulum-v1', ...)).")
        model.policy  # noqa: B018  (builds the model and checks every setting now)
        start = 0
        run_config = {
            "algorithm": type(estimator).__name__.lower(), "env": env_id, "seed": seed,
            "hyperparams": {**plain(dict(config)), "n_timesteps": total},
            "run": {"eval_freq": int(options["eval_freq"]), "eval_episodes": int(options["n_eval_episodes"]),
                    "save_freq": int(options["save_freq"]), "device": str(model.get_params().get("device")),
                    "tensorboard": False},
        }  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        runs.write_config(folder, run_config)
    callbacks = [c for c in (callback,) if c is not None]
    if report is not None and options["eval_freq"] > 0:
        reporter = EvalReporter(folder, int(options["eval_freq"]), report)
        reporter.n_calls = start // model.num_envs
        callbacks.append(reporter)
    began = time.perf_counter()
    learn_in_folder(model, folder, run_config, start, 0, False, CallbackList(callbacks), resumed=resumed)
    seconds = max(time.perf_counter() - began, 1e-9)
    row = result_row(config, seed, folder, "done", "", (model.num_timesteps - start) / seconds)
    write_row(folder, row)
    return row


def result_row(
    config: Mapping[str, Any], seed: int, folder: Path, status: str, error: str, steps_per_s: float
) -> dict[str, Any]:
    """A trial's row: its settings, seed, final and best evaluation return, speed, status and files."""
    means = evaluation_means(folder) if folder.is_dir() else None
    final_model = folder / runs.FINAL_MODEL
    return {
        **{key: plain(value) for key, value in config.items()},
        "seed": seed,
        "final_return": float(means[1][-1]) if means else math.nan,
        "best_return": float(means[1].max()) if means else math.nan,
        "steps_per_s": steps_per_s,
        "status": status,
        "error": error,
        "model": str(final_model) if final_model.is_file() else "",
        "folder": str(folder),
    }


def write_row(folder: Path, row: dict[str, Any]) -> None:
    """Write ``trial.json`` (whole, or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    runs.replace_text(folder / TRIAL, json.dumps(row, indent=1))


def read_row(folder: Path) -> dict[str, Any] | None:
    """A trial's ``trial.json``, or None where it has none (it has not finished)."""
    return runs.read_mapping(folder / TRIAL, json.loads)
