"""Tests for evaluate_policy and model.score: exact episode counts, returns, the env forms accepted."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from easyrl import evaluate_policy
from tests.conftest import FAST


class FixedLengthEnv(gym.Env[np.ndarray, np.ndarray]):
    """Episodes of ``length`` steps (or cycling through ``lengths``), reward 1 per step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, *lengths: int) -> None:
        self.lengths = lengths
        self.episodes = 0
        self.t = 0
        self.closed = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        done = self.t >= self.lengths[self.episodes % len(self.lengths)]
        if done:
            self.episodes += 1
        return np.full(3, self.t, np.float32), 1.0, done, False, {}

    def close(self) -> None:
        self.closed = True


class RecordingModel:
    """A stand-in model: zero actions, and a record of how ``predict`` was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation)
        self.calls.append((obs.shape, deterministic))
        return np.zeros((obs.shape[0], 1), np.float32), state


def short_pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=20)


# evaluate_policy


def test_counts_exactly_n_episodes_on_one_env() -> None:
    returns, lengths = evaluate_policy(
        RecordingModel(), lambda: FixedLengthEnv(1, 2, 3), n_eval_episodes=5, return_episode_rewards=True
    )
    assert lengths == [1, 2, 3, 1, 2]
    assert returns == [1.0, 2.0, 3.0, 1.0, 2.0]


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_spreads_episodes_across_a_vector_env_like_sb3(mode: AutoresetMode) -> None:
    # env 0 finishes an episode every step, env 1 every 4 steps: without per-env targets the
    # short episodes would fill the count. With 5 episodes over 2 envs, env 0 gives 2 and env 1 gives 3.
    env = SyncVectorEnv([lambda: FixedLengthEnv(1), lambda: FixedLengthEnv(4)], autoreset_mode=mode)
    returns, lengths = evaluate_policy(RecordingModel(), env, n_eval_episodes=5, return_episode_rewards=True)
    assert sorted(lengths) == [1, 1, 4, 4, 4]
    assert sorted(returns) == [1.0, 1.0, 4.0, 4.0, 4.0]


def test_returns_are_the_sum_of_rewards() -> None:
    model = RecordingModel()
    returns, lengths = evaluate_policy(model, "Pendulum-v1", 2, return_episode_rewards=True, seed=7)
    env = gym.make("Pendulum-v1")
    expected = []
    for episode in range(2):
        env.reset(seed=7 if episode == 0 else None)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
            total += float(reward)
            done = terminated or truncated
        expected.append(total)
    assert lengths == [200, 200]
    np.testing.assert_allclose(returns, expected, rtol=1e-6)


def test_mean_and_std_by_default() -> None:
    mean, std = evaluate_policy(RecordingModel(), lambda: FixedLengthEnv(1, 3), n_eval_episodes=4)
    assert isinstance(mean, float)
    assert isinstance(std, float)
    assert mean == 2.0
    assert std == 1.0


@pytest.mark.parametrize("deterministic", [True, False])
def test_passes_deterministic_and_batched_observations(deterministic: bool) -> None:
    model = RecordingModel()
    evaluate_policy(model, lambda: FixedLengthEnv(2), n_eval_episodes=1, deterministic=deterministic)
    assert model.calls == [((1, 3), deterministic)] * 2


@pytest.mark.parametrize("form", ["id", "env", "factory", "vector"])
def test_accepts_every_env_form(estimator: type[Any], form: str) -> None:
    env: Any = {
        "id": "Pendulum-v1",
        "env": short_pendulum(),
        "factory": short_pendulum,
        "vector": gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"),
    }[form]
    model = estimator("Pendulum-v1", seed=0, **FAST)
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=3, return_episode_rewards=True)
    assert len(returns) == 3
    assert lengths == [20 if form in ("env", "factory") else 200] * 3
    assert all(r < 0 for r in returns)  # Pendulum's rewards are never positive


def test_same_seed_same_evaluation(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=0, **FAST)
    first = evaluate_policy(model, short_pendulum, 3, return_episode_rewards=True, seed=1)
    assert first == evaluate_policy(model, short_pendulum, 3, return_episode_rewards=True, seed=1)
    assert first != evaluate_policy(model, short_pendulum, 3, return_episode_rewards=True, seed=2)


def test_closes_only_the_envs_it_builds() -> None:
    built: list[FixedLengthEnv] = []

    def factory() -> FixedLengthEnv:
        built.append(FixedLengthEnv(2))
        return built[-1]

    evaluate_policy(RecordingModel(), factory, n_eval_episodes=1)
    assert built[0].closed
    mine = FixedLengthEnv(2)
    evaluate_policy(RecordingModel(), mine, n_eval_episodes=1)
    assert not mine.closed


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_invalid_episode_count(n: Any) -> None:
    with pytest.raises(ValueError, match=r"n_eval_episodes=.* is invalid: it must be an integer >= 1"):
        evaluate_policy(RecordingModel(), "Pendulum-v1", n_eval_episodes=n)


# model.score


def test_score_is_the_mean_return_and_repeatable(estimator: type[Any]) -> None:
    model = estimator(short_pendulum, seed=0, **FAST).learn(60)
    score = model.score(n_episodes=3)
    assert isinstance(score, float)
    assert score == model.score(n_episodes=3)  # a fresh, seeded env each time
    returns, lengths = evaluate_policy(
        model, short_pendulum, 3, return_episode_rewards=True, seed=model.seed_used
    )
    assert lengths == [20] * 3  # built like the training env (the factory), not from the registered id
    assert score == pytest.approx(np.mean(returns))


def test_score_leaves_the_training_env_alone(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=0, **FAST).learn(30)
    last_obs = model._last_obs.copy()
    state = model.env.unwrapped.envs[0].unwrapped.state.copy()
    model.score(n_episodes=1)
    np.testing.assert_array_equal(model._last_obs, last_obs)
    np.testing.assert_array_equal(model.env.unwrapped.envs[0].unwrapped.state, state)
    assert model.num_timesteps == 30


def test_score_on_a_given_env(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=0, **FAST)
    assert model.score(FixedLengthEnv(4), n_episodes=2) == 4.0
    assert model.score("Pendulum-v1", n_episodes=1) < 0


def test_score_without_a_way_to_build_an_env(estimator: type[Any]) -> None:
    model = estimator(FixedLengthEnv(5), seed=0, **FAST)
    with pytest.raises(ValueError, match=r"score\(\) cannot build a new env.*model.score\(env=...\)"):
        model.score()
    assert model.score(lambda: FixedLengthEnv(5), n_episodes=2) == 5.0


# SB3's callback, reward_threshold, return_episode_rewards and warn


SB3_CALLBACK_KEYS = {
    "i", "reward", "done", "info", "observations", "actions", "rewards", "dones", "infos",
    "new_observations", "episode_counts", "episode_count_targets", "episode_rewards", "episode_lengths",
    "model", "env", "n_envs",
}  # fmt: skip


def test_callback_sees_sb3s_locals_at_every_step() -> None:
    calls: list[dict[str, Any]] = []

    def callback(local_vars: dict[str, Any], global_vars: dict[str, Any]) -> None:
        calls.append(local_vars)

    evaluate_policy(RecordingModel(), lambda: FixedLengthEnv(3), n_eval_episodes=2, callback=callback)
    assert len(calls) == 6
    assert set(calls[0]) >= SB3_CALLBACK_KEYS
    assert [(c["i"], c["done"], c["reward"]) for c in calls] == [
        (0, False, 1.0),
        (0, False, 1.0),
        (0, True, 1.0),
    ] * 2
    last = calls[2]["info"]
    assert last["TimeLimit.truncated"] is False and "terminal_observation" in last
    np.testing.assert_array_equal(last["terminal_observation"], np.full(3, 3.0))
    assert isinstance(calls[0]["infos"], list)

    sb3 = pytest.importorskip("stable_baselines3.common.evaluation")
    sb3_calls: list[dict[str, Any]] = []
    sb3.evaluate_policy(
        RecordingModel(), FixedLengthEnv(3), n_eval_episodes=2, warn=False,
        callback=lambda local_vars, _: sb3_calls.append(dict(local_vars)),
    )  # fmt: skip
    assert set(sb3_calls[0]) >= SB3_CALLBACK_KEYS
    assert [(c["i"], bool(c["done"]), float(c["reward"])) for c in sb3_calls] == [
        (c["i"], c["done"], c["reward"]) for c in calls
    ]


def test_reward_threshold_raises_as_sb3s_assert() -> None:
    assert evaluate_policy(RecordingModel(), lambda: FixedLengthEnv(3), 2, reward_threshold=2.5) == (3.0, 0.0)
    with pytest.raises(AssertionError) as error:
        evaluate_policy(RecordingModel(), lambda: FixedLengthEnv(3), 2, reward_threshold=3.0)
    assert str(error.value) == (
        "Mean reward below threshold: 3.00 < 3.00 (the mean return over 2 episodes must be above "
        "reward_threshold=3.0)"
    )
    sb3 = pytest.importorskip("stable_baselines3.common.evaluation")
    with pytest.raises(AssertionError, match=r"Mean reward below threshold: 3.00 < 3.00"):
        sb3.evaluate_policy(RecordingModel(), FixedLengthEnv(3), 2, reward_threshold=3.0, warn=False)


def test_sb3_positional_order() -> None:
    returns, lengths = evaluate_policy(
        RecordingModel(), lambda: FixedLengthEnv(2, 4), 2, True, False, None, None, True
    )
    assert (returns, lengths) == ([2.0, 4.0], [2, 4])


def test_warn_and_monitor_returns_match_sb3() -> None:
    from easyrl.monitor import Monitor

    def doubled(env: gym.Env) -> gym.Env:
        return gym.wrappers.TransformReward(env, lambda reward: 2 * reward)

    with pytest.warns(
        UserWarning,
        match=r"not wrapped with a ``Monitor`` wrapper, and has the wrappers \['TransformReward'\]",
    ):
        assert evaluate_policy(RecordingModel(), doubled(FixedLengthEnv(3)), 1) == (6.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate_policy(RecordingModel(), doubled(FixedLengthEnv(3)), 1, warn=False) == (6.0, 0.0)
        # A Monitor beneath the wrapper: its episodes are the ones reported, as in SB3.
        assert evaluate_policy(RecordingModel(), doubled(Monitor(FixedLengthEnv(3))), 1) == (3.0, 0.0)
        evaluate_policy(
            RecordingModel(), gym.make("Pendulum-v1", max_episode_steps=5), 1
        )  # make's own wrappers
    sb3 = pytest.importorskip("stable_baselines3.common.evaluation")
    sb3_monitor = pytest.importorskip("stable_baselines3.common.monitor").Monitor
    assert sb3.evaluate_policy(RecordingModel(), doubled(sb3_monitor(FixedLengthEnv(3))), 1) == (3.0, 0.0)
