"""Faults while writing a file: SIGKILL mid-save, a full disk, a read-only folder, two writers at once.

Each is caused for real: a process killed with SIGKILL while it writes (benchmarks/kill_during_save.py,
which prints the counts for many more kills), ENOSPC raised by the write call itself, a folder the
saving process may not write to (as root, the save runs in a process that dropped to ``nobody``), and
two processes saving to one path. What must survive: the previous file, intact, and no stray files.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from easyrl import SAC
from easyrl.serialization import zipsafe
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_during_save_never_corrupts_the_previous_file() -> None:
    script = ROOT / "benchmarks" / "kill_during_save.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(script), "--kills", "6", "--buffer-transitions", "1200", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in report["kills"]:
        assert kind["intact"] == kind["kills"] == 6, kind
        assert kind["mid_write"] >= 1, kind  # some kills did land in the middle of a write
    assert report["concurrent"]["complete"] and report["concurrent"]["temp_files"] == 0
    assert report["concurrent"]["exit_codes"] == [0, 0]


class FullDisk(io.FileIO):
    """A file whose ``write`` fails with ENOSPC once ``room`` bytes are written, as a full disk's does."""

    room = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.tell() + len(view) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(view)


@pytest.fixture(scope="module")
def model() -> Any:
    return SAC("Pendulum-v1", **FAST, seed=0).learn(80)


SAVES: dict[str, Callable[[Any, Path], Any]] = {
    "model": lambda model, path: model.save(path),
    "replay buffer": lambda model, path: model.save_replay_buffer(path),
}


@pytest.mark.parametrize("room", [0, 100, 30_000, 10**9], ids=["at-open", "header", "middle", "at-flush"])
@pytest.mark.parametrize("kind", list(SAVES))
def test_a_full_disk_gives_one_clear_error_and_keeps_the_old_file(
    model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, room: int
) -> None:
    path = tmp_path / "file.zip"
    SAVES[kind](model, path)
    before = digest(path)
    size = path.stat().st_size
    FullDisk.room = min(room, size - 1)  # "at-flush": the last bytes do not fit

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        assert mode == "wb"
        return io.BufferedWriter(FullDisk(fd, "wb"))

    monkeypatch.setattr(zipsafe.os, "fdopen", fdopen)
    with pytest.raises(
        OSError, match=r"Could not save .*file\.zip: No space left on device\. .*unchanged.*free some space"
    ) as caught:
        SAVES[kind](model, path)
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["file.zip"]  # no temporary file left


CHILD = """
import json, os, sys, tempfile
from easyrl import SAC
folder = sys.argv[1]
model = SAC.load(folder + "/model.zip", device="cpu")
if os.geteuid() == 0:  # root writes anywhere: drop to nobody, for whom the folder is read-only
    with tempfile.TemporaryDirectory() as scratch:  # every module a save uses is imported first
        model.save(scratch + "/model.zip")
        model.save_replay_buffer(scratch + "/buffer.zip")
    os.setgid(65534)
    os.setuid(65534)
outcomes = {}
for name, save in (("model", lambda p: model.save(p)), ("new model", lambda p: model.save(p)),
                   ("replay buffer", lambda p: model.save_replay_buffer(p)),
                   ("in a new subfolder", lambda p: model.save(p))):
    target = {"model": "/model.zip", "new model": "/other.zip", "replay buffer": "/buffer.zip",
              "in a new subfolder": "/sub/model.zip"}[name]
    try:
        save(folder + target)
        outcomes[name] = None
    except OSError as error:
        outcomes[name] = [type(error).__name__, error.errno, str(error)]
print(json.dumps(outcomes))
"""


def test_a_read_only_folder_gives_one_clear_error_and_keeps_the_old_file(model: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="easyrl-read-only-"))
    try:
        model.save(folder / "model.zip")
        before = digest(folder / "model.zip")
        folder.chmod(0o555)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr
        outcomes = json.loads(result.stdout.strip().splitlines()[-1])
        for name, outcome in outcomes.items():
            assert outcome is not None, f"{name}: saved in a read-only folder"
            kind, code, message = outcome
            assert (kind, code) == ("PermissionError", errno.EACCES), name
            assert message.startswith(f"[Errno {errno.EACCES}] Could not save {folder}/"), message
            assert "the folder is not writable: save to a writable folder" in message
        assert digest(folder / "model.zip") == before
        assert [p.name for p in folder.iterdir()] == ["model.zip"]
    finally:
        folder.chmod(0o755)
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
