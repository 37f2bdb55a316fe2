"""Tests for easyrl.callbacks: hooks, stopping (when it should and not before), evaluation, checkpoints."""

from __future__ import annotations

import json
import os
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import easyrl
import easyrl.callbacks.evaluation
from easyrl.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    EveryNTimesteps,
    StepData,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from easyrl.logger import configure
from tests.conftest import FAST

EPISODE = 20
"""Length of the short Pendulum episodes these tests train on."""

NO_TRAINING = {**FAST, "learning_starts": 1_000_000}
"""Callbacks do not need gradient steps: only env steps, which are cheap."""


def short_pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=EPISODE)


def make_model(estimator: type[Any], n_envs: int = 1, **params: Any) -> Any:
    return estimator(short_pendulum, n_envs=n_envs, seed=0, **{**NO_TRAINING, **params})


class Recorder(BaseCallback):
    """Records the hooks called, and stops after ``stop_at`` calls of on_step if given."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.events: list[str] = []
        self.steps: list[StepData] = []
        self.timesteps: list[int] = []

    def _init_callback(self) -> None:
        self.events.append("init")

    def _on_training_start(self) -> None:
        self.events.append("training_start")

    def _on_rollout_start(self) -> None:
        self.events.append("rollout_start")

    def _on_step(self) -> bool:
        self.events.append("step")
        assert self.step is not None
        self.steps.append(self.step)
        self.timesteps.append(self.num_timesteps)
        return self.stop_at is None or self.n_calls < self.stop_at

    def _on_rollout_end(self) -> None:
        self.events.append("rollout_end")

    def _on_training_end(self) -> None:
        self.events.append("training_end")


@pytest.fixture
def scripted_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Makes each evaluation's mean return the next value of the list the test fills in."""
    means: list[float] = []
    calls = iter(range(10_000))

    def fake_run_episodes(model: Any, env: Any, n_eval_episodes: int, *args: Any, **kwargs: Any) -> Any:
        mean = means[next(calls)]
        return [mean] * n_eval_episodes, [EPISODE] * n_eval_episodes, []

    monkeypatch.setattr(easyrl.callbacks.evaluation, "run_episodes", fake_run_episodes)
    return means


# The base class and the loop


def test_hooks_are_called_in_order(estimator: type[Any]) -> None:
    model = make_model(estimator)
    recorder = Recorder()
    model.learn(5, callback=recorder)
    rollout = ["rollout_start", "step", "rollout_end"]  # train_freq=1: one step per rollout
    assert recorder.events == ["init", "training_start", *rollout * 5, "training_end"]
    assert recorder.model is model
    assert recorder.logger is model.logger
    assert recorder.n_calls == 5
    assert recorder.timesteps == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("n_envs", [1, 2])
def test_step_data_is_typed_and_counted_over_envs(estimator: type[Any], n_envs: int) -> None:
    model = make_model(estimator, n_envs=n_envs)
    recorder = Recorder()
    model.learn(2 * EPISODE * n_envs, callback=recorder)
    assert recorder.n_calls == 2 * EPISODE
    assert recorder.timesteps[-1] == model.num_timesteps == 2 * EPISODE * n_envs
    step = recorder.steps[0]
    assert isinstance(step, StepData)
    assert step.observations.shape == step.new_obs.shape == step.next_obs.shape == (n_envs, 3)
    assert step.actions.shape == (n_envs, 1)
    assert step.rewards.shape == step.terminated.shape == step.truncated.shape == (n_envs,)
    ends = [i + 1 for i, s in enumerate(recorder.steps) if s.dones.any()]
    assert ends == [EPISODE, 2 * EPISODE]  # time-limit truncation, every env at once
    assert all(s.truncated.all() and not s.terminated.any() for s in recorder.steps if s.dones.any())


def test_locals_is_a_read_only_sb3_view(estimator: type[Any]) -> None:
    seen: list[Any] = []

    class SB3Style(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(self.locals)
            assert self.locals["rewards"] is self.step.rewards  # type: ignore[union-attr]
            np.testing.assert_array_equal(self.locals["dones"], self.step.dones)  # type: ignore[union-attr]
            return True

    make_model(estimator).learn(3, callback=SB3Style())
    with pytest.raises(TypeError):
        seen[0]["rewards"] = None


@pytest.mark.parametrize("n_envs", [1, 2])
def test_returning_false_stops_at_once(estimator: type[Any], n_envs: int) -> None:
    model = make_model(estimator, n_envs=n_envs)
    recorder = Recorder(stop_at=7)
    model.learn(1_000, callback=recorder)
    assert recorder.n_calls == 7
    assert model.num_timesteps == 7 * n_envs
    assert recorder.events[-2:] == ["rollout_end", "training_end"]


def test_a_function_is_a_callback(estimator: type[Any]) -> None:
    calls: list[float] = []

    def callback(locals_: Any, globals_: Any) -> bool | None:
        calls.append(float(locals_["rewards"][0]))
        if len(calls) < 4:
            return None  # like SB3: returning nothing means "continue"
        return len(calls) < 6

    model = make_model(estimator)
    model.learn(100, callback=callback)
    assert len(calls) == 6
    assert model.num_timesteps == 6


def test_a_list_of_callbacks(estimator: type[Any]) -> None:
    first, second = Recorder(), Recorder(stop_at=3)
    model = make_model(estimator)
    model.learn(100, callback=[first, second])
    assert model.num_timesteps == 3
    assert first.n_calls == second.n_calls == 3  # every callback sees every step
    assert first.events[-1] == second.events[-1] == "training_end"
    assert CallbackList([first]).callbacks == [first]


def test_callback_of_the_wrong_type(estimator: type[Any]) -> None:
    with pytest.raises(TypeError, match="callback must be a BaseCallback, a list of callbacks or a function"):
        make_model(estimator).learn(10, callback=5)


def test_logger_is_the_models(estimator: type[Any]) -> None:
    with pytest.raises(RuntimeError, match="not attached to a model; pass it to model.learn"):
        _ = Recorder().logger


# EveryNTimesteps and StopTrainingOnMaxEpisodes


@pytest.mark.parametrize(("n_envs", "expected"), [(1, [25, 50, 75]), (2, [26, 52, 78])])
def test_every_n_timesteps(estimator: type[Any], n_envs: int, expected: list[int]) -> None:
    inner = Recorder()
    make_model(estimator, n_envs=n_envs).learn(80, callback=EveryNTimesteps(25, inner))
    assert inner.timesteps == expected
    assert inner.events[:2] == ["init", "training_start"]
    assert inner.events[-1] == "training_end"


@pytest.mark.parametrize("n_envs", [1, 2])
def test_stop_on_max_episodes(estimator: type[Any], n_envs: int) -> None:
    # As in SB3, max_episodes counts per env: 3 episodes of every env.
    model = make_model(estimator, n_envs=n_envs)
    callback = StopTrainingOnMaxEpisodes(3)
    model.learn(10_000, callback=callback)
    assert callback.n_episodes == 3 * n_envs
    assert model.num_timesteps == 3 * EPISODE * n_envs


def test_max_episodes_does_not_stop_early(estimator: type[Any]) -> None:
    model = make_model(estimator)
    model.learn(3 * EPISODE - 1, callback=StopTrainingOnMaxEpisodes(3))
    assert model.num_timesteps == 3 * EPISODE - 1


@pytest.mark.parametrize(
    "make", [lambda: EveryNTimesteps(0, Recorder()), lambda: StopTrainingOnMaxEpisodes(0),
             lambda: CheckpointCallback(0, "x"), lambda: EvalCallback("Pendulum-v1", n_eval_episodes=0)]
)  # fmt: skip
def test_invalid_counts(make: Any) -> None:
    with pytest.raises(ValueError, match=r"=0 is invalid: it must be an integer >= 1"):
        make()


# EvalCallback


@pytest.mark.parametrize("n_envs", [1, 2])
def test_eval_callback_writes_evaluations(estimator: type[Any], n_envs: int, tmp_path: Any) -> None:
    model = make_model(estimator, n_envs=n_envs)
    model.set_logger(configure(str(tmp_path), ["json"]))
    callback = EvalCallback(
        short_pendulum, n_eval_episodes=3, eval_freq=10, log_path=str(tmp_path), verbose=0
    )
    model.learn(35 * n_envs, callback=callback)
    model.logger.close()

    # eval_freq counts calls of on_step, i.e. vector-env steps, as in SB3.
    expected_steps = [10 * n_envs, 20 * n_envs, 30 * n_envs]
    data = np.load(os.path.join(tmp_path, "evaluations.npz"))
    assert sorted(data.files) == ["ep_lengths", "results", "timesteps"]
    assert data["timesteps"].tolist() == callback.evaluations_timesteps == expected_steps
    assert data["results"].shape == data["ep_lengths"].shape == (3, 3)
    assert (data["ep_lengths"] == EPISODE).all()
    np.testing.assert_allclose(data["results"], callback.evaluations_results)
    means = data["results"].mean(axis=1)
    assert callback.last_mean_reward == pytest.approx(means[-1])
    assert callback.best_mean_reward == pytest.approx(means.max())

    with open(os.path.join(tmp_path, "progress.jsonl"), encoding="utf-8") as file:
        rows = [row for row in map(json.loads, file) if "eval/mean_reward" in row]
    assert [row["time/total_timesteps"] for row in rows] == expected_steps
    np.testing.assert_allclose([row["eval/mean_reward"] for row in rows], means)
    np.testing.assert_allclose([row["eval/std_reward"] for row in rows], data["results"].std(axis=1))
    assert [row["eval/mean_ep_length"] for row in rows] == [EPISODE] * 3


@pytest.mark.parametrize("form", ["id", "env", "factory", "vector"])
def test_eval_env_forms(estimator: type[Any], form: str) -> None:
    eval_env: Any = {
        "id": "Pendulum-v1",
        "env": short_pendulum(),
        "factory": short_pendulum,
        "vector": gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"),
    }[form]
    callback = EvalCallback(eval_env, n_eval_episodes=2, eval_freq=5, verbose=0)
    make_model(estimator).learn(5, callback=callback)
    assert callback.evaluations_length == [[EPISODE if form in ("env", "factory") else 200] * 2]


def test_eval_callback_prints_results(estimator: type[Any], capsys: pytest.CaptureFixture[str]) -> None:
    make_model(estimator).learn(5, callback=EvalCallback(short_pendulum, n_eval_episodes=1, eval_freq=5))
    out = capsys.readouterr().out
    assert "Eval num_timesteps=5, episode_reward=" in out
    assert f"Episode length: {EPISODE:.2f} +/- 0.00" in out
    assert "New best mean reward!" in out


def test_eval_env_of_another_shape(estimator: type[Any]) -> None:
    callback = EvalCallback("MountainCarContinuous-v0", eval_freq=5)
    with pytest.raises(ValueError, match=r"observations are Box.*\(2,\).*trained on Box.*\(3,\)"):
        make_model(estimator).learn(5, callback=callback)


def test_same_seed_same_evaluations(estimator: type[Any]) -> None:
    def run() -> list[list[float]]:
        callback = EvalCallback(short_pendulum, n_eval_episodes=2, eval_freq=5, verbose=0)
        make_model(estimator).learn(10, callback=callback)
        return callback.evaluations_results

    first = run()
    assert first == run()
    assert first[0] != first[1]  # later evaluations continue the env's generator: new start states


def test_eval_callback_can_be_reused(estimator: type[Any]) -> None:
    callback = EvalCallback(short_pendulum, n_eval_episodes=1, eval_freq=5, verbose=0)
    model = make_model(estimator)
    model.learn(5, callback=callback)
    model.learn(5, callback=callback, reset_num_timesteps=False)
    assert callback.evaluations_timesteps == [5, 10]


def test_callbacks_run_after_each_evaluation_and_on_each_new_best(
    estimator: type[Any], scripted_evaluations: list[float]
) -> None:
    scripted_evaluations += [-5.0, -3.0, -4.0, -1.0, -2.0]
    on_new_best, after_eval = Recorder(), Recorder()
    callback = EvalCallback(
        short_pendulum,
        callback_on_new_best=on_new_best,
        callback_after_eval=after_eval,
        eval_freq=3,
        verbose=0,
    )
    make_model(estimator).learn(15, callback=callback)
    assert after_eval.timesteps == [3, 6, 9, 12, 15]
    assert on_new_best.timesteps == [3, 6, 12]
    assert on_new_best.parent is callback
    assert after_eval.parent is callback
    assert callback.best_mean_reward == -1.0
    assert callback.last_mean_reward == -2.0
    for child in (on_new_best, after_eval):
        assert child.events[:2] == ["init", "training_start"]
        assert child.events[-1] == "training_end"


# Early stopping


@pytest.mark.parametrize(("threshold", "stop_at"), [(-200.0, 3), (-100.0, 4), (-99.0, None)])
def test_stop_on_reward_threshold(
    estimator: type[Any], scripted_evaluations: list[float], threshold: float, stop_at: int | None
) -> None:
    scripted_evaluations += [-500.0, -300.0, -200.0, -100.0, -400.0, -150.0]
    model = make_model(estimator)
    callback = EvalCallback(
        short_pendulum, callback_on_new_best=StopTrainingOnRewardThreshold(threshold), eval_freq=10, verbose=0
    )
    model.learn(60, callback=callback)
    # Stops right after the first evaluation that reaches the threshold, not before; never if none does.
    assert model.num_timesteps == (10 * stop_at if stop_at else 60)
    assert len(callback.evaluations_timesteps) == (stop_at or 6)


def test_stop_on_reward_threshold_with_real_evaluations(estimator: type[Any]) -> None:
    # Every return beats -1e9: the first evaluation stops training.
    stop = StopTrainingOnRewardThreshold(-1e9, verbose=1)
    model = make_model(estimator, n_envs=2)
    model.learn(1_000, callback=EvalCallback(short_pendulum, stop, n_eval_episodes=2, eval_freq=5, verbose=0))
    assert model.num_timesteps == 10


@pytest.mark.parametrize(
    ("means", "max_no_improvement", "min_evals", "stop_at"),
    [
        ([1, 2, 2, 2, 2, 2, 2, 2], 2, 0, 5),  # no new best at evals 3, 4, 5: the third in a row stops
        ([1, 2, 2, 3, 3, 3, 3, 3], 2, 0, 7),  # eval 4's new best resets the count
        ([1, 1, 1, 1, 1, 1, 1, 1], 1, 2, 4),  # evals 1 and 2 are not counted
        ([1, 2, 3, 4, 5, 6, 7, 8], 0, 0, None),  # always improving: never stops
    ],
)
def test_stop_on_no_model_improvement(
    estimator: type[Any],
    scripted_evaluations: list[float],
    means: list[float],
    max_no_improvement: int,
    min_evals: int,
    stop_at: int | None,
) -> None:
    scripted_evaluations += means
    stop = StopTrainingOnNoModelImprovement(max_no_improvement, min_evals=min_evals)
    model = make_model(estimator)
    model.learn(40, callback=EvalCallback(short_pendulum, callback_after_eval=stop, eval_freq=5, verbose=0))
    assert model.num_timesteps == (5 * stop_at if stop_at else 40)


@pytest.mark.parametrize(
    "callback",
    [StopTrainingOnRewardThreshold(0.0), StopTrainingOnNoModelImprovement(3)],
    ids=lambda callback: type(callback).__name__,
)
def test_evaluation_stoppers_need_an_eval_callback(estimator: type[Any], callback: BaseCallback) -> None:
    with pytest.raises(ValueError, match="must be given to an EvalCallback"):
        make_model(estimator).learn(10, callback=callback)


# Saving: best model and checkpoints


class SaveSpy:
    """Stands in for model.save / model.save_replay_buffer, recording (kind, path, num_timesteps)."""

    def __init__(self, model: Any) -> None:
        self.calls: list[tuple[str, str, int]] = []
        model.save = lambda path: self.calls.append(("model", str(path), model.num_timesteps))
        model.save_replay_buffer = lambda path: self.calls.append(("buffer", str(path), model.num_timesteps))


def test_best_model_is_saved_on_each_new_best(
    estimator: type[Any], scripted_evaluations: list[float], tmp_path: Any
) -> None:
    scripted_evaluations += [-5.0, -3.0, -4.0, -1.0]
    model = make_model(estimator)
    spy = SaveSpy(model)
    folder = os.path.join(tmp_path, "best")
    model.learn(
        20, callback=EvalCallback(short_pendulum, eval_freq=5, best_model_save_path=folder, verbose=0)
    )
    best = os.path.join(folder, "best_model.zip")
    assert spy.calls == [("model", best, 5), ("model", best, 10), ("model", best, 20)]


@pytest.mark.parametrize("n_envs", [1, 2])
def test_checkpoints(estimator: type[Any], n_envs: int, tmp_path: Any) -> None:
    model = make_model(estimator, n_envs=n_envs)
    spy = SaveSpy(model)
    callback = CheckpointCallback(10, str(tmp_path), name_prefix="sac", save_replay_buffer=True)
    model.learn(35 * n_envs, callback=callback)
    expected = []
    for steps in (10 * n_envs, 20 * n_envs, 30 * n_envs):
        expected.append(("model", os.path.join(tmp_path, f"sac_{steps}_steps.zip"), steps))
        expected.append(("buffer", os.path.join(tmp_path, f"sac_replay_buffer_{steps}_steps.zip"), steps))
    assert spy.calls == expected


def test_checkpoint_files_are_written(estimator: type[Any], tmp_path: Any) -> None:
    model = make_model(estimator)
    model.learn(20, callback=CheckpointCallback(10, str(tmp_path), save_replay_buffer=True))
    assert sorted(os.listdir(tmp_path)) == [
        "rl_model_10_steps.zip",
        "rl_model_20_steps.zip",
        "rl_model_replay_buffer_10_steps.zip",
        "rl_model_replay_buffer_20_steps.zip",
    ]
    loaded = estimator.load(os.path.join(tmp_path, "rl_model_20_steps.zip"))
    assert loaded.num_timesteps == 20


def test_best_model_file_is_written(estimator: type[Any], tmp_path: Any) -> None:
    model = make_model(estimator)
    callback = EvalCallback(
        short_pendulum, n_eval_episodes=1, eval_freq=5, best_model_save_path=str(tmp_path)
    )
    model.learn(5, callback=callback)
    assert os.listdir(tmp_path) == ["best_model.zip"]
    obs = np.zeros(3, np.float32)
    loaded = estimator.load(os.path.join(tmp_path, "best_model.zip"))
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


# Progress bar


def test_progress_bar_runs(estimator: type[Any], capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model(estimator)
    recorder = Recorder()
    model.learn(3 * EPISODE, progress_bar=True, callback=recorder)
    out = capsys.readouterr().out
    assert f"{3 * EPISODE}/{3 * EPISODE}" in out
    assert "steps/s" in out
    assert "mean return" in out
    assert recorder.n_calls == 3 * EPISODE  # the user's callback still runs beside the bar


def test_progress_bar_closes_when_training_stops_early(estimator: type[Any]) -> None:
    callback = easyrl.callbacks.make_callback(Recorder(stop_at=5), progress_bar=True)
    make_model(estimator).learn(100, callback=callback)
    bar = callback.callbacks[1]  # type: ignore[attr-defined]
    assert bar.pbar is None


# LogEveryNTimesteps


class DumpRecorder:
    """A logger output (SB3's KVWriter interface, which both libraries call) that keeps each dump's step."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.keys: list[set[str]] = []

    def write(self, key_values: Any, key_excluded: Any, step: int = 0) -> None:
        self.steps.append(step)
        self.keys.append(set(key_values))

    def close(self) -> None:
        pass


def test_log_every_n_timesteps_dumps_by_steps_as_in_sb3() -> None:
    from easyrl.callbacks import LogEveryNTimesteps
    from easyrl.logger import KVWriter, Logger

    class Recorder(DumpRecorder, KVWriter):
        pass

    ours = Recorder()
    model = easyrl.SAC(short_pendulum, seed=0, **NO_TRAINING)
    model.set_logger(Logger(None, [ours]))
    model.learn(100, log_interval=None, callback=LogEveryNTimesteps(n_steps=25))
    assert ours.steps == [25, 50, 75, 100]

    sb3_sac = pytest.importorskip("stable_baselines3").SAC
    sb3_logger = pytest.importorskip("stable_baselines3.common.logger")
    sb3_callbacks = pytest.importorskip("stable_baselines3.common.callbacks")

    class SB3Recorder(DumpRecorder, sb3_logger.KVWriter):
        pass

    theirs = SB3Recorder()
    sb3_model = sb3_sac("MlpPolicy", short_pendulum(), learning_starts=1_000_000, seed=0, device="cpu")
    sb3_model.set_logger(sb3_logger.Logger(None, [theirs]))
    sb3_model.learn(100, log_interval=None, callback=sb3_callbacks.LogEveryNTimesteps(n_steps=25))
    assert theirs.steps == ours.steps
    with pytest.raises(ValueError, match="n_steps"):
        LogEveryNTimesteps(n_steps=0)
