"""The envs of a model: a stand-in for a model loaded without one, and the check of a replacement's spaces.

Between episodes, the envs easyrl builds are fully described by each env's episode seed (see
``easyrl.envs.EpisodeSeeds``), so a checkpoint resets them with those seeds. A model loaded without an
env gets a stand-in with the right spaces that refuses to run, and keeps the checkpoint's observations
until ``set_env`` gives it a real env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from easyrl.envs import builds_new_env


def check_same_spaces(
    saved: tuple[gym.spaces.Box, gym.spaces.Box],
    actual: tuple[gym.Space[Any], gym.Space[Any]],
    what: str,
    source: str,
) -> None:
    """Refuse an env whose observations or actions differ from those the model was trained on."""
    for name, expected, got in zip(("observation", "action"), saved, actual, strict=True):
        same = isinstance(got, gym.spaces.Box) and expected.shape == got.shape and expected.dtype == got.dtype
        if same and name == "action":
            assert isinstance(got, gym.spaces.Box)
            same = np.array_equal(expected.low, got.low) and np.array_equal(expected.high, got.high)
        if not same:
            raise ValueError(f"{what} has the {name} space {got}, but {source} was trained on {expected}.")


class _NoEnv(gym.Env[np.ndarray, np.ndarray]):
    """Stands in for the env of a model loaded without one: it has the spaces, and refuses to run."""

    def __init__(self, message: str, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        self.message = message
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        raise ValueError(self.message)

    def step(self, action: np.ndarray) -> Any:
        raise ValueError(self.message)


def placeholder_env(
    path: str, algorithm: str, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, num_envs: int
) -> VectorEnv:
    message = (
        f"This {algorithm} was loaded from {path} without an env (it was not built from an env id), so it can "
        f"predict but not train; pass one: {algorithm}.load(path, env=...) or model.set_env(env)."
    )
    return SyncVectorEnv(
        [lambda: _NoEnv(message, observation_space, action_space) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


def built_by_easyrl(env: Any) -> bool:
    """Whether the vector env made from ``env`` holds only envs easyrl created (None: a placeholder)."""
    return env is None or builds_new_env(env)
