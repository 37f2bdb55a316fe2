"""Replay buffers: ``replay`` (storing and sampling), ``her`` (hindsight goal relabelling on top of it) and
``snapshot`` (a buffer's contents to arrays and back), and ``choice`` (a model's buffer class, checked)."""

from easyrl.buffers.choice import replay_buffer_class
from easyrl.buffers.her import GoalSelectionStrategy, HerReplayBuffer
from easyrl.buffers.replay import ReplayBatch, ReplayBuffer, observation_storage_dtype

__all__ = [
    "GoalSelectionStrategy",
    "HerReplayBuffer",
    "ReplayBatch",
    "ReplayBuffer",
    "observation_storage_dtype",
    "replay_buffer_class",
]
