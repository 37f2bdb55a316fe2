"""Learning-rate schedules: functions of the remaining progress (1 at the start, 0 at the end)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

Schedule: TypeAlias = Callable[[float], float]


@dataclass(frozen=True)
class ConstantSchedule:
    value: float

    def __call__(self, progress_remaining: float) -> float:
        return self.value


@dataclass(frozen=True)
class LinearSchedule:
    """Decays linearly from ``initial`` to 0 over training (rl-zoo's ``"lin_<initial>"``)."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def make_schedule(value: float | str | Schedule) -> Schedule:
    """A float is constant, ``"lin_3e-4"`` decays linearly, and a callable is used as it is."""
    if isinstance(value, str):
        if value.startswith("lin_"):
            return LinearSchedule(float(value[4:]))
        raise ValueError(f"Unknown schedule {value!r}: use a float, 'lin_<value>' or a callable.")
    if callable(value):
        return value
    return ConstantSchedule(float(value))
