"""Truncated Quantile Critics (Kuznetsov et al. 2020, "Controlling Overestimation Bias with Truncated
Mixture of Continuous Distributional Quantile Critics").

SAC with distributional critics, whose overestimation is controlled by dropping the largest atoms of
the target distribution rather than by a minimum over critics:
- N critics Z_1 … Z_N each predict M quantiles θ_n^1 … θ_n^M of the return at the fractions
  τ_m = (m + ½)/M;
- the target atoms: the N·M quantiles of the target critics at (s', a'), a' ~ π(·|s'), pooled and
  sorted, without the N·d largest (d = ``top_quantiles_to_drop_per_net``),
  y_i = r + γ (1 − terminated) (z_(i)(s', a') − α log π(a'|s')),  i = 1 … N(M − d);
- every critic's quantiles regress to all the atoms with the quantile Huber loss;
- the actor maximises the mean of all critics' quantiles at (s, a ~ π), plus α times the entropy;
- the temperature α, the target networks and everything else are SAC's.

The maths lives in ``easyrl.losses`` (``truncated_quantiles``, ``quantile_huber_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from easyrl import losses
from easyrl import validation as v
from easyrl.algorithms.sac import SAC, SACPolicy
from easyrl.buffers import ReplayBatch
from easyrl.observations import ObsSpace


@dataclass(kw_only=True, repr=False, eq=False)
class TQC(SAC):
    """Truncated Quantile Critics: SAC with N distributional critics of M quantiles each.

    TQC-specific parameters:
        top_quantiles_to_drop_per_net: d, the largest atoms dropped from the pooled target per critic.

    Its ``policy_kwargs`` also take ``n_quantiles`` (M, 25) and ``n_critics`` (N, 2). Names and defaults
    follow sb3-contrib's TQC; the rest are SAC's (learning rate 3e-4, batch 256, net_arch [256, 256], ...).
    ``critic_backup`` must stay "min" (the truncation replaces it) and SAC v1's ``value_network`` is not
    available.
    """

    top_quantiles_to_drop_per_net: int = 2

    algorithm_name: ClassVar[str] = "TQC"
    default_n_quantiles: ClassVar[int] = 25
    policy_kwargs_keys = SAC.policy_kwargs_keys | {"n_quantiles"}
    _critic_loss = staticmethod(losses.quantile_huber_loss)

    def _constraints(self) -> dict[str, v.Constraint]:
        return {
            **super()._constraints(),
            "top_quantiles_to_drop_per_net": v.non_negative_int(),
            "critic_backup": v.Options(("min",)),
            "value_network": v.Options((False,)),
        }

    def _check_combinations(self) -> None:
        super()._check_combinations()
        m = v.policy_kwargs(self.policy_kwargs).get("n_quantiles", self.default_n_quantiles)
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ValueError(f"policy_kwargs n_quantiles={m!r} is invalid: give an integer >= 1.")
        if v.policy_kwargs(self.policy_kwargs).get("critic_subset") is not None:
            raise ValueError(
                "critic_subset (REDQ's target) does not apply to TQC, whose target truncates quantiles."
            )
        if self.top_quantiles_to_drop_per_net >= m:
            raise ValueError(
                f"top_quantiles_to_drop_per_net={self.top_quantiles_to_drop_per_net} drops every quantile: "
                f"it must be less than n_quantiles={m}."
            )

    def _build_policy(self, space: ObsSpace, action_dim: int, policy_kwargs: dict[str, Any]) -> SACPolicy:
        return super()._build_policy(
            space, action_dim, {"n_quantiles": self.default_n_quantiles, **policy_kwargs}
        )

    def _critic_target(self, policy: SACPolicy, batch: ReplayBatch, ent_coef: torch.Tensor) -> torch.Tensor:
        """The target atoms y of shape (B, N(M − d)), with n-step returns where the batch has them."""
        with torch.no_grad():
            rng = self.training_state.torch_rng
            next_actions, next_log_prob = policy.actor(batch.next_observations, rng)
            next_quantiles = policy.critic_target(
                batch.next_observations, next_actions, generator=rng
            )  # (N, B, M)
            atoms = losses.truncated_quantiles(next_quantiles, self.top_quantiles_to_drop_per_net)
            if self.backup_entropy:
                atoms = atoms - ent_coef * next_log_prob[:, None]
            return losses.bootstrapped_target(batch, atoms.T).T

    def _actor_q(self, q_all: torch.Tensor) -> torch.Tensor:
        """The mean over critics and quantiles of Z(s, a): (N, B, M) -> (B,)."""
        return q_all.mean(dim=(0, 2))
