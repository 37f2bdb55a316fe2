"""``easyrl train`` as a function: tuned settings, one folder per run, evaluations, checkpoints, resume.

    from easyrl.experiment import train
    model, folder = train("sac", "Pendulum-v1", seed=0)        # runs/sac/Pendulum-v1/seed0/

The settings are rl-zoo's for the env (:mod:`easyrl.hyperparams`), with a user's file and overrides laid
over them; the run folder's files are described in :mod:`easyrl.runs`. Checkpoints (model and replay
buffer) are taken between a training phase and the next rollout, so a run resumed from one taken between
episodes continues exactly as the uninterrupted run would have (on the CPU); evaluations after a resume
play new episodes.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from easyrl import algorithms, runs
from easyrl.algorithms.registry import algorithm_class
from easyrl.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    ProgressBarCallback,
)
from easyrl.hyperparams import (
    HyperparameterError,
    check_algorithm,
    check_env,
    model_arguments,
    positive_steps,
    resolve,
)
from easyrl.logger import configure
from easyrl.progress import ProgressLines
from easyrl.version import __version__

DEFAULT_EVAL_EPISODES = 5


class RunExistsError(HyperparameterError):
    """The run folder exists already: ``force=True`` overwrites it, ``resume=True`` continues it."""


class TrainResult(NamedTuple):
    """What :func:`train` returns: the trained model and its run folder."""

    model: algorithms.OffPolicyAlgorithm[Any]
    folder: Path


def run_config(
    algo: str,
    env: str,
    *,
    steps: int | float | str | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    hyperparams: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    eval_freq: int | None = None,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    save_freq: int | None = None,
    device: str = "auto",
    tensorboard: bool = False,
) -> dict[str, Any]:
    """The settings a run of ``algo`` on ``env`` would use, as written to its ``config.yml``.

    Raises:
        HyperparameterError: an unknown algorithm, env or key, a value of the wrong type, an override
            that does not parse (one line naming it).
    """
    algo = check_algorithm(algo)
    check_env(env)
    settings, shipped = resolve(algo, env, hyperparams, overrides)
    if steps is not None:
        settings["n_timesteps"] = positive_steps(steps, "--steps")
    if n_envs is not None:
        settings["n_envs"] = positive_steps(n_envs, "--n-envs")
    if "n_timesteps" not in settings:
        raise HyperparameterError(
            f"easyrl has no tuned {algo} settings for {env}, so it needs a budget: pass --steps N "
            f"(and -p key=value or --hyperparams FILE.yml for settings other than {algo.upper()}'s defaults)."
        )
    total = positive_steps(settings["n_timesteps"], "n_timesteps")
    settings["n_timesteps"] = total
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise HyperparameterError(f"--seed {seed!r} is invalid: give an integer >= 0.")
    if eval_freq is None:
        eval_freq = min(10_000, max(total // 20, 1))
    if save_freq is None:
        save_freq = min(100_000, max(total // 10, 1))
    for name, value in (("--eval-freq", eval_freq), ("--save-freq", save_freq)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise HyperparameterError(
                f"{name} {value!r} is invalid: give a number of env steps >= 0 (0: never)."
            )
    positive_steps(eval_episodes, "--eval-episodes")
    return {
        "algorithm": algo,
        "env": env,
        "seed": seed,
        "tuned": shipped,
        "hyperparams": settings,
        "run": {
            "eval_freq": eval_freq,
            "eval_episodes": int(eval_episodes),
            "save_freq": save_freq,
            "device": device,
            "tensorboard": bool(tensorboard),
        },
        "easyrl_version": __version__,
    }


def train(
    algo: str,
    env: str,
    *,
    steps: int | float | str | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    hyperparams: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    eval_freq: int | None = None,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    save_freq: int | None = None,
    device: str | None = None,
    tensorboard: bool = False,
    verbose: int = 0,
    output: str | os.PathLike[str] = "runs",
    force: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    callback: BaseCallback | None = None,
) -> TrainResult:
    """Train ``algo`` ("sac", "td3", "ddpg") on the env id ``env`` with its tuned settings; returns the
    model and the run folder ``<output>/<algo>/<env>/seed<seed>``.

    Args:
        steps: the budget in env steps (default: the settings' ``n_timesteps``); with ``resume``, the
            new total budget (to extend a finished run).
        n_envs: parallel envs (default: the settings' ``n_envs``, else 1).
        hyperparams: a YAML file (rl-zoo's layout, or a flat mapping of keys) or a mapping, laid over the
            shipped settings; ``overrides`` (``"key=value"`` strings or a mapping) are laid over both.
        eval_freq: evaluate every this many env steps (default: a twentieth of the budget, at most 10,000;
            0: never), on ``eval_episodes`` episodes with deterministic actions.
        save_freq: take a checkpoint every this many env steps (default: a tenth of the budget, at most
            100,000; 0: none). The newest checkpoint keeps the replay buffer, for ``resume``.
        device: "auto", "cpu" or "cuda" (default "auto"; a resumed run keeps its own unless given).
        tensorboard: also write TensorBoard events to the run folder (the ``tensorboard`` extra).
        verbose: 1 prints the logger's tables and each evaluation.
        force: delete an existing run folder first; ``resume``: continue it from its newest checkpoint.
        progress: a progress bar (True), plain periodic lines (False); None: a bar on a terminal.
        callback: a callback run beside the run's own (e.g. to stop early).

    Raises:
        HyperparameterError: bad settings (see :func:`run_config`); RunExistsError: the folder exists.
    """
    algo = check_algorithm(algo)
    folder = runs.run_folder(output, algo, env, seed)
    if resume:
        if hyperparams is not None or overrides:
            raise HyperparameterError(
                f"A resumed run keeps the settings in {folder / runs.CONFIG}: drop --hyperparams and -p, "
                "or start a new run with --force."
            )
        return _resume(folder, algo, env, seed, steps, device, verbose, progress, callback)
    config = run_config(
        algo, env, steps=steps, seed=seed, n_envs=n_envs, hyperparams=hyperparams, overrides=overrides,
        eval_freq=eval_freq, eval_episodes=eval_episodes, save_freq=save_freq, device=device or "auto",
        tensorboard=tensorboard,
    )  # fmt: skip
    if folder.exists() and any(folder.iterdir()):
        if not force:
            raise RunExistsError(
                f"The run folder {folder} exists already: pass --resume to continue it from its newest "
                "checkpoint, or --force to delete it and start again."
            )
        shutil.rmtree(folder)
    model = _build(config, verbose)
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_config(folder, config)
    _learn(model, folder, config, 0, verbose, progress, callback, resumed=False)
    return TrainResult(model, folder)


def _build(config: dict[str, Any], verbose: int) -> Any:
    """The model of a run, built and checked (an invalid value is a HyperparameterError)."""
    estimator = algorithm_class(config["algorithm"].upper())
    assert estimator is not None
    probe = gym.make(config["env"])
    try:
        action_shape = tuple(probe.action_space.shape or ())
    finally:
        probe.close()
    arguments = model_arguments(estimator, config["hyperparams"], action_shape)
    model = estimator(
        config["env"], seed=config["seed"], device=config["run"]["device"], verbose=verbose, **arguments
    )
    try:
        model.policy  # noqa: B018  (builds and validates every setting now, before the run folder is made)
    except (ValueError, TypeError) as error:
        raise HyperparameterError(" ".join(str(error).split())) from None
    return model


def _resume(
    folder: Path,
    algo: str,
    env: str,
    seed: int,
    steps: int | float | str | None,
    device: str | None,
    verbose: int,
    progress: bool | None,
    callback: BaseCallback | None,
) -> TrainResult:
    config = runs.read_config(folder)
    if config is None:
        raise HyperparameterError(
            f"Cannot resume {folder}: it holds no {runs.CONFIG} (no run of easyrl train is there); "
            "start one without --resume."
        )
    if steps is not None:
        config["hyperparams"]["n_timesteps"] = positive_steps(steps, "--steps")
    total = int(config["hyperparams"]["n_timesteps"])
    usable = [c for c in runs.checkpoints(folder) if c.replay_buffer is not None]
    if not usable:
        raise HyperparameterError(
            f"Cannot resume {folder}: it has no checkpoint with a replay buffer yet (one is taken every "
            f"{config['run']['save_freq']} steps); start it again with --force."
        )
    checkpoint = usable[-1]
    if checkpoint.steps >= total:
        raise HyperparameterError(
            f"{folder} has trained {checkpoint.steps} of its {total} steps: pass --steps N with more "
            f"than {checkpoint.steps} to continue it."
        )
    if device is not None:
        config["run"]["device"] = device
    estimator = algorithm_class(algo.upper())
    assert estimator is not None
    model = estimator.load(checkpoint.model, device=config["run"]["device"])
    model.set_params(verbose=verbose)
    model.load_replay_buffer(checkpoint.replay_buffer)
    runs.truncate_progress(folder, checkpoint.steps)
    runs.write_config(folder, config)
    _learn(model, folder, config, checkpoint.steps, verbose, progress, callback, resumed=True)
    return TrainResult(model, folder)


def _learn(
    model: Any,
    folder: Path,
    config: dict[str, Any],
    start: int,
    verbose: int,
    progress: bool | None,
    callback: BaseCallback | None,
    resumed: bool,
) -> None:
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
