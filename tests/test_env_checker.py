"""Tests for easyrl.env_checker.check_env: gymnasium's checks plus easyrl's, each error's message."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from easyrl.env_checker import check_env
from easyrl.envs import PointGoalEnv

sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")


class SimpleEnv(gym.Env[Any, np.ndarray]):
    """A small env whose spaces, observations and rewards each test sets."""

    def __init__(
        self,
        observation_space: gym.Space[Any] | None = None,
        action_space: gym.Space[Any] | None = None,
        obs_value: float = 0.0,
        reward: float = 0.0,
    ) -> None:
        self.observation_space = observation_space or gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = action_space or gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.obs_value, self.reward = obs_value, reward

    def _obs(self) -> Any:
        space = self.observation_space
        if isinstance(space, gym.spaces.Box):
            return np.full(space.shape, self.obs_value, space.dtype)
        return space.sample()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self._obs(), self.reward, False, False, {}


def check_quietly(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warn=False must silence gymnasium's warnings too
        check_env(env, warn=False)


def test_good_envs_pass_here_and_in_sb3() -> None:
    for env in (SimpleEnv(), gym.make("Pendulum-v1").unwrapped, PointGoalEnv()):
        check_quietly(env)
        sb3_checker.check_env(env)


def test_not_an_env() -> None:
    vector = gym.vector.SyncVectorEnv([lambda: SimpleEnv()])
    with pytest.raises(TypeError, match="check_env needs a gymnasium.Env, got SyncVectorEnv; check one env"):
        check_env(vector)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            SimpleEnv(action_space=gym.spaces.Discrete(3)),
            r"easyrl \(SAC, TD3, DDPG\) needs a continuous \(Box\) action space, but the env has Discrete\(3\)\. "
            "For discrete actions use a discrete-action algorithm such as DQN.",
        ),
        (
            SimpleEnv(action_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)),
            r"easyrl \(SAC, TD3, DDPG\) needs finite action bounds, .* Wrap the env with "
            r"gymnasium.wrappers.RescaleAction or ClipAction",
        ),
        (
            SimpleEnv(observation_space=gym.spaces.Discrete(4)),
            r"easyrl \(SAC, TD3, DDPG\) supports Box and Dict observation spaces, but the env has",
        ),
        (
            SimpleEnv(gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), obs_value=np.inf),
            r"reset\(\) returned an observation with NaN or infinite values.*gymnasium.wrappers.ClipObservation",
        ),
        (
            SimpleEnv(reward=np.inf),
            r"step\(\) returned the reward inf: rewards must be finite numbers.*Clip or fix the reward",
        ),
    ],
    ids=["discrete-actions", "unbounded-actions", "discrete-observations", "nan-observation", "inf-reward"],
)
def test_what_easyrl_cannot_train_on(env: gym.Env, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_quietly(env)


def test_gymnasium_api_errors_come_through() -> None:
    class NoSeed(SimpleEnv):
        def reset(self, **kwargs: Any) -> tuple[Any, dict]:  # type: ignore[override]
            return self._obs(), {}

    with pytest.raises(AssertionError, match="seed"):
        check_quietly(NoSeed())


class GoalEnv(PointGoalEnv):
    """PointGoalEnv with a broken ``compute_reward`` (or observation space), chosen per test; ``step()``
    keeps the true reward (it calls ``compute_reward`` without ``info``)."""

    def __init__(self, flaw: str) -> None:
        super().__init__()
        self.flaw = flaw
        if flaw == "keys":
            spaces = dict(self.observation_space.spaces)
            del spaces["achieved_goal"]
            self.observation_space = gym.spaces.Dict(spaces)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = super()._observation()
        return {key: obs[key] for key in self.observation_space.spaces}

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any = None) -> Any:
        reward = super().compute_reward(achieved_goal, desired_goal, info)
        if info is None:  # step()'s own call: the true reward
            return reward
        if self.flaw == "unrelated":
            return reward + 5.0
        if self.flaw == "not-vectorised":
            return np.atleast_1d(reward)[:1]
        if self.flaw == "uses-info":
            return np.where([bool(i) for i in np.atleast_1d(info)], reward, reward - 1.0)
        return reward


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        (
            "keys",
            r"HerReplayBuffer needs a Dict observation space with the keys \['observation', 'achieved_goal', ",
        ),
        (
            "unrelated",
            r"HER recomputes rewards with compute_reward, so step\(\) must compute its reward with it",
        ),
        ("not-vectorised", r"returned shape \(1,\), not \(2,\): HerReplayBuffer calls it on whole batches"),
        ("uses-info", r"one empty info dict per row .* so the reward\s+must not depend on info"),
    ],
)
def test_goal_env_checks(flaw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_quietly(GoalEnv(flaw))


def test_warnings_about_images() -> None:
    float_image = SimpleEnv(observation_space=gym.spaces.Box(0.0, 1.0, (40, 40, 3), np.float32))
    with pytest.warns(
        UserWarning, match=r"looks like an image \(a 3-D Box\), but its dtype is float32, not uint8"
    ):
        check_env(float_image)
    small = SimpleEnv(observation_space=gym.spaces.Box(0, 255, (20, 20, 3), np.uint8))
    with pytest.warns(
        UserWarning, match="is a 20x20 image, smaller than the 36x36 that easyrl's default CNN"
    ):
        check_env(small)
    check_quietly(small)
