"""Algorithms by name: a class registers itself when it is defined, and file-reading code looks it up.

A model file names its algorithm (``"SAC"``); loading looks the class up here instead of importing
``sac``, ``td3`` or ``ddpg``, so shared code never depends on a particular algorithm, and a new
estimator is available to ``easyrl.load`` as soon as its module is imported.
"""

from __future__ import annotations

from typing import Any

_ALGORITHMS: dict[str, type[Any]] = {}


def register(cls: type[Any], name: str) -> None:
    """Make ``cls`` the algorithm that files naming ``name`` are loaded as."""
    known = _ALGORITHMS.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"Two algorithms are named {name!r}: {known.__qualname__} and {cls.__qualname__}.")
    _ALGORITHMS[name] = cls


def algorithm_class(name: object) -> type[Any] | None:
    """The class registered as ``name``, or None."""
    return _ALGORITHMS.get(name) if isinstance(name, str) else None


def algorithm_named(name: str) -> type[Any] | None:
    """The class whose registered name is ``name`` in any case (``"crossq"`` is CrossQ), or None."""
    return {known.lower(): cls for known, cls in _ALGORITHMS.items()}.get(name.lower())


def algorithm_names() -> list[str]:
    return list(_ALGORITHMS)
