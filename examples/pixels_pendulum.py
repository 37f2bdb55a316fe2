"""Train SAC from pixels on Pendulum-v1: a CNN policy that sees only rendered frames.

    python examples/pixels_pendulum.py [--steps 10000] [--seed 0] [--size 48]

Shows the image-observation pipeline: gymnasium's AddRenderObservation replaces Pendulum's state
by its 500×500 RGB frame, and a small wrapper of our own (numpy only; gymnasium's
ResizeObservation would need OpenCV) turns that into a small image: the frame's centre, grey and
area-averaged down to ``--size`` pixels, the last three frames stacked as the image's three
channels (one frame shows the angle but not the angular velocity). ``SAC("CnnPolicy", ...)`` puts
the Nature-DQN CNN in front of the actor and the critics; the replay buffer keeps the uint8 frames.
Needs pygame for the rendering: ``pip install easyrl[pixels]``.

Takes about 15 minutes on 2 CPU cores (each update of the CNNs takes some 90 ms there; a GPU is
much faster). Learning the swing-up from pixels takes far more steps than from the 3-number
state: plain SAC stayed at the random policy's level (a return of about -1,400) after the default
10,000 steps, and after 25,000, so read this as a template to scale up (more steps, on a GPU),
not as a quick result.
"""

from __future__ import annotations

import argparse
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from easyrl import SAC, evaluate_policy


class SmallGreyFrames(gym.ObservationWrapper):
    """RGB frames → the last ``n_frames`` frames, grey, cropped and area-averaged to ``size`` × ``size``.

    ``crop`` is the part of the frame's width and height kept around its centre: Pendulum's rod
    (tip and cap included) reaches half the frame's width across, so 0.6 keeps all of it.
    """

    def __init__(self, env: gym.Env, size: int = 48, n_frames: int = 3, crop: float = 0.6) -> None:
        super().__init__(env)
        height, width = env.observation_space.shape[:2]
        top, left = round(height * (1 - crop) / 2), round(width * (1 - crop) / 2)
        self.window = (slice(top, height - top), slice(left, width - left))
        self.row_edges = np.linspace(0, height - 2 * top, size + 1).astype(int)
        self.col_edges = np.linspace(0, width - 2 * left, size + 1).astype(int)
        self.pixels_per_cell = np.outer(np.diff(self.row_edges), np.diff(self.col_edges))
        self.n_frames = n_frames
        self.frames: deque[np.ndarray] = deque(maxlen=n_frames)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, n_frames), np.uint8)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        self.frames.clear()  # a new episode starts from copies of its first frame
        return super().reset(**kwargs)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        grey = frame[self.window].astype(np.float32).mean(axis=2)
        sums = np.add.reduceat(
            np.add.reduceat(grey, self.row_edges[:-1], axis=0), self.col_edges[:-1], axis=1
        )
        self.frames.append(np.round(sums / self.pixels_per_cell).astype(np.uint8))
        while len(self.frames) < self.n_frames:
            self.frames.append(self.frames[-1])
        return np.stack(self.frames, axis=-1)


def make_env(size: int) -> gym.Env:
    env = gym.make("Pendulum-v1", render_mode="rgb_array")
    return SmallGreyFrames(gym.wrappers.AddRenderObservation(env, render_only=True), size=size)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=48, help="image height and width (at least 36)")
    args = parser.parse_args()

    model = SAC(
        "CnnPolicy",
        lambda: make_env(args.size),
        buffer_size=args.steps,  # uint8 frames, stored once each: 10,000 of them take about 70 MB
        learning_starts=1_000,
        batch_size=128,
        gamma=0.98,
        seed=args.seed,
        device="auto",
    )
    model.learn(args.steps, progress_bar=True)
    mean_return, std_return = evaluate_policy(model, make_env(args.size), n_eval_episodes=10)
    print(f"Evaluation over 10 episodes: mean return {mean_return:.1f} +/- {std_return:.1f}")


if __name__ == "__main__":
    main()
