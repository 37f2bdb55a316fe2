"""The entropy temperature α of SAC, TQC and CrossQ: its settings, its parameter and optimizer, its loss.

α weighs the policy's entropy in the maximum-entropy objective. ``ent_coef="auto"`` learns log α so that
the policy's entropy tracks a target H̄ (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and
Applications", section 5), by minimising −log α · (log π(a|s) + H̄), a ~ π; a float fixes α.
"""

from __future__ import annotations

import numpy as np
import torch

from easyrl import validation as v
from easyrl.updates import adam


def constraints() -> dict[str, v.Constraint]:
    """The allowed values of ``ent_coef`` and ``target_entropy``."""
    auto = v.Satisfies(
        lambda s: s == "auto" or (s.startswith("auto_") and float(s[5:]) > 0), "'auto' or 'auto_<init>'"
    )
    return {
        "ent_coef": v.AnyOf((v.Interval(0, None), auto)),
        "target_entropy": v.AnyOf((v.Interval(), v.Options(("auto",)))),
    }


def create(ent_coef: str | float, device: torch.device) -> tuple[torch.Tensor, torch.optim.Optimizer | None]:
    """log α and, when α is learned, its Adam (``"auto"`` starts at α = 1, ``"auto_0.1"`` at 0.1)."""
    if isinstance(ent_coef, str):
        initial = float(ent_coef[5:]) if ent_coef.startswith("auto_") else 1.0
        log_ent_coef = torch.tensor(np.log(initial), device=device, requires_grad=True)
        return log_ent_coef, adam([log_ent_coef])
    with np.errstate(divide="ignore"):  # α = 0 (no entropy term): log α = −inf, exp(−inf) = 0
        return torch.tensor(np.log(float(ent_coef)), device=device), None


def target_entropy(setting: str | float, action_dim: int) -> float:
    """H̄: ``"auto"`` is −dim(A), as in the paper."""
    return -float(action_dim) if setting == "auto" else float(setting)


def loss(log_ent_coef: torch.Tensor, log_prob: torch.Tensor, target: float) -> torch.Tensor:
    """−log α · (log π(a|s) + H̄), averaged; its gradient moves only log α."""
    return -(log_ent_coef * (log_prob.detach() + target)).mean()
