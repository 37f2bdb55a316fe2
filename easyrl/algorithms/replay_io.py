"""The replay buffer file: the buffer's arrays as plain ``.npy`` members plus JSON, never a pickle.

Saving writes views of the rows in use straight from the buffer's storage (``write_arrays_zip`` streams
them in chunks); loading checks every member's header first, then copies each member in chunks straight
into the preallocated storage. Neither holds the transitions twice, so a buffer of a million transitions
costs no extra memory to save or load.
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch

from easyrl._zipmeta import parse_metadata
from easyrl._zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
    MiB,
    ModelFileError,
    ZipReader,
    member_pattern,
    open_checked_zip,
)
from easyrl.serialization import write_arrays_zip
from easyrl.serialization_arrays import read_npy_header

if TYPE_CHECKING:
    from pathlib import Path

    from easyrl.algorithms.base import OffPolicyAlgorithm

KIND = "easyrl.replay_buffer"
"""``metadata["kind"]`` of a replay buffer file."""

LAST_OBSERVATIONS = "last_observations"
_ANY_MEMBER = member_pattern(r"{stem}\.npy", r"{stem}\.pt", r"pickled/{stem}\.pkl")
_CHUNK_BYTES = 16 * MiB


def save_replay_buffer(model: OffPolicyAlgorithm, path: str | os.PathLike[str] | IO[bytes]) -> Path | None:
    """Write ``model``'s replay buffer, and the observations that follow its newest transitions."""
    model._setup()
    arrays: dict[str, Any]
    arrays, state = model.replay_buffer.export_state()
    if model._last_obs is not None:
        arrays = {**arrays, LAST_OBSERVATIONS: np.asarray(model._last_obs)}
    metadata = {
        "kind": KIND,
        "algorithm": model.algorithm_name,
        "num_timesteps": model.num_timesteps,
        "buffer": state,
    }
    return write_arrays_zip(path, arrays, metadata)


def load_replay_buffer(model: OffPolicyAlgorithm, path: str | os.PathLike[str] | IO[bytes]) -> None:
    """Fill ``model``'s replay buffer from a file written by :func:`save_replay_buffer`.

    The episodes in progress at the newest transitions stay open only if the model's envs continue
    exactly from where the file's left off (same last observations, as after an exact resume); otherwise
    they end there, truncated, with their true next observation from the file.
    """
    model._setup()
    buffer = model.replay_buffer
    with open_checked_zip(path, _ANY_MEMBER, DEFAULT_LIMITS) as reader:
        metadata = parse_metadata(reader.read(METADATA_NAME), reader.name)
        if metadata.get("kind") != KIND:
            what = (
                "a model file"
                if "algorithm" in metadata and "params" in metadata
                else "not a replay buffer file"
            )
            raise reader.error(f"is {what}, not a replay buffer saved by save_replay_buffer().")
        members = [name for name in reader.names if name != METADATA_NAME]
        if any(not name.endswith(".npy") for name in members):
            raise reader.error("is a replay buffer file with members other than .npy arrays; it was refused.")
        state = metadata.get("buffer")
        try:
            targets = buffer.import_targets(state if isinstance(state, dict) else {})
        except ValueError as error:
            raise reader.error(str(error) + ".") from None
        try:
            last_obs = _check_members(reader, members, targets, model)
        except BaseException:
            buffer.cancel_import()
            raise
        complete = False
        try:
            for name, target in targets.items():
                _copy_member(reader, f"{name}.npy", target)
            last = None if last_obs is None else _read_small(reader, f"{LAST_OBSERVATIONS}.npy", last_obs)
            complete = True
        finally:
            buffer.finish_import(complete)
    continues = (
        last is not None and model._last_obs is not None and np.array_equal(np.asarray(model._last_obs), last)
    )
    if last is not None and not continues:
        buffer.close_episodes(last)


# ---------------------------------------------------------------------------------------------- reading
def _check_members(
    reader: ZipReader, members: list[str], targets: dict[str, torch.Tensor], model: OffPolicyAlgorithm
) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """Check each member's header against its target before anything is copied; the last observations' layout."""
    expected = {f"{name}.npy" for name in targets}
    missing = sorted(expected - set(members))
    if missing:
        raise reader.error(
            f"is a replay buffer file without the member(s) {', '.join(missing)}; it is damaged."
        )
    last_obs = None
    for member in members:
        shape, dtype, fortran_order = read_npy_header(reader, member)
        if fortran_order:  # the arrays are streamed straight into C-ordered storage
            raise reader.error(
                f"has a member {member!r} in Fortran order, which replay buffer files never use."
            )
        name = member[: -len(".npy")]
        if name in targets:
            target = targets[name]
            wanted = torch.empty(0, dtype=target.dtype).numpy().dtype
            if shape != tuple(target.shape) or dtype != wanted:
                raise reader.error(
                    f"has a member {member!r} of shape {shape} and dtype {dtype}, where this buffer needs "
                    f"{tuple(target.shape)} and {wanted}; the file is damaged."
                )
        elif name == LAST_OBSERVATIONS:
            if shape != (model.num_envs, *model.observation_space.shape) or dtype.kind not in "biuf":
                raise reader.error(
                    f"has a member {member!r} of shape {shape} and dtype {dtype}; it is damaged."
                )
            last_obs = (shape, dtype)
        else:
            raise reader.error(f"has an unexpected member {member!r}; it was refused.")
    return last_obs


def _copy_member(reader: ZipReader, member: str, target: torch.Tensor) -> None:
    """Stream the data of a checked ``.npy`` member into ``target``, a chunk at a time."""
    flat = target.view(-1)
    itemsize = flat.element_size()
    step = max(_CHUNK_BYTES // itemsize, 1)
    with reader.open(member) as stream:
        _skip_header(stream)
        if flat.device.type == "cpu":
            view = memoryview(flat.numpy()).cast("B")  # type: ignore[arg-type]
            for start in range(0, len(view), step * itemsize):
                _read_into(reader, member, stream, view[start : start + step * itemsize])
            return
        for start in range(0, flat.numel(), step):
            count = min(step, flat.numel() - start)
            chunk = bytearray(count * itemsize)
            _read_into(reader, member, stream, memoryview(chunk))
            flat[start : start + count].copy_(torch.frombuffer(chunk, dtype=flat.dtype))


def _read_small(reader: ZipReader, member: str, layout: tuple[tuple[int, ...], np.dtype[Any]]) -> np.ndarray:
    shape, dtype = layout
    array = np.empty(shape, dtype=dtype)
    with reader.open(member) as stream:
        _skip_header(stream)
        view = memoryview(array.reshape(-1)).cast("B")  # type: ignore[arg-type]
        _read_into(reader, member, stream, view)
    return array


def _skip_header(stream: IO[bytes]) -> None:
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    )
    read_header(stream)


def _read_into(reader: ZipReader, member: str, stream: IO[bytes], view: memoryview) -> None:
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            raise ModelFileError(reader.name, f"has a damaged member {member!r} (it ends early).")
        filled += count
