"""Replay buffer: preallocated torch storage on the training device, each observation stored once.

Layout. Each of the ``n_envs`` environments owns one column of a ring of ``rows`` slots, so a
column holds one environment's transitions in time order. Slot ``t`` of a column stores the
observation ``s_t``, the action ``a_t`` (scaled to [-1, 1]), the reward ``r_t`` and whether
the episode *terminated* there. The next observation ``s_{t+1}`` is not stored a second time:
it is the observation in slot ``t + 1``. Only where an episode ended (terminated or
truncated) does slot ``t + 1`` hold the first observation of the next episode; the true final
observation then lives in a small per-column side ring, looked up through ``final_id``.

This keeps timeout handling exact -- a truncated step bootstraps from its real final
observation -- at about half the memory of storing next observations (SB3's default), and
without the broken timeouts of SB3's ``optimize_memory_usage`` mode.

The newest slot of each column is not sampled until its successor is written (its next
observation is not known yet unless its episode ended), so a buffer of capacity N offers
N - n_envs transitions once full.

Because a column is one env's steps in order, n-step returns need no second store: ``sample``
reads the next n - 1 slots of the drawn slot's column, stopping at an episode end or at the
newest sampleable slot (see :meth:`ReplayBuffer.sample`).

Saving and loading the buffer's contents is in ``snapshot.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

from easyrl.buffers.snapshot import INITIAL_SIDE_CAPACITY, ReplaySnapshot


class ReplayBatch(NamedTuple):
    """A batch of transitions; shapes are (batch, ...) and dtypes float32.

    With n-step returns, ``rewards`` is the discounted sum of the k ≤ n rewards in the window,
    ``next_observations`` the observation after its last step, ``terminated`` whether that step
    terminated the episode, and ``discounts`` is γ^k (γ for one-step transitions). Every target
    is then ``rewards + discounts * (1 - terminated) * next_value``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    discounts: torch.Tensor


def observation_storage_dtype(space: gym.spaces.Box) -> torch.dtype:
    """uint8 images stay uint8 (4x smaller); everything else is stored as float32."""
    return torch.uint8 if space.dtype == np.uint8 else torch.float32


class ReplayBuffer(ReplaySnapshot):
    """Uniform replay of (s, a, r, s', terminated) transitions from ``n_envs`` parallel envs.

    Args:
        capacity: number of transitions kept; the oldest are overwritten first.
        observation_space: a Box space; observations are stored flat per its shape.
        action_dim: size of the (flat) action vector.
        n_envs: number of environments whose steps are added together.
        device: where the storage lives (the training device).
    """

    def __init__(
        self,
        capacity: int,
        observation_space: gym.spaces.Box,
        action_dim: int,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < n_envs * 2:
            raise ValueError(
                f"buffer_size={capacity} is too small for {n_envs} env(s): it must be at least "
                f"2 * n_envs = {2 * n_envs}."
            )
        self.capacity = capacity
        self.n_envs = n_envs
        self.rows = math.ceil(capacity / n_envs)
        self.device = torch.device(device)
        self.obs_shape: tuple[int, ...] = tuple(observation_space.shape)
        self.action_dim = action_dim
        obs_dtype = observation_storage_dtype(observation_space)
        rows, dev = self.rows, self.device
        # torch.empty: pages of never-written slots are never touched and cost no physical memory.
        self.observations = torch.empty((rows, n_envs, *self.obs_shape), dtype=obs_dtype, device=dev)
        self.actions = torch.empty((rows, n_envs, action_dim), dtype=torch.float32, device=dev)
        self.rewards = torch.empty((rows, n_envs), dtype=torch.float32, device=dev)
        self.terminated = torch.zeros((rows, n_envs), dtype=torch.bool, device=dev)
        self.ended = torch.zeros((rows, n_envs), dtype=torch.bool, device=dev)
        self.final_id = torch.zeros((rows, n_envs), dtype=torch.int64, device=dev)
        self.final_observations = torch.empty(
            (INITIAL_SIDE_CAPACITY, n_envs, *self.obs_shape), dtype=obs_dtype, device=dev
        )
        # Host-side bookkeeping, so that adding never has to read device memory.
        self.pos = np.zeros(n_envs, dtype=np.int64)
        self.count = np.zeros(n_envs, dtype=np.int64)
        self._ended_host = np.zeros((rows, n_envs), dtype=bool)
        self._side_head = np.zeros(n_envs, dtype=np.int64)
        self._side_tail = np.zeros(n_envs, dtype=np.int64)
        self._sampling_tables: tuple[int, torch.Tensor | None, torch.Tensor | None] | None = None
        self._pending_import: (
            tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, torch.Tensor] | None
        ) = None

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        """Number of transitions stored."""
        return int(self.count.sum())

    @property
    def n_sampleable(self) -> int:
        """Number of transitions ``sample`` draws from (the newest of each env excluded)."""
        return int(np.maximum(self.count - 1, 0).sum())

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage (device tensors plus host bookkeeping)."""
        tensors = (
            self.observations, self.actions, self.rewards, self.terminated, self.ended,
            self.final_id, self.final_observations,
        )  # fmt: skip
        host = (self.pos, self.count, self._ended_host, self._side_head, self._side_tail)
        return sum(t.nbytes for t in tensors) + sum(a.nbytes for a in host)

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> None:
        """Add one step of every env: arrays of shape (n_envs, ...).

        ``actions`` are in [-1, 1]. ``next_obs`` is only read where the episode ended (it is
        the true final observation); otherwise the next ``add`` supplies it. Envs with
        ``valid`` False are skipped (a NEXT_STEP autoreset step is not a transition).
        """
        envs = np.arange(self.n_envs) if valid is None else np.flatnonzero(valid)
        if envs.size == 0:
            return
        rows = self.pos[envs]
        full = self.count[envs] == self.rows
        # Overwriting an ended slot frees the oldest entry of that env's side ring.
        freed = envs[full & self._ended_host[rows, envs]]
        self._side_tail[freed] += 1

        dones = (np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool))[envs]
        self._ended_host[rows, envs] = dones
        writes = (
            (self.observations, np.asarray(obs)[envs]), (self.actions, np.asarray(actions)[envs]),
            (self.rewards, np.asarray(rewards)[envs]), (self.terminated, np.asarray(terminated)[envs]),
            (self.ended, dones),
        )  # fmt: skip
        if self.device.type == "cpu":  # through numpy views of the storage: no tensor built per step
            for column, values in writes:
                column.numpy()[rows, envs] = values
        else:
            idx = (torch.as_tensor(rows, device=self.device), torch.as_tensor(envs, device=self.device))
            for column, values in writes:
                column[idx] = self._to_device(values, column.dtype)
        if dones.any():
            self._store_final(rows[dones], envs[dones], np.asarray(next_obs)[envs[dones]])

        self.pos[envs] = (rows + 1) % self.rows
        self.count[envs] = np.minimum(self.count[envs] + 1, self.rows)
        self._sampling_tables = None

    def _to_device(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(array).to(device=self.device, dtype=dtype, non_blocking=True)

    def _store_final(self, rows: np.ndarray, envs: np.ndarray, final_obs: np.ndarray) -> None:
        ids = self._side_head[envs].copy()
        needed = int((self._side_head - self._side_tail).max()) + 1
        if needed > self.final_observations.shape[0]:
            self._grow_side(needed)
        self._side_head[envs] += 1
        side = self.final_observations.shape[0]
        dev = self.device
        self.final_observations[
            torch.as_tensor(ids % side, device=dev), torch.as_tensor(envs, device=dev)
        ] = self._to_device(final_obs, self.final_observations.dtype)
        self.final_id[torch.as_tensor(rows, device=dev), torch.as_tensor(envs, device=dev)] = torch.as_tensor(
            ids, device=dev
        )

    def _grow_side(self, needed: int) -> None:
        old = self.final_observations
        capacity = old.shape[0]
        while capacity < needed:
            capacity *= 2
        new = torch.empty((capacity, *old.shape[1:]), dtype=old.dtype, device=old.device)
        for env in range(self.n_envs):
            live = torch.arange(int(self._side_tail[env]), int(self._side_head[env]), device=old.device)
            new[live % capacity, env] = old[live % old.shape[0], env]
        self.final_observations = new

    def close_episodes(self, final_obs: np.ndarray) -> None:
        """End each env's episode in progress at its newest transition, as truncated.

        For when the envs are reset before their episodes end (a new ``learn``, a new env):
        ``final_obs`` (n_envs, ...) is the observation that followed each newest transition, which
        keeps it exact instead of running into the next episode's first observation.
        """
        envs = np.flatnonzero(self.count > 0)
        rows = (self.pos[envs] - 1) % self.rows
        still_open = ~self._ended_host[rows, envs]
        envs, rows = envs[still_open], rows[still_open]
        if envs.size == 0:
            return
        self._ended_host[rows, envs] = True
        idx = (torch.as_tensor(rows, device=self.device), torch.as_tensor(envs, device=self.device))
        self.ended[idx] = True
        self._store_final(rows, envs, np.asarray(final_obs)[envs])
        self._sampling_tables = None

    # ------------------------------------------------------------------ sampling
    def _tables(self) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        """How a draw k in [0, n_sampleable) maps to a slot, rebuilt after every change.

        Draws are numbered env by env, oldest slot first. Per env, ``cumulative`` holds the
        running total of sampleable slots (so env = searchsorted(cumulative, k, right=True)), and
        ``shift`` what turns k into the row (row = (k + shift[env]) mod rows). With one env the
        shift is a plain number and no table is needed.
        """
        if self._sampling_tables is None:
            n_valid = np.maximum(self.count - 1, 0)
            cumulative = np.cumsum(n_valid)
            shift = (self.pos - self.count) % self.rows - (cumulative - n_valid)
            if self.n_envs == 1:
                self._sampling_tables = (int(shift[0]), None, None)
            else:
                as_dev = lambda a: torch.as_tensor(a, dtype=torch.int64).to(self.device)  # noqa: E731
                self._sampling_tables = (0, as_dev(shift), as_dev(cumulative))
        return self._sampling_tables

    def _flat(self, storage: torch.Tensor) -> torch.Tensor:
        """``storage`` (rows, n_envs, ...) viewed with one entry per (row, env): index = row * n_envs + env."""
        return storage.view(-1, *storage.shape[2:])

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, *, gamma: float, n_steps: int = 1
    ) -> ReplayBatch:
        """Draw ``batch_size`` transitions uniformly, with replacement; ``gamma`` discounts them.

        With ``n_steps`` > 1 each drawn slot t starts an n-step window: the rewards of slots
        t, t+1, ... of the same env column are summed with discounts 1, γ, γ², ..., for n steps,
        up to and including the step where the episode ended (terminated or truncated), and never
        past the newest sampleable slot of the column (there the window is shorter). The batch's
        next observation is the one after the window's last step (the true final observation if
        the episode ended there), ``terminated`` is that step's, and ``discounts`` is γ^k for a
        window of k steps. Which slots are drawn does not depend on ``n_steps``.

        Every read is a gather from a flat view of the storage (one index per transition), which
        costs a fraction of indexing by (row, env) pairs.
        """
        total = self.n_sampleable
        if total == 0:
            raise ValueError(
                "The replay buffer has no complete transition to sample yet; collect at least two steps "
                "(set learning_starts >= 1)."
            )
        n_envs = self.n_envs
        one_shift, shift, cumulative = self._tables()
        draw = torch.randint(0, total, (batch_size,), device=self.device, generator=generator)
        env: torch.Tensor | int = 0
        if shift is None or cumulative is None:  # one env: draw k is row (k + shift) of its column
            row = (draw + one_shift) % self.rows
            slot = row
        else:
            env = torch.searchsorted(cumulative, draw, right=True)
            row = (draw + shift[env]) % self.rows
            slot = row * n_envs + env
        if n_steps == 1:
            last, rewards = slot, self._flat(self.rewards).index_select(0, slot)
            discounts = torch.full((batch_size,), gamma, dtype=torch.float32, device=self.device)
        else:
            # Sampleable slots from the drawn one on: the env's running total minus the draw.
            available = (total if cumulative is None else cumulative[env]) - draw
            last, rewards, discounts = self._n_step_window(row, env, available, gamma, n_steps)
        observations = self._flat(self.observations)
        next_slot = (last + n_envs) % (self.rows * n_envs)  # same env, next row
        side = self.final_observations.shape[0]
        final_slot = self._flat(self.final_id).index_select(0, last) % side
        if n_envs > 1:
            final_slot = final_slot * n_envs + last % n_envs
        final_obs = self._flat(self.final_observations).index_select(0, final_slot)
        ended = self._flat(self.ended).index_select(0, last).view(-1, *([1] * len(self.obs_shape)))
        next_obs = torch.where(ended, final_obs, observations.index_select(0, next_slot))
        return ReplayBatch(
            observations=observations.index_select(0, slot).float(),
            actions=self._flat(self.actions).index_select(0, slot),
            rewards=rewards,
            next_observations=next_obs.float(),
            terminated=self._flat(self.terminated).index_select(0, last).float(),
            discounts=discounts,
        )

    def _n_step_window(
        self, row: torch.Tensor, env: torch.Tensor | int, available: torch.Tensor, gamma: float, n_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For windows starting at ``row`` of column ``env``: the flat index of their last slot,
        their discounted reward sums and γ^length.

        ``available`` (B,) is the number of sampleable slots from ``row`` on in each column; a window
        takes at most that many steps, and stops after the first step that ended an episode.
        """
        step = torch.arange(n_steps, device=self.device)
        rows = (row[:, None] + step) % self.rows  # (B, n): the window's slots, in time order
        slots = rows * self.n_envs + (env[:, None] if isinstance(env, torch.Tensor) else env)
        inside = step < available[:, None]
        ended = self._flat(self.ended)[slots] & inside
        ended_before = ended.cumsum(dim=1) - ended.long()  # episode ends strictly before each step
        included = inside & (ended_before == 0)
        length = included.sum(dim=1)  # >= 1: the first step is always sampleable
        powers = torch.tensor([gamma**k for k in range(n_steps + 1)], dtype=torch.float32, device=self.device)
        # Slots outside the window may be stale or never written: select, never multiply by 0.
        window_rewards = torch.where(included, self._flat(self.rewards)[slots] * powers[:n_steps], 0.0)
        last = slots.gather(1, (length - 1)[:, None]).squeeze(1)
        return last, window_rewards.sum(dim=1), powers[length]
