"""Training a run into its folder: the logger, evaluations, checkpoints and final model of a run.

:func:`learn_in_folder` is the loop of :func:`easyrl.experiment.train` (and of each trial of
:mod:`easyrl.sweeps` and :mod:`easyrl.tuning`): it writes the run folder's files (:mod:`easyrl.runs`)
while the model learns, and continues a run resumed from a checkpoint exactly.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from easyrl import runs
from easyrl.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    ProgressBarCallback,
)
from easyrl.hyperparams import HyperparameterError
from easyrl.logger import configure
from easyrl.progress import ProgressLines


def learn_in_folder(
    model: Any,
    folder: Path,
    config: dict[str, Any],
    start: int,
    verbose: int,
    progress: bool | None,
    callback: BaseCallback | None,
    resumed: bool,
) -> None:
    """Train ``model`` to the run's budget from ``start`` steps, writing the run folder's files."""
    run = config["run"]
    total = int(config["hyperparams"]["n_timesteps"])
    formats = ["csv"] + (["stdout"] if verbose >= 1 else []) + (["tensorboard"] if run["tensorboard"] else [])
    try:
        logger = configure(str(folder), formats, append=resumed)
    except ImportError as error:
        raise HyperparameterError(" ".join(str(error).split())) from None
    model.set_logger(logger)
    n_envs = model.num_envs
    callbacks: list[BaseCallback] = []
    evaluation: EvalCallback | None = None
    if run["eval_freq"] > 0:
        kept = runs.truncate_evaluations(folder, start) if resumed else None
        timer = EvalTimes(folder, kept)
        evaluation = EvalCallback(
            config["env"], callback_after_eval=timer, n_eval_episodes=run["eval_episodes"],
            eval_freq=max(run["eval_freq"] // n_envs, 1), log_path=str(folder),
            best_model_save_path=str(folder), verbose=1 if verbose >= 1 else 0,
        )  # fmt: skip
        _restore_evaluations(evaluation, kept, start // n_envs)
        callbacks.append(evaluation)
    checkpointer = None
    if run["save_freq"] > 0:
        checkpointer = RunCheckpoints(max(run["save_freq"] // n_envs, 1), folder)
        checkpointer.n_calls = start // n_envs
        callbacks.append(checkpointer)
    interactive = sys.stdout.isatty() if progress is None else progress
    callbacks.append(ProgressBarCallback() if interactive else ProgressLines(evaluation))
    if callback is not None:
        callbacks.append(callback)
    try:
        model.learn(total - start, callback=CallbackList(callbacks), reset_num_timesteps=not resumed)
    finally:
        logger.close()
    model.save(folder / runs.FINAL_MODEL)
    if checkpointer is not None:
        checkpointer.save_now()


def resume_model(cls: Any, folder: Path, checkpoint: runs.Checkpoint, device: str, verbose: int) -> Any:
    """A ``cls`` model and its replay buffer loaded from the run's ``checkpoint``, with the run's
    progress.csv cut back to it (the resumed run logs those rows again)."""
    assert checkpoint.replay_buffer is not None
    model = cls.load(checkpoint.model, device=device)
    model.set_params(verbose=verbose)
    model.load_replay_buffer(checkpoint.replay_buffer)
    runs.truncate_progress(folder, checkpoint.steps)
    return model


def _restore_evaluations(evaluation: EvalCallback, kept: dict[str, np.ndarray] | None, calls: int) -> None:
    """Continue an evaluation record: the earlier results, the best mean, the evaluation schedule."""
    evaluation.n_calls = calls
    if not kept or "timesteps" not in kept:
        return
    evaluation.evaluations_timesteps = [int(t) for t in kept["timesteps"]]
    evaluation.evaluations_results = [list(map(float, row)) for row in kept["results"]]
    evaluation.evaluations_length = [list(map(int, row)) for row in kept["ep_lengths"]]
    if "successes" in kept:
        evaluation.evaluations_successes = [list(map(float, row)) for row in kept["successes"]]
    if len(kept["results"]):
        evaluation.best_mean_reward = float(np.max(np.mean(kept["results"], axis=1)))
        evaluation.last_mean_reward = float(np.mean(kept["results"][-1]))


class EvalTimes(BaseCallback):
    """Run after each evaluation: adds ``walltime`` (seconds of training since the run began, across
    resumes) to ``evaluations.npz``, for plots against time."""

    def __init__(self, folder: Path, kept: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.times = [float(t) for t in (kept or {}).get("walltime", [])]
        self._offset = self.times[-1] if self.times else 0.0
        self._start = time.perf_counter()

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        self.times.append(self._offset + time.perf_counter() - self._start)
        arrays = runs.read_evaluations(self.folder)
        if arrays is not None and len(arrays.get("timesteps", ())) == len(self.times):
            arrays["walltime"] = np.array(self.times)
            runs.write_evaluations(self.folder, arrays)
        return True


class RunCheckpoints(CheckpointCallback):
    """CheckpointCallback's files (model and replay buffer), taken at the start of the rollout after each
    ``save_freq`` calls: after the training phase that followed the step, so a checkpoint taken between
    episodes resumes exactly. Only the newest replay buffer is kept (it can be as large as the buffer)."""

    def __init__(self, save_freq: int, folder: Path) -> None:
        super().__init__(save_freq, folder / runs.CHECKPOINTS, runs.PREFIX, save_replay_buffer=True)
        self.folder = folder
        self._saved_at_calls = 0

    def _init_callback(self) -> None:
        super()._init_callback()
        self._saved_at_calls = self.n_calls

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.n_calls - self._saved_at_calls >= self.save_freq:
            self.save_now()

    def save_now(self) -> None:
        """Take a checkpoint of the model and its replay buffer now, and drop the older replay buffers."""
        model = self._model
        steps = model.num_timesteps
        model_path, buffer_path = runs.checkpoint_paths(self.folder, steps)
        model.save(str(model_path))
        model.save_replay_buffer(str(buffer_path))
        for older in runs.checkpoints(self.folder):
            if older.replay_buffer is not None and older.steps != steps:
                older.replay_buffer.unlink()
        self._saved_at_calls = self.n_calls
