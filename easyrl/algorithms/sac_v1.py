"""SAC v1's state-value network (Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy
Deep Reinforcement Learning with a Stochastic Actor"), as ``SAC(value_network=True)``.

The first SAC learns a state value V(s) beside the twin critics, with a Polyak-averaged target V̄,
and a fixed temperature α:
- the critics regress to r + γ (1 − terminated) V̄(s'), so their target needs no action at s';
- V regresses to E_{a~π}[backup_i Q_i(s, a) − α log π(a|s)], over the actor's own samples.
The rest (actor loss, twin critics) is SAC's; this module holds only what differs. V reads the
observations through its own features extractor, or the actor's when ``share_features_extractor``
is set (then, like the critics, without training it).
"""

from __future__ import annotations

import torch

from easyrl.buffers import ReplayBatch
from easyrl.losses import bootstrapped_target, critic_backup
from easyrl.networks import Policy, StateValue
from easyrl.observations import TensorObs
from easyrl.updates import frozen_copy, gradient_step, soft_update


class ValueNetwork:
    """V and its target V̄, added to SAC's policy; this object holds V's part of the update."""

    def __init__(self, policy: Policy, value: StateValue) -> None:
        self.value = value
        self.value_target = frozen_copy(value)
        policy.value, policy.value_target = self.value, self.value_target  # saved with the policy

    def critic_target(self, batch: ReplayBatch) -> torch.Tensor:
        """y = r + γ (1 − terminated) V̄(s') (or its n-step form), shape (B,)."""
        return bootstrapped_target(batch, self.value_target(batch.next_observations))

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        observations: TensorObs,
        q: torch.Tensor,
        log_prob: torch.Tensor,
        ent_coef: torch.Tensor,
        backup: str,
        backup_entropy: bool,
        num_samples: int,
    ) -> torch.Tensor:
        """Regress V(s) to E_{a~π}[backup_i Q_i(s, a) − α log π(a|s)] over the actor's samples; V's loss."""
        soft_q = critic_backup(q, backup)
        if backup_entropy:
            soft_q = soft_q - ent_coef * log_prob
        target = soft_q.view(num_samples, -1).mean(dim=0)
        value_loss = 0.5 * (self.value(observations) - target).pow(2).mean()
        gradient_step(optimizer, value_loss)
        return value_loss.detach()

    def update_target(self, tau: float) -> None:
        soft_update(self.value_target, self.value, tau)


def check_settings(ent_coef: str | float, backup: str) -> None:
    if isinstance(ent_coef, str):
        raise ValueError(
            f"value_network=True (SAC v1) uses a fixed temperature, as the paper does, but ent_coef="
            f"{ent_coef!r}: pass a number, e.g. ent_coef=0.2 (the paper's reward scale 5 is α = 1/5)."
        )
    if backup not in ("min", "mean"):
        raise ValueError(
            f"critic_backup={backup!r} does not apply with value_network=True: the critics "
            "regress to V̄(s'), and V to the 'min' or 'mean' of the critics; use one of those."
        )
