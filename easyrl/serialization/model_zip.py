"""The easyrl model file: a zip that can be shared with strangers because loading it runs no code from it.

Layout (see docs/model-format.md)::

    metadata.json              format version, library versions, and whatever the model records (JSON)
    <name>.pt                  one per state dict, read back with torch.load(weights_only=True)
    pickled/<name>.pkl         only for values JSON cannot hold; never unpickled unless trusted by name

This module knows nothing about models: `easyrl.algorithms` decides what goes into the metadata and which
state dicts exist. Every problem with a file is raised as `ModelFileError` (a ValueError) naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, overload

import torch

from easyrl.serialization.metadata import encode_metadata, parse_metadata
from easyrl.serialization.zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
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

PICKLED_PREFIX = "pickled/"
_MODEL_MEMBERS = member_pattern(r"{stem}\.pt", r"pickled/{stem}\.pkl")
# What torch.load(weights_only=True) rebuilds without help; anything else would make a file unloadable.
# Exact types: a subclass (numpy.float64 is a float) would be pickled as its own class and refused.
_WEIGHT_LEAVES = (torch.Tensor, torch.nn.Parameter, bool, int, float, str, type(None))
_WEIGHT_CONTAINERS = (dict, OrderedDict, list, tuple, torch.Size)


@dataclass
class LoadedZip:
    """What `read_model_zip` found in a file.

    `untrusted_pickles` names the pickled values that were present but not loaded; the caller must either
    get a replacement for each (e.g. from `custom_objects`) or raise `untrusted_pickle_error`.
    """

    metadata: dict[str, Any]
    state_dicts: dict[str, dict[str, Any]]
    pickled: dict[str, Any] = field(default_factory=dict)
    untrusted_pickles: list[str] = field(default_factory=list)
    path: str = ""


@overload
def write_model_zip(
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    state_dicts: Mapping[str, Mapping[str, Any]],
    pickled: Mapping[str, Any] | None = None,
) -> Path: ...
@overload
def write_model_zip(
    path: IO[bytes],
    metadata: Mapping[str, Any],
    state_dicts: Mapping[str, Mapping[str, Any]],
    pickled: Mapping[str, Any] | None = None,
) -> None: ...
def write_model_zip(
    path: PathOrFile,
    metadata: Mapping[str, Any],
    state_dicts: Mapping[str, Mapping[str, Any]],
    pickled: Mapping[str, Any] | None = None,
) -> Path | None:
    """Save a model file atomically and return its path (None when `path` is an open binary file).

    Args:
        path: target file; `.zip` is appended when it has no suffix, and missing folders are created.
            An existing file is replaced only once the new one is completely written and synced.
        metadata: JSON-compatible dict; `format_version` and `versions` are added (overriding any given).
        state_dicts: name -> state dict (tensors, numbers, strings, dtypes, devices and dicts, lists and
            tuples of them, as in module and optimizer state dicts), each saved as member `<name>.pt`.
        pickled: name -> value JSON cannot hold (a custom schedule, say), cloudpickled to
            `pickled/<name>.pkl`. Loading such a file needs an explicit opt-in; avoid when possible.

    Everything is validated before the disk is touched: a name outside ``[A-Za-z0-9_.-]``, a value JSON or
    weights-only loading could not restore, or an unpicklable value raises ValueError/TypeError.
    """
    metadata_bytes = encode_metadata(metadata)
    for name, state_dict in state_dicts.items():
        check_name(name)
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dicts[{name!r}] is a {type(state_dict).__name__}, not a state dict")
        _check_weights(state_dict, f"state_dicts[{name!r}]")
    pickled_bytes = {check_name(name): _pickle(name, value) for name, value in (pickled or {}).items()}
    if isinstance(path, str | os.PathLike):
        target = resolve_save_path(path)
        with atomic_output(target) as file:
            _write_members(file, metadata_bytes, state_dicts, pickled_bytes)
        return target
    _write_members(path, metadata_bytes, state_dicts, pickled_bytes)
    return None


def read_model_zip(
    path: PathOrFile,
    trusted_pickles: Iterable[str] | bool = (),
    *,
    map_location: str | torch.device = "cpu",
    limits: ZipLimits = DEFAULT_LIMITS,
) -> LoadedZip:
    """Read a model file written by `write_model_zip`, running no code from it.

    The archive's directory is checked first (member names, count, sizes, compression), then
    `metadata.json` (must be an easyrl file of a format this version reads), then each state dict is read
    with ``torch.load(weights_only=True)`` and moved to `map_location`. Pickled members are loaded only
    when named in `trusted_pickles` (or when it is True); the others are listed in `untrusted_pickles`.

    Raises:
        FileNotFoundError: `path` does not exist (a suffix-less path also tries `path.zip`).
        ModelFileError: the file is empty, not a zip, damaged, foreign, too new, or holds anything but
            tensors where tensors belong.
    """
    device = _device(map_location)
    trusted = _trusted(trusted_pickles)
    with open_checked_zip(path, _MODEL_MEMBERS, limits) as reader:
        metadata = parse_metadata(reader.read(METADATA_NAME), reader.name)
        loaded = LoadedZip(metadata=metadata, state_dicts={}, path=reader.name)
        for member in reader.names:
            if member.endswith(".pt"):
                loaded.state_dicts[member[: -len(".pt")]] = _load_weights(reader, member, device)
            elif member.startswith(PICKLED_PREFIX):
                name = member[len(PICKLED_PREFIX) : -len(".pkl")]
                if trusted is None or name in trusted:
                    loaded.pickled[name] = _unpickle(reader, member, name)
                else:
                    loaded.untrusted_pickles.append(name)
    return loaded


def untrusted_pickle_error(path: object, member: str, param_name: str) -> ModelFileError:
    """The error for a pickled value that was not loaded because the caller did not trust it."""
    return ModelFileError(
        path,
        f"stores `{param_name}` as pickled code (member {member}), which is not loaded by default because "
        f"unpickling can run arbitrary code. Pass `custom_objects={{{param_name!r}: ...}}` to supply a "
        f"replacement, or `trusted_pickles=[{param_name!r}]` if you trust this file.",
    )


def pickled_member(name: str) -> str:
    """The member name under which `write_model_zip` stores pickled value `name`."""
    return f"{PICKLED_PREFIX}{name}.pkl"


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


def _check_weights(value: Any, where: str) -> None:
    kind = type(value)
    if kind in _WEIGHT_LEAVES or isinstance(value, torch.dtype | torch.device):
        return
    if kind in _WEIGHT_CONTAINERS:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict):
                _check_weights(key, f"a key of {where}")
            _check_weights(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which weights-only loading refuses; state "
        "dicts may hold tensors, numbers, strings and dicts/lists/tuples of them (convert arrays with "
        "torch.as_tensor, or put the value in metadata)"
    )


def _pickle(name: str, value: Any) -> bytes:
    import cloudpickle

    try:
        data: bytes = cloudpickle.dumps(value)
    except Exception as error:
        raise TypeError(f"pickled[{name!r}] cannot be pickled: {type(error).__name__}: {error}") from error
    return data


def _write_members(
    file: IO[bytes],
    metadata_bytes: bytes,
    state_dicts: Mapping[str, Mapping[str, Any]],
    pickled_bytes: Mapping[str, bytes],
) -> None:
    with zipfile.ZipFile(file, "w") as archive:
        archive.writestr(fixed_time_info(METADATA_NAME, zipfile.ZIP_DEFLATED), metadata_bytes)
        for name, state_dict in state_dicts.items():
            # Stored, not deflated: weights barely compress, and storing is fast and streams.
            with archive.open(
                fixed_time_info(f"{name}.pt", zipfile.ZIP_STORED), "w", force_zip64=True
            ) as out:
                torch.save(state_dict, out)
        for name, data in pickled_bytes.items():
            archive.writestr(fixed_time_info(pickled_member(name), zipfile.ZIP_DEFLATED), data)


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def _device(map_location: str | torch.device) -> torch.device:
    try:
        return torch.device(map_location)
    except (RuntimeError, TypeError):
        raise ValueError(f"map_location={map_location!r} is not a device such as 'cpu' or 'cuda:0'") from None


def _trusted(trusted_pickles: Iterable[str] | bool) -> set[str] | None:
    """The trusted names, or None for all of them."""
    if isinstance(trusted_pickles, bool):
        return None if trusted_pickles else set()
    if isinstance(trusted_pickles, str):
        raise TypeError(f"trusted_pickles must be a list of names, e.g. [{trusted_pickles!r}], or True")
    return set(trusted_pickles)


def _load_weights(reader: ZipReader, member: str, device: torch.device) -> dict[str, Any]:
    data = reader.read(member)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols before refusing them
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise reader.error(
            f"has a member {member!r} that contains something other than tensors ({_refusal(error)}); it was "
            "refused and nothing in it was run. The file was not written by easyrl or has been tampered with."
        ) from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise reader.error(
            f"has a damaged member {member!r} ({type(error).__name__}: {first_line[:200]})."
        ) from None
    if not isinstance(state, dict):
        raise reader.error(f"has a member {member!r} that holds a {type(state).__name__}, not a state dict.")
    return _to_device(state, device) if device.type != "cpu" else state


def _refusal(error: Exception) -> str:
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed|\.\s|\n|$)", str(error))
    return match.group(1).strip() if match else "refused by the weights-only unpickler"


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)((key, _to_device(item, device)) for key, item in value.items())
    if type(value) in (list, tuple):
        return type(value)(_to_device(item, device) for item in value)
    return value


def _unpickle(reader: ZipReader, member: str, name: str) -> Any:
    import cloudpickle

    data = reader.read(member)
    try:
        return cloudpickle.loads(data)
    except Exception as error:
        raise reader.error(
            f"has a pickled `{name}` (member {member}) that could not be unpickled ({type(error).__name__}: "
            f"{error}); pass `custom_objects={{{name!r}: ...}}` to supply a replacement."
        ) from None
