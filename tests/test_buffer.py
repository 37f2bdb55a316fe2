"""Replay buffer: each observation stored once, exact next observations, timeouts bootstrap."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl.buffers import ReplayBuffer
from easyrl.buffers.memory import available_memory


def box(shape: tuple[int, ...], dtype: type = np.float32) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, shape, dtype)


def add_step(buf: ReplayBuffer, t: float, end: str | None = None, n_envs: int = 1) -> None:
    """Add the transition s=t -> s'=t+1 (reward t) in every env; the obs value encodes the step."""
    obs = np.full((n_envs, 2), t, dtype=np.float32)
    next_obs = obs + 1
    terminated = np.full(n_envs, end == "terminated")
    truncated = np.full(n_envs, end == "truncated")
    buf.add(obs, np.full((n_envs, 1), 0.5), np.full(n_envs, t), next_obs, terminated, truncated)


def all_transitions(buf: ReplayBuffer) -> set[tuple[float, float, float, float]]:
    batch = buf.sample(4000, torch.Generator().manual_seed(0), gamma=0.99)
    rows = zip(
        batch.observations[:, 0].tolist(),
        batch.next_observations[:, 0].tolist(),
        batch.rewards.tolist(),
        batch.terminated.tolist(),
        strict=True,
    )
    return set(rows)


def test_next_observation_comes_from_the_following_slot() -> None:
    buf = ReplayBuffer(100, box((2,)), 1)
    for t in range(5):
        add_step(buf, t)
    # The newest transition waits for its successor; the others are exact.
    assert all_transitions(buf) == {(t, t + 1, t, 0.0) for t in range(4)}
    assert len(buf) == 5 and buf.n_sampleable == 4


def test_truncation_keeps_the_true_final_observation_and_bootstraps() -> None:
    buf = ReplayBuffer(100, box((2,)), 1)
    add_step(buf, 0)
    add_step(buf, 1, end="truncated")  # final obs 2.0 goes to the side store
    add_step(buf, 10)  # first obs of the next episode
    add_step(buf, 11, end="terminated")  # final obs 12.0
    add_step(buf, 20)
    got = all_transitions(buf)
    # truncated: next obs is the real final obs and terminated stays 0 (the critic bootstraps)
    assert (1.0, 2.0, 1.0, 0.0) in got
    # terminated: terminated flag 1, next obs the final obs
    assert (11.0, 12.0, 11.0, 1.0) in got
    # no transition ever crosses from one episode into the next
    assert all(next_obs == obs + 1 for obs, next_obs, _, _ in got)


def test_wraparound_overwrites_the_oldest_and_keeps_final_observations_right() -> None:
    buf = ReplayBuffer(8, box((2,)), 1)
    for t in range(30):
        add_step(buf, t, end="truncated" if t % 3 == 2 else None)
    got = all_transitions(buf)
    assert len(buf) == 8
    assert {obs for obs, *_ in got} == {float(t) for t in range(22, 29)}  # the newest (29) waits
    assert all(next_obs == obs + 1 for obs, next_obs, _, _ in got)
    # the side store holds only the final observations still referenced
    assert int((buf._side_head - buf._side_tail).max()) <= 3


def test_side_store_grows_when_many_episodes_end() -> None:
    buf = ReplayBuffer(1000, box((2,)), 1)
    for t in range(300):
        add_step(buf, t, end="terminated")
    assert buf.final_observations.shape[0] >= 300
    got = all_transitions(buf)
    assert len(got) == 299 and all(next_obs == obs + 1 and term == 1.0 for obs, next_obs, _, term in got)


def test_several_envs_each_keep_their_own_sequence() -> None:
    buf = ReplayBuffer(40, box((2,)), 1, n_envs=2)
    for t in range(10):
        obs = np.array([[t, t], [100 + t, 100 + t]], dtype=np.float32)
        done = np.array([t == 4, False])
        buf.add(obs, np.zeros((2, 1)), np.zeros(2), obs + 1, done, np.zeros(2, bool))
    got = all_transitions(buf)
    assert all(next_obs == obs + 1 for obs, next_obs, _, _ in got)
    assert {obs for obs, *_ in got} == {float(t) for t in range(9)} | {100.0 + t for t in range(9)}


def test_invalid_steps_are_skipped() -> None:
    """gymnasium's NEXT_STEP autoreset step of a finished env is not a transition."""
    buf = ReplayBuffer(40, box((2,)), 1, n_envs=2)
    obs = np.zeros((2, 2), np.float32)
    buf.add(
        obs,
        np.zeros((2, 1)),
        np.zeros(2),
        obs,
        np.zeros(2, bool),
        np.zeros(2, bool),
        valid=np.array([True, False]),
    )
    assert buf.count.tolist() == [1, 0]


def test_sampling_is_uniform_over_transitions() -> None:
    buf = ReplayBuffer(100, box((2,)), 1)
    for t in range(11):
        add_step(buf, t)
    batch = buf.sample(20_000, torch.Generator().manual_seed(1), gamma=0.99)
    counts = np.bincount(batch.observations[:, 0].long().numpy(), minlength=10)
    assert counts.min() > 1_700 and counts.max() < 2_300  # 2,000 expected each


def test_sampling_an_empty_buffer_says_what_to_do() -> None:
    buf = ReplayBuffer(100, box((2,)), 1)
    add_step(buf, 0)
    with pytest.raises(ValueError, match="no complete transition"):
        buf.sample(4, gamma=0.99)


def test_too_small_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match=r"buffer_size=3 is too small for 2 env\(s\)"):
        ReplayBuffer(3, box((2,)), 1, n_envs=2)


def test_images_are_stored_as_uint8() -> None:
    buf = ReplayBuffer(10, gym.spaces.Box(0, 255, (4, 4), np.uint8), 1)
    assert buf.observations.dtype == torch.uint8


def test_one_million_humanoid_transitions_fit_in_1_7_gb() -> None:
    env = gym.make("Humanoid-v4")
    obs_space = env.observation_space
    assert isinstance(obs_space, gym.spaces.Box) and obs_space.shape == (376,)
    buf = ReplayBuffer(1_000_000, obs_space, 17)
    # SB3's default layout (obs and next_obs, float32) needs about 6.1 GB for the same data.
    assert buf.nbytes <= 1.7e9, buf.nbytes


def test_a_buffer_larger_than_the_free_memory_is_refused_before_it_is_used() -> None:
    """SB3 warns and lets the run die of memory hours later; easyrl refuses it when the model is built."""
    free = available_memory(torch.device("cpu"))
    assert free is not None
    too_many = 2 * free // 30  # a transition of 3 floats and 1 action takes 31 bytes with its bookkeeping
    with pytest.raises(
        ValueError, match=rf"buffer_size={too_many} needs \d+\.\d GiB of cpu memory when full"
    ):
        ReplayBuffer(too_many, box((3,)), 1)
    with pytest.raises(ValueError, match=r"buffer_size=1000000000000 is more than this machine can allocate"):
        ReplayBuffer(10**12, box((3,)), 1)
