"""Periodic parameter resets: ``policy_kwargs=dict(reset_interval=N)``.

Every N gradient updates, every network of the policy (actor, critics, their targets and extractors) is
re-initialised and the moments of their optimizers are cleared, while the replay buffer and the
temperature α are kept. An agent trained at a high update-to-data ratio otherwise over-fits its first
experience and loses its ability to learn from new data (the primacy bias, Nikishin et al. 2022, "The
Primacy Bias in Deep Reinforcement Learning"); full resets let the ratio grow (D'Oro et al. 2023,
"Sample-Efficient Reinforcement Learning by Breaking the Replay Ratio Barrier").

The fresh weights are drawn from a seed taken from the model's training generator, so a run with
resets is reproducible and resumes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from easyrl import validation as v

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm


def reset_interval(policy_kwargs: Mapping[str, Any]) -> int | None:
    """The updates between resets (None: never), checked."""
    interval = policy_kwargs.get("reset_interval")
    if interval is not None and not (
        isinstance(interval, int) and not isinstance(interval, bool) and interval > 0
    ):
        raise ValueError(
            f"reset_interval={interval!r} must be a positive number of gradient updates, or None for no resets "
            "(D'Oro et al. 2023 reset every 2.5e5 updates at a replay ratio of 32)."
        )
    return interval


def reset_networks(model: OffPolicyAlgorithm[Any]) -> None:
    """Re-initialise the policy's networks as a new model's would be, and clear their optimizers' moments."""
    seed = int(
        torch.randint(
            2**62,
            (1,),
            generator=model.training_state.torch_rng,
            device=model.training_state.torch_rng.device,
        ).item()
    )
    kept = dict(vars(model))  # a builder may record its networks on the model (SAC v1's value network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = model._build_policy(
            model.observation_space, model.action_dim, v.policy_kwargs(model.policy_kwargs)
        )
    vars(model).update(kept)
    model._policy.load_state_dict(fresh.state_dict())
    temperature_optimizer = getattr(model, "ent_coef_optimizer", None)
    for optimizer in model._optimizers():
        if optimizer is not temperature_optimizer:
            optimizer.state.clear()
