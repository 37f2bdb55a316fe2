"""The ``easyrl`` command: ``easyrl info`` describes a file from its metadata alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from easyrl import SAC, TD3
from easyrl.cli import main
from easyrl.noise import NormalActionNoise
from tests.conftest import FAST


def schedule(progress: float) -> float:
    return 1e-3 * progress


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = TD3("Pendulum-v1", seed=0, action_noise=noise, train_freq=(1, "episode"), **FAST).learn(200)
    model.save(folder / "td3.zip")
    model.save_replay_buffer(folder / "buffer.zip")
    SAC("Pendulum-v1", learning_rate=schedule, **FAST).save(folder / "pickled.zip")
    return folder


def test_info_describes_a_model(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(files / "td3.zip")]) == 0
    out = capsys.readouterr().out
    for expected in [
        "algorithm          TD3",
        "env                Pendulum-v1",
        "observation space  Box([-1. -1. -8.], [1. 1. 8.], (3,), float32)",
        "action space       Box(-2.0, 2.0, (1,), float32)",
        "timesteps          200",
        "episodes           1",
        "resume             exact (saved between episodes)",
        "pickled values     none (the file holds no code)",
        "format             1",
        "versions           easyrl ",
        "action_noise          NormalActionNoise(mean=[0.0], sigma=[0.1])",
        "train_freq            (1, 'episode')",
        "policy_kwargs         {'net_arch': [32, 32]}",
    ]:
        # The parameter column is as wide as the longest parameter name, so compare with spaces folded.
        assert " ".join(expected.split()) in " ".join(out.split()), (expected, out)


def test_info_names_pickled_members(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(files / "pickled.zip")]) == 0
    out = capsys.readouterr().out
    assert "pickled values     learning_rate (pickled/learning_rate.pkl); loaded only with" in out
    assert re.search(r"\n  learning_rate +<pickled: pickled/learning_rate.pkl>\n", out)


def test_info_describes_a_replay_buffer(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(files / "buffer.zip")]) == 0
    out = capsys.readouterr().out
    assert "kind          replay buffer" in out and "transitions   200 of 2000" in out


def test_info_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(files / "td3.zip")]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata["algorithm"] == "TD3" and metadata["num_timesteps"] == 200


def test_info_never_reads_the_weights(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file whose weights are garbage is still described: only metadata.json is read."""
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(files / "td3.zip") as old, zipfile.ZipFile(broken, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info) if info.filename == "metadata.json" else b"garbage")
    assert main(["info", str(broken)]) == 0
    assert "algorithm          TD3" in capsys.readouterr().out


def test_info_on_a_newer_file_says_to_upgrade(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(files / "td3.zip") as old, zipfile.ZipFile(newer, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "metadata.json":
                data = json.dumps({**json.loads(data), "format_version": 7}).encode()
            new.writestr(info, data)
    assert main(["info", str(newer)]) == 0
    assert (
        "format             7 (newer than this easyrl reads, 1: pip install --upgrade easyrl)"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        (b"", "is empty"),
        (b"hello", "is not a zip archive"),
        (b"PK\x03\x04truncated", "damaged or truncated"),
    ],
)
def test_info_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "model.zip"
    if content is not None:
        path.write_bytes(content)
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("easyrl info: ")
        and message in lines[0]
        and str(path) in lines[0]
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["info"])
    assert exited.value.code == 2
    # One line naming the problem and where the usage is (issue 16), not argparse's usage block.
    assert capsys.readouterr().err.splitlines()[-1] == (
        "easyrl info: the following arguments are required: path (see easyrl info --help)"
    )


def test_python_dash_m_easyrl(files: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "easyrl", "info", str(files / "td3.zip")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "algorithm          TD3" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "easyrl", "info", str(files / "nope.zip")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "nope.zip" in missing.stderr
