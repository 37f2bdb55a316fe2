"""``easyrl package MODEL.zip OUT_DIR``: the model, a model card, the evaluation as JSON and a replay video."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from easyrl import SAC
from easyrl.cli import main as cli_main
from easyrl.packaging import package_model
from easyrl.playback import evaluate_file
from tests.cli_run import assert_usage_error, run_cli
from tests.conftest import FAST


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from easyrl import DDPG, TD3

    folder = tmp_path_factory.mktemp("models")
    return {
        cls.__name__: cls("Pendulum-v1", seed=0, **FAST).learn(60).save(folder / f"{cls.__name__}.zip")
        for cls in (SAC, TD3, DDPG)
    }


def test_the_folder_holds_model_card_results_and_video(
    saved: dict[str, Path],
    estimator: type[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = estimator.__name__
    out = tmp_path / "shared"
    video = [] if name == "SAC" else ["--no-video"]  # one video is enough to show it; they take a second each
    result = run_cli("package", str(saved[name]), str(out), "--episodes", "3", *video)
    assert result.returncode == 0, result.stderr
    expected = {"README.md", "model.zip", "results.json"} | ({"replay.mp4"} if name == "SAC" else set())
    assert {p.name for p in out.iterdir()} == expected
    assert (out / "model.zip").read_bytes() == saved[name].read_bytes()
    if name == "SAC":
        assert (out / "replay.mp4").stat().st_size > 1_000

    results = json.loads((out / "results.json").read_text())
    returns = np.array(results["returns"])
    assert results["env_id"] == "Pendulum-v1" and results["episodes"] == 3 and results["lengths"] == [200] * 3
    assert results["mean_return"] == pytest.approx(returns.mean()) and results["std_return"] == pytest.approx(
        returns.std()
    )
    evaluated = evaluate_file(
        out / "model.zip", episodes=3
    )  # what easyrl eval plays: the same seeded episodes
    assert evaluated.returns == pytest.approx(results["returns"])
    assert f"{returns.mean():.2f} ± {returns.std():.2f} over 3 episodes" in result.stdout

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: easyrl\n") and f"# {name} on Pendulum-v1" in card
    assert f"**{returns.mean():.2f} ± {returns.std():.2f}** over 3 deterministic episodes" in card
    assert "| `batch_size` | `32` |" in card and re.search(r"\| torch \| \d", card)
    assert f'model = {name}.load("model.zip")' in card and "easyrl eval model.zip" in card
    assert ("![replay](replay.mp4)" in card) == (name == "SAC")
    monkeypatch.chdir(out)
    capsys.readouterr()
    assert cli_main(["info", "model.zip"]) == 0  # easyrl info shows the same facts: the card holds its report
    assert capsys.readouterr().out.strip() in card


def test_errors_name_the_problem(saved: dict[str, Path], tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = run_cli("package", str(saved["TD3"]), str(busy), "--episodes", "1", "--no-video")
    assert_usage_error(result, "is not an empty folder", "--force")
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    result = run_cli("package", str(tmp_path / "missing.zip"), str(tmp_path / "out"))
    assert_usage_error(result, "missing.zip", "no such file")
    assert not (tmp_path / "out").exists()


def test_without_the_video_extra_the_card_says_why(
    saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    report = package_model(saved["DDPG"], tmp_path / "out", episodes=1)
    assert report.files == ["README.md", "model.zip", "results.json"]
    assert report.video_skipped is not None and 'pip install "easyrl[video]"' in report.video_skipped
    assert "No replay video: the video extra is not installed" in (tmp_path / "out" / "README.md").read_text()
