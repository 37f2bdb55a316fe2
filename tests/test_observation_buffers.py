"""The replay buffer for every observation space: n-dimensional Boxes, uint8 images and Dicts.

Every observation encodes its step number t in every value, so a sampled batch says which slots it read.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl.buffers import ReplayBuffer

SPACES: dict[str, gym.Space[Any]] = {
    "vector": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
    "frame_stack": gym.spaces.Box(-np.inf, np.inf, (3, 3), np.float32),
    "image": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
    "dict": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (3, 8, 8), np.uint8),
            "state": gym.spaces.Box(-1, 1, (4,), np.float32),
        }
    ),
}


@pytest.fixture(params=list(SPACES))
def space(request: pytest.FixtureRequest) -> gym.Space[Any]:
    return SPACES[request.param]


def observation(space: gym.Space[Any], t: float, n_envs: int = 1) -> Any:
    """A batch of observations whose every value is ``t``."""
    if isinstance(space, gym.spaces.Dict):
        return {key: observation(sub, t, n_envs) for key, sub in space.spaces.items()}
    return np.full((n_envs, *space.shape), t, dtype=space.dtype)


def step_value(obs: Any) -> torch.Tensor:
    """The step each observation of a batch encodes (checking that all its values agree)."""
    arrays = list(obs.values()) if isinstance(obs, dict) else [obs]
    values = [a.reshape(a.shape[0], -1).float() for a in arrays]
    first = values[0][:, 0]
    for v in values:
        assert torch.equal(v, first[:, None].expand_as(v)), "an observation mixes two steps"
    return first


def add(buf: ReplayBuffer, space: gym.Space[Any], t: int, end: str | None = None, n_envs: int = 1) -> None:
    """Add the step s=t -> s'=t+1 with reward t; at an episode end the next obs (t + 100) is kept aside."""
    next_t = t + 100 if end else t + 1
    buf.add(
        observation(space, t, n_envs), np.zeros((n_envs, 1)), np.full(n_envs, float(t)),
        observation(space, next_t, n_envs), np.full(n_envs, end == "terminated"), np.full(n_envs, end == "truncated"),
    )  # fmt: skip


def sampled(buf: ReplayBuffer, n_steps: int = 1) -> set[tuple[float, float, float, float]]:
    batch = buf.sample(3000, torch.Generator().manual_seed(0), gamma=0.5, n_steps=n_steps)
    obs, next_obs = step_value(batch.observations), step_value(batch.next_observations)
    rows = zip(
        obs.tolist(), next_obs.tolist(), batch.rewards.tolist(), batch.terminated.tolist(), strict=True
    )
    return set(rows)


def test_each_observation_is_stored_once_and_next_observations_are_exact(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(50, space, 1)
    for t in range(4):
        add(buf, space, t, end="truncated" if t == 2 else None)
    add(buf, space, 10)
    # 2 -> 102 is the truncated step's true final observation, not the next episode's first (3).
    assert sampled(buf) == {(0, 1, 0, 0), (1, 2, 1, 0), (2, 102, 2, 0), (3, 10, 3, 0)}


def test_batches_keep_the_spaces_shapes_and_storage_dtypes(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(50, space, 1)
    for t in range(3):
        add(buf, space, t)
    batch = buf.sample(5, gamma=0.9)
    subspaces = space.spaces if isinstance(space, gym.spaces.Dict) else {"": space}
    for key, sub in subspaces.items():
        for obs in (batch.observations, batch.next_observations):
            tensor = obs[key] if key else obs
            assert tuple(tensor.shape) == (5, *sub.shape)
            assert tensor.dtype == (torch.uint8 if sub.dtype == np.uint8 else torch.float32)


def test_n_step_windows_stop_at_episode_ends(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(50, space, 1)
    add(buf, space, 0)
    add(buf, space, 1, end="terminated")
    add(buf, space, 2)
    add(buf, space, 3)
    add(buf, space, 4)
    # From 0: rewards 0 + 0.5 * 1, ends at the termination (next obs 101). From 2: 2 + 0.5 * 3, next 4.
    assert sampled(buf, n_steps=2) == {(0, 101, 0.5, 1), (1, 101, 1, 1), (2, 4, 3.5, 0), (3, 4, 3, 0)}


def test_several_envs_and_wraparound_keep_each_envs_sequence(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(8, space, 1, n_envs=2)
    for t in range(9):
        add(buf, space, t, end="truncated" if t % 3 == 2 else None, n_envs=2)
    # Four rows: steps 5..8 remain in each env; 8 is the newest (not sampleable), 5 ended (final 105).
    assert sampled(buf) == {(5, 105, 5, 0), (6, 7, 6, 0), (7, 8, 7, 0)}


def test_the_side_ring_grows_for_every_key(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(400, space, 1)
    for t in range(150):  # every step ends an episode: more final observations than the initial side ring
        add(buf, space, t, end="truncated")
    add(buf, space, 200)
    got = sampled(buf)
    assert {(o, n) for o, n, _, _ in got} == {(t, t + 100) for t in range(150)}


def test_close_episodes_keeps_the_given_final_observation(space: gym.Space[Any]) -> None:
    buf = ReplayBuffer(50, space, 1)
    add(buf, space, 0)
    add(buf, space, 1)
    buf.close_episodes(observation(space, 77))
    add(buf, space, 5)  # the newest slot is never drawn; this makes slot 1 sampleable
    assert sampled(buf) == {(0, 1, 0, 0), (1, 77, 1, 0)}


def test_images_take_one_uint8_copy() -> None:
    """100 000 RGB 84x84 frames: about 2.1 GB as one uint8 copy; the buffer adds only small per-step arrays."""
    space = gym.spaces.Box(0, 255, (84, 84, 3), np.uint8)
    buf = ReplayBuffer(100_000, space, 2)
    one_copy = 100_000 * (84 * 84 * 3 + 2 * 4 + 4)
    side = buf.side_capacity * 84 * 84 * 3  # the (small, growing) ring of final observations
    assert buf.nbytes - side <= 1.02 * one_copy
    assert buf.observations.dtype == torch.uint8
