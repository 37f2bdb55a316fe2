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
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from easyrl.buffers.memory import measured_allocation
from easyrl.buffers.n_step import n_step_window
from easyrl.buffers.snapshot import INITIAL_SIDE_CAPACITY, ReplaySnapshot
from easyrl.observations import Obs, ObsSpace, TensorObs, leaves, map_obs, zip_obs


class ReplayBatch(NamedTuple):
    """A batch of transitions; shapes are (batch, ...), dtypes float32 except the observations'.

    Observations come as stored: a tensor per the observation space's shape, or for a Dict space a
    dict of them, each in its storage dtype (uint8 images stay uint8; the networks convert them).

    With n-step returns, ``rewards`` is the discounted sum of the k ≤ n rewards in the window,
    ``next_observations`` the observation after its last step, ``terminated`` whether that step
    terminated the episode, and ``discounts`` is γ^k (γ for one-step transitions). Every target
    is then ``rewards + discounts * (1 - terminated) * next_value``.
    """

    observations: TensorObs
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: TensorObs
    terminated: torch.Tensor
    discounts: torch.Tensor


def observation_storage_dtype(space: gym.spaces.Box) -> torch.dtype:
    """uint8 images stay uint8 (4x smaller); everything else is stored as float32."""
    return torch.uint8 if space.dtype == np.uint8 else torch.float32


def _storage(space: ObsSpace, leading: tuple[int, ...], device: torch.device) -> TensorObs:
    """Uninitialised observation storage of shape (*leading, *shape): one tensor, or one per Dict key."""

    def one(box: gym.spaces.Box) -> torch.Tensor:
        return torch.empty((*leading, *box.shape), dtype=observation_storage_dtype(box), device=device)

    if isinstance(space, gym.spaces.Dict):
        return {key: one(box) for key, box in space.spaces.items()}  # type: ignore[arg-type]
    return one(space)


_PendingImport = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, torch.Tensor]


class ReplayBuffer(ReplaySnapshot):
    """Uniform replay of (s, a, r, s', terminated) transitions from ``n_envs`` parallel envs.

    Select another buffer with the model's ``replay_buffer_class`` (e.g. :class:`HerReplayBuffer`) and
    give it settings with ``replay_buffer_kwargs``. SB3's two settings of its buffer are accepted there:
    ``optimize_memory_usage`` changes nothing, since this buffer always stores each observation once, and
    exactly (SB3's memory-saving mode loses the final observation of truncated episodes);
    ``handle_timeout_termination`` must be True, which is what this buffer always does.

    Args:
        capacity: number of transitions kept; the oldest are overwritten first.
        observation_space: a Box space, or a Dict of Box spaces (stored key by key, each observation
            once; a key of uint8 images stays uint8).
        action_dim: size of the (flat) action vector.
        n_envs: number of environments whose steps are added together.
        device: where the storage lives (the training device).
    """

    accepted_kwargs: ClassVar[frozenset[str]] = frozenset(
        {"optimize_memory_usage", "handle_timeout_termination"}
    )
    """The settings ``replay_buffer_kwargs`` may give this class."""
    supports_n_steps: ClassVar[bool] = True

    def __init__(
        self,
        capacity: int,
        observation_space: ObsSpace,
        action_dim: int,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        *,
        optimize_memory_usage: bool = True,
        handle_timeout_termination: bool = True,
    ) -> None:
        if handle_timeout_termination is not True:
            raise ValueError(
                "handle_timeout_termination=False is not supported: easyrl always bootstraps a truncated "
                "episode's last step from its true final observation. Leave the setting out."
            )
        if capacity < n_envs * 2:
            raise ValueError(
                f"buffer_size={capacity} is too small for {n_envs} env(s): it must be at least "
                f"2 * n_envs = {2 * n_envs}."
            )
        self.capacity = capacity
        self.n_envs = n_envs
        self.rows = math.ceil(capacity / n_envs)
        self.device = torch.device(device)
        self.observation_space = observation_space
        self.action_dim = action_dim
        rows, dev = self.rows, self.device
        self.final_observations: TensorObs = _storage(observation_space, (INITIAL_SIDE_CAPACITY, n_envs), dev)
        # Uninitialised: unwritten pages cost nothing, so it is measured first. Adding reads the host's flags.
        with measured_allocation(capacity, dev, lambda: ReplayBuffer._storage_nbytes(self)):
            self.observations: TensorObs = _storage(observation_space, (rows, n_envs), dev)
            self.actions = torch.empty((rows, n_envs, action_dim), dtype=torch.float32, device=dev)
            self.rewards = torch.empty((rows, n_envs), dtype=torch.float32, device=dev)
            self.terminated = torch.empty((rows, n_envs), dtype=torch.bool, device=dev)
            self.ended = torch.empty((rows, n_envs), dtype=torch.bool, device=dev)
            self.final_id = torch.empty((rows, n_envs), dtype=torch.int64, device=dev)
            self.pos = np.zeros(n_envs, dtype=np.int64)
            self.count = np.zeros(n_envs, dtype=np.int64)
            self._ended_host = np.zeros((rows, n_envs), dtype=bool)
            self._side_head = np.zeros(n_envs, dtype=np.int64)
            self._side_tail = np.zeros(n_envs, dtype=np.int64)
        for flags in (self.terminated, self.ended, self.final_id):
            flags.zero_()
        self._sampling_tables: tuple[int, torch.Tensor | None, torch.Tensor | None] | None = None
        self._pending_import: _PendingImport | None = None

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        """Number of transitions stored."""
        return int(self.count.sum())

    @property
    def n_sampleable(self) -> int:
        """Number of transitions ``sample`` draws from (the newest of each env excluded)."""
        return int(self._sampleable_counts().sum())

    def _sampleable_counts(self) -> np.ndarray:
        """Per env, how many of its slots, oldest first, ``sample`` draws from: all but the newest,
        whose next observation is not known yet unless its episode ended."""
        return np.maximum(self.count - 1, 0)

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage (device tensors plus host bookkeeping)."""
        return self._storage_nbytes()

    def _storage_nbytes(self) -> int:
        """This class's part of :attr:`nbytes` (a subclass adds its own tables)."""
        tensors = (
            *leaves(self.observations), self.actions, self.rewards, self.terminated, self.ended,
            self.final_id, *leaves(self.final_observations),
        )  # fmt: skip
        host = (self.pos, self.count, self._ended_host, self._side_head, self._side_tail)
        return sum(t.nbytes for t in tensors) + sum(a.nbytes for a in host)

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: Obs,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Obs,
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
        writes = [
            *self._obs_writes(self.observations, obs, envs), (self.actions, np.asarray(actions)[envs]),
            (self.rewards, np.asarray(rewards)[envs]), (self.terminated, np.asarray(terminated)[envs]),
            (self.ended, dones),
        ]  # fmt: skip
        if self.device.type == "cpu":  # through numpy views of the storage: no tensor built per step
            for column, values in writes:
                column.numpy()[rows, envs] = values
        else:
            idx = (torch.as_tensor(rows, device=self.device), torch.as_tensor(envs, device=self.device))
            for column, values in writes:
                column[idx] = self._to_device(values, column.dtype)
        if dones.any():
            self._store_final(rows[dones], envs[dones], next_obs)

        self.pos[envs] = (rows + 1) % self.rows
        self.count[envs] = np.minimum(self.count[envs] + 1, self.rows)
        self._sampling_tables = None

    def attach_env(self, env: VectorEnv) -> None:
        """Called with the env the model trains on (when built, and by ``set_env``); a buffer that needs
        something from it (HER: ``compute_reward``) takes it here."""

    def _to_device(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(array).to(device=self.device, dtype=dtype, non_blocking=True)

    @staticmethod
    def _obs_writes(storage: TensorObs, obs: Any, envs: np.ndarray) -> list[tuple[torch.Tensor, np.ndarray]]:
        """(storage tensor, the envs' values) for each observation array: one, or one per Dict key."""
        if isinstance(storage, dict):
            return [(tensor, np.asarray(obs[key])[envs]) for key, tensor in storage.items()]
        return [(storage, np.asarray(obs)[envs])]

    def _store_final(self, rows: np.ndarray, envs: np.ndarray, final_obs: Any) -> None:
        """Keep ``final_obs`` (a batch over all envs, of which ``envs``' are read) for those envs' slots ``rows``."""
        ids = self._side_head[envs].copy()
        needed = int((self._side_head - self._side_tail).max()) + 1
        if needed > self.side_capacity:
            self._grow_side(needed)
        self._side_head[envs] += 1
        dev = self.device
        side_index = (
            torch.as_tensor(ids % self.side_capacity, device=dev),
            torch.as_tensor(envs, device=dev),
        )
        for tensor, values in self._obs_writes(self.final_observations, final_obs, envs):
            tensor[side_index] = self._to_device(values, tensor.dtype)
        self.final_id[torch.as_tensor(rows, device=dev), torch.as_tensor(envs, device=dev)] = torch.as_tensor(
            ids, device=dev
        )

    def _grow_side(self, needed: int) -> None:
        old_capacity = capacity = self.side_capacity
        while capacity < needed:
            capacity *= 2

        def grown(old: torch.Tensor) -> torch.Tensor:
            new = torch.empty((capacity, *old.shape[1:]), dtype=old.dtype, device=old.device)
            for env in range(self.n_envs):
                live = torch.arange(int(self._side_tail[env]), int(self._side_head[env]), device=old.device)
                new[live % capacity, env] = old[live % old_capacity, env]
            return new

        self.final_observations = map_obs(grown, self.final_observations)

    def close_episodes(self, final_obs: Any) -> None:
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
        self._store_final(rows, envs, final_obs)
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
            n_valid = self._sampleable_counts()
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
        row, env, available = self._draw(batch_size, generator)
        slot = row if isinstance(env, int) else row * self.n_envs + env
        if n_steps == 1:
            last, rewards = slot, self._flat(self.rewards).index_select(0, slot)
            discounts = torch.full((batch_size,), gamma, dtype=torch.float32, device=self.device)
        else:
            last, rewards, discounts = n_step_window(
                self._flat(self.ended), self._flat(self.rewards), self.rows, self.n_envs, row, env, available,
                gamma, n_steps,
            )  # fmt: skip
        return ReplayBatch(
            observations=self.observations_at(slot),
            actions=self._flat(self.actions).index_select(0, slot),
            rewards=rewards,
            next_observations=self.next_observations_at(last),
            terminated=self._flat(self.terminated).index_select(0, last).float(),
            discounts=discounts,
        )

    def observations_at(self, slot: torch.Tensor) -> TensorObs:
        """The observations stored at the flat slots ``slot`` (index = row * n_envs + env)."""
        stored: TensorObs = map_obs(lambda t: self._flat(t).index_select(0, slot), self.observations)
        return stored

    def next_observations_at(self, slot: torch.Tensor, key: str | None = None) -> TensorObs:
        """The observations that followed the flat slots ``slot``: the next slot's, or the true final
        observation where the episode ended there. ``key``: only that key's, of a Dict space."""
        n_envs = self.n_envs
        next_slot = (slot + n_envs) % (self.rows * n_envs)  # same env, next row
        final_slot = self._flat(self.final_id).index_select(0, slot) % self.side_capacity
        if n_envs > 1:
            final_slot = final_slot * n_envs + slot % n_envs
        ended = self._flat(self.ended).index_select(0, slot)

        def pick(stored: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
            where_ended = ended.view(-1, *([1] * (stored.dim() - 2)))
            return torch.where(
                where_ended,
                self._flat(final).index_select(0, final_slot),
                self._flat(stored).index_select(0, next_slot),
            )

        if key is not None:
            assert isinstance(self.observations, dict) and isinstance(self.final_observations, dict)
            return pick(self.observations[key], self.final_observations[key])
        picked: TensorObs = zip_obs(pick, self.observations, self.final_observations)
        return picked

    def _draw(
        self, batch_size: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor | int, torch.Tensor]:
        """``batch_size`` uniform draws among the sampleable slots: their rows, their envs (0 with one
        env) and how many sampleable slots each column has from the drawn one on."""
        total = self.n_sampleable
        if total == 0:
            raise ValueError(self._empty_message())
        one_shift, shift, cumulative = self._tables()
        draw = torch.randint(0, total, (batch_size,), device=self.device, generator=generator)
        if shift is None or cumulative is None:  # one env: draw k is row (k + shift) of its column
            return (draw + one_shift) % self.rows, 0, total - draw
        env = torch.searchsorted(cumulative, draw, right=True)
        return (draw + shift[env]) % self.rows, env, cumulative[env] - draw

    def _empty_message(self) -> str:
        return (
            "The replay buffer has no complete transition to sample yet; collect at least two steps "
            "(set learning_starts >= 1)."
        )
