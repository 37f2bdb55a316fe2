"""A small goal-conditioned env with a sparse reward, for hindsight experience replay (HER).

:class:`PointGoalEnv` follows gymnasium-robotics' goal-env conventions (those of the Fetch envs):
a ``Dict`` observation with ``observation``, ``achieved_goal`` and ``desired_goal``, a reward of 0
on success and -1 otherwise, ``info["is_success"]``, and a ``compute_reward`` that works on
batches of goals, so that a replay buffer can relabel stored transitions with other goals.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

Obs = dict[str, Any]


class PointGoalEnv(gym.Env[Obs, np.ndarray]):
    """A point on the plane ``[-1, 1]²`` that must reach a goal drawn anew each episode.

    Each step moves the point by ``step_size * action`` (the action clipped to ``[-1, 1]²``,
    the position clipped to the plane). The reward is 0 when the point ends the step within
    ``distance_threshold`` of the goal and -1 otherwise; episodes never terminate and are
    truncated after ``max_episode_steps`` steps by the env itself, so it needs no ``TimeLimit``.
    Start and goal are drawn uniformly from ``self.np_random`` (the goal at least
    ``distance_threshold`` away), so ``reset(seed=...)`` makes episodes reproducible.

    A policy that heads straight for the goal succeeds in every episode (no goal is more than
    20 steps away); random actions rarely do. With HER, SAC learns it in a few thousand steps.
    Registered with gymnasium as ``"easyrl/PointGoal-v0"``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Env declares it an instance variable)

    def __init__(
        self, distance_threshold: float = 0.1, max_episode_steps: int = 50, step_size: float = 0.1
    ) -> None:
        if distance_threshold <= 0 or max_episode_steps < 1 or step_size <= 0:
            raise ValueError(
                "PointGoalEnv needs distance_threshold > 0, max_episode_steps >= 1 and step_size > 0; got "
                f"{distance_threshold}, {max_episode_steps} and {step_size}."
            )
        self.distance_threshold = float(distance_threshold)
        self.max_episode_steps = int(max_episode_steps)
        self.step_size = float(step_size)
        plane = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {"observation": plane, "achieved_goal": plane, "desired_goal": plane}
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2, dtype=np.float32)
        self._goal = np.zeros(2, dtype=np.float32)
        self._steps = 0

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any = None) -> np.ndarray:
        """The rewards for goals of shape ``(..., 2)``: an array of shape ``(...)``, 0.0 or -1.0 (float32).

        ``info`` is ignored (it may be a dict, a list of dicts or None). A single pair of goals
        gives a 0-d array.
        """
        return -(self._distance(achieved_goal, desired_goal) >= self.distance_threshold).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict]:
        super().reset(seed=seed)
        self._position = self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)
        while True:
            self._goal = self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)
            if self._distance(self._position, self._goal) >= self.distance_threshold:
                break
        self._steps = 0
        return self._observation(), {"is_success": 0.0}

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict]:
        move = self.step_size * np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self._position = np.clip(self._position + move, -1.0, 1.0).astype(np.float32)
        self._steps += 1
        reward = float(self.compute_reward(self._position, self._goal))
        info = {"is_success": float(reward == 0.0)}
        return self._observation(), reward, False, self._steps >= self.max_episode_steps, info

    def _observation(self) -> Obs:
        return {
            "observation": self._position.copy(),
            "achieved_goal": self._position.copy(),
            "desired_goal": self._goal.copy(),
        }

    @staticmethod
    def _distance(a: Any, b: Any) -> np.ndarray:
        difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        return np.asarray(np.linalg.norm(difference, axis=-1))
