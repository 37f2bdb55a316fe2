"""Hyperparameter files in rl-baselines3-zoo's YAML format: the shipped tuned settings, and overrides.

easyrl ships rl-zoo's published settings for SAC, TD3 and DDPG (``easyrl/hyperparams/<algo>.yml``), one
entry per env id. :func:`resolve` merges, in this order, the shipped entry, a user's file
(``--hyperparams FILE.yml``: rl-zoo's layout with one entry per env, or a flat mapping of keys) and
``key=value`` overrides (``-p``), into one mapping in rl-zoo's form; :func:`model_arguments` turns that
mapping into an estimator's constructor arguments.

rl-zoo's keys read here besides the estimator's own parameters: ``n_timesteps`` (the training budget),
``noise_type`` (``normal`` or ``ornstein-uhlenbeck``) with ``noise_std`` (the action noise),
``replay_buffer_class`` by name, and ``policy_kwargs``/``replay_buffer_kwargs`` as rl-zoo's strings, read
by :mod:`easyrl.zoo` without ``eval``. Keys that would run code named in a file or change the env
(``env_wrapper``, ``callback``, ...) are refused with a message that says what to do instead. YAML is
read with ``yaml.safe_load`` (no tags that build objects) and overrides with ``ast.literal_eval``.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from easyrl import zoo
from easyrl.buffers import HerReplayBuffer, ReplayBuffer
from easyrl.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise

ALGORITHMS = ("sac", "td3", "ddpg", "tqc", "crossq")
"""The algorithms that ship tuned settings (the names ``easyrl train`` accepts)."""

NOISE_TYPES: dict[str, type[ActionNoise]] = {
    "normal": NormalActionNoise,
    "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise,
}
REPLAY_BUFFERS: dict[str, type[ReplayBuffer]] = {
    "ReplayBuffer": ReplayBuffer,
    "HerReplayBuffer": HerReplayBuffer,
}
_WORD = re.compile(r"[A-Za-z_][\w.+-]*")
"""An override value read as text: ``lin_3e-4``, ``auto_0.1``, ``MlpPolicy``, ``ornstein-uhlenbeck``."""
RUN_KEYS = ("n_timesteps", "noise_type", "noise_std")
"""rl-zoo keys that are not estimator parameters but are understood."""

REFUSED: dict[str, str] = {
    "env_wrapper": "easyrl trains on the registered env as it is; wrap it in Python and pass the env to "
    "SAC(...) instead (model files store only the env id)",
    "vec_env_wrapper": "use normalize: True for VecNormalize, or build the vector env in Python",
    "frame_stack": "stack frames with gymnasium.wrappers.FrameStackObservation in Python",
    "callback": "callbacks named in a file are not imported; use easyrl.experiment.train(..., callback=...)",
    "env_kwargs": "register an env id with those arguments (gymnasium.register) and train on that id",
    "normalize_kwargs": "give normalize a dict of settings instead",
    "policy_delay_final": "it is not an rl-zoo or easyrl setting",
    "noise_std_final": "decaying noise is not supported; use a constant noise_std",
    "env": "the env is the ENV argument of easyrl train",
    "seed": "use --seed (the run folder is named after it)",
    "tensorboard_log": "use --tensorboard (the events go to the run folder)",
}
"""Keys a file may not set, and what to do instead."""


class HyperparameterError(ValueError):
    """A hyperparameter file, entry or override that cannot be used; the message is one line that names
    the problem and the fix."""


def shipped_table(algorithm: str) -> dict[str, Any]:
    """The shipped settings of ``algorithm`` (one of :data:`ALGORITHMS`), by env id."""
    algorithm = check_algorithm(algorithm)
    text = resources.files("easyrl").joinpath("hyperparams", f"{algorithm}.yml").read_text(encoding="utf-8")
    return _parse_yaml(text, f"easyrl's {algorithm}.yml")


def check_algorithm(name: str) -> str:
    """``name`` in lower case if it is an algorithm with shipped settings, else a HyperparameterError."""
    if name.lower() in ALGORITHMS:
        return name.lower()
    raise HyperparameterError(
        f"Unknown algorithm {name!r}{_close(name.lower(), ALGORITHMS)}: use one of {', '.join(ALGORITHMS)}."
    )


def check_env(env_id: str) -> None:
    """A HyperparameterError naming ``env_id`` and its close matches if gymnasium does not know it."""
    if env_id not in gym.registry:
        raise HyperparameterError(
            f"Unknown env id {env_id!r}{_close(env_id, gym.registry)}: give an id registered with gymnasium "
            "(see gymnasium.pprint_registry())."
        )


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML file of hyperparameters as a mapping (read with ``yaml.safe_load``)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise HyperparameterError(
            f"Cannot read the hyperparameter file {os.fspath(path)!r}: {error.strerror}."
        ) from None
    return _parse_yaml(text, os.fspath(path))


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise HyperparameterError(f"{source} is not valid YAML{line}: {problem}; fix the file.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HyperparameterError(
            f"{source} must hold a mapping of keys to values, not a {type(data).__name__}."
        )
    return data


def file_entry(data: Mapping[str, Any], env_id: str, source: str) -> dict[str, Any]:
    """The settings for ``env_id`` in a user's file: its entry when the file is in rl-zoo's layout (one
    mapping per env id), else the whole file as one flat mapping of keys."""
    if env_id in data:
        entry = data[env_id]
        if not isinstance(entry, dict):
            raise HyperparameterError(
                f"{source}: the entry for {env_id} must be a mapping of keys to values."
            )
        return dict(entry)
    envs = [key for key, value in data.items() if isinstance(value, dict) and "-v" in str(key)]
    if envs:
        raise HyperparameterError(
            f"{source} has no entry for {env_id} (it has {', '.join(map(str, envs))}): add one, "
            "or write the keys at the top level."
        )
    return dict(data)


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` as (key, value): the value is a Python literal (``ast.literal_eval``, never eval), or
    else a plain word or an rl-zoo ``dict(...)`` string, kept as text (``learning_rate=lin_3e-4``)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key.isidentifier():
        raise HyperparameterError(
            f"Cannot read the override {text!r}: write it as key=value, e.g. -p learning_rate=1e-3."
        )
    if not raw:
        raise HyperparameterError(
            f"Cannot read the override {text!r}: {key} has no value; write {key}=VALUE."
        )
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if not (_WORD.fullmatch(raw) or raw.startswith("dict(")):
        raise HyperparameterError(
            f"Cannot read the override {text!r}: {raw!r} is neither a Python literal nor a plain word; quote "
            "strings and close brackets, e.g. -p net_arch=[64,64] or -p train_freq=(1,'episode')."
        )
    return key, raw


def resolve(
    algorithm: str,
    env_id: str,
    hyperparams: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> tuple[dict[str, Any], bool]:
    """The merged settings for ``algorithm`` on ``env_id`` in rl-zoo's form, and whether easyrl ships
    tuned settings for the env.

    ``hyperparams`` is a YAML file (or an already-read mapping) laid over the shipped entry; ``overrides``
    are ``"key=value"`` strings or a mapping, laid over both.
    """
    table = shipped_table(algorithm)
    settings: dict[str, Any] = dict(table.get(env_id) or {})
    shipped = env_id in table
    if hyperparams is not None:
        if isinstance(hyperparams, Mapping):
            settings.update(file_entry(hyperparams, env_id, "hyperparams"))
        else:
            settings.update(file_entry(load_file(hyperparams), env_id, os.fspath(hyperparams)))
    if isinstance(overrides, Mapping):
        settings.update(overrides)
    else:
        settings.update(parse_override(text) for text in overrides)
    return settings, shipped


def model_arguments(
    estimator: type[Any], settings: Mapping[str, Any], action_shape: tuple[int, ...]
) -> dict[str, Any]:
    """The constructor arguments of ``estimator`` from rl-zoo-form ``settings`` (without the run keys
    ``n_timesteps``; ``noise_type``/``noise_std`` become ``action_noise`` for ``action_shape``)."""
    parameters = set(inspect.signature(estimator).parameters) - {"env"}
    arguments: dict[str, Any] = {}
    for key, value in settings.items():
        if key in REFUSED:
            raise HyperparameterError(f"The key {key!r} is not supported by easyrl train: {REFUSED[key]}.")
        if key in RUN_KEYS:
            continue
        if key not in parameters:
            known = sorted(parameters | set(RUN_KEYS))
            raise HyperparameterError(
                f"Unknown hyperparameter {key!r} for {estimator.__name__}{_close(key, known)}; "
                f"see {estimator.__name__}'s parameters (help(easyrl.{estimator.__name__}))."
            )
        arguments[key] = _converted(key, value)
    noise = action_noise(settings, action_shape)
    if noise is not None:
        arguments["action_noise"] = noise
    return arguments


def _converted(key: str, value: Any) -> Any:
    try:
        if key == "policy_kwargs" and isinstance(value, str):
            zoo.parse_policy_kwargs(value)  # checked now; the model keeps the string, as rl-zoo gives it
        elif key == "replay_buffer_kwargs" and isinstance(value, str):
            return zoo.parse_expression(value, key)
        elif key == "replay_buffer_class" and isinstance(value, str):
            if value.rpartition(".")[2] not in REPLAY_BUFFERS:
                raise HyperparameterError(
                    f"replay_buffer_class={value!r} is not one easyrl knows: use {' or '.join(REPLAY_BUFFERS)}."
                )
            return REPLAY_BUFFERS[value.rpartition(".")[2]]
    except (ValueError, TypeError) as error:
        raise HyperparameterError(" ".join(str(error).split())) from None
    if key == "train_freq" and isinstance(value, list):
        return tuple(value)
    return value


def n_timesteps(settings: Mapping[str, Any]) -> int | None:
    """The ``n_timesteps`` of ``settings`` as an integer (rl-zoo writes ``!!float 1e6``), or None."""
    value = settings.get("n_timesteps")
    if value is None:
        return None
    return positive_steps(value, "n_timesteps")


def positive_steps(value: Any, name: str) -> int:
    """``value`` as a whole number of steps >= 1 (``1e6`` and ``"1e6"`` accepted)."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            number = math.nan
    if (
        isinstance(number, bool)
        or not isinstance(number, int | float)
        or not math.isfinite(number)
        or number < 1
    ):
        raise HyperparameterError(
            f"{name}={value!r} is invalid: it must be a whole number of steps >= 1, e.g. 20000 or 1e6."
        )
    if number != int(number):
        raise HyperparameterError(f"{name}={value!r} is invalid: it must be a whole number of steps.")
    return int(number)


def action_noise(settings: Mapping[str, Any], action_shape: tuple[int, ...]) -> ActionNoise | None:
    """rl-zoo's ``noise_type`` and ``noise_std`` as an action noise of ``action_shape`` (None without them)."""
    kind, std = settings.get("noise_type"), settings.get("noise_std")
    if kind is None and std is None:
        return None
    if kind not in NOISE_TYPES:
        raise HyperparameterError(
            f"noise_type={kind!r} is invalid: use {' or '.join(map(repr, NOISE_TYPES))} (with noise_std)."
        )
    if std is None:
        raise HyperparameterError(f"noise_type={kind!r} needs noise_std, e.g. noise_std: 0.1.")
    values = np.asarray(std, dtype=object).ravel()
    if not all(isinstance(s, int | float) and not isinstance(s, bool) and s >= 0 for s in values):
        raise HyperparameterError(
            f"noise_std={std!r} is invalid: it must be a number >= 0 (or one per action)."
        )
    if values.size not in (1, int(np.prod(action_shape))):
        raise HyperparameterError(
            f"noise_std={std!r} has the wrong length: give one number, or one per action ({action_shape})."
        )
    sigma = np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1), (int(np.prod(action_shape)),))
    return NOISE_TYPES[kind](np.zeros(action_shape), sigma.reshape(action_shape).copy())


def dump(settings: Mapping[str, Any]) -> str:
    """``settings`` as YAML in rl-zoo's form (tuples written as lists)."""
    plain = {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()}
    return yaml.safe_dump(plain, sort_keys=True, default_flow_style=False)


def _close(name: str, options: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""
