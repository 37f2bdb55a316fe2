"""A zip of plain `.npy` arrays plus `metadata.json`, for replay buffers: big, numeric, never pickled.

Members are stored uncompressed so arrays stream in and out in chunks; a tensor on the CPU is written
through a `.numpy()` view and one on an accelerator is copied to the host a chunk at a time, so no array
is ever held twice in full.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

import numpy as np
import torch

from easyrl.serialization.metadata import ANY_MEMBER, encode_metadata, parse_metadata
from easyrl.serialization.zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
    MiB,
    ModelFileError,
    PathOrFile,
    ZipLimits,
    ZipReader,
    atomic_output,
    check_name,
    fixed_time_info,
    member_pattern,
    open_checked_zip,
    resolve_save_path,
)

_ARRAY_MEMBERS = member_pattern(r"{stem}\.npy")
# Bool, signed and unsigned integers, floats, complex: everything a buffer holds, nothing that pickles.
_ARRAY_KINDS = "biufc"
_DEVICE_CHUNK_BYTES = 64 * MiB
_STREAM_CHUNK_BYTES = 16 * MiB

ArrayLike = np.ndarray | torch.Tensor


@overload
def write_arrays_zip(
    path: str | os.PathLike[str], arrays: Mapping[str, ArrayLike], metadata: Mapping[str, Any]
) -> Path: ...
@overload
def write_arrays_zip(
    path: IO[bytes], arrays: Mapping[str, ArrayLike], metadata: Mapping[str, Any]
) -> None: ...
def write_arrays_zip(
    path: PathOrFile, arrays: Mapping[str, ArrayLike], metadata: Mapping[str, Any]
) -> Path | None:
    """Save numeric arrays or tensors (each as `<name>.npy`) with JSON `metadata`, atomically.

    Path handling is that of `write_model_zip`: `.zip` is appended to a suffix-less path, and the previous
    file survives any failure. Object, string and structured arrays are refused (TypeError).
    """
    metadata_bytes = encode_metadata(metadata)
    for name, array in arrays.items():
        check_name(name)
        _numpy_dtype(array, name)
    if isinstance(path, str | os.PathLike):
        target = resolve_save_path(path)
        with atomic_output(target) as file:
            _write_members(file, metadata_bytes, arrays)
        return target
    _write_members(path, metadata_bytes, arrays)
    return None


def read_arrays_zip(
    path: PathOrFile,
    *,
    limits: ZipLimits = DEFAULT_LIMITS,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `write_arrays_zip`: ``(arrays, metadata)``, arrays as numpy on the CPU.

    Each `.npy` header is checked (numeric dtype, size matching the member) before the array is allocated,
    and the data is read with ``np.load(allow_pickle=False)``.
    """
    with open_checked_zip(path, _ARRAY_MEMBERS, limits) as reader:
        metadata = parse_metadata(reader.read(METADATA_NAME), reader.name)
        arrays = {
            member[: -len(".npy")]: _read_array(reader, member)
            for member in reader.names
            if member.endswith(".npy")
        }
    return arrays, metadata


def _numpy_dtype(array: Any, name: str) -> np.dtype[Any]:
    if isinstance(array, torch.Tensor):
        try:
            dtype = torch.empty(0, dtype=array.dtype).numpy().dtype
        except TypeError:
            raise TypeError(
                f"arrays[{name!r}] has dtype {array.dtype}, which .npy cannot hold; convert it first "
                "(e.g. .float())"
            ) from None
    elif isinstance(array, np.ndarray):
        dtype = array.dtype
    else:
        raise TypeError(f"arrays[{name!r}] is a {type(array).__name__}, not a numpy array or torch tensor")
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise TypeError(
            f"arrays[{name!r}] has dtype {dtype}; only numeric and bool arrays can be saved (object arrays "
            "would need pickling)"
        )
    return dtype


def _write_members(file: IO[bytes], metadata_bytes: bytes, arrays: Mapping[str, ArrayLike]) -> None:
    with zipfile.ZipFile(file, "w") as archive:
        archive.writestr(fixed_time_info(METADATA_NAME, zipfile.ZIP_DEFLATED), metadata_bytes)
        for name, array in arrays.items():
            info = fixed_time_info(f"{name}.npy", zipfile.ZIP_STORED)
            with archive.open(info, "w", force_zip64=True) as out:
                if isinstance(array, torch.Tensor) and array.device.type != "cpu":
                    _write_device_tensor(out, array, _numpy_dtype(array, name))
                else:
                    host = array.detach().numpy() if isinstance(array, torch.Tensor) else array
                    np.lib.format.write_array(out, host, allow_pickle=False)


def _write_device_tensor(out: IO[bytes], tensor: torch.Tensor, dtype: np.dtype[Any]) -> None:
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(tensor.shape),
    }
    np.lib.format.write_array_header_2_0(out, header)
    flat = tensor.detach().reshape(-1)
    step = max(_DEVICE_CHUNK_BYTES // max(dtype.itemsize, 1), 1)
    for start in range(0, flat.numel(), step):
        out.write(flat[start : start + step].cpu().numpy().tobytes())


@dataclass(frozen=True)
class NpyHeader:
    """What a checked ``.npy`` member's header says, and where its data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    data_offset: int


def read_npy_header(reader: ZipReader, member: str) -> NpyHeader:
    """The header of a plain numeric ``.npy`` member whose size matches it (the one ``.npy`` header reader).

    Reads only the header; object arrays (which would need unpickling) are refused.
    """
    with reader.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as error:
            raise reader.error(f"has a member {member!r} that is not a valid .npy array ({error}).") from None
        offset = stream.tell()
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise reader.error(
            f"has a member {member!r} of dtype {dtype}, which is not a plain numeric array (object "
            "arrays would need unpickling); it was refused."
        )
    if offset + math.prod(shape) * dtype.itemsize != reader.info(member).file_size:
        raise reader.error(f"has a damaged member {member!r} (its size does not match its .npy header).")
    return NpyHeader(tuple(shape), dtype, bool(fortran_order), offset)


def _read_array(reader: ZipReader, member: str) -> np.ndarray:
    header = read_npy_header(reader, member)
    with reader.open(member) as stream:
        try:
            array = np.load(stream, allow_pickle=False)
        except ValueError as error:
            raise reader.error(f"has a member {member!r} that could not be read ({error}).") from None
    if not isinstance(array, np.ndarray) or array.shape != header.shape or array.dtype != header.dtype:
        raise reader.error(f"has a damaged member {member!r} (its data does not match its .npy header).")
    return array


# ---------------------------------------------------------------------------------------------------------
# Streaming reads, for arrays too big to hold twice (a replay buffer)
# ---------------------------------------------------------------------------------------------------------


class ArraysReader:
    """An open, checked arrays file: its metadata, its members' headers, and reads into given storage.

    Members other than ``.npy`` arrays pass the directory check (so the caller can name them in
    its own error) but cannot be read here.
    """

    def __init__(self, reader: ZipReader) -> None:
        self._reader = reader
        self.name = reader.name
        self.metadata = parse_metadata(reader.read(METADATA_NAME), reader.name)
        self.members = [name for name in reader.names if name != METADATA_NAME]
        self._headers: dict[str, NpyHeader] = {}

    def error(self, problem: str) -> ModelFileError:
        """A `ModelFileError` naming this file."""
        return self._reader.error(problem)

    def header(self, member: str) -> NpyHeader:
        """The checked header of ``.npy`` member ``member`` (read once)."""
        if member not in self._headers:
            self._headers[member] = read_npy_header(self._reader, member)
        return self._headers[member]

    def read_into(self, member: str, target: torch.Tensor) -> None:
        """Stream the data of ``member`` into the contiguous tensor ``target`` of its size, a chunk at a time."""
        flat = target.view(-1)
        if flat.device.type == "cpu":
            self._read_bytes(member, memoryview(flat.numpy()).cast("B"))  # type: ignore[arg-type]
            return
        itemsize = flat.element_size()
        step = max(_STREAM_CHUNK_BYTES // itemsize, 1)
        with self._data(member, flat.numel() * itemsize) as stream:
            for start in range(0, flat.numel(), step):
                count = min(step, flat.numel() - start)
                chunk = bytearray(count * itemsize)
                self._fill(member, stream, memoryview(chunk))
                flat[start : start + count].copy_(torch.frombuffer(chunk, dtype=flat.dtype))

    def read(self, member: str) -> np.ndarray:
        """The whole array of ``member``, as numpy."""
        header = self.header(member)
        array = np.empty(header.shape, dtype=header.dtype)
        self._read_bytes(member, memoryview(array.reshape(-1)).cast("B"))  # type: ignore[arg-type]
        return array

    def _read_bytes(self, member: str, view: memoryview) -> None:
        with self._data(member, len(view)) as stream:
            for start in range(0, len(view), _STREAM_CHUNK_BYTES):
                self._fill(member, stream, view[start : start + _STREAM_CHUNK_BYTES])

    @contextlib.contextmanager
    def _data(self, member: str, nbytes: int) -> Iterator[IO[bytes]]:
        """A stream at the start of ``member``'s data, checked to hold ``nbytes`` in C order."""
        header = self.header(member)
        if header.fortran_order:  # the data is copied as it lies, into C-ordered storage
            raise self.error(f"has a member {member!r} in Fortran order, which easyrl never writes.")
        if nbytes != math.prod(header.shape) * header.dtype.itemsize:
            raise ValueError(f"{member} holds {header.shape} {header.dtype}, not {nbytes} bytes")
        with self._reader.open(member) as stream:
            self._fill(member, stream, memoryview(bytearray(header.data_offset)))
            yield stream

    def _fill(self, member: str, stream: IO[bytes], view: memoryview) -> None:
        filled = 0
        while filled < len(view):
            count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not count:
                raise self.error(f"has a damaged member {member!r} (it ends early).")
            filled += count


@contextlib.contextmanager
def open_arrays_zip(path: PathOrFile, *, limits: ZipLimits = DEFAULT_LIMITS) -> Iterator[ArraysReader]:
    """Open an arrays file for streaming reads, after checking its directory and metadata."""
    with open_checked_zip(path, ANY_MEMBER, limits) as reader:
        yield ArraysReader(reader)
