"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

Maximises reward plus policy entropy, E[Σ γ^t (r_t + α H(π(·|s_t)))]:
- a tanh-squashed Gaussian actor, trained through the reparameterisation trick;
- twin critics regressing to the soft Bellman target with the minimum of two target critics,
  y = r + γ (1 − terminated) (min_i Q̄_i(s', a') − α log π(a'|s')),  a' ~ π(·|s');
- target critics Q̄ that follow the critics by Polyak averaging;
- a temperature α tuned automatically so that the policy's entropy tracks a target
  (−dim(A) by default), by minimising −α (log π(a|s) + H̄).

Variants (docs/variants.md): how the target critics combine (``critic_backup``), the actor's
gradient estimator (``actor_gradient``), no entropy in the backup (``backup_entropy=False``),
n-step targets (``n_steps``), and the original SAC with a state-value network
(``value_network=True``; its parts are in ``sac_v1.py``). Critic options (docs/critics.md):
LayerNorm, DroQ's dropout, REDQ's random-subset target, SimBa blocks, resets (``policy_kwargs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from easyrl import losses
from easyrl import validation as v
from easyrl.algorithms import gsde, policies, sac_v1, temperature
from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.blocks import critic_options
from easyrl.buffers import ReplayBatch
from easyrl.critics import CriticEnsemble
from easyrl.networks import PolicyFeatures, StateValue
from easyrl.observations import ObsSpace, TensorObs, repeat_batch
from easyrl.schedules import Schedule
from easyrl.updates import adam, frozen_copy, gradient_step, soft_update


class SACPolicy(policies.BasePolicy):
    """The actor, the twin critics and their targets (with SAC v1's value network, V and V̄ instead)."""

    critic_target: nn.Module
    value: StateValue
    value_target: nn.Module

    def __init__(self, actor: gsde.Actor, critic: CriticEnsemble, has_value: bool = False) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic
        if not has_value:
            self.critic_target = frozen_copy(critic)

    def act(
        self, obs: TensorObs, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.actor.act(obs, deterministic, generator)


@dataclass(kw_only=True, repr=False, eq=False)
class SAC(gsde.StateDependentExploration, OffPolicyAlgorithm[SACPolicy]):
    """Soft Actor-Critic with automatic entropy tuning, and optionally gSDE exploration.

    SAC-specific parameters:
        ent_coef: the temperature α. ``"auto"`` learns it (starting at 1.0), ``"auto_0.1"`` learns
            it starting at 0.1, a float fixes it.
        target_update_interval: update the target networks every this many gradient steps.
        target_entropy: the entropy the temperature steers toward; ``"auto"`` is −dim(A).
        critic_backup: how the target critics' values at s' combine: ``"min"`` (clipped double Q),
            ``"mean"``, ``"single"`` (each critic its own target) or ``"crossed"`` (each critic the
            next one's target; needs 2 or more critics). See ``easyrl.losses.critic_backup``.
        actor_gradient: ``"reparameterization"`` (through a = f(ε; s)) or ``"reinforce"`` (the
            score-function estimate, without a baseline).
        num_actor_samples: actions sampled per state for the actor's loss (and, with a value
            network, for V's target).
        backup_entropy: include −α log π(a'|s') in the critics' (or V's) target.
        value_network: SAC v1 (``easyrl.algorithms.sac_v1``): a state-value network V and its
            Polyak-averaged target V̄; the critics regress to r + γ V̄(s'), V to
            min_i Q_i(s, a) − α log π(a|s), a ~ π. Needs a fixed temperature (a float ``ent_coef``,
            as in the paper) and ``critic_backup`` "min" or "mean". V has the critics' ``net_arch``.
        use_sde: explore with generalized State-Dependent Exploration (gSDE, Raffin et al. 2021,
            ``easyrl.sde``): the noise is θ_s(s) θ_ε, the actor's last hidden features times an
            exploration matrix θ_ε ~ N(0, σ²) held between redraws, with σ learned. Its
            ``policy_kwargs``: ``log_std_init`` (log σ's initial value, -3), ``use_expln`` (σ by
            expln instead of exp, False), ``full_std`` (one σ per feature and action, not per feature,
            True) and ``clip_mean`` (bound of the mean before tanh, 2.0; 0 for none).
        sde_sample_freq: with gSDE, redraw the exploration matrix every this many steps (of each env);
            -1 only at the start of each rollout (every ``train_freq``).
        use_sde_at_warmup: with gSDE, act with the policy's gSDE noise during the first
            ``learning_starts`` steps, instead of uniform random actions.

    Defaults follow SB3: learning_rate 3e-4, buffer_size 1M, learning_starts 100, batch_size 256,
    tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, net_arch [256, 256].
    """

    ent_coef: str | float = "auto"
    target_update_interval: int = 1
    target_entropy: str | float = "auto"
    critic_backup: str = "min"
    actor_gradient: str = "reparameterization"
    num_actor_samples: int = 1
    backup_entropy: bool = True
    value_network: bool = False
    use_sde: bool = False
    sde_sample_freq: int = -1
    use_sde_at_warmup: bool = False

    algorithm_name: ClassVar[str] = "SAC"
    default_n_critics: ClassVar[int] = 2
    _setup_params = OffPolicyAlgorithm._setup_params | {"ent_coef", "value_network", "use_sde"}
    policy_kwargs_keys = OffPolicyAlgorithm.policy_kwargs_keys | gsde.POLICY_KWARGS_KEYS

    _critic_loss = staticmethod(losses.squared_critic_loss)
    """The critics' loss from their values at (s, a) and the target (TQC's is the quantile Huber loss)."""

    def _actor_q(self, q_all: torch.Tensor) -> torch.Tensor:
        """The value the actor maximises, from every critic's at (s, a ~ π): min_i Q_i, or with REDQ's
        random-subset target the mean of all critics (Chen et al. 2021); TQC's is the mean quantile."""
        return (
            q_all.mean(dim=0) if self._policy.critic.options.critic_subset else losses.critic_minimum(q_all)
        )

    def _constraints(self) -> dict[str, v.Constraint]:
        return {
            **super()._constraints(),
            **temperature.constraints(),
            "target_update_interval": v.positive_int(),
            "critic_backup": v.Options(losses.CRITIC_BACKUPS),
            "actor_gradient": v.Options(losses.ACTOR_GRADIENTS),
            "num_actor_samples": v.positive_int(),
            "backup_entropy": v.Options((True, False)),
            "value_network": v.Options((False, True)),
        }

    def _check_combinations(self) -> None:
        n_critics = v.policy_kwargs(self.policy_kwargs).get("n_critics", self.default_n_critics)
        losses.check_critic_backup(self.critic_backup, n_critics, self.algorithm_name)
        if self.value_network:
            sac_v1.check_settings(self.ent_coef, self.critic_backup)

    # ------------------------------------------------------------------ networks
    def _build_policy(self, space: ObsSpace, action_dim: int, policy_kwargs: dict[str, Any]) -> SACPolicy:
        activation = policy_kwargs.get("activation_fn", nn.ReLU)
        actor_arch, critic_arch = (v.net_arch(policy_kwargs, p, self.default_net_arch) for p in ("pi", "qf"))
        features = PolicyFeatures(space, self._param("policy"), policy_kwargs)
        actor = self._build_actor(features.actor(), action_dim, actor_arch, activation, policy_kwargs)
        n_critics = policy_kwargs.get("n_critics", self.default_n_critics)
        outputs = policy_kwargs.get("n_quantiles", 1)  # TQC's critics each output M quantiles
        options = critic_options(policy_kwargs, n_critics)
        critic = CriticEnsemble(
            features.critic(), action_dim, critic_arch, activation, n_critics, outputs, options
        )
        policy = SACPolicy(actor, critic, has_value=self.value_network)
        value = StateValue(features.critic(), critic_arch, activation) if self.value_network else None
        self._value = sac_v1.ValueNetwork(policy, value) if value is not None else None
        return policy

    def _build_optimizers(self) -> None:
        policy = self._policy
        lr = 0.0  # set from the learning-rate schedule before every training phase
        self.actor_optimizer = adam(policy.actor.parameters(), lr)
        self.critic_optimizer = adam(policy.critic.own_parameters(), lr)
        self.value_optimizer = adam(policy.value.own_parameters(), lr) if self.value_network else None
        self.log_ent_coef, self.ent_coef_optimizer = temperature.create(self.ent_coef, self._device)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optional = (self.value_optimizer, self.ent_coef_optimizer)
        return [self.actor_optimizer, self.critic_optimizer, *(o for o in optional if o is not None)]

    def _learning_rate_schedules(self) -> dict[torch.optim.Optimizer, Schedule]:
        schedules = super()._learning_rate_schedules()
        if self.value_optimizer is not None:  # V is a critic: it follows critic_learning_rate
            schedules[self.value_optimizer] = schedules[self.critic_optimizer]
        return schedules

    # ------------------------------------------------------------------ update
    def _critic_target(self, policy: SACPolicy, batch: ReplayBatch, ent_coef: torch.Tensor) -> torch.Tensor:
        """y = r + γ (1 − terminated) (backup_i Q̄(s', a') − α log π(a'|s')), a' ~ π(·|s');
        (n-step) shape (B,) or (n_critics, B)."""
        with torch.no_grad():
            if self._value is not None:
                return self._value.critic_target(batch)
            rng = self.training_state.torch_rng
            next_actions, next_log_prob = policy.actor(batch.next_observations, rng)
            members = policy.critic.target_members(rng)  # REDQ's random subset, or every critic
            next_q = losses.critic_backup(
                policy.critic_target(batch.next_observations, next_actions, members=members, generator=rng),
                self.critic_backup,
            )
            if self.backup_entropy:
                next_q = next_q - ent_coef * next_log_prob
            return losses.bootstrapped_target(batch, next_q)

    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        policy = self._policy
        stats: dict[str, torch.Tensor] = {}

        # This step's losses all use α from before its update, as SB3 does.
        samples = self.num_actor_samples
        observations = batch.observations if samples == 1 else repeat_batch(batch.observations, samples)
        reparameterize = self.actor_gradient == "reparameterization"
        rng = self.training_state.torch_rng  # every draw of the update: samples, dropout masks, REDQ's subset
        actions_pi, log_prob = policy.actor(observations, rng, reparameterize=reparameterize)
        ent_coef = self.log_ent_coef.detach().exp()
        stats["ent_coef"] = ent_coef

        # Critics: regress every Q_i to the soft Bellman target (clipped double Q by default).
        target_q = self._critic_target(policy, batch, ent_coef)
        current_q = policy.critic(batch.observations, batch.actions, generator=rng)
        critic_loss = self._critic_loss(current_q, target_q)
        gradient_step(self.critic_optimizer, critic_loss)
        stats["critic_loss"] = critic_loss.detach()

        # Actor: minimise E[α log π(a|s) − min_i Q_i(s, a)], a ~ π (critics held fixed).
        q_all = policy.critic(observations, actions_pi, detach_params=True, generator=rng)
        loss = losses.actor_loss(self.actor_gradient, log_prob, self._actor_q(q_all), ent_coef)
        stats["actor_loss"] = loss.detach()
        if self._value is not None:
            assert self.value_optimizer is not None
            stats["value_loss"] = self._value.step(
                self.value_optimizer, batch.observations, q_all.detach(), log_prob.detach(), ent_coef,
                self.critic_backup, self.backup_entropy, samples,
            )  # fmt: skip
        if self.ent_coef_optimizer is None:
            gradient_step(self.actor_optimizer, loss)
        else:
            # Temperature: minimise −α (log π(a|s) + H̄) over log α. Its gradient is independent of
            # the actor's, so one backward pass serves both losses.
            target_entropy = temperature.target_entropy(self.target_entropy, self.action_dim)
            ent_coef_loss = temperature.loss(self.log_ent_coef, log_prob, target_entropy)
            gradient_step((self.actor_optimizer, self.ent_coef_optimizer), loss + ent_coef_loss)
            stats["ent_coef_loss"] = ent_coef_loss.detach()

        if (self.training_state.n_updates + 1) % self.target_update_interval == 0:
            if self._value is not None:
                self._value.update_target(self.tau)
            else:
                soft_update(policy.critic_target, policy.critic, self.tau)
        return stats
