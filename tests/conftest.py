"""Shared fixtures: the estimators every feature test runs over, and small fast settings."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from easyrl import DDPG, SAC, TD3

ESTIMATORS: list[type[Any]] = [SAC, TD3, DDPG]
"""Every public estimator; feature tests are parametrised over this list."""

FAST: dict[str, Any] = dict(
    learning_starts=50, batch_size=32, buffer_size=2_000, policy_kwargs=dict(net_arch=[32, 32]), device="cpu"
)
"""Settings that make a model cheap to build and train in tests."""


def pytest_configure(config: pytest.Config) -> None:
    # Small networks on a 2-core machine run fastest, and most reproducibly, on one thread.
    torch.set_num_threads(1)


@pytest.fixture(params=ESTIMATORS, ids=lambda cls: cls.__name__)
def estimator(request: pytest.FixtureRequest) -> type[Any]:
    return request.param


def mean_return(model: Any, env_id: str = "Pendulum-v1", n_episodes: int = 10) -> float:
    """Mean return of deterministic actions over ``n_episodes`` fresh, seeded episodes."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    returns = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))
