"""`easyrl eval` and `easyrl video` run as a user runs them (a subprocess) on small saved models: what they
print and write, and the one-line errors for a bad file, a wrong env, an unsupported output and a missing
extra."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from easyrl import SAC
from easyrl.playback import PlaybackError, _frame
from tests.cli_run import assert_usage_error, block_module, run_cli


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "pendulum.zip"
    SAC("Pendulum-v1", learning_starts=50, batch_size=32, seed=0, device="cpu").learn(100).save(path)
    return path


def test_eval_prints_returns_and_lengths(model_file: Path) -> None:
    result = run_cli("eval", str(model_file), "--episodes", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Pendulum-v1: 3 deterministic episodes"
    assert re.fullmatch(r"  return +-?\d+\.\d\d ± \d+\.\d\d  \(min -?\d+\.\d\d, max -?\d+\.\d\d\)", lines[1])
    assert lines[2] == "  episode length  200.0 ± 0.0"
    assert "success rate" not in result.stdout  # Pendulum reports none
    stochastic = run_cli("eval", str(model_file), "--episodes", "1", "--stochastic", "--env", "Pendulum-v1")
    assert stochastic.returncode == 0 and stochastic.stdout.startswith("Pendulum-v1: 1 stochastic episodes")


def test_eval_reports_the_success_rate_where_the_env_gives_one(tmp_path: Path) -> None:
    SAC("easyrl/PointGoal-v0", learning_starts=20, batch_size=16, seed=0, device="cpu").learn(40).save(
        tmp_path / "goal.zip"
    )
    result = run_cli("eval", str(tmp_path / "goal.zip"), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^  success rate    \d+\.\d%$", result.stdout, re.MULTILINE), result.stdout


@pytest.mark.parametrize(
    ("content", "extra", "fragments"),
    [
        (b"not a zip", [], ["bad.zip is not a zip archive"]),
        (None, [], ["missing.zip: no such file; give a model file written by model.save()"]),
        ("model", ["--env", "Pendulm-v1"], ["Unknown env id 'Pendulm-v1' (did you mean 'Pendulum-v1'"]),
        (
            "model",
            ["--env", "MountainCarContinuous-v0"],
            ["observations have shape (2,), but the model takes (3,)"],
        ),
        ("model", ["--episodes", "0"], ["--episodes 0 is invalid"]),
    ],
)
def test_eval_of_a_bad_file_or_env_is_one_line(
    tmp_path: Path, model_file: Path, content: bytes | str | None, extra: list[str], fragments: list[str]
) -> None:
    if content == "model":
        path = model_file
    else:
        path = tmp_path / ("bad.zip" if content else "missing.zip")
        if isinstance(content, bytes):
            path.write_bytes(content)
    assert_usage_error(run_cli("eval", str(path), *extra, cwd=tmp_path), *fragments)


def test_video_writes_an_mp4_and_a_gif(tmp_path: Path, model_file: Path) -> None:
    result = run_cli("video", str(model_file), "-o", "videos/pendulum.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.match(
        r"Wrote videos/pendulum.mp4: Pendulum-v1, 1 episode\(s\), 201 frames at 30 fps", result.stdout
    )
    frames = imageio.mimread(tmp_path / "videos/pendulum.mp4", memtest=False)
    assert len(frames) == 201 and frames[0].shape == (500, 500, 3)
    assert np.std(frames[0]) > 10  # the pendulum is drawn, not a blank frame
    assert not list((tmp_path / "videos").glob(".*partial*"))

    result = run_cli(
        "video", str(model_file), "-o", "pendulum.gif", "--fps", "10", "--seed", "4", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "pendulum.gif") as gif:
        assert gif.n_frames > 150 and gif.size == (500, 500)  # GIF drops repeated frames
        assert gif.info["duration"] == 100


def test_video_errors_name_the_fix(tmp_path: Path, model_file: Path) -> None:
    assert_usage_error(
        run_cli("video", str(model_file), "-o", "out.avi", cwd=tmp_path), "name an .mp4 or a .gif file"
    )
    (tmp_path / "no_imageio").mkdir()
    blocked = block_module(tmp_path / "no_imageio", "imageio")
    assert_usage_error(
        run_cli("video", str(model_file), "-o", "out.mp4", cwd=tmp_path, env=blocked),
        "easyrl video needs the imageio package, which is not installed",
        'pip install "easyrl[video]"',
    )
    (tmp_path / "no_ffmpeg").mkdir()
    blocked = block_module(tmp_path / "no_ffmpeg", "imageio_ffmpeg")
    assert_usage_error(
        run_cli("video", str(model_file), "-o", "out.mp4", cwd=tmp_path, env=blocked),
        "Writing .mp4 needs the imageio-ffmpeg package",
        'pip install "easyrl[video]"',
    )
    assert not list(tmp_path.glob("out.*"))


def test_an_env_that_cannot_render_gets_a_message_naming_the_fix() -> None:
    class NoOpenGL:
        def render(self) -> None:
            raise RuntimeError("an OpenGL platform library has not been loaded into this process")

    with pytest.raises(
        PlaybackError, match=r"HalfCheetah-v4 cannot render here \(RuntimeError: an OpenGL .*MUJOCO_GL=egl"
    ):
        _frame(NoOpenGL(), "HalfCheetah-v4")  # type: ignore[arg-type]
