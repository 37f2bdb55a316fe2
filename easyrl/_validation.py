"""Declarative checks of hyperparameters, run on first use rather than in the constructor.

Each estimator lists ``name -> constraint``; a violated constraint becomes a ValueError that
names the parameter, the value given and the allowed range, e.g.
``tau=1.5 is invalid: tau must be a number in (0, 1].``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


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
