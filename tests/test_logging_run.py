"""Tests for logging during training: the files a run writes, their contents, the console table."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import types
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest

from easyrl.callbacks import EvalCallback
from easyrl.logger import TENSORBOARD_MISSING, configure
from tests.conftest import FAST

EPISODE = 20
DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "logging.md")


def short_pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=EPISODE)


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


class FakeSummaryWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter where tensorboard is not installed."""

    instances: ClassVar[list[FakeSummaryWriter]] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        FakeSummaryWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.scalars.append((tag, value, global_step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch: pytest.MonkeyPatch) -> list[FakeSummaryWriter]:
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeSummaryWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeSummaryWriter.instances = []
    return FakeSummaryWriter.instances


# tensorboard_log=


def test_tensorboard_log_without_tensorboard_says_what_to_install(
    estimator: type[Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    model = estimator(short_pendulum, tensorboard_log=str(tmp_path / "runs"), **FAST)
    with pytest.raises(ImportError) as error:
        model.learn(10)
    assert str(error.value) == TENSORBOARD_MISSING
    assert 'pip install "easyrl[tensorboard]"' in str(error.value)
    assert not os.path.exists(tmp_path / "runs")  # no empty run folder left behind


def test_tensorboard_log_writes_numbered_run_folders(
    estimator: type[Any], tmp_path: Any, fake_tensorboard: list[FakeSummaryWriter]
) -> None:
    runs = str(tmp_path)
    name = estimator.__name__
    model = estimator(short_pendulum, tensorboard_log=runs, seed=0, **FAST)
    model.learn(3 * EPISODE, log_interval=1)
    assert sorted(os.listdir(runs)) == [f"{name}_1"]
    assert sorted(os.listdir(os.path.join(runs, f"{name}_1"))) == ["progress.csv", "progress.jsonl"]
    writer = fake_tensorboard[0]
    assert writer.log_dir == os.path.join(runs, f"{name}_1")
    assert writer.closed  # learn() closes the logger it built
    assert ("rollout/ep_len_mean", EPISODE, EPISODE) in writer.scalars
    tags = {tag for tag, _, _ in writer.scalars}
    # SB3 keeps counters that TensorBoard plots anyway (the step axis) out of TensorBoard.
    assert not tags & {"time/total_timesteps", "time/episodes", "time/time_elapsed", "train/n_updates"}

    model.learn(2 * EPISODE, log_interval=1, tb_log_name="custom")
    model.learn(2 * EPISODE, log_interval=1)
    assert sorted(os.listdir(runs)) == sorted(["custom_1", f"{name}_1", f"{name}_2"])


def test_continued_run_appends_to_the_latest_folder(
    estimator: type[Any], tmp_path: Any, fake_tensorboard: list[FakeSummaryWriter]
) -> None:
    model = estimator(short_pendulum, tensorboard_log=str(tmp_path), seed=0, **FAST)
    model.learn(2 * EPISODE, log_interval=1)
    model.learn(2 * EPISODE, log_interval=1, reset_num_timesteps=False)
    folder = os.path.join(tmp_path, f"{estimator.__name__}_1")
    assert os.listdir(tmp_path) == [f"{estimator.__name__}_1"]
    assert fake_tensorboard[1].log_dir == folder
    steps = [20, 40, 60, 80]
    assert [
        int(row["time/total_timesteps"]) for row in read_csv(os.path.join(folder, "progress.csv"))
    ] == steps
    assert [
        row["time/total_timesteps"] for row in read_jsonl(os.path.join(folder, "progress.jsonl"))
    ] == steps


def test_tensorboard_events_file(estimator: type[Any], tmp_path: Any) -> None:
    pytest.importorskip("tensorboard")
    model = estimator(short_pendulum, tensorboard_log=str(tmp_path), seed=0, **FAST)
    model.learn(2 * EPISODE, log_interval=1)
    files = os.listdir(os.path.join(tmp_path, f"{estimator.__name__}_1"))
    assert any(name.startswith("events.out.tfevents.") for name in files)


# File contents, through set_logger


def test_csv_and_json_contents(estimator: type[Any], tmp_path: Any) -> None:
    model = estimator(short_pendulum, seed=0, **FAST)  # FAST: training starts after 50 steps
    logger = configure(str(tmp_path), ["csv", "json"])
    model.set_logger(logger)
    model.learn(5 * EPISODE, log_interval=1)
    assert logger.output_formats  # a logger given with set_logger is the caller's to close
    logger.close()

    rows = read_jsonl(os.path.join(tmp_path, "progress.jsonl"))
    csv_rows = read_csv(os.path.join(tmp_path, "progress.csv"))
    assert [row["time/total_timesteps"] for row in rows] == [20, 40, 60, 80, 100]
    assert [row["time/episodes"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["rollout/ep_len_mean"] == EPISODE for row in rows)
    returns = [r for r, _ in model.ep_info_buffer]
    assert rows[-1]["rollout/ep_rew_mean"] == pytest.approx(np.mean(returns))
    assert rows[0]["rollout/ep_rew_mean"] == pytest.approx(returns[0])
    assert all(isinstance(row["time/fps"], int) and row["time/fps"] > 0 for row in rows)
    # Training starts after learning_starts=50 steps: train/ values appear from the 60-step dump on.
    assert not any(key.startswith("train/") for row in rows[:2] for key in row)
    for row in rows[2:]:
        assert {
            "train/actor_loss",
            "train/critic_loss",
            "train/learning_rate",
            "train/n_updates",
        } <= row.keys()
        assert all(np.isfinite(value) for value in row.values())
    # One gradient step after each env step past 50; a dump comes before its step's update.
    assert [row["train/n_updates"] for row in rows[2:]] == [60 - 51, 80 - 51, 100 - 51]

    # CSV and JSON hold the same values; the CSV has a column for every key, empty where absent.
    assert set(csv_rows[0]) == set().union(*rows)
    for row, csv_row in zip(rows, csv_rows, strict=True):
        assert {k: v for k, v in csv_row.items() if v != ""} == {k: str(v) for k, v in row.items()}


def test_evaluation_metrics_in_the_files(estimator: type[Any], tmp_path: Any) -> None:
    model = estimator(short_pendulum, seed=0, **{**FAST, "learning_starts": 1_000})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = EvalCallback(short_pendulum, n_eval_episodes=2, eval_freq=30, verbose=0)
    model.learn(3 * EPISODE, log_interval=1, callback=callback)
    model.logger.close()
    rows = read_csv(os.path.join(tmp_path, "progress.csv"))
    # A dump per episode (20, 40, 60) and one per evaluation (30, 60), in order.
    assert [row["time/total_timesteps"] for row in rows] == ["20", "30", "40", "60", "60"]
    evaluations = [row for row in rows if row["eval/mean_reward"]]
    assert [float(row["eval/mean_reward"]) for row in evaluations] == pytest.approx(
        [np.mean(results) for results in callback.evaluations_results]
    )
    assert {row["eval/mean_ep_length"] for row in evaluations} == {"20.0"}
    assert rows[0]["eval/mean_reward"] == ""  # the column was added later; the earlier row keeps its place


def test_every_logged_metric_is_documented(estimator: type[Any], tmp_path: Any) -> None:
    model = estimator(short_pendulum, seed=0, **FAST)
    model.set_logger(configure(str(tmp_path), ["json"]))
    model.learn(4 * EPISODE, log_interval=1, callback=EvalCallback(short_pendulum, eval_freq=40, verbose=0))
    model.logger.close()
    logged = set().union(*read_jsonl(os.path.join(tmp_path, "progress.jsonl")))
    with open(DOCS, encoding="utf-8") as file:
        documented = set(re.findall(r"^\| `([a-z_]+/[a-z_]+)`", file.read(), flags=re.MULTILINE))
    assert logged <= documented, f"metrics missing from docs/logging.md: {sorted(logged - documented)}"
    assert {"rollout/ep_rew_mean", "eval/mean_reward", "train/critic_loss", "time/fps"} <= logged


# The console


def test_verbose_1_prints_a_table(estimator: type[Any], capsys: pytest.CaptureFixture[str]) -> None:
    estimator(short_pendulum, seed=0, verbose=1, **FAST).learn(4 * EPISODE, log_interval=2)
    out = capsys.readouterr().out
    assert out.count("rollout/") == 2  # every log_interval=2 episodes
    for name in ("ep_rew_mean", "ep_len_mean", "time/", "fps", "total_timesteps", "train/", "critic_loss"):
        assert name in out


def test_verbose_0_prints_nothing(estimator: type[Any], capsys: pytest.CaptureFixture[str]) -> None:
    estimator(short_pendulum, seed=0, **FAST).learn(2 * EPISODE, log_interval=1)
    assert capsys.readouterr().out == ""


def test_configure_append_continues_the_files(tmp_path: Any) -> None:
    folder = str(tmp_path)
    first = configure(folder, ["csv", "json", "log"])
    first.record("a", 1)
    first.dump(step=1)
    first.close()
    second = configure(folder, ["csv", "json", "log"], append=True)
    second.record("a", 2)
    second.record("b", 3)  # a new column: earlier rows get an empty cell
    second.dump(step=2)
    second.close()
    assert read_csv(os.path.join(folder, "progress.csv")) == [{"a": "1", "b": ""}, {"a": "2", "b": "3"}]
    assert read_jsonl(os.path.join(folder, "progress.jsonl")) == [{"a": 1}, {"a": 2, "b": 3}]
    with open(os.path.join(folder, "log.txt"), encoding="utf-8") as file:
        assert file.read().count("│ a") == 2
    configure(folder, ["csv"]).close()  # without append, a new run starts the file afresh
    assert read_csv(os.path.join(folder, "progress.csv")) == []
