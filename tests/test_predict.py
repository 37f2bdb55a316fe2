"""predict: shapes, bounds, determinism, and the SB3 return convention."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tests.conftest import FAST


def asymmetric_env() -> gym.Env:  # type: ignore[type-arg]
    """Pendulum with actions rescaled to asymmetric bounds, to check unscaling."""
    return gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), np.float32(-0.5), np.float32(3.0))


def test_single_and_batched_shapes(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    obs = np.zeros(3, np.float32)
    action, state = model.predict(obs)
    assert action.shape == (1,) and state is None
    actions, _ = model.predict(np.zeros((5, 3)))
    assert actions.shape == (5, 1)
    assert actions.dtype == np.float32


def test_actions_lie_within_the_env_bounds(estimator: type[Any]) -> None:
    model = estimator(asymmetric_env, **FAST).learn(120)
    obs = np.random.default_rng(0).uniform(-8, 8, (200, 3)).astype(np.float32)
    for deterministic in (True, False):
        actions, _ = model.predict(obs, deterministic=deterministic)
        assert actions.min() >= -0.5 and actions.max() <= 3.0
    # The policy's [-1, 1] maps affinely onto the env's [low, high].
    np.testing.assert_allclose(model._unscale(np.array([[-1.0], [0.0], [1.0]])).ravel(), [-0.5, 1.25, 3.0])


def test_deterministic_predict_is_repeatable(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    obs = np.ones((4, 3), np.float32)
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)


def test_state_is_passed_through(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    _, state = model.predict(np.zeros(3), state=("h",), episode_start=np.array([True]))
    assert state == ("h",)
