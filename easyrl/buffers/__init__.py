"""The replay buffer (``replay``: storing and sampling; ``snapshot``: its contents to arrays and back)."""

from easyrl.buffers.replay import ReplayBatch, ReplayBuffer, observation_storage_dtype

__all__ = ["ReplayBatch", "ReplayBuffer", "observation_storage_dtype"]
