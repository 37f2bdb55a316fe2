"""Replay memory for image observations: easyrl's buffer against one uint8 copy of the data, and SB3's.

Usage:
    python benchmarks/image_memory.py                        # 100,000 transitions of 84x84x3 uint8 images
    python benchmarks/image_memory.py --transitions 20000 --size 64 --episode-length 200

The target (issue 14): the buffer holds at most 1.05x the bytes of one uint8 copy of the observations
plus the actions and rewards. The buffer is filled for real, with episodes of ``--episode-length`` steps
that end by truncation (so the ring of true final observations is in use), and the figure is the
process's resident memory growth while building and filling it, next to the buffer's own byte count.
SB3's ReplayBuffer (its default layout, a second array for next observations) is sized from its arrays,
without filling them, when stable-baselines3 is installed.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from machine import cpu_model, resident_bytes  # this folder's machine description

from easyrl.buffers import ReplayBuffer

try:
    from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
except ImportError:  # optional
    SB3ReplayBuffer = None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=84, help="image height and width")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--action-dim", type=int, default=6)
    args = parser.parse_args()

    n, size, action_dim = args.transitions, args.size, args.action_dim
    space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
    frame_bytes = size * size * 3
    one_copy = n * (frame_bytes + 4 * action_dim + 4)  # observations + float32 actions + float32 rewards

    before = resident_bytes()
    buffer = ReplayBuffer(n, space, action_dim)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(16, 1, size, size, 3), dtype=np.uint8)  # a few frames, reused
    actions = np.zeros((1, action_dim), np.float32)
    for t in range(n):
        end = (t + 1) % args.episode_length == 0
        buffer.add(
            frames[t % 16], actions, np.zeros(1, np.float32), frames[(t + 1) % 16],
            np.zeros(1, bool), np.full(1, end),
        )  # fmt: skip
    grown = resident_bytes() - before

    print(f"{n:,} transitions of {size}x{size}x3 uint8 images, action dim {action_dim}, "
          f"episodes of {args.episode_length} steps; {cpu_model()}")  # fmt: skip
    print(f"  one uint8 copy of the observations + actions + rewards: {one_copy / 1e9:.3f} GB")
    print(
        f"  easyrl buffer, its arrays:              {buffer.nbytes / 1e9:.3f} GB   {buffer.nbytes / one_copy:.3f}x"
    )
    print(f"  easyrl buffer, resident memory growth:  {grown / 1e9:.3f} GB   {grown / one_copy:.3f}x")
    if SB3ReplayBuffer is not None:
        sb3 = SB3ReplayBuffer(n, space, gym.spaces.Box(-1, 1, (action_dim,), np.float32), device="cpu")
        sb3_bytes = sum(a.nbytes for a in vars(sb3).values() if isinstance(a, np.ndarray))
        print(
            f"  SB3 ReplayBuffer (default layout):      {sb3_bytes / 1e9:.3f} GB   {sb3_bytes / one_copy:.3f}x"
        )
    print(f"target <= 1.05x: {'met' if max(buffer.nbytes, grown) <= 1.05 * one_copy else 'NOT met'}")


if __name__ == "__main__":
    main()
