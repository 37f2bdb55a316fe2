"""Stable-Baselines3 model files, read without unpickling anything (SB3's own ``load`` runs their pickles).

An SB3 zip holds ``data`` (the model's attributes as JSON; those JSON cannot hold are cloudpickled into
``{":type:": ..., ":serialized:": <base64>}`` objects, with their plain first-level attributes beside),
one ``<name>.pth`` per state dict (``policy``, ``actor.optimizer``, ...), ``pytorch_variables.pth``
(SAC's ``log_ent_coef``), ``_stable_baselines3_version`` and ``system_info.txt``. This module reads the
plain JSON, never decodes a ``:serialized:`` value, reads each ``.pth`` with
``torch.load(weights_only=True)`` through the same checked zip reader as easyrl's own files, and turns
the plain description of a ``Box`` space back into the space. What becomes of it in an easyrl model is
decided in ``easyrl.algorithms.sb3_import``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import pickletools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from easyrl.serialization.model_zip import _load_weights
from easyrl.serialization.zipsafe import (
    DEFAULT_LIMITS,
    METADATA_NAME,
    ModelFileError,
    PathOrFile,
    ZipReader,
    _describe_non_zip,
    _locate,
    display_name,
)

VERSION_MEMBER = "_stable_baselines3_version"
SERIALIZED = ":serialized:"
MIN_VERSION = (2, 0)
_MAX_DATA_BYTES = 64 << 20
_MEMBERS = re.compile(r"data|_stable_baselines3_version|system_info\.txt|[A-Za-z0-9_-][A-Za-z0-9_.-]*\.pth")
_NUMBER = r"[-+]?(?:inf|nan|\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"


@dataclass
class SB3File:
    """What an SB3 zip holds, read without unpickling.

    ``data`` has the plain JSON fields; ``serialized`` maps each pickled field to its plain
    first-level attributes (the pickle itself is dropped unread). ``state_dicts`` are the ``.pth``
    members by name without the suffix (``"policy"``, ``"actor.optimizer"``, ``"pytorch_variables"``).
    """

    path: str
    version: str
    data: dict[str, Any]
    serialized: dict[str, dict[str, Any]]
    state_dicts: dict[str, dict[str, Any]]
    system_info: str = ""
    members: list[str] = field(default_factory=list)
    train_freq: tuple[int, str] | None = None
    """SB3's pickled ``TrainFreq(n, unit)``, read from the pickle's opcodes (never run); None if unreadable."""


class _SB3Reader(ZipReader):
    """The checked reader of easyrl's files, asking for SB3's members instead of ``metadata.json``."""

    def check_directory(self, pattern: re.Pattern[str]) -> None:
        infos = self.archive.infolist()
        if infos and min(info.header_offset for info in infos) != 0:
            raise self.error("is damaged or truncated (its zip directory does not start at the beginning).")
        if len(infos) > self.limits.max_members:
            raise self.error(f"has {len(infos)} members, more than the {self.limits.max_members} allowed.")
        names = [info.orig_filename for info in infos]
        for info, member in zip(infos, names, strict=True):
            if member != info.filename or names.count(member) > 1:
                raise self.error(f"contains the member {member!r} twice or under two names and was refused.")
        if METADATA_NAME in names:
            raise self.error(
                "is an easyrl model file, not a Stable-Baselines3 one: load it with SAC.load(path)."
            )
        for required in ("data", VERSION_MEMBER):
            if required not in names:
                raise self.error(
                    f"is not a Stable-Baselines3 model file: it has no {required!r} member (damaged or foreign)."
                )
        for info in infos:
            self._check_member(info, pattern)


@contextlib.contextmanager
def _open(source: PathOrFile) -> Iterator[ZipReader]:
    name = display_name(source)
    if isinstance(source, str | os.PathLike):
        path = _locate(source)
        name, handle = os.fspath(path), open(path, "rb")  # noqa: SIM115 (closed below)
    else:
        handle = source  # type: ignore[assignment]
    try:
        start = handle.tell()
        head = handle.read(64)
        handle.seek(start)
        if not head:
            raise ModelFileError(name, "is empty (0 bytes); it was probably cut short by a copy or download.")
        if not zipfile.is_zipfile(handle):
            raise ModelFileError(
                name, _describe_non_zip(head).replace("easyrl's save()", "Stable-Baselines3")
            )
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
            raise ModelFileError(name, f"is a damaged zip archive ({error}).") from None
        with archive:
            reader = _SB3Reader(archive, name, DEFAULT_LIMITS)
            reader.check_directory(_MEMBERS)
            yield reader
    finally:
        if isinstance(source, str | os.PathLike):
            handle.close()


def read_sb3_zip(path: PathOrFile) -> SB3File:
    """Read an SB3 model zip (SB3 ≥ 2.0) without unpickling anything.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: the file is damaged, not an SB3 model file, saved by SB3 before 2.0, or holds
            something other than tensors in a ``.pth`` member.
    """
    with _open(path) as reader:
        version = reader.read(VERSION_MEMBER).decode("utf-8", "replace").strip()
        check_version(version, reader)
        if reader.info("data").file_size > _MAX_DATA_BYTES:
            raise reader.error(f"has a 'data' member larger than {_MAX_DATA_BYTES >> 20} MiB; refused.")
        try:
            document = json.loads(reader.read("data"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise reader.error(f"has a damaged 'data' member (not JSON: {error}).") from None
        if not isinstance(document, dict):
            raise reader.error("has a damaged 'data' member (not a JSON object).")
        data, serialized = {}, {}
        for key, value in document.items():
            if isinstance(value, dict) and SERIALIZED in value:
                serialized[key] = {k: v for k, v in value.items() if k != SERIALIZED}  # the pickle is dropped
            else:
                data[key] = value
        state_dicts = {
            member[: -len(".pth")]: _load_weights(reader, member, torch.device("cpu"))
            for member in reader.names
            if member.endswith(".pth")
        }
        train_freq = read_train_freq(document.get("train_freq"))
        info = (
            reader.read("system_info.txt").decode("utf-8", "replace")
            if "system_info.txt" in reader.names
            else ""
        )
        return SB3File(reader.name, version, data, serialized, state_dicts, info, reader.names, train_freq)


def read_train_freq(field: Any) -> tuple[int, str] | None:
    """SB3's ``TrainFreq(n, TrainFrequencyUnit(unit))`` from its pickle, without unpickling it.

    ``pickletools.genops`` only lists the opcodes (it builds no object and imports nothing); the value is
    accepted only when the opcodes name exactly SB3's two classes, one integer and one unit.
    """
    try:
        data = base64.b64decode(field[SERIALIZED], validate=True)
        ops = list(pickletools.genops(data))
    except (TypeError, KeyError, ValueError, binascii.Error):
        return None
    strings = [arg for op, arg, _ in ops if isinstance(arg, str) and "UNICODE" in op.name]
    numbers = [arg for op, arg, _ in ops if op.name in ("BININT", "BININT1", "BININT2", "LONG1")]
    expected = ["stable_baselines3.common.type_aliases", "TrainFreq", "TrainFrequencyUnit"]
    if (
        strings[:3] != expected
        or len(strings) != 4
        or strings[3] not in ("step", "episode")
        or len(numbers) != 1
    ):
        return None
    if any(op.name in ("GLOBAL", "INST", "OBJ", "BUILD", "EXT1", "EXT2", "EXT4") for op, _, _ in ops):
        return None
    return int(str(numbers[0])), strings[3]


def check_version(version: str, reader: ZipReader) -> None:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise reader.error(
            f"names an unreadable Stable-Baselines3 version {version[:40]!r}; the file is damaged."
        )
    if (int(match.group(1)), int(match.group(2))) < MIN_VERSION:
        raise reader.error(
            f"was saved by Stable-Baselines3 {version}; easyrl imports files of SB3 2.0 or later. Load it "
            "with SB3 (in an environment you trust: SB3's load unpickles) and save it again with SB3 >= 2.0."
        )


def plain_box(description: dict[str, Any] | None) -> gym.spaces.Box | None:
    """The ``Box`` that SB3's plain attributes of a pickled space describe, or None if they do not.

    SB3 writes ``dtype``, ``_shape`` and the bounds as numpy's text (``"[-1. -1. -8.]"``) beside the
    pickle; numpy abbreviates arrays of more than 1,000 values (``...``), which are then unreadable.
    """
    if not description or "Box" not in str(description.get(":type:", "")):
        return None
    try:
        shape = description["_shape"]
        shape = tuple(json.loads(shape) if isinstance(shape, str) else shape)
        dtype = np.dtype(str(description["dtype"]))
        bounds = [_numpy_text(description[key], shape, dtype) for key in ("low", "high")]
    except (KeyError, TypeError, ValueError):
        return None
    if any(bound is None for bound in bounds):
        return None
    return gym.spaces.Box(bounds[0], bounds[1], shape, dtype)  # type: ignore[arg-type]


def _numpy_text(text: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray | None:
    if not isinstance(text, str) or "..." in text:
        return None
    numbers = re.findall(_NUMBER, text.replace("[", " ").replace("]", " "), flags=re.IGNORECASE)
    if len(numbers) != int(np.prod(shape)) or re.sub(_NUMBER, "", text, flags=re.IGNORECASE).strip(" []\n"):
        return None
    return np.array([float(n) for n in numbers], dtype=np.float64).reshape(shape).astype(dtype)
