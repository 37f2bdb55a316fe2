"""Every check of what a user passes in, run on first use rather than in the constructor.

Hyperparameters are declarative: each estimator lists ``name -> constraint``, and a violated
constraint becomes a ValueError that names the parameter, the value given and the allowed range,
e.g. ``tau=1.5 is invalid: tau must be a number in (0, 1].`` Below them are the conversions run
when a model is built: the train frequency, the device, and the env's spaces.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from easyrl import zoo
from easyrl.observations import ObsSpace, check_observation_space
from easyrl.schedules import is_zoo_schedule

POLICY_NAMES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")
"""SB3 policy names accepted as the ``policy`` argument; each picks SB3's features extractor."""


class Constraint:
    """A rule a hyperparameter value must satisfy."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real (or, with ``integer=True``, whole) number within bounds; None means unbounded."""

    low: float | None = None
    high: float | None = None
    low_closed: bool = True
    high_closed: bool = True
    integer: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        kind = numbers.Integral if self.integer else numbers.Real
        if not isinstance(value, kind) or (not self.integer and math.isnan(float(value))):
            return False
        v = float(value)
        if self.low is not None and (v < self.low or (v == self.low and not self.low_closed)):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and not self.high_closed)))

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is None:
            return f"{kind} {'>=' if self.low_closed else '>'} {_fmt(self.low)}"
        if self.high is not None and self.low is None:
            return f"{kind} {'<=' if self.high_closed else '<'} {_fmt(self.high)}"
        if self.low is None and self.high is None:
            return kind
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"{kind} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Satisfies(Constraint):
    """Anything a predicate accepts; ``text`` says what that is."""

    predicate: Callable[[Any], bool]
    text: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:  # a predicate that cannot even look at the value rejects it
            return False

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class AnyOf(Constraint):
    """Satisfies at least one of several constraints."""

    options: tuple[Constraint, ...]

    def accepts(self, value: Any) -> bool:
        return any(c.accepts(value) for c in self.options)

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.options)


def _fmt(x: float | None) -> str:
    return "inf" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def positive_int() -> Interval:
    return Interval(1, None, integer=True)


def non_negative_int() -> Interval:
    return Interval(0, None, integer=True)


def check_params(params: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> None:
    """Raise ValueError for the first parameter in ``params`` that breaks its constraint."""
    for name, constraint in constraints.items():
        value = params[name]
        if not constraint.accepts(value):
            raise ValueError(f"{name}={value!r} is invalid: {name} must be {constraint.describe()}.")


def check_keys(given: Iterable[str], allowed: Iterable[str], what: str) -> None:
    """Raise ValueError naming unknown keys of a dict argument, with the allowed ones."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown key(s) {', '.join(repr(k) for k in unknown)} in {what}; "
            f"allowed keys are {', '.join(repr(k) for k in sorted(allowed))}."
        )


def zoo_schedule() -> Satisfies:
    """rl-zoo's schedule strings, ``"lin_<value>"`` and ``"constant_<value>"`` (value > 0)."""
    return Satisfies(is_zoo_schedule, "'lin_<value>' or 'constant_<value>'")


def policy_name(policy: Any) -> str | None:
    """The SB3 policy name ``policy`` stands for, or None when it is none of them.

    A name (``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"``) stands for itself; one of easyrl's
    policy classes (``easyrl.sac.policies.CnnPolicy``) for its ``policy_name``. A class from elsewhere
    stands for nothing: easyrl builds its own networks, so a user's policy class would be ignored.
    """
    if isinstance(policy, str):
        return policy if policy in POLICY_NAMES else None
    if isinstance(policy, type) and policy.__module__.split(".")[0] == "easyrl":
        name = getattr(policy, "policy_name", None)
        return name if name in POLICY_NAMES else None
    return None


def policy_kwargs(value: Any) -> dict[str, Any]:
    """``policy_kwargs`` as a new dict: None is empty, a dict is copied, rl-zoo's string is parsed safely.

    The string form is rl-zoo's, e.g. ``"dict(net_arch=[400, 300], activation_fn=nn.ReLU)"``; see
    :mod:`easyrl.zoo` for what it may hold. Raises ValueError for anything else.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        return zoo.parse_policy_kwargs(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError(
        f"policy_kwargs={value!r} is invalid: pass a dict such as dict(net_arch=[64, 64]), or rl-zoo's "
        'string form "dict(net_arch=[64, 64])".'
    )


class TrainFrequency(NamedTuple):
    frequency: int
    unit: str  # "step" or "episode"


def parse_train_freq(train_freq: Any) -> TrainFrequency:
    """``4`` -> (4, "step"); ``(1, "episode")`` -> (1, "episode"), with a clear error otherwise."""
    if isinstance(train_freq, int) and not isinstance(train_freq, bool) and train_freq > 0:
        return TrainFrequency(train_freq, "step")
    if (
        isinstance(train_freq, (tuple, list))
        and len(train_freq) == 2
        and isinstance(train_freq[0], int)
        and train_freq[0] > 0
        and train_freq[1] in ("step", "episode")
    ):
        return TrainFrequency(int(train_freq[0]), str(train_freq[1]))
    raise ValueError(
        f"train_freq={train_freq!r} is invalid: train_freq must be a positive integer (env steps) "
        "or a tuple (n, 'step') / (n, 'episode') with n >= 1."
    )


def valid_device(device: Any) -> bool:
    if isinstance(device, torch.device):
        return True
    return isinstance(device, str) and (
        device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use device='cpu' or 'auto'."
        )
    return resolved


def supported_spaces(env: VectorEnv, algorithm: str) -> tuple[ObsSpace, gym.spaces.Box]:
    """The single-env observation and action spaces, checked for what these algorithms support."""
    return check_spaces(env.single_observation_space, env.single_action_space, algorithm)


def check_spaces(
    obs_space: gym.Space[Any], action_space: gym.Space[Any], algorithm: str
) -> tuple[ObsSpace, gym.spaces.Box]:
    """The spaces, if these algorithms can train on them, else a ValueError naming the problem and the fix."""
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"{algorithm} needs a continuous (Box) action space, but the env has {action_space}. "
            "For discrete actions use a discrete-action algorithm such as DQN."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"{algorithm} needs finite action bounds, but the action space is {action_space}. "
            "Wrap the env with gymnasium.wrappers.RescaleAction or ClipAction to give it bounds."
        )
    return check_observation_space(obs_space, algorithm), action_space


def net_arch(policy_kwargs: Mapping[str, Any], part: str, default: list[int]) -> list[int]:
    """Hidden layer widths for ``part`` ("pi" or "qf") from ``policy_kwargs["net_arch"]``."""
    arch = policy_kwargs.get("net_arch", default)
    if isinstance(arch, dict):
        check_keys(arch.keys(), {"pi", "qf"}, "policy_kwargs['net_arch']")
        arch = arch.get(part, default)
    if not (isinstance(arch, (list, tuple)) and all(isinstance(w, int) and w > 0 for w in arch)):
        raise ValueError(
            f"policy_kwargs['net_arch']={policy_kwargs.get('net_arch')!r} is invalid: use a list of positive layer "
            "widths such as [256, 256], or dict(pi=[...], qf=[...])."
        )
    return list(arch)
