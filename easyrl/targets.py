"""Target networks."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging θ̄ ← (1 − τ) θ̄ + τ θ, as one fused call over all parameters."""
    target_params: list[torch.Tensor] = list(target.parameters())
    source_params: list[torch.Tensor] = list(source.parameters())
    torch._foreach_lerp_(target_params, source_params, tau)
