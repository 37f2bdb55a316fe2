"""`metadata.json`: the format version, library versions, and checked JSON in both directions."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from typing import Any

import numpy as np

from easyrl.serialization.zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
    MiB,
    ModelFileError,
    PathOrFile,
    ZipLimits,
    member_pattern,
    open_checked_zip,
)
from easyrl.version import __version__

FORMAT_VERSION = 1
"""Version of the file layout. Bumped only when an older easyrl could misread a newer file."""

_RESERVED = ("format_version", "versions")
ANY_MEMBER = member_pattern(r"{stem}\.pt", r"pickled/{stem}\.pkl", r"{stem}\.npy")
"""Every member an easyrl file (a model or an arrays file) may have."""


def versions() -> dict[str, str]:
    """Versions of easyrl, torch, gymnasium, numpy and Python, as recorded in every saved file."""
    import gymnasium
    import torch

    return {
        "easyrl": __version__,
        "torch": str(torch.__version__),
        "gymnasium": str(gymnasium.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def encode_metadata(metadata: Mapping[str, Any], max_bytes: int = 1 * MiB) -> bytes:
    """`metadata` plus `format_version` and `versions` as UTF-8 JSON with sorted keys.

    Raises TypeError naming the first value JSON cannot hold (tuples are fine; they load back as lists),
    and ValueError when the result exceeds `max_bytes`, the most a reader accepts.
    """
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    problem = _json_problem(metadata, "metadata")
    if problem is not None:
        raise TypeError(f"{problem}; store it as a state dict or in `pickled` instead")
    document = {key: value for key, value in metadata.items() if key not in _RESERVED}
    document["format_version"] = FORMAT_VERSION
    document["versions"] = versions()
    text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False, default=_numpy_scalar)
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        raise ValueError(f"metadata is {len(data)} bytes as JSON, more than the {max_bytes} a reader accepts")
    return data


def _numpy_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)  # unreachable: _json_problem vets every value first


def _json_problem(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, bool | int | float | str):
        return None
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}, but JSON keys must be strings"
            problem = _json_problem(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
        return None
    kind = type(value)
    return f"{where} is a {kind.__module__}.{kind.__qualname__}, which JSON cannot hold"


def parse_metadata(data: bytes, file_name: str, check_version: bool = True) -> dict[str, Any]:
    """Decode `metadata.json` of `file_name`, checking it is an easyrl file this version can read."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelFileError(
            file_name, "has a metadata.json that is not UTF-8 text; the file is damaged."
        ) from None
    except json.JSONDecodeError as error:
        raise ModelFileError(file_name, f"has a metadata.json that is not valid JSON ({error}).") from None
    except RecursionError:
        raise ModelFileError(file_name, "has a metadata.json nested too deeply to read.") from None
    if not isinstance(document, dict):
        raise ModelFileError(file_name, "has a metadata.json that does not hold a JSON object.")
    version = document.get("format_version")
    if version is None:
        raise ModelFileError(
            file_name, "is not an easyrl model file: its metadata.json has no format_version."
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(file_name, f"has an invalid format_version {version!r}; the file is damaged.")
    if check_version and version > FORMAT_VERSION:
        written_by = document.get("versions", {})
        writer = written_by.get("easyrl") if isinstance(written_by, dict) else None
        by = f" {writer}" if isinstance(writer, str) else ""
        raise ModelFileError(
            file_name,
            f"was written by a newer easyrl{by} (file format version {version}); this easyrl "
            f"{versions()['easyrl']} reads format version {FORMAT_VERSION} and older. "
            "Upgrade easyrl: pip install --upgrade easyrl",
        )
    return document


def read_metadata(
    path: PathOrFile,
    *,
    check_version: bool = True,
    limits: ZipLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Return the `metadata.json` of a model or arrays file without loading anything else.

    With `check_version=False` a file from a newer easyrl is read too (to show what wrote it).
    """
    with open_checked_zip(path, ANY_MEMBER, limits) as reader:
        return parse_metadata(reader.read(METADATA_NAME), reader.name, check_version=check_version)
