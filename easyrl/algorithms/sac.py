"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

Maximises reward plus policy entropy, E[Σ γ^t (r_t + α H(π(·|s_t)))]:
- a tanh-squashed Gaussian actor, trained through the reparameterisation trick;
- twin critics regressing to the soft Bellman target with the minimum of two target critics,
  y = r + γ (1 − terminated) (min_i Q̄_i(s', a') − α log π(a'|s')),  a' ~ π(·|s');
- target critics Q̄ that follow the critics by Polyak averaging;
- a temperature α tuned automatically so that the policy's entropy tracks a target
  (−dim(A) by default), by minimising −α (log π(a|s) + H̄).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from easyrl import _validation as v
from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.buffers import ReplayBatch
from easyrl.networks import CriticEnsemble, Policy, SquashedGaussianActor
from easyrl.updates import adam, frozen_copy, gradient_step, soft_update


class SACPolicy(Policy):
    """The actor, the twin critics and their targets."""

    def __init__(self, actor: SquashedGaussianActor, critic: CriticEnsemble) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic
        self.critic_target = frozen_copy(critic)

    def act(
        self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.actor(obs, generator, deterministic)[0]


@dataclass(kw_only=True, repr=False, eq=False)
class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic with automatic entropy tuning.

    SAC-specific parameters:
        ent_coef: the temperature α. ``"auto"`` learns it (starting at 1.0), ``"auto_0.1"`` learns
            it starting at 0.1, a float fixes it.
        target_update_interval: update the target critics every this many gradient steps.
        target_entropy: the entropy the temperature steers toward; ``"auto"`` is −dim(A).

    Defaults follow SB3: learning_rate 3e-4, buffer_size 1M, learning_starts 100, batch_size 256,
    tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, net_arch [256, 256].
    """

    ent_coef: str | float = "auto"
    target_update_interval: int = 1
    target_entropy: str | float = "auto"

    algorithm_name: ClassVar[str] = "SAC"
    _setup_params = OffPolicyAlgorithm._setup_params | {"ent_coef"}

    def _constraints(self) -> dict[str, v.Constraint]:
        auto = v.Satisfies(
            lambda s: s == "auto" or (s.startswith("auto_") and float(s[5:]) > 0), "'auto' or 'auto_<init>'"
        )
        return {
            **super()._constraints(),
            "ent_coef": v.AnyOf((v.Interval(0, None), auto)),
            "target_update_interval": v.positive_int(),
            "target_entropy": v.AnyOf((v.Interval(), v.Options(("auto",)))),
        }

    # ------------------------------------------------------------------ networks
    def _build_policy(self, obs_dim: int, action_dim: int, policy_kwargs: dict[str, Any]) -> SACPolicy:
        activation = policy_kwargs.get("activation_fn", nn.ReLU)
        actor = SquashedGaussianActor(obs_dim, action_dim, self._net_arch(policy_kwargs, "pi"), activation)
        critic = CriticEnsemble(
            obs_dim, action_dim, self._net_arch(policy_kwargs, "qf"), activation,
            n_critics=policy_kwargs.get("n_critics", 2),
        )  # fmt: skip
        return SACPolicy(actor, critic)

    def _build_optimizers(self) -> None:
        policy: SACPolicy = self._built_policy_module  # type: ignore[assignment]
        lr = 0.0  # set from the learning-rate schedule before every training phase
        self.actor_optimizer = adam(policy.actor.parameters(), lr)
        self.critic_optimizer = adam(policy.critic.parameters(), lr)
        if isinstance(self.ent_coef, str):
            initial = float(self.ent_coef[5:]) if self.ent_coef.startswith("auto_") else 1.0
            self.log_ent_coef = torch.tensor(np.log(initial), device=self._device, requires_grad=True)
            self.ent_coef_optimizer: torch.optim.Optimizer | None = adam([self.log_ent_coef], lr)
        else:
            self.log_ent_coef = torch.tensor(np.log(float(self.ent_coef)), device=self._device)
            self.ent_coef_optimizer = None

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [self.actor_optimizer, self.critic_optimizer]
        return optimizers + ([self.ent_coef_optimizer] if self.ent_coef_optimizer is not None else [])

    @property
    def _target_entropy(self) -> float:
        return -float(self.action_dim) if self.target_entropy == "auto" else float(self.target_entropy)

    # ------------------------------------------------------------------ update
    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        policy: SACPolicy = self._built_policy_module  # type: ignore[assignment]
        stats: dict[str, torch.Tensor] = {}

        # This step's losses all use α from before its update, as SB3 does.
        actions_pi, log_prob = policy.actor(batch.observations, self._torch_rng)
        ent_coef = self.log_ent_coef.detach().exp()
        stats["ent_coef"] = ent_coef

        # Critics: regress every Q_i to the clipped double-Q soft Bellman target.
        with torch.no_grad():
            next_actions, next_log_prob = policy.actor(batch.next_observations, self._torch_rng)
            next_q = policy.critic_target(batch.next_observations, next_actions).min(dim=0).values
            soft_value = next_q - ent_coef * next_log_prob
            target_q = batch.rewards + (1.0 - batch.terminated) * self.gamma * soft_value
        current_q = policy.critic(batch.observations, batch.actions)
        critic_loss = 0.5 * (current_q - target_q).pow(2).mean(dim=1).sum()
        gradient_step(self.critic_optimizer, critic_loss)
        stats["critic_loss"] = critic_loss.detach()

        # Actor: minimise E[α log π(a|s) − min_i Q_i(s, a)], a reparameterised (critics held fixed).
        q_pi = policy.critic(batch.observations, actions_pi, detach_params=True).min(dim=0).values
        actor_loss = (ent_coef * log_prob - q_pi).mean()
        stats["actor_loss"] = actor_loss.detach()
        if self.ent_coef_optimizer is None:
            gradient_step(self.actor_optimizer, actor_loss)
        else:
            # Temperature: minimise −α (log π(a|s) + H̄) over log α. Its gradient is independent of
            # the actor's, so one backward pass serves both losses.
            ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + self._target_entropy)).mean()
            gradient_step((self.actor_optimizer, self.ent_coef_optimizer), actor_loss + ent_coef_loss)
            stats["ent_coef_loss"] = ent_coef_loss.detach()

        if (self._n_updates + 1) % self.target_update_interval == 0:
            soft_update(policy.critic_target, policy.critic, self.tau)
        return stats
