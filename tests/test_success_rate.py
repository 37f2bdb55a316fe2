"""``rollout/success_rate``: the mean ``info["is_success"]`` of the last episodes, logged as SB3 logs it,
kept in the training state and saved with the model."""

from __future__ import annotations

from typing import Any

import pytest

from easyrl import SAC
from easyrl.logger import KVWriter, Logger
from tests.conftest import FAST

GOAL_ENV = "easyrl/PointGoal-v0"  # 50-step episodes reporting info["is_success"]


class Recorder(KVWriter):
    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: Any, key_excluded: Any, step: int = 0) -> None:
        self.dumps.append(dict(key_values))


def rollout_keys(dumps: list[dict[str, Any]]) -> set[str]:
    return {key for dump in dumps for key in dump if key.startswith("rollout/")}


def test_success_rate_is_logged_and_saved(tmp_path: Any) -> None:
    recorder = Recorder()
    model = SAC(GOAL_ENV, seed=0, **{**FAST, "learning_starts": 1_000_000, "stats_window_size": 3})
    model.set_logger(Logger(None, [recorder]))
    model.learn(200, log_interval=1)
    assert rollout_keys(recorder.dumps) == {
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "rollout/success_rate",
    }
    successes = list(model.ep_success_buffer)
    assert len(successes) == 3  # stats_window_size
    assert all(s in (0.0, 1.0) for s in successes)
    assert recorder.dumps[-1]["rollout/success_rate"] == pytest.approx(sum(successes) / 3)

    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip")
    assert list(loaded.ep_success_buffer) == successes
    loaded.learn(0, reset_num_timesteps=True)
    assert list(loaded.ep_success_buffer) == []  # a new run starts new statistics, as in SB3


def test_no_success_rate_without_is_success() -> None:
    recorder = Recorder()
    model = SAC("Pendulum-v1", seed=0, **{**FAST, "learning_starts": 1_000_000})
    model.set_logger(Logger(None, [recorder]))
    model.learn(200, log_interval=1)
    assert rollout_keys(recorder.dumps) == {"rollout/ep_rew_mean", "rollout/ep_len_mean"}
    assert len(model.ep_success_buffer) == 0


def test_the_same_keys_as_sb3() -> None:
    import gymnasium as gym

    sb3 = pytest.importorskip("stable_baselines3")
    sb3_logger = pytest.importorskip("stable_baselines3.common.logger")

    class SB3Recorder(Recorder, sb3_logger.KVWriter):
        def close(self) -> None:
            pass

    recorder = SB3Recorder()
    model = sb3.SAC("MultiInputPolicy", gym.make(GOAL_ENV), learning_starts=1_000_000, seed=0, device="cpu")
    model.set_logger(sb3_logger.Logger(None, [recorder]))
    model.learn(100, log_interval=1)
    assert rollout_keys(recorder.dumps) == {
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "rollout/success_rate",
    }
