"""The replay buffer file: the buffer's arrays as plain ``.npy`` members plus JSON, never a pickle.

Saving writes views of the rows in use straight from the buffer's storage (``write_arrays_zip`` streams
them in chunks); loading checks every member's header first, then copies each member in chunks straight
into the preallocated storage. Neither holds the transitions twice, so a buffer of a million transitions
costs no extra memory to save or load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from easyrl.observations import Obs, as_numpy, obs_equal, space_shapes
from easyrl.serialization import ArraysReader, PathOrFile, open_arrays_zip, write_arrays_zip

if TYPE_CHECKING:
    from pathlib import Path

    from easyrl.algorithms.base import OffPolicyAlgorithm

KIND = "easyrl.replay_buffer"
"""``metadata["kind"]`` of a replay buffer file."""

LAST_OBSERVATIONS = "last_observations"


def save_replay_buffer(model: OffPolicyAlgorithm[Any], path: PathOrFile) -> Path | None:
    """Write ``model``'s replay buffer, and the observations that follow its newest transitions."""
    model._setup()
    arrays: dict[str, Any]
    arrays, state = model.replay_buffer.export_state()
    last_obs = model.training_state.observations_to_save()
    if isinstance(last_obs, dict):
        arrays = {
            **arrays,
            **{f"{LAST_OBSERVATIONS}.{i}": np.asarray(a) for i, a in enumerate(last_obs.values())},
        }
    elif last_obs is not None:
        arrays = {**arrays, LAST_OBSERVATIONS: np.asarray(last_obs)}
    metadata = {
        "kind": KIND,
        "algorithm": model.algorithm_name,
        "num_timesteps": model.training_state.num_timesteps,
        "buffer": state,
    }
    return write_arrays_zip(path, arrays, metadata)


def load_replay_buffer(model: OffPolicyAlgorithm[Any], path: PathOrFile) -> None:
    """Fill ``model``'s replay buffer from a file written by :func:`save_replay_buffer`.

    The episodes in progress at the newest transitions stay open only if the model's envs continue
    exactly from where the file's left off (same last observations, as after an exact resume); otherwise
    they end there, truncated, with their true next observation from the file.
    """
    model._setup()
    buffer = model.replay_buffer
    with open_arrays_zip(path) as reader:
        metadata = reader.metadata
        if metadata.get("kind") != KIND:
            what = (
                "a model file"
                if "algorithm" in metadata and "params" in metadata
                else "not a replay buffer file"
            )
            raise reader.error(f"is {what}, not a replay buffer saved by save_replay_buffer().")
        members = reader.members
        if any(not name.endswith(".npy") for name in members):
            raise reader.error("is a replay buffer file with members other than .npy arrays; it was refused.")
        state = metadata.get("buffer")
        try:
            targets = buffer.import_targets(state if isinstance(state, dict) else {})
        except ValueError as error:
            raise reader.error(str(error) + ".") from None
        try:
            has_last_obs = _check_members(reader, targets, model)
        except BaseException:
            buffer.cancel_import()
            raise
        complete = False
        try:
            for name, target in targets.items():
                reader.read_into(f"{name}.npy", target)
            last = _read_last_observations(reader, model) if has_last_obs else None
            complete = True
        finally:
            buffer.finish_import(complete)
    current = model.training_state.last_obs  # the envs' observations now, if the model has envs
    continues = last is not None and current is not None and obs_equal(as_numpy(current), last)
    if last is not None and not continues:
        buffer.close_episodes(last)


def _check_members(
    reader: ArraysReader, targets: dict[str, torch.Tensor], model: OffPolicyAlgorithm[Any]
) -> bool:
    """Check each member's header against its target before anything is copied; whether last obs are there."""
    expected = {f"{name}.npy" for name in targets}
    missing = sorted(expected - set(reader.members))
    if missing:
        raise reader.error(
            f"is a replay buffer file without the member(s) {', '.join(missing)}; it is damaged."
        )
    has_last_obs = False
    last_shapes = _last_observation_shapes(model)
    for member in reader.members:
        header = reader.header(member)
        if header.fortran_order:  # the arrays are streamed straight into C-ordered storage
            raise reader.error(
                f"has a member {member!r} in Fortran order, which replay buffer files never use."
            )
        name = member[: -len(".npy")]
        if name in targets:
            target = targets[name]
            wanted = torch.empty(0, dtype=target.dtype).numpy().dtype
            if header.shape != tuple(target.shape) or header.dtype != wanted:
                raise reader.error(
                    f"has a member {member!r} of shape {header.shape} and dtype {header.dtype}, where this "
                    f"buffer needs {tuple(target.shape)} and {wanted}; the file is damaged."
                )
        elif name in last_shapes:
            if header.shape != last_shapes[name] or header.dtype.kind not in "biuf":
                raise reader.error(
                    f"has a member {member!r} of shape {header.shape} and dtype {header.dtype}; it is damaged."
                )
            has_last_obs = True
        else:
            raise reader.error(f"has an unexpected member {member!r}; it was refused.")
    if has_last_obs and not all(f"{name}.npy" in reader.members for name in last_shapes):
        raise reader.error(f"lacks some of the members {sorted(last_shapes)}; it is damaged.")
    return has_last_obs


def _last_observation_shapes(model: OffPolicyAlgorithm[Any]) -> dict[str, tuple[int, ...]]:
    """Member name -> shape of the observations after the newest transitions (one per key of a Dict)."""
    shapes = space_shapes(model.observation_space)
    if isinstance(shapes, dict):
        return {f"{LAST_OBSERVATIONS}.{i}": (model.num_envs, *s) for i, s in enumerate(shapes.values())}
    return {LAST_OBSERVATIONS: (model.num_envs, *shapes)}


def _read_last_observations(reader: ArraysReader, model: OffPolicyAlgorithm[Any]) -> Obs:
    names = list(_last_observation_shapes(model))
    shapes = space_shapes(model.observation_space)
    if isinstance(shapes, dict):
        return {key: reader.read(f"{name}.npy") for key, name in zip(shapes, names, strict=True)}
    return reader.read(f"{names[0]}.npy")
