"""Observations of every supported space, as one kind of value: an array, or a dict of arrays.

A ``Box`` observation is one array; a ``Dict`` observation is a dict of arrays, one per key (each key a
``Box``). Batches keep that form with a leading batch axis, in numpy (from the envs) and in torch (in
the replay buffer and the networks). The helpers here apply one operation to either form, so the code
that moves observations around -- the buffer, the env stepper, ``predict`` -- is written once.

``check_observation_space`` is where an unsupported space is refused, with the wrapper to use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
import torch

Obs: TypeAlias = np.ndarray | dict[str, np.ndarray]
"""A (batch of) observation(s) in numpy: one array, or one array per key of a Dict space."""

TensorObs: TypeAlias = torch.Tensor | dict[str, torch.Tensor]
"""The same in torch."""

ObsSpace: TypeAlias = gym.spaces.Box | gym.spaces.Dict


# ---------------------------------------------------------------------------------------------- spaces
def check_observation_space(space: gym.Space[Any], algorithm: str) -> ObsSpace:
    """``space`` if easyrl can train on it (a Box, or a Dict of Boxes), else a ValueError naming the fix."""
    if isinstance(space, gym.spaces.Box):
        return space
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            if not isinstance(sub, gym.spaces.Box):
                raise ValueError(
                    f"{algorithm} supports Dict observations whose entries are Box spaces, but key {key!r} is "
                    f"{_name(sub)}. {_fix(sub, inside_dict=True)}"
                )
        if not space.spaces:
            raise ValueError(f"{algorithm} cannot train on an empty Dict observation space.")
        return space
    raise ValueError(
        f"{algorithm} supports Box and Dict observation spaces, but the env has {_name(space)}. {_fix(space)}"
    )


def _name(space: gym.Space[Any]) -> str:
    return f"{type(space).__name__} ({space})"


def _fix(space: gym.Space[Any], inside_dict: bool = False) -> str:
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        where = "the whole Dict" if inside_dict else "the observations"
        return (
            f"Wrap the env with gymnasium.wrappers.FlattenObservation, which one-hot encodes it into a Box "
            f"(for {where}), or turn that entry into a Box with gymnasium.wrappers.TransformObservation."
        )
    if isinstance(space, (gym.spaces.Tuple, gym.spaces.Dict)):
        return "Wrap the env with gymnasium.wrappers.FlattenObservation to turn it into one Box."
    return (
        "Its observations have no fixed size; write a gymnasium.wrappers.TransformObservation that turns "
        "them into a fixed-size Box (padding or summarising them)."
    )


def space_shapes(space: ObsSpace) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    """The shape of one observation: a tuple, or one tuple per key."""
    if isinstance(space, gym.spaces.Dict):
        return {key: tuple(sub.shape or ()) for key, sub in space.spaces.items()}
    return tuple(space.shape)


# ---------------------------------------------------------------------------------------------- values
def map_obs(function: Callable[[Any], Any], obs: Any) -> Any:
    """``function`` applied to the array, or to each key's array."""
    if isinstance(obs, dict):
        return {key: function(value) for key, value in obs.items()}
    return function(obs)


def zip_obs(function: Callable[[Any, Any], Any], first: Any, second: Any) -> Any:
    """``function(a, b)`` for the two arrays, or for each key's pair."""
    if isinstance(first, dict):
        return {key: function(value, second[key]) for key, value in first.items()}
    return function(first, second)


def leaves(obs: Any) -> list[Any]:
    """The arrays of an observation batch: the one, or each key's."""
    return list(obs.values()) if isinstance(obs, dict) else [obs]


def as_numpy(obs: Any) -> Obs:
    """An env's observation batch as arrays (a Dict space's as a plain dict of arrays)."""
    if isinstance(obs, Mapping):
        return {key: np.asarray(value) for key, value in obs.items()}
    return np.asarray(obs)


def obs_equal(first: Obs | None, second: Obs | None) -> bool:
    """Whether two observation batches are equal (same keys, shapes and values)."""
    if first is None or second is None:
        return first is second
    if isinstance(first, dict) != isinstance(second, dict):
        return False
    if isinstance(first, dict):
        assert isinstance(second, dict)
        return first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    return bool(np.array_equal(first, second))  # type: ignore[arg-type]


def copy_obs(obs: Obs) -> Obs:
    copied: Obs = map_obs(lambda a: np.array(a, copy=True), obs)
    return copied


def obs_row(obs: Obs, i: int) -> Obs:
    """Row ``i`` of a batch of observations, as a copy."""
    return map_obs(lambda array: np.array(array[i]), obs)


def set_rows(target: Obs, rows: np.ndarray, values: list[Any]) -> None:
    """``target[rows[i]] = values[i]`` for one observation per row (each a dict for a Dict space)."""
    if isinstance(target, dict):
        for key, array in target.items():
            array[rows] = np.stack([np.asarray(v[key]) for v in values])
    else:
        target[rows] = np.stack([np.asarray(v) for v in values])


def to_tensor(obs: Obs, device: torch.device) -> TensorObs:
    """A numpy batch as tensors on ``device``, in their own dtype (networks convert and scale them)."""
    converted: TensorObs = map_obs(lambda a: torch.as_tensor(a, device=device), obs)
    return converted


def repeat_batch(obs: TensorObs, times: int) -> TensorObs:
    """The batch repeated ``times`` times along its first axis (b0, b1, ..., b0, b1, ...)."""
    repeated: TensorObs = map_obs(lambda t: t.repeat(times, *([1] * (t.dim() - 1))), obs)
    return repeated


def as_batch(observation: Any, space: ObsSpace) -> tuple[Obs, bool]:
    """One observation or a batch, as a batch; and whether it was one (for ``predict``).

    Raises ValueError naming the shape expected when ``observation`` fits the space neither way.
    """
    if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
        raise ValueError(
            "predict() was given a tuple (observation, info), which is what gymnasium's env.reset() returns. "
            "Pass the observation alone: obs, info = env.reset(); action, _ = model.predict(obs)."
        )
    shapes = space_shapes(space)
    if isinstance(shapes, dict):
        if not isinstance(observation, Mapping) or set(observation) != set(shapes):
            got = sorted(observation) if isinstance(observation, Mapping) else type(observation).__name__
            raise ValueError(
                f"This model expects a dict observation with keys {sorted(shapes)}, but got {got}."
            )
        arrays = {key: np.asarray(observation[key]) for key in shapes}
        single = all(arrays[key].shape == shape for key, shape in shapes.items())
        if single:
            return {key: a[None] for key, a in arrays.items()}, True
        sizes = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(sizes) == 1 and all(a.shape[1:] == shapes[key] for key, a in arrays.items()):
            return arrays, False
        expected = ", ".join(f"{key!r}: {shape}" for key, shape in shapes.items())
        found = ", ".join(f"{key!r}: {a.shape}" for key, a in arrays.items())
        raise ValueError(
            f"Observation has shapes {{{found}}}, but this model expects {{{expected}}} for one observation, "
            "or each with a leading batch axis of the same size n."
        )
    obs = np.asarray(observation)
    if obs.shape == shapes:
        return obs[None], True
    if obs.ndim == len(shapes) + 1 and obs.shape[1:] == shapes:
        return obs, False
    raise ValueError(
        f"Observation has shape {obs.shape}, but this model expects {shapes} for one observation "
        f"or (n, {', '.join(map(str, shapes))}) for a batch of n."
    )
