"""Which replay buffer a model uses: ``replay_buffer_class`` and ``replay_buffer_kwargs``, checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from easyrl import validation as v
from easyrl.buffers.replay import ReplayBuffer


def replay_buffer_class(
    buffer_class: Any, buffer_kwargs: Mapping[str, Any] | None, n_steps: int
) -> type[ReplayBuffer]:
    """``buffer_class`` (None: :class:`ReplayBuffer`) checked, with its settings, against ``n_steps``."""
    chosen = buffer_class or ReplayBuffer
    if not (isinstance(chosen, type) and issubclass(chosen, ReplayBuffer)):
        raise ValueError(
            f"replay_buffer_class={buffer_class!r} is invalid: it must be easyrl's ReplayBuffer "
            "or HerReplayBuffer (from easyrl import HerReplayBuffer), or a subclass of them."
        )
    v.check_keys((buffer_kwargs or {}).keys(), chosen.accepted_kwargs, "replay_buffer_kwargs")
    if n_steps > 1 and not chosen.supports_n_steps:
        raise ValueError(
            f"n_steps={n_steps} cannot be used with {chosen.__name__}: its relabelled transitions "
            "would need each step's reward recomputed for the new goal. Use n_steps=1."
        )
    return chosen
