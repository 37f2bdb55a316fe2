"""The optional envs the extras install (``pip install easyrl[robotics,pixels]``; CI installs both).

FetchReach (gymnasium-robotics on MuJoCo) is the goal-conditioned env of examples/her_fetch_reach.py,
and Pendulum-v1 rendered to images (pygame) that of examples/pixels_pendulum.py. Both build headless.
"""

from __future__ import annotations

import gymnasium as gym
import gymnasium_robotics
import numpy as np

gym.register_envs(gymnasium_robotics)

FETCH_REACH = "FetchReach-v4"  # the MuJoCo-bindings version; v1 needs the retired mujoco_py


def test_fetch_reach_builds_steps_and_relabels_rewards_in_batches() -> None:
    env = gym.make(FETCH_REACH)
    assert env.spec is not None and env.spec.max_episode_steps == 50
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert set(env.observation_space.spaces) == {"observation", "achieved_goal", "desired_goal"}
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    env.action_space.seed(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space and not terminated and not truncated
    assert reward in (0.0, -1.0) and "is_success" in info

    achieved = np.stack([obs["achieved_goal"]] * 4)
    desired = np.stack([obs["achieved_goal"], obs["desired_goal"]] * 2)
    rewards = env.unwrapped.compute_reward(achieved, desired, [info] * 4)
    assert rewards.shape == (4,)
    np.testing.assert_array_equal(rewards, [0.0, reward, 0.0, reward])
    env.close()


def test_pendulum_renders_uint8_image_observations() -> None:
    env = gym.wrappers.AddRenderObservation(
        gym.make("Pendulum-v1", render_mode="rgb_array"), render_only=True
    )
    obs, _ = env.reset(seed=0)
    assert env.observation_space.dtype == np.uint8 and env.observation_space.shape == (500, 500, 3)
    assert obs.dtype == np.uint8 and obs.shape == (500, 500, 3) and obs.min() < obs.max()
    next_obs, *_ = env.step(env.action_space.sample())
    assert next_obs.shape == obs.shape
    env.close()
