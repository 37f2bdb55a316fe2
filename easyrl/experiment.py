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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym

from easyrl import algorithms, runs
from easyrl.algorithms.registry import algorithm_named
from easyrl.callbacks import BaseCallback
from easyrl.hyperparams import (
    HyperparameterError,
    check_algorithm,
    check_env,
    model_arguments,
    positive_steps,
    resolve,
)
from easyrl.run_training import learn_in_folder, resume_model
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
    """Train ``algo`` ("sac", "td3", "ddpg", "tqc", "crossq") on the env id ``env`` with its tuned settings; returns the
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
    learn_in_folder(model, folder, config, 0, verbose, progress, callback, resumed=False)
    return TrainResult(model, folder)


def _build(config: dict[str, Any], verbose: int) -> Any:
    """The model of a run, built and checked (an invalid value is a HyperparameterError)."""
    estimator = algorithm_named(config["algorithm"])
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
    checkpoint = runs.newest_resumable(folder)
    if checkpoint is None:
        raise HyperparameterError(
            f"Cannot resume {folder}: it has no checkpoint with a replay buffer yet (one is taken every "
            f"{config['run']['save_freq']} steps); start it again with --force."
        )
    if checkpoint.steps >= total:
        raise HyperparameterError(
            f"{folder} has trained {checkpoint.steps} of its {total} steps: pass --steps N with more "
            f"than {checkpoint.steps} to continue it."
        )
    if device is not None:
        config["run"]["device"] = device
    estimator = algorithm_named(algo)
    assert estimator is not None
    model = resume_model(estimator, folder, checkpoint, config["run"]["device"], verbose)
    runs.write_config(folder, config)
    learn_in_folder(model, folder, config, checkpoint.steps, verbose, progress, callback, resumed=True)
    return TrainResult(model, folder)


def run_many(estimator: Any, configs: Any = None, seeds: Iterable[int] = (0,), **options: Any) -> Any:
    """Train ``estimator`` with each config at each seed, one Ray Tune trial per run, and return the
    results table (a pandas DataFrame): :func:`easyrl.sweeps.run_many`, which needs the ``ray`` extra."""
    from easyrl import sweeps

    return sweeps.run_many(estimator, configs, seeds, **options)
