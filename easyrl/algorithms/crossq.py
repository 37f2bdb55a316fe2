"""CrossQ (Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater Sample
Efficiency and Simplicity").

SAC without target networks, made stable by batch normalisation:
- actor and critics normalise their inputs and hidden layers with batch renormalisation
  (``easyrl.blocks.BatchRenorm``), whose running statistics serve when acting;
- no target networks: the critics bootstrap from themselves,
  y = r + γ (1 − terminated) (min_i Q_i(s', a') − α log π(a'|s')),  a' ~ π(·|s'),  Q_i(s', a') held fixed;
- (s, a) and (s', a') go through the critics in one joint forward pass, so that batch normalisation sees
  the mixture of both distributions: normalised with the statistics of (s, a) alone, the next state-actions
  would be out of distribution, which is why batch normalisation fails in SAC with target networks;
- wider critics ([1024, 1024]; the paper's are 2048 wide), Adam with β₁ = 0.5, and the actor (with the
  temperature) updated every ``policy_delay`` = 3 critic updates;
- the temperature α is SAC's (``easyrl.algorithms.temperature``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from easyrl import losses
from easyrl import validation as v
from easyrl.algorithms import gsde, policies, temperature
from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.blocks import (
    BATCH_NORM_KEYS,
    CRITIC_OPTION_KEYS,
    CriticOptions,
    batch_norm_settings,
    batch_statistics,
)
from easyrl.buffers import ReplayBatch
from easyrl.critics import CriticEnsemble
from easyrl.networks import PolicyFeatures
from easyrl.observations import ObsSpace, TensorObs, zip_obs
from easyrl.updates import adam, gradient_step


class CrossQPolicy(policies.BasePolicy):
    """The actor and the critics; no targets."""

    def __init__(self, actor: gsde.Actor, critic: CriticEnsemble) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic

    def act(
        self, obs: TensorObs, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.actor.act(obs, deterministic, generator)


@dataclass(kw_only=True, repr=False, eq=False)
class CrossQ(gsde.StateDependentExploration, OffPolicyAlgorithm[CrossQPolicy]):
    """CrossQ: SAC with batch-renormalised networks, no target networks and a joint critic pass.

    CrossQ-specific parameters:
        ent_coef, target_entropy: the temperature α, as in SAC (``"auto"``: learned from 1.0 toward an
            entropy of −dim(A)).
        policy_delay: update the actor and the temperature once every this many critic updates.
        tau: must stay 1.0: there are no target networks (the critics are their own targets).
        use_sde, sde_sample_freq, use_sde_at_warmup: gSDE exploration, as in SAC.

    Its ``policy_kwargs`` also take ``batch_norm`` (True), ``batch_norm_momentum`` (0.01), ``batch_norm_eps``
    (0.001) and ``renorm_warmup_steps`` (100,000 training batches of plain batch normalisation before the
    renormalisation's corrections start). ``net_arch`` defaults to dict(pi=[256, 256], qf=[1024, 1024]).
    Names and defaults follow sb3-contrib's CrossQ: learning_rate 1e-3, Adam betas (0.5, 0.999) for actor
    and critics, batch_size 256, buffer_size 1M, learning_starts 100, policy_delay 3.
    """

    learning_rate: float | str | Callable[[float], float] = 1e-3
    tau: float = 1.0
    ent_coef: str | float = "auto"
    target_entropy: str | float = "auto"
    policy_delay: int = 3
    use_sde: bool = False
    sde_sample_freq: int = -1
    use_sde_at_warmup: bool = False

    algorithm_name: ClassVar[str] = "CrossQ"
    default_critic_arch: ClassVar[list[int]] = [1024, 1024]
    default_n_critics: ClassVar[int] = 2
    adam_betas: ClassVar[tuple[float, float]] = (0.5, 0.999)
    _setup_params = OffPolicyAlgorithm._setup_params | {"ent_coef", "use_sde"}
    policy_kwargs_keys = (
        OffPolicyAlgorithm.policy_kwargs_keys - CRITIC_OPTION_KEYS | gsde.POLICY_KWARGS_KEYS | BATCH_NORM_KEYS
    )

    def _constraints(self) -> dict[str, v.Constraint]:
        no_targets = v.Satisfies(
            lambda tau: tau == 1.0, "1.0: CrossQ has no target networks, so leave tau out"
        )
        return {
            **super()._constraints(),
            **temperature.constraints(),
            "tau": no_targets,
            "policy_delay": v.positive_int(),
        }

    # ------------------------------------------------------------------ networks
    def _build_policy(self, space: ObsSpace, action_dim: int, policy_kwargs: dict[str, Any]) -> CrossQPolicy:
        activation = policy_kwargs.get("activation_fn", nn.ReLU)
        actor_arch = v.net_arch(policy_kwargs, "pi", self.default_net_arch)
        critic_arch = v.net_arch(policy_kwargs, "qf", self.default_critic_arch)
        batch_norm = batch_norm_settings(policy_kwargs)
        features = PolicyFeatures(space, self._param("policy"), policy_kwargs)
        actor = self._build_actor(
            features.actor(), action_dim, actor_arch, activation, policy_kwargs, batch_norm
        )
        n_critics = policy_kwargs.get("n_critics", self.default_n_critics)
        critic = CriticEnsemble(
            features.critic(),
            action_dim,
            critic_arch,
            activation,
            n_critics,
            options=CriticOptions(batch_norm=batch_norm),
        )
        return CrossQPolicy(actor, critic)

    def _build_optimizers(self) -> None:
        policy = self._policy  # each rate is set from the learning-rate schedule before every training phase
        self.actor_optimizer = adam(policy.actor.parameters(), betas=self.adam_betas)
        self.critic_optimizer = adam(policy.critic.own_parameters(), betas=self.adam_betas)
        self.log_ent_coef, self.ent_coef_optimizer = temperature.create(self.ent_coef, self._device)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        temperature_optimizer = [] if self.ent_coef_optimizer is None else [self.ent_coef_optimizer]
        return [self.actor_optimizer, self.critic_optimizer, *temperature_optimizer]

    # ------------------------------------------------------------------ update
    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        policy, rng = self._policy, self.training_state.torch_rng
        ent_coef = self.log_ent_coef.detach().exp()  # α from before this update, in every loss
        stats: dict[str, torch.Tensor] = {"ent_coef": ent_coef}

        # Critics: (s, a) and (s', a') in one pass, normalised with the joint batch's statistics.
        with torch.no_grad():
            next_actions, next_log_prob = policy.actor(batch.next_observations, rng)  # running statistics
        both_obs = zip_obs(
            lambda now, then: torch.cat([now, then]), batch.observations, batch.next_observations
        )
        with batch_statistics(policy.critic):
            current_q, next_q = policy.critic(both_obs, torch.cat([batch.actions, next_actions])).chunk(
                2, dim=1
            )
        with torch.no_grad():  # the critics are their own targets, held fixed
            next_value = losses.critic_minimum(next_q) - ent_coef * next_log_prob
            target_q = losses.bootstrapped_target(batch, next_value)
        critic_loss = losses.squared_critic_loss(current_q, target_q)
        gradient_step(self.critic_optimizer, critic_loss)
        stats["critic_loss"] = critic_loss.detach()

        # Delayed actor and temperature: minimise E[α log π(a|s) − min_i Q_i(s, a)], a ~ π, the critics fixed.
        if (self.training_state.n_updates + 1) % self.policy_delay == 0:
            with batch_statistics(policy.actor):
                actions_pi, log_prob = policy.actor(batch.observations, rng)
            q_pi = policy.critic(batch.observations, actions_pi, detach_params=True)
            actor_loss = losses.actor_loss(
                "reparameterization", log_prob, losses.critic_minimum(q_pi), ent_coef
            )
            stats["actor_loss"] = actor_loss.detach()
            if self.ent_coef_optimizer is None:
                gradient_step(self.actor_optimizer, actor_loss)
            else:  # independent gradients: one backward pass serves both
                target_entropy = temperature.target_entropy(self.target_entropy, self.action_dim)
                ent_coef_loss = temperature.loss(self.log_ent_coef, log_prob, target_entropy)
                gradient_step((self.actor_optimizer, self.ent_coef_optimizer), actor_loss + ent_coef_loss)
                stats["ent_coef_loss"] = ent_coef_loss.detach()
        return stats
