"""A replay buffer's contents as arrays and JSON, and back, without holding the transitions twice.

:meth:`ReplaySnapshot.export_state` gives views of the rows in use plus the host-side bookkeeping as
JSON; :meth:`ReplaySnapshot.import_targets` checks a saved description against the buffer and
returns the preallocated tensors to copy the saved arrays straight into. The replay-buffer file
(``easyrl.algorithms.replay_file``) streams between these and the disk.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from easyrl.observations import TensorObs, leaves, map_obs, space_shapes

INITIAL_SIDE_CAPACITY = 64


class ReplaySnapshot:
    """Export and import of :class:`~easyrl.buffers.ReplayBuffer`'s storage."""

    # Provided by ReplayBuffer.
    capacity: int
    n_envs: int
    rows: int
    observation_space: Any
    action_dim: int
    device: torch.device
    observations: TensorObs
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    ended: torch.Tensor
    final_id: torch.Tensor
    final_observations: TensorObs
    pos: np.ndarray
    count: np.ndarray
    _side_head: np.ndarray
    _side_tail: np.ndarray
    _ended_host: np.ndarray
    _sampling_tables: Any
    _pending_import: Any

    @property
    def side_capacity(self) -> int:
        """Slots per env of the side ring of final observations."""
        return int(leaves(self.final_observations)[0].shape[0])

    def _layout(self) -> dict[str, Any]:
        """What a saved buffer must match: for a Dict space, shapes and dtypes are per key."""
        shapes = space_shapes(self.observation_space)
        dtype_names = map_obs(lambda t: str(t.dtype).removeprefix("torch."), self.observations)
        return {
            "capacity": self.capacity,
            "n_envs": self.n_envs,
            "observation_shape": map_obs(list, shapes),
            "observation_dtype": dtype_names,
            "action_dim": self.action_dim,
        }

    def _stored_arrays(self, used: int, side_store: TensorObs) -> dict[str, torch.Tensor]:
        """Views of the first ``used`` rows of every storage tensor, and the side store, by name.

        A Dict space's observations are one array per key: ``observations.<key>`` and
        ``final_observations.<key>`` (``key_<i>`` for the i-th key if its name cannot be a file name).
        """
        return {
            **_obs_arrays("observations", map_obs(lambda t: t[:used], self.observations)),
            "actions": self.actions[:used],
            "rewards": self.rewards[:used],
            "terminated": self.terminated[:used],
            "ended": self.ended[:used],
            "final_id": self.final_id[:used],
            **_obs_arrays("final_observations", side_store),
        }

    def export_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The stored transitions as views of the storage (no copies), and the bookkeeping as JSON.

        Only the rows in use are exported, so a partly filled buffer exports its first rows.
        """
        used = int(self.count.max())
        arrays = self._stored_arrays(used, self.final_observations)
        state = {
            **self._layout(),
            "rows_used": used,
            "side_capacity": int(self.side_capacity),
            "pos": self.pos.tolist(),
            "count": self.count.tolist(),
            "side_head": self._side_head.tolist(),
            "side_tail": self._side_tail.tolist(),
        }
        return arrays, state

    def import_targets(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Check that ``state`` (from :meth:`export_state`) fits this buffer; the tensors to copy its arrays into.

        Nothing changes until :meth:`finish_import`; raises ValueError saying what differs.
        """
        saved = {key: state.get(key) for key in self._layout()}
        if saved != self._layout():
            raise ValueError(
                f"holds a replay buffer of {_describe(saved)}, but this model's buffer has {_describe(self._layout())}"
            )
        used, side = state.get("rows_used"), state.get("side_capacity")
        # The side ring holds at most one final observation per slot, and grows by doubling.
        if not (
            isinstance(used, int) and 0 <= used <= self.rows
            and isinstance(side, int) and 1 <= side <= 2 * self.rows + INITIAL_SIDE_CAPACITY
        ):  # fmt: skip
            raise ValueError("has invalid rows_used/side_capacity values; the file is damaged")
        pos, count = _int_array(state, "pos", self.n_envs), _int_array(state, "count", self.n_envs)
        head, tail = _int_array(state, "side_head", self.n_envs), _int_array(state, "side_tail", self.n_envs)
        consistent = (
            (count >= 0).all() and (count <= used).all() and (pos >= 0).all() and (pos < self.rows).all()
            and ((count == self.rows) | (pos == count)).all() and int(count.max(initial=0)) == used
            and (tail >= 0).all() and (head >= tail).all() and (head - tail <= side).all()
        )  # fmt: skip
        if not consistent:
            raise ValueError(
                "has inconsistent bookkeeping (pos, count, side_head, side_tail); the file is damaged"
            )
        side_store: TensorObs = map_obs(
            lambda t: torch.empty((side, *t.shape[1:]), dtype=t.dtype, device=self.device), self.observations
        )
        self._pending_import = (used, pos, count, head, tail, side_store)
        return self._stored_arrays(used, side_store)

    def cancel_import(self) -> None:
        """Forget :meth:`import_targets` before anything was copied; the buffer is unchanged."""
        self._pending_import = None

    def finish_import(self, complete: bool = True) -> None:
        """Adopt the bookkeeping checked by :meth:`import_targets` once its tensors are filled.

        ``complete=False`` (copying failed part way) leaves the buffer empty instead.
        """
        assert self._pending_import is not None, "import_targets() must come first"
        used, pos, count, head, tail, side_store = self._pending_import
        self._pending_import = None
        self._sampling_tables = None
        self._ended_host[:] = False
        if not complete:
            self.pos[:] = self.count[:] = self._side_head[:] = self._side_tail[:] = 0
            return
        self.pos, self.count, self._side_head, self._side_tail = pos, count, head, tail
        self.final_observations = side_store
        self._ended_host[:used] = self.ended[:used].cpu().numpy()


_MEMBER_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _obs_arrays(name: str, obs: TensorObs) -> dict[str, torch.Tensor]:
    if not isinstance(obs, dict):
        return {name: obs}
    return {
        f"{name}.{key if _MEMBER_NAME.fullmatch(key) else f'key_{i}'}": tensor
        for i, (key, tensor) in enumerate(obs.items())
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_array(state: dict[str, Any], key: str, n_envs: int) -> np.ndarray:
    value = state.get(key)
    if not (
        isinstance(value, list) and len(value) == n_envs and all(_is_int(v) and 0 <= v < 2**62 for v in value)
    ):
        raise ValueError(
            f"has an invalid {key!r} entry (expected {n_envs} integers >= 0); the file is damaged"
        )
    return np.asarray(value, dtype=np.int64)


def _describe(layout: dict[str, Any]) -> str:
    shape = layout["observation_shape"]
    shape = tuple(shape) if isinstance(shape, list) else shape
    if isinstance(shape, dict):
        shape = (
            "{"
            + ", ".join(f"{k!r}: {tuple(v) if isinstance(v, list) else v}" for k, v in shape.items())
            + "}"
        )
    return (
        f"capacity {layout['capacity']} for {layout['n_envs']} env(s), observations of shape {shape} "
        f"({layout['observation_dtype']}) and actions of size {layout['action_dim']}"
    )
