"""A small env observed through images drawn with numpy, for CNN policies.

:class:`DotImageEnv` needs no display, no pygame and no GPU: each frame is drawn with a few
numpy operations, so it is as fast and as reproducible as the rest of the tests.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

RED, GREEN = 0, 1


class DotImageEnv(gym.Env[np.ndarray, np.ndarray]):
    """Steer a red dot onto the green target at the centre of a ``size`` × ``size`` RGB image.

    The dot starts anywhere on the plane ``[-1, 1]²`` (drawn from ``self.np_random``) and each
    step moves it by ``step_size * action`` (the action clipped to ``[-1, 1]²``). The reward is
    dense, minus the distance between dot and target after the step, and episodes are truncated
    after ``max_episode_steps`` steps (they never terminate). The target never moves, so one
    frame tells all there is to know: no frame stacking is needed.

    Observations are ``uint8`` images, ``(size, size, 3)`` (HWC), or ``(3, size, size)`` with
    ``channel_first=True``. The dot is a disc about a sixth of the image wide (6 pixels at
    ``size=36``, the smallest image the Nature-DQN CNN takes) with anti-aliased edges, so that
    moves smaller than a pixel still change the image. ``render()`` (with
    ``render_mode="rgb_array"``) returns the current frame, always HWC.
    Registered with gymnasium as ``"easyrl/DotImage-v0"``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (as in Env)

    def __init__(
        self,
        size: int = 84,
        channel_first: bool = False,
        max_episode_steps: int = 20,
        step_size: float = 0.15,
        render_mode: str | None = None,
    ) -> None:
        if size < 8 or max_episode_steps < 1 or step_size <= 0:
            raise ValueError(
                "DotImageEnv needs size >= 8, max_episode_steps >= 1 and step_size > 0; got "
                f"{size}, {max_episode_steps} and {step_size}."
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}.")
        self.size = int(size)
        self.channel_first = bool(channel_first)
        self.max_episode_steps = int(max_episode_steps)
        self.step_size = float(step_size)
        self.render_mode = render_mode
        shape = (3, self.size, self.size) if self.channel_first else (self.size, self.size, 3)
        self.observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.radius = max(2.0, self.size / 12)
        rows, cols = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
        self._pixels = np.stack([cols, rows], axis=-1)  # (x, y) of each pixel's centre
        self._target = np.zeros(2, dtype=np.float32)
        self._background = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        self._background[..., GREEN] = self._disc(self._target)
        self._position = np.zeros(2, dtype=np.float32)
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)
        self._steps = 0
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = self.step_size * np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self._position = np.clip(self._position + move, -1.0, 1.0).astype(np.float32)
        self._steps += 1
        distance = float(np.linalg.norm(self._position - self._target))
        truncated = self._steps >= self.max_episode_steps
        return self._observation(), -distance, False, truncated, {"distance": distance}

    def render(self) -> np.ndarray | None:
        """The current frame, ``(size, size, 3)`` uint8, with ``render_mode="rgb_array"``; else None."""
        return self._frame() if self.render_mode == "rgb_array" else None

    def _frame(self) -> np.ndarray:
        frame = self._background.copy()
        frame[..., RED] = self._disc(self._position)
        return frame

    def _observation(self) -> np.ndarray:
        frame = self._frame()
        return np.ascontiguousarray(frame.transpose(2, 0, 1)) if self.channel_first else frame

    def _disc(self, position: np.ndarray) -> np.ndarray:
        """A disc of brightness 255 around ``position`` (plane coordinates), its edge anti-aliased."""
        span = self.size - 1 - 2 * self.radius  # the disc stays whole inside the image
        centre = self.radius + (position + 1.0) / 2.0 * span
        distance = np.linalg.norm(self._pixels - centre, axis=-1)
        coverage = np.clip(self.radius + 0.5 - distance, 0.0, 1.0)
        return np.round(255 * coverage).astype(np.uint8)
