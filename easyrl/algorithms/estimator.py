"""The scikit-learn estimator contract shared by every algorithm.

An algorithm's hyperparameters are the fields of a keyword-only dataclass: the constructor
signature *is* the parameter set, the generated ``__init__`` only stores its arguments, and
subclasses declare just their own parameters (or a different default). This module gives
those classes ``get_params`` / ``set_params`` / ``__repr__`` (non-default parameters only),
which is all ``sklearn.base.clone`` needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

import numpy as np

ArgT = TypeVar("ArgT")
BuiltT = TypeVar("BuiltT")

_MISSING = object()


class BuiltFrom(Generic[ArgT, BuiltT]):
    """A field whose constructor argument and attribute differ, as SB3 users expect.

    ``SAC(env="Pendulum-v1").env`` is the vector env built from the id, and ``.policy`` the
    policy network built from ``policy="MlpPolicy"``. This descriptor stores the argument
    unchanged (``get_params`` returns it) while reading the attribute builds the model on first
    access (``_setup``) and returns the built object. ``default`` is the constructor's default.
    """

    def __init__(self, default: Any = None) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> BuiltFrom[ArgT, BuiltT]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> BuiltT: ...
    def __get__(self, instance: object | None, owner: type) -> Any:
        if instance is None:
            return self.default  # the field's default, as dataclasses read it
        instance._setup()  # type: ignore[attr-defined]
        return instance.__dict__[f"_built_{self.name}"]

    def __set__(self, instance: object, value: ArgT) -> None:
        instance.__dict__[f"_{self.name}_argument"] = value


class Estimator:
    """Mixin for dataclass estimators: parameters, cloning and a short repr."""

    _setup_params: ClassVar[frozenset[str]] = frozenset()
    """Parameters read only when the model is built; they cannot change afterwards."""

    _is_setup: bool = False

    @classmethod
    def _param_fields(cls) -> tuple[dataclasses.Field[Any], ...]:
        # In the constructor's order: positional fields first, even those a base class declares later.
        return tuple(sorted(dataclasses.fields(cls), key=lambda f: f.kw_only is True))  # type: ignore[arg-type]

    def _param(self, name: str) -> Any:
        if f"_{name}_argument" in self.__dict__:
            return self.__dict__[f"_{name}_argument"]
        return getattr(self, name)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, exactly as they were given (``deep`` is accepted for scikit-learn)."""
        return {f.name: self._param(f.name) for f in self._param_fields()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; returns ``self``.

        Parameters that shape what was built (the env, networks, buffer, device, seed) cannot
        change once the model is built: clone the model instead. On a built model the new values
        are checked at once, and an invalid one leaves every parameter as it was.
        """
        valid = {f.name for f in self._param_fields()}
        previous = {name: self._param(name) for name in params if name in valid}
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters are: "
                    f"{', '.join(sorted(valid))}."
                )
            if self._is_setup and name in self._setup_params and not _same(self._param(name), value):
                raise ValueError(
                    f"{name} cannot change after the model was built (it shapes the env, networks or buffer). "
                    f"Create a new model instead, e.g. sklearn.base.clone(model).set_params({name}=...)."
                )
            setattr(self, name, value)
        if self._is_setup:
            try:
                self._validate_params()
            except ValueError:
                for name, value in previous.items():
                    setattr(self, name, value)
                raise
        return self

    def _validate_params(self) -> None:
        """Raise ValueError for an invalid parameter value or combination; estimators define it."""

    def __repr__(self) -> str:
        shown = []
        for f in self._param_fields():
            value = self._param(f.name)
            default = f.default if f.default is not dataclasses.MISSING else _MISSING
            if default is _MISSING or not _same(value, default):
                shown.append(f"{f.name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type; arrays compare elementwise, and failure to compare is 'different'."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(np.all(a == b))
    except (ValueError, TypeError):
        return False


def _short_repr(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    spec = getattr(value, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return f"<{type(value).__name__} {spec.id}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
