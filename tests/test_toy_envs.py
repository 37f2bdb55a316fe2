"""The small envs of ``easyrl.envs``: gymnasium's checker, goal rewards in batches, seeding, image layout."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from easyrl.envs import DotImageEnv, PointGoalEnv


def run_episodes(env: gym.Env, policy: Any, n_episodes: int, seed: int = 0) -> list[list[Any]]:
    """For each seeded episode, the list of ``(obs, reward, terminated, truncated, info)`` steps."""
    episodes = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        steps, done = [], False
        while not done:
            step = env.step(policy(obs))
            steps.append(step)
            obs, done = step[0], step[2] or step[3]
        episodes.append(steps)
    return episodes


def towards_goal(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The hand-coded policy: head straight for the goal (full speed until one step away)."""
    return np.clip((obs["desired_goal"] - obs["achieved_goal"]) / 0.1, -1.0, 1.0).astype(np.float32)


@pytest.mark.parametrize(
    "env",
    [PointGoalEnv(), DotImageEnv(size=36), DotImageEnv(channel_first=True, render_mode="rgb_array")],
    ids=["point-goal", "dot-image-36", "dot-image-chw"],
)
def test_gymnasium_env_checker_passes(env: gym.Env) -> None:
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", ["easyrl/PointGoal-v0", "easyrl/DotImage-v0"])
def test_registered_ids_build_and_truncate_like_the_env(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.max_episode_steps == env.unwrapped.max_episode_steps
    (episode,) = run_episodes(env, lambda _: env.action_space.sample(), 1)
    assert len(episode) == env.unwrapped.max_episode_steps
    assert episode[-1][3] and not any(step[2] for step in episode)


def test_goal_env_truncates_by_itself_without_a_time_limit() -> None:
    env = PointGoalEnv(max_episode_steps=7)
    (episode,) = run_episodes(env, lambda _: np.zeros(2, dtype=np.float32), 1)
    assert [step[3] for step in episode] == [False] * 6 + [True]


def test_compute_reward_is_vectorised_and_matches_the_step_rewards() -> None:
    env = PointGoalEnv()
    rng = np.random.default_rng(0)
    achieved = rng.uniform(-1, 1, size=(4, 5, 2)).astype(np.float32)
    desired = achieved + rng.uniform(-0.15, 0.15, size=(4, 5, 2)).astype(np.float32)
    for info in (None, {}, [{}] * 20):
        rewards = env.compute_reward(achieved, desired, info)
        assert rewards.shape == (4, 5) and rewards.dtype == np.float32
    expected = np.where(np.linalg.norm(achieved - desired, axis=-1) < 0.1, 0.0, -1.0)
    np.testing.assert_array_equal(rewards, expected)
    assert 0 < (rewards == 0).sum() < rewards.size  # both outcomes are exercised

    steps = [step for episode in run_episodes(env, towards_goal, 3) for step in episode]
    obs = [step[0] for step in steps]
    batch = env.compute_reward(
        np.stack([o["achieved_goal"] for o in obs]), np.stack([o["desired_goal"] for o in obs]), None
    )
    np.testing.assert_array_equal(batch, [step[1] for step in steps])
    np.testing.assert_array_equal(batch == 0, [step[4]["is_success"] for step in steps])
    assert set(batch.tolist()) == {0.0, -1.0}


def test_moving_towards_the_goal_succeeds_and_random_actions_rarely_do() -> None:
    def success_rate(policy: Any) -> float:
        episodes = run_episodes(PointGoalEnv(), policy, 50)
        return float(np.mean([episode[-1][4]["is_success"] for episode in episodes]))

    rng = np.random.default_rng(0)
    assert success_rate(towards_goal) == 1.0
    assert success_rate(lambda _: rng.uniform(-1, 1, size=2).astype(np.float32)) < 0.2


@pytest.mark.parametrize("make", [PointGoalEnv, lambda: DotImageEnv(size=36)], ids=["goal", "image"])
def test_episodes_are_reproducible_by_seed(make: Any) -> None:
    def trajectory(seed: int) -> list[Any]:
        env = make()
        actions = np.random.default_rng(1)
        (episode,) = run_episodes(env, lambda _: actions.uniform(-1, 1, size=2).astype(np.float32), 1, seed)
        return [(step[0], step[1]) for step in episode]

    def flat(trajectory: list[Any]) -> list[Any]:
        return [(gym.spaces.flatten(make().observation_space, obs), reward) for obs, reward in trajectory]

    first, again, other = flat(trajectory(3)), flat(trajectory(3)), flat(trajectory(4))
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.parametrize("size", [36, 84])
def test_image_layouts_show_the_same_frame(size: int) -> None:
    hwc, chw = DotImageEnv(size=size, render_mode="rgb_array"), DotImageEnv(size=size, channel_first=True)
    assert hwc.observation_space.shape == (size, size, 3) and chw.observation_space.shape == (3, size, size)
    first, _ = hwc.reset(seed=5)
    obs, _ = chw.reset(seed=5)
    assert first.dtype == obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, first.transpose(2, 0, 1))
    action = np.array([0.5, -1.0], dtype=np.float32)
    after, _, _, _, _ = hwc.step(action)
    np.testing.assert_array_equal(chw.step(action)[0], after.transpose(2, 0, 1))
    np.testing.assert_array_equal(hwc.render(), after)
    assert not np.array_equal(first, after)
    assert chw.render() is None  # no render_mode, no frame


def test_the_dot_is_clearly_visible_and_the_reward_is_minus_its_distance() -> None:
    env = DotImageEnv(size=36)
    obs, _ = env.reset(seed=0)
    red, green, blue = (obs[..., channel] for channel in range(3))
    assert (red == 255).sum() >= 16 and (green == 255).sum() >= 16 and blue.max() == 0
    rows, cols = np.nonzero(green)
    assert abs(rows.mean() - 17.5) < 0.5 and abs(cols.mean() - 17.5) < 0.5  # the target is at the centre
    position = env.unwrapped._position.copy()
    _, reward, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert reward == pytest.approx(-np.linalg.norm(position)) and info["distance"] == -reward
