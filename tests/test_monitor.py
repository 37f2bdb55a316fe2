"""Tests for easyrl.monitor: SB3's monitor.csv format, load_results and ts2xy, checked against SB3's own."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pandas
import pytest

from easyrl import SAC
from easyrl.monitor import (
    LoadMonitorResultsError,
    Monitor,
    get_monitor_files,
    load_results,
    ts2xy,
)
from tests.conftest import FAST

sb3_monitor = pytest.importorskip("stable_baselines3.common.monitor")
sb3_plotter = pytest.importorskip("stable_baselines3.common.results_plotter")


class CountingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Episodes of ``length`` steps with reward = step number, and ``info["level"]`` at each step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: int = 3) -> None:
        self.length = length
        self.t = 0

    def reset(  # type: ignore[override]  (takes Monitor's reset_keywords too, as SB3's Monitor passes them on)
        self, *, seed: int | None = None, options: dict[str, Any] | None = None, **reset_keywords: Any
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.zeros(2, np.float32), float(self.t), self.t >= self.length, False, {"level": self.t * 10}


def play(env: gym.Env, episodes: int, **reset_kwargs: Any) -> None:
    for _ in range(episodes):
        env.reset(**reset_kwargs)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated


def test_monitor_csv_has_sb3_header_and_rows(tmp_path: Any) -> None:
    env = Monitor(gym.make("Pendulum-v1", max_episode_steps=5), str(tmp_path / "run"), info_keywords=())
    play(env, 2)
    env.close()
    assert get_monitor_files(str(tmp_path)) == [str(tmp_path / "run.monitor.csv")]
    lines = (tmp_path / "run.monitor.csv").read_text().splitlines()
    assert lines[0].startswith("#")
    header = json.loads(lines[0][1:])
    assert list(header) == ["t_start", "env_id"]
    assert header["env_id"] == "Pendulum-v1"
    assert lines[1] == "r,l,t"
    assert len(lines) == 4
    returns = [float(line.split(",")[0]) for line in lines[2:]]
    assert returns == [round(r, 6) for r in env.get_episode_rewards()]
    assert env.get_episode_lengths() == [5, 5]
    assert env.get_total_steps() == 10
    assert len(env.get_episode_times()) == 2


def test_monitor_sets_info_episode_and_extra_columns(tmp_path: Any) -> None:
    env = Monitor(CountingEnv(3), str(tmp_path), reset_keywords=("difficulty",), info_keywords=("level",))
    env.reset(difficulty="hard")
    infos = [env.step(np.zeros(1))[4] for _ in range(3)]
    assert "episode" not in infos[0]
    assert infos[-1]["episode"]["r"] == 6.0
    assert infos[-1]["episode"]["l"] == 3
    assert infos[-1]["episode"]["level"] == 30
    assert infos[-1]["episode"]["difficulty"] == "hard"
    env.close()
    lines = (tmp_path / "monitor.csv").read_text().splitlines()  # a folder gets <folder>/monitor.csv
    assert lines[1] == "r,l,t,difficulty,level"
    assert lines[2].startswith("6.0,3,") and lines[2].endswith(",hard,30")


def test_monitor_errors() -> None:
    env = Monitor(CountingEnv(3), allow_early_resets=False)
    with pytest.raises(RuntimeError, match="Tried to step environment that needs reset"):
        env.step(np.zeros(1))
    env.reset()
    with pytest.raises(RuntimeError, match=r"allow_early_resets=True"):
        env.reset()
    with pytest.raises(ValueError, match="Expected you to pass keyword argument difficulty into reset"):
        Monitor(CountingEnv(3), reset_keywords=("difficulty",)).reset()
    missing = Monitor(CountingEnv(1), info_keywords=("speed",))
    missing.reset()
    with pytest.raises(KeyError, match=r"records info\['speed'\].*only the keys \['level'\]"):
        missing.step(np.zeros(1))


def test_override_existing_false_appends(tmp_path: Any) -> None:
    for _ in range(2):
        env = Monitor(CountingEnv(2), str(tmp_path / "0"), override_existing=False)
        play(env, 1)
        env.close()
    lines = (tmp_path / "0.monitor.csv").read_text().splitlines()
    # As in SB3: appending never writes a header, so only a file that existed before has one.
    assert [line.split(",")[:2] for line in lines] == [["3.0", "2"], ["3.0", "2"]]
    env = Monitor(CountingEnv(2), str(tmp_path / "0"))
    play(env, 1)
    env.close()
    assert len((tmp_path / "0.monitor.csv").read_text().splitlines()) == 3


def write_runs(folder: str, monitor_class: type[Any]) -> None:
    for rank, length in enumerate((3, 5)):
        env = monitor_class(CountingEnv(length), os.path.join(folder, str(rank)), info_keywords=("level",))
        play(env, 3)
        env.close()


@pytest.mark.parametrize("writer", ["easyrl", "sb3"])
def test_load_results_matches_sb3(tmp_path: Any, writer: str) -> None:
    write_runs(str(tmp_path), Monitor if writer == "easyrl" else sb3_monitor.Monitor)
    ours, theirs = load_results(str(tmp_path)), sb3_monitor.load_results(str(tmp_path))
    assert isinstance(ours, pandas.DataFrame)
    assert list(ours.columns) == list(theirs.columns) == ["index", "r", "l", "t", "level"]
    pandas.testing.assert_frame_equal(ours, theirs)
    assert sorted(ours["l"]) == [3, 3, 3, 5, 5, 5]
    for axis in ("timesteps", "episodes", "walltime_hrs"):
        for got, expected in zip(ts2xy(ours, axis), sb3_plotter.ts2xy(theirs, axis), strict=True):
            np.testing.assert_array_equal(got, expected)


def test_sb3_and_easyrl_monitors_write_the_same_columns(tmp_path: Any) -> None:
    for name, monitor_class in (("ours", Monitor), ("theirs", sb3_monitor.Monitor)):
        env = monitor_class(
            CountingEnv(4), str(tmp_path / name), reset_keywords=("k",), info_keywords=("level",)
        )
        play(env, 2, k=7)
        env.close()
    ours = (tmp_path / "ours.monitor.csv").read_text().splitlines()
    theirs = (tmp_path / "theirs.monitor.csv").read_text().splitlines()
    assert ours[1] == theirs[1] == "r,l,t,k,level"
    assert [row.split(",")[:2] + row.split(",")[3:] for row in ours[2:]] == [
        row.split(",")[:2] + row.split(",")[3:] for row in theirs[2:]
    ]


def test_load_results_errors(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LoadMonitorResultsError, match=r"No monitor files of the form \*monitor.csv found in"):
        load_results(str(tmp_path))
    (tmp_path / "bad.monitor.csv").write_text("r,l,t\n1,2,3\n")
    with pytest.raises(LoadMonitorResultsError, match="is not a monitor file"):
        load_results(str(tmp_path))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'pip install "easyrl\[pandas\]"'):
        load_results(str(tmp_path))


def test_empty_monitor_files_give_an_empty_frame(tmp_path: Any) -> None:
    Monitor(CountingEnv(2), str(tmp_path)).close()
    frame = load_results(str(tmp_path))
    assert frame.empty
    assert list(frame.columns) == list(sb3_monitor.load_results(str(tmp_path)).columns)


def test_ts2xy_rejects_an_unknown_axis(tmp_path: Any) -> None:
    with pytest.raises(NotImplementedError, match=r"Unsupported x_axis='steps', please use one of"):
        ts2xy(pandas.DataFrame({"r": [1.0], "l": [1], "t": [0.1]}), "steps")


def test_a_model_trains_on_a_monitored_env(tmp_path: Any) -> None:
    env = Monitor(gym.make("Pendulum-v1", max_episode_steps=20), str(tmp_path))
    model = SAC(env, seed=0, **FAST).learn(60)
    assert env.get_episode_lengths() == [20, 20, 20]
    frame = load_results(str(tmp_path))
    assert list(frame["l"]) == [20, 20, 20]
    np.testing.assert_allclose(frame["r"], [r for r, _ in model.ep_info_buffer], atol=1e-5)
    x, _ = ts2xy(frame, "timesteps")
    assert list(x) == [20, 40, 60]
