"""Learning-rate schedules: functions of the remaining progress (1 at the start, 0 at the end).

Besides floats and callables, rl-zoo's string forms are accepted wherever a schedule is:
``"lin_<value>"`` (a linear decay from the value to 0) and ``"constant_<value>"``. A model keeps the
string as given, so its file saves the string.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

Schedule: TypeAlias = Callable[[float], float]


@dataclass(frozen=True)
class ConstantSchedule:
    """The same value throughout training (rl-zoo's ``"constant_<value>"``)."""

    value: float

    def __call__(self, progress_remaining: float) -> float:
        return self.value


@dataclass(frozen=True)
class LinearSchedule:
    """Decays linearly from ``initial`` to 0 over training (rl-zoo's ``"lin_<initial>"``)."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


ZOO_SCHEDULES: dict[str, Callable[[float], Schedule]] = {"lin": LinearSchedule, "constant": ConstantSchedule}
"""rl-zoo's schedule strings ``"<kind>_<value>"``, by kind."""


def zoo_schedule(text: str) -> Schedule:
    """The schedule of rl-zoo's ``"lin_<value>"`` or ``"constant_<value>"``, with a finite value > 0.

    Raises:
        ValueError: ``text`` is not of those forms.
    """
    kind, _, value = text.partition("_")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if kind not in ZOO_SCHEDULES or not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"Unknown schedule {text!r}: use a float, 'lin_<value>' (linear decay to 0), "
            "'constant_<value>' (value > 0) or a callable."
        )
    return ZOO_SCHEDULES[kind](number)


def is_zoo_schedule(value: object) -> bool:
    """Whether ``value`` is a string :func:`zoo_schedule` accepts."""
    if not isinstance(value, str):
        return False
    try:
        zoo_schedule(value)
    except ValueError:
        return False
    return True


def make_schedule(value: float | str | Schedule) -> Schedule:
    """A float is constant, ``"lin_3e-4"`` decays linearly, ``"constant_3e-4"`` stays, a callable is used as it is."""
    if isinstance(value, str):
        return zoo_schedule(value)
    if callable(value):
        return value
    return ConstantSchedule(float(value))
