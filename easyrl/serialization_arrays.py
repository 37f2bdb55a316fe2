"""A zip of plain `.npy` arrays plus `metadata.json`, for replay buffers: big, numeric, never pickled.

Members are stored uncompressed so arrays stream in and out in chunks; a tensor on the CPU is written
through a `.numpy()` view and one on an accelerator is copied to the host a chunk at a time, so no array
is ever held twice in full.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, overload

import numpy as np
import torch

from easyrl._zipmeta import encode_metadata, parse_metadata
from easyrl._zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
    MiB,
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


def read_npy_header(reader: ZipReader, member: str) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """Shape, dtype and Fortran order of a plain numeric ``.npy`` member whose size matches its header.

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
    return tuple(shape), dtype, bool(fortran_order)


def _read_array(reader: ZipReader, member: str) -> np.ndarray:
    shape, dtype, _ = read_npy_header(reader, member)
    with reader.open(member) as stream:
        try:
            array = np.load(stream, allow_pickle=False)
        except ValueError as error:
            raise reader.error(f"has a member {member!r} that could not be read ({error}).") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or array.dtype != dtype:
        raise reader.error(f"has a damaged member {member!r} (its data does not match its .npy header).")
    return array
