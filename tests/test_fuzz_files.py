"""Fuzzed model and replay-buffer files: each either loads or raises ``ModelFileError``.

Hypothesis mutates a real model file and a real replay-buffer file: bit flips, truncations, members
swapped, JSON values in metadata.json replaced, and oversized headers (a ``.npy`` header length, a zip
entry's name and extra-field lengths). Loading a mutant must never raise another exception type,
never hang (a deadline per file), never write a file and never run code: an audit hook watches for
pickle's ``find_class``, ``exec``, process creation and any file opened for writing while a mutant
loads.

The default run tries a few hundred files per kind; ``pytest -m slow -s tests/test_fuzz_files.py``
tries 2,000 per kind and prints the outcomes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easyrl import SAC, load
from easyrl.serialization import ModelFileError
from tests.conftest import FAST

# ------------------------------------------------------------------ what loading may not do
_WATCHING = False
_SEEN: list[str] = []
_FORBIDDEN = {
    "pickle.find_class",
    "exec",
    "os.system",
    "subprocess.Popen",
    "os.exec",
    "os.posix_spawn",
    "os.fork",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHING:
        return
    if event == "exec" and args and os.path.isfile(getattr(args[0], "co_filename", "")):
        return  # a module imported for the first time (a codec, say): code from disk, not from the file
    if event in _FORBIDDEN:
        _SEEN.append(event)
    elif event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writes:
            _SEEN.append(f"open for writing: {args[0]!r}")
    elif event == "os.mkdir" and args and "torchinductor" in str(args[0]):
        return  # torch.compile's own cache folder, made for a model saved with compile_update=True
    elif event in ("os.remove", "os.rename", "os.mkdir", "shutil.copyfile"):
        _SEEN.append(f"{event}: {args[0] if args else ''!r}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one acts only while _WATCHING


def load_watched(loader: Callable[[Path], Any], path: Path, folder: Path) -> str:
    """``loader(path)`` under watch: "loaded" or "ModelFileError"; fails on anything else."""
    global _WATCHING
    before = sorted(p.name for p in folder.iterdir())
    _SEEN.clear()
    _WATCHING = True
    try:
        loader(path)
        outcome = "loaded"
    except ModelFileError:
        outcome = "ModelFileError"
    finally:
        _WATCHING = False
    assert not _SEEN, f"loading a mutant did {_SEEN}"
    assert sorted(p.name for p in folder.iterdir()) == before, "loading a mutant wrote a file"
    return outcome


# ------------------------------------------------------------------ mutations
def rewrite(data: bytes, change: Callable[[dict[str, bytes]], dict[str, bytes]]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        members = {info.filename: archive.read(info) for info in infos}
    members = change(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def _json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            paths += _json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += _json_paths(child, (*prefix, index))
    return paths


class Mutant:
    """A mutated file: its kind of mutation, what was changed (a failing case's short name) and its bytes."""

    def __init__(self, mutation: str, detail: str, data: bytes) -> None:
        self.mutation, self.detail, self.data = mutation, detail, data

    def __repr__(self) -> str:
        return f"Mutant({self.mutation}: {self.detail}; {len(self.data)} bytes)"


@st.composite
def mutants(draw: st.DrawFn, original: bytes) -> Mutant:
    kind = draw(
        st.sampled_from(["bit flips", "truncation", "swapped members", "edited JSON", "oversized header"])
    )
    data = bytearray(original)
    if kind == "bit flips":
        flips = [
            (draw(st.integers(0, len(data) - 1)), draw(st.integers(0, 7)))
            for _ in range(draw(st.integers(1, 8)))
        ]
        for position, bit in flips:
            data[position] ^= 1 << bit
        return Mutant(kind, f"(byte, bit) {flips}", bytes(data))
    if kind == "truncation":
        end = draw(st.integers(0, len(data) - 1))
        return Mutant(kind, f"to {end} bytes", bytes(data[:end]))
    if kind == "swapped members":
        names = sorted(zipfile.ZipFile(io.BytesIO(original)).namelist())
        first, second = draw(st.permutations(names))[:2]

        def swap(members: dict[str, bytes]) -> dict[str, bytes]:
            members[first], members[second] = members[second], members[first]
            return members

        return Mutant(kind, f"{first} <-> {second}", rewrite(original, swap))
    if kind == "edited JSON":
        metadata = json.loads(zipfile.ZipFile(io.BytesIO(original)).read("metadata.json"))
        path = draw(st.sampled_from(_json_paths(metadata)))
        value = draw(json_values)
        if not path:
            metadata = value
        else:
            parent = metadata
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) or not isinstance(parent, dict):
                parent[path[-1]] = value
            else:
                del parent[path[-1]]
                value = "(deleted)"
        text = json.dumps(metadata, allow_nan=True).encode()
        return Mutant(
            kind, f"{list(path)} = {value!r}"[:300], rewrite(original, lambda m: {**m, "metadata.json": text})
        )
    # Oversized headers: a .npy member's header length, or a zip entry's name or extra-field length.
    length = draw(st.sampled_from([0xFFFF, 0xFFFFFFFF, 2**31, 10**6, 100_000]))
    npy = [n for n in zipfile.ZipFile(io.BytesIO(original)).namelist() if n.endswith(".npy")]
    if npy and draw(st.booleans()):
        name = draw(st.sampled_from(npy))

        def grow(members: dict[str, bytes]) -> dict[str, bytes]:
            member = bytearray(members[name])
            if member[6] == 1:  # format 1.0: 2-byte length; 2.0 and 3.0: 4 bytes
                member[8:10] = struct.pack("<H", min(length, 0xFFFF))
            else:
                member[8:12] = struct.pack("<I", min(length, 0xFFFFFFFF))
            members[name] = bytes(member)
            return members

        return Mutant(kind, f"{name}'s header length {length}", rewrite(original, grow))
    headers = [i for i in range(len(data) - 4) if data[i : i + 4] in (b"PK\x03\x04", b"PK\x01\x02")]
    at = draw(st.sampled_from(headers))
    field = 26 if data[at + 2] == 3 else 28 + 2 * draw(st.integers(0, 2))  # name, extra or comment length
    data[at + field : at + field + 2] = struct.pack("<H", min(length, 0xFFFF))
    return Mutant(kind, f"zip header at {at}, field {field} = {min(length, 0xFFFF)}", bytes(data))


# ------------------------------------------------------------------ the files
@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("originals")
    model = SAC("Pendulum-v1", **FAST, seed=0).learn(80)
    model.save(folder / "model.zip")
    model.save_replay_buffer(folder / "buffer.zip")
    return dict(
        model=model, files={kind: (folder / f"{kind}.zip").read_bytes() for kind in ("model", "buffer")}
    )


def fuzz(originals: dict[str, Any], kind: str, folder: Path, examples: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    model = originals["model"]
    loader: Callable[[Path], Any] = (
        (lambda p: load(p, device="cpu")) if kind == "model" else model.load_replay_buffer
    )
    original = originals["files"][kind]

    @settings(
        max_examples=examples, deadline=timedelta(seconds=5), database=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(mutants(original))
    def one(mutant: Mutant) -> None:
        path = folder / "mutant.zip"
        path.write_bytes(mutant.data)
        outcome = load_watched(loader, path, folder)
        outcomes[f"{mutant.mutation}: {outcome}"] += 1
        path.unlink()

    one()
    return outcomes


def report(kind: str, outcomes: Counter[str]) -> str:
    total = sum(outcomes.values())
    return f"{kind} files: {total} fuzzed; " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))


@pytest.mark.parametrize("kind", ["model", "buffer"])
def test_fuzzed_files_load_or_raise_model_file_error(
    originals: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    outcomes = fuzz(originals, kind, tmp_path, examples=300)
    assert sum(outcomes.values()) >= 300
    assert any(key.endswith("ModelFileError") for key in outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["model", "buffer"])
def test_thousands_of_fuzzed_files(
    originals: dict[str, Any], tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = fuzz(originals, kind, tmp_path, examples=2_000)
    assert sum(outcomes.values()) >= 2_000
    with capsys.disabled():
        print("\n" + report(kind, outcomes))
