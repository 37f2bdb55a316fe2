"""Hindsight Experience Replay: where relabelled goals come from, recomputed rewards, truncation, several
envs, the ring overwriting old episodes, and the buffer rebuilt from a file.

Each observation's goals encode where they were: at step t of episode e, ``achieved_goal`` is
100 e + t, so the goal achieved *after* step t is 100 e + t + 1 (at the end of an episode of length L,
100 e + L, from its true final observation).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl.buffers import GoalSelectionStrategy, HerReplayBuffer

GOAL_SPACE = gym.spaces.Dict(
    {
        "observation": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        "achieved_goal": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        "desired_goal": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
    }
)
DESIRED = -1.0  # the goal the agent was given (never achieved)


def compute_reward(achieved: np.ndarray, desired: np.ndarray, info: Any) -> np.ndarray:
    assert len(info) == len(achieved) and all(i == {} for i in info)
    return -(np.abs(achieved - desired).sum(-1) > 1e-6).astype(np.float32)


def obs(goal: float, n_envs: int = 1, offset: float = 0.0) -> dict[str, np.ndarray]:
    achieved = np.full((n_envs, 1), goal, np.float32) + offset * np.arange(n_envs, dtype=np.float32)[:, None]
    return {
        "observation": np.repeat(achieved, 2, axis=1),
        "achieved_goal": achieved,
        "desired_goal": np.full((n_envs, 1), DESIRED, np.float32),
    }


def buffer(strategy: str, capacity: int = 1000, n_envs: int = 1, n_sampled_goal: int = 4) -> HerReplayBuffer:
    buf = HerReplayBuffer(
        capacity, GOAL_SPACE, 1, n_envs, n_sampled_goal=n_sampled_goal, goal_selection_strategy=strategy
    )
    buf.compute_reward = compute_reward
    return buf


def write_episode(
    buf: HerReplayBuffer, episode: int, length: int, end: str | None = "truncated", n_envs: int = 1
) -> None:
    """Episode ``episode`` of ``length`` steps in every env (env i's goals offset by 10 000 i)."""
    for t in range(length):
        last = t == length - 1
        done = end if last else None
        buf.add(
            obs(100 * episode + t, n_envs, 10_000), np.zeros((n_envs, 1)), np.full(n_envs, -1.0),
            obs(100 * episode + t + 1, n_envs, 10_000),
            np.full(n_envs, done == "terminated"), np.full(n_envs, done == "truncated"),
        )  # fmt: skip


def draw(
    buf: HerReplayBuffer, size: int = 4000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(achieved goal at s, the desired goal at s, at s', rewards) for a batch, and how many were relabelled."""
    batch = buf.sample(size, torch.Generator().manual_seed(1), gamma=0.9)
    o, n = batch.observations, batch.next_observations
    assert isinstance(o, dict) and isinstance(n, dict)
    return (
        o["achieved_goal"][:, 0].numpy(), o["desired_goal"][:, 0].numpy(), n["desired_goal"][:, 0].numpy(),
        batch.rewards.numpy(), int(buf.her_ratio * size),
    )  # fmt: skip


@pytest.mark.parametrize("strategy", [s.value for s in GoalSelectionStrategy])
def test_relabelled_goals_come_from_the_right_part_of_the_episode(strategy: str) -> None:
    buf = buffer(strategy)
    write_episode(buf, 1, 5)
    write_episode(buf, 2, 7)
    achieved, goal, next_goal, _, n = draw(buf)
    assert n == int(0.8 * 4000)
    np.testing.assert_array_equal(goal, next_goal)  # s and s' carry the same (new) goal
    assert (goal[n:] == DESIRED).all() and (goal[:n] != DESIRED).all()
    episode, step = achieved[:n] // 100, achieved[:n] % 100
    goal_episode, goal_step = goal[:n] // 100, goal[:n] % 100
    assert (goal_episode == episode).all(), "a goal from another episode"
    length = np.where(episode == 1, 5, 7)
    if strategy == "future":  # achieved after this step or a later one
        assert (goal_step >= step + 1).all() and (goal_step <= length).all()
        pairs = set(zip(step.tolist(), goal_step.tolist(), strict=True))
        assert {(0, 1), (0, 5), (4, 5), (6, 7)} <= pairs
    elif strategy == "final":
        np.testing.assert_array_equal(goal_step, length)
    else:  # after any step of the episode, earlier ones included
        assert set(goal_step[episode == 2].tolist()) == set(range(1, 8))
        assert ((goal_step < step + 1) & (episode == 2)).any()


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_rewards_are_recomputed_for_the_new_goal(strategy: str) -> None:
    buf = buffer(strategy)
    write_episode(buf, 1, 6)
    batch = buf.sample(2000, torch.Generator().manual_seed(3), gamma=0.9)
    o, n = batch.observations, batch.next_observations
    assert isinstance(o, dict) and isinstance(n, dict)
    expected = compute_reward(n["achieved_goal"].numpy(), n["desired_goal"].numpy(), [{}] * 2000)
    np.testing.assert_array_equal(batch.rewards.numpy()[:1600], expected[:1600])
    np.testing.assert_array_equal(batch.rewards.numpy()[1600:], -1.0)  # the real transitions' stored rewards
    assert (batch.rewards.numpy()[:1600] == 0).any()  # the goal reached by the step itself: a success


def test_a_truncated_episodes_final_goal_is_its_true_final_observation() -> None:
    buf = buffer("final")
    write_episode(buf, 1, 4, end="truncated")
    write_episode(buf, 2, 3, end=None)  # still running: its first observation follows episode 1 in the column
    _, goal, _, _, n = draw(buf)
    assert set(goal[:n].tolist()) == {104.0}  # not 200, the next episode's first achieved goal


def test_only_ended_episodes_are_sampled() -> None:
    buf = buffer("future")
    write_episode(buf, 1, 3, end=None)
    with pytest.raises(ValueError, match="only from episodes that have ended.*learning_starts"):
        buf.sample(10, gamma=0.9)
    write_episode(buf, 2, 2)  # the column's episode never ended: these steps continue it, and end it
    achieved, *_ = draw(buf, 500)
    assert set((achieved // 100).tolist()) == {1, 2}
    buf.close_episodes(obs(999))
    assert buf.n_sampleable == 5


def test_several_envs_relabel_within_their_own_episodes() -> None:
    buf = buffer("episode", n_envs=3)
    write_episode(buf, 1, 4, n_envs=3)
    write_episode(buf, 2, 4, n_envs=3)
    achieved, goal, _, _, n = draw(buf)
    assert (achieved[:n] // 10_000 == goal[:n] // 10_000).all(), "a goal from another env"
    assert ((achieved[:n] % 10_000) // 100 == (goal[:n] % 10_000) // 100).all(), "a goal from another episode"
    assert set((achieved // 10_000).tolist()) == {0, 1, 2}


def test_an_episode_partly_overwritten_by_the_ring_relabels_from_what_remains() -> None:
    buf = buffer("episode", capacity=10)
    write_episode(buf, 1, 8)
    write_episode(buf, 2, 6)  # overwrites the first 4 steps of episode 1
    achieved, goal, _, _, n = draw(buf)
    first = achieved[:n] // 100 == 1
    assert set(achieved[:n][first].tolist()) == {104, 105, 106, 107}
    assert set(goal[:n][first].tolist()) == {105, 106, 107, 108}


@pytest.mark.parametrize("strategy", ["future", "episode"])
def test_tables_rebuilt_from_a_file_sample_the_same_goals(strategy: str) -> None:
    buf = buffer(strategy, capacity=12, n_envs=2)
    for episode, length in enumerate([5, 4, 6, 3], start=1):
        write_episode(buf, episode, length, n_envs=2)
    write_episode(buf, 9, 2, end=None, n_envs=2)  # in progress
    arrays, state = buf.export_state()
    copy = buffer(strategy, capacity=12, n_envs=2)
    targets = copy.import_targets(state)
    for name, target in targets.items():
        target.copy_(arrays[name])
    copy.finish_import()
    np.testing.assert_array_equal(copy._open, buf._open)
    a = buf.sample(500, torch.Generator().manual_seed(5), gamma=0.9)
    b = copy.sample(500, torch.Generator().manual_seed(5), gamma=0.9)
    for key in GOAL_SPACE.spaces:
        torch.testing.assert_close(a.observations[key], b.observations[key])  # type: ignore[index]
    torch.testing.assert_close(a.rewards, b.rewards)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="goal_selection_strategy='best' is invalid.*future"):
        HerReplayBuffer(100, GOAL_SPACE, 1, goal_selection_strategy="best")
    with pytest.raises(ValueError, match="n_sampled_goal=-1 is invalid"):
        HerReplayBuffer(100, GOAL_SPACE, 1, n_sampled_goal=-1)
    with pytest.raises(ValueError, match="copy_info_dict=True is not supported"):
        HerReplayBuffer(100, GOAL_SPACE, 1, copy_info_dict=True)
    plain = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (2,))})
    with pytest.raises(
        ValueError, match=r"goal-conditioned env.*missing \['achieved_goal', 'desired_goal'\]"
    ):
        HerReplayBuffer(100, plain, 1)
    with pytest.raises(ValueError, match="goal-conditioned env"):
        HerReplayBuffer(100, gym.spaces.Box(-1, 1, (3,)), 1)
    buf = HerReplayBuffer(100, GOAL_SPACE, 1, goal_selection_strategy=GoalSelectionStrategy.FINAL)
    write_episode(buf, 1, 3)
    with pytest.raises(ValueError, match="no reward function yet.*set_env"):
        buf.sample(4, gamma=0.9)
    buf.compute_reward = compute_reward
    with pytest.raises(ValueError, match="does not support n-step"):
        buf.sample(4, gamma=0.9, n_steps=3)


def test_zero_sampled_goals_replays_only_real_transitions() -> None:
    buf = buffer("future", n_sampled_goal=0)
    write_episode(buf, 1, 5)
    _, goal, _, _, n = draw(buf)
    assert n == 0 and (goal == DESIRED).all()
