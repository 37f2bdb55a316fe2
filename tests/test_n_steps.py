"""n-step returns: windows over the replay ring, on hand-built sequences, and their use in every target.

A window starts at a drawn slot and runs over the following slots of the same env column for n steps,
stopping after an episode's end (terminated or truncated) and at the newest sampleable slot.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl.buffers import ReplayBatch, ReplayBuffer
from easyrl.buffers.n_step import n_step_window
from tests.conftest import ESTIMATORS, FAST


def box() -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


def final_obs(obs: float) -> float:
    return obs + 0.5  # the true final observation of an episode that ended at ``obs``


def build(ends: dict[int, str], steps: int, capacity: int = 100, n_envs: int = 1) -> ReplayBuffer:
    """Env e's step t has observation 1000 e + t and reward t + 1; ``ends`` maps t to how it ended."""
    buf = ReplayBuffer(capacity, box(), 1, n_envs)
    for t in range(steps):
        obs = np.array([[1000.0 * env + t] for env in range(n_envs)], np.float32)
        end = ends.get(t)
        buf.add(
            obs, np.zeros((n_envs, 1)), np.full(n_envs, t + 1.0), final_obs(obs),
            np.full(n_envs, end == "terminated"), np.full(n_envs, end == "truncated"),
        )  # fmt: skip
    return buf


def windows(buf: ReplayBuffer, n: int, gamma: float = 0.5) -> dict[float, tuple[float, float, float, float]]:
    """Every sampleable slot's (reward, next observation, terminated, discount), by its observation."""
    batch = buf.sample(6000, torch.Generator().manual_seed(0), gamma=gamma, n_steps=n)
    rows = zip(
        batch.observations[:, 0].tolist(), batch.rewards.tolist(), batch.next_observations[:, 0].tolist(),
        batch.terminated.tolist(), batch.discounts.tolist(), strict=True,
    )  # fmt: skip
    return {obs: (r, next_obs, term, disc) for obs, r, next_obs, term, disc in rows}


def test_a_full_window_sums_n_discounted_rewards_and_bootstraps_after_them() -> None:
    seen = windows(build({}, 10), 3)
    assert seen[2.0] == (3 + 0.5 * 4 + 0.25 * 5, 5.0, 0.0, 0.125)


@pytest.mark.parametrize(("end", "terminated"), [("terminated", 1.0), ("truncated", 0.0)])
def test_an_episode_end_inside_the_window_stops_it_at_the_final_observation(
    end: str, terminated: float
) -> None:
    seen = windows(build({4: end}, 12), 3)
    assert seen[3.0] == (4 + 0.5 * 5, final_obs(4.0), terminated, 0.25)  # steps 3 and 4, then the end
    assert seen[4.0] == (5.0, final_obs(4.0), terminated, 0.5)
    assert seen[2.0] == (3 + 0.5 * 4 + 0.25 * 5, final_obs(4.0), terminated, 0.125)  # ends at the last step
    assert seen[5.0] == (6 + 0.5 * 7 + 0.25 * 8, 8.0, 0.0, 0.125)  # the next episode: nothing carried over


def test_windows_stop_at_the_newest_sampleable_slot() -> None:
    seen = windows(build({}, 10), 3)  # slots 0-9; slot 9's successor is not written, so 0-8 are sampleable
    assert 9.0 not in seen
    assert seen[7.0] == (8 + 0.5 * 9, 9.0, 0.0, 0.25)
    assert seen[8.0] == (9.0, 9.0, 0.0, 0.5)


def test_windows_wrap_around_the_ring() -> None:
    buf = build({}, 25, capacity=10)  # the ring holds steps 15-24, with steps 20-24 in rows 0-4
    seen = windows(buf, 3)
    assert sorted(seen) == [15.0 + k for k in range(9)]
    assert seen[18.0] == (19 + 0.5 * 20 + 0.25 * 21, 21.0, 0.0, 0.125)  # rows 8, 9, 0


def test_windows_stay_in_their_env() -> None:
    buf = ReplayBuffer(200, box(), 1, n_envs=2)
    for t in range(8):  # env 1's episode is truncated at step 2, env 0's runs on
        obs = np.array([[t], [1000 + t]], np.float32)
        buf.add(
            obs,
            np.zeros((2, 1)),
            np.array([t, 10.0 * t]),
            obs + 0.5,
            np.zeros(2, bool),
            np.array([False, t == 2]),
        )
    seen = windows(buf, 4)
    assert seen[1.0] == (1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, 5.0, 0.0, 0.0625)
    assert seen[1001.0] == (10 + 0.5 * 20, 1002.5, 0.0, 0.25)
    assert seen[1003.0] == (30 + 0.5 * 40 + 0.25 * 50 + 0.125 * 60, 1007.0, 0.0, 0.0625)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_one_step_windows_equal_the_plain_transitions_and_draw_the_same_slots(n_envs: int) -> None:
    buf = build({3: "terminated", 6: "truncated"}, 20, capacity=12 * n_envs, n_envs=n_envs)
    plain = buf.sample(256, torch.Generator().manual_seed(1), gamma=0.9)
    assert torch.equal(plain.discounts, torch.full((256,), 0.9))
    one_shift, shift, cumulative = buf._tables()
    draw = torch.randint(0, buf.n_sampleable, (256,), generator=torch.Generator().manual_seed(1))
    env: torch.Tensor | int = 0
    if shift is None or cumulative is None:
        row, available = (draw + one_shift) % buf.rows, buf.n_sampleable - draw
    else:
        env = torch.searchsorted(cumulative, draw, right=True)
        row, available = (draw + shift[env]) % buf.rows, cumulative[env] - draw
    last, rewards, discounts = n_step_window(
        buf._flat(buf.ended), buf._flat(buf.rewards), buf.rows, n_envs, row, env, available, 0.9, 1
    )  # the general path
    assert (
        torch.equal(last, row * n_envs + env)
        and torch.equal(rewards, plain.rewards)
        and torch.equal(discounts, plain.discounts)
    )
    longer = buf.sample(256, torch.Generator().manual_seed(1), gamma=0.9, n_steps=5)
    assert torch.equal(longer.observations, plain.observations) and torch.equal(longer.actions, plain.actions)


def test_n_step_windows_match_a_reference_over_random_episodes() -> None:
    """Three envs, random terminations and truncations, a ring that wrapped: every drawn window is checked."""
    rng = np.random.default_rng(0)
    n_envs, capacity, steps, n, gamma = 3, 60, 57, 4, 0.9
    buf = ReplayBuffer(capacity, box(), 1, n_envs)
    history: list[list[tuple[float, float, bool, bool, float]]] = [[] for _ in range(n_envs)]
    for t in range(steps):
        obs = np.array([[1000.0 * env + t] for env in range(n_envs)], np.float32)
        rewards = rng.normal(size=n_envs).astype(np.float32)
        ends = rng.random(n_envs) < 0.2
        terminated = ends & (rng.random(n_envs) < 0.5)
        buf.add(obs, np.zeros((n_envs, 1)), rewards, obs + 0.5, terminated, ends & ~terminated)
        for env in range(n_envs):
            history[env].append(
                (
                    float(obs[env, 0]),
                    float(rewards[env]),
                    bool(terminated[env]),
                    bool(ends[env]),
                    float(obs[env, 0]) + 0.5,
                )
            )
    batch = buf.sample(3000, torch.Generator().manual_seed(0), gamma=gamma, n_steps=n)
    for i in range(3000):
        obs = batch.observations[i, 0].item()
        env, t = divmod(int(obs), 1000)
        records = history[env]
        assert t >= steps - buf.rows and t < steps - 1  # only live, sampleable slots are drawn
        total, k = 0.0, 0
        while True:
            _, reward, term, ended, final = records[t + k]
            total += gamma**k * reward
            k += 1
            if ended or k == n or t + k == steps - 1:
                break
        next_obs = final if ended else records[t + k][0]
        assert batch.rewards[i].item() == pytest.approx(total, abs=1e-5)
        assert batch.next_observations[i, 0].item() == next_obs
        assert batch.terminated[i].item() == float(term and ended)
        assert batch.discounts[i].item() == pytest.approx(gamma**k)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_n_steps_reaches_every_algorithm_target(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=0, n_steps=3, gamma=0.9, **{**FAST, "learning_starts": 200}).learn(
        200
    )
    seen: list[ReplayBatch] = []
    real_update = model._update
    model._update = lambda batch: seen.append(batch) or real_update(batch)  # type: ignore[method-assign]
    model.learn(1, reset_num_timesteps=False)
    (batch,) = seen
    # Pendulum's first episode (200 steps, truncated) is in the buffer: windows near its end are shorter.
    assert all(min(abs(d - 0.9**k) for k in (1, 2, 3)) < 1e-6 for d in batch.discounts.tolist())
    assert (batch.discounts == torch.tensor(0.9**3)).float().mean() > 0.9
