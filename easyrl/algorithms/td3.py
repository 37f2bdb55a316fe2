"""Twin Delayed DDPG.

Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods".

A deterministic policy a = π(s), bounded to [-1, 1] by tanh, trained by following ∇_a Q(s, a),
with three fixes to DDPG's overestimation and variance:
- clipped double Q-learning: twin critics regress to one target built from the smaller of two
  target critics, y = r + γ (1 − terminated) min_i Q̄_i(s', ã);
- target policy smoothing: ã = clip(π̄(s') + ε, −1, 1), ε ~ clip(N(0, σ̃), −c, c), so the
  target averages Q over a small region around the target action;
- delayed policy updates: the critics learn every step, the actor (through Q_1 only) and all
  target networks every ``policy_delay`` steps.
Exploration is the deterministic action plus ``action_noise`` (Gaussian in the paper).

Variants (docs/variants.md): how the target critics combine (``critic_backup``) and n-step
targets (``n_steps``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from easyrl import validation as v
from easyrl.algorithms import policies
from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.blocks import critic_options
from easyrl.buffers import ReplayBatch
from easyrl.critics import CriticEnsemble
from easyrl.losses import CRITIC_BACKUPS, bootstrapped_target, check_critic_backup, critic_backup
from easyrl.networks import DeterministicActor, PolicyFeatures
from easyrl.observations import ObsSpace, TensorObs
from easyrl.updates import adam, frozen_copy, gradient_step, soft_update


class TD3Policy(policies.BasePolicy):
    """The actor, the critics and a target copy of each."""

    def __init__(self, actor: DeterministicActor, critic: CriticEnsemble) -> None:
        super().__init__()
        self.actor = actor
        self.actor_target = frozen_copy(actor)
        self.critic = critic
        self.critic_target = frozen_copy(critic)

    def act(
        self, obs: TensorObs, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        # The policy is deterministic either way; exploration comes from ``action_noise``.
        return self.actor(obs)


@dataclass(kw_only=True, repr=False, eq=False)
class TD3(policies.TargetActorAttributes, OffPolicyAlgorithm[TD3Policy]):
    """Twin Delayed DDPG.

    TD3-specific parameters:
        policy_delay: update the actor and the target networks once every this many critic updates.
        target_policy_noise: standard deviation σ̃ of the Gaussian noise added to the target
            policy's actions, in the scaled action range [-1, 1]; 0 disables target smoothing.
        target_noise_clip: the smoothing noise is clipped to [−c, c] with this c.
        critic_backup: how the target critics' values at s' combine: ``"min"`` (clipped double Q),
            ``"mean"``, ``"single"`` (each critic its own target) or ``"crossed"`` (each critic the
            next one's target; needs 2 or more critics). See ``easyrl.losses.critic_backup``.

    Exploration noise is not added by default; pass e.g.
    ``action_noise=NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))`` as the paper and rl-zoo do.
    ``actor_learning_rate`` and ``critic_learning_rate`` (None: ``learning_rate``) set separate
    rates for the actor and the critics; ``policy_kwargs=dict(n_critics=...)`` sets the number
    of critics (2).

    Defaults follow SB3: learning_rate 1e-3, buffer_size 1M, learning_starts 100, batch_size 256,
    tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, net_arch [400, 300].
    """

    learning_rate: float | str | Callable[[float], float] = 1e-3
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    critic_backup: str = "min"

    algorithm_name: ClassVar[str] = "TD3"
    default_net_arch: ClassVar[list[int]] = [400, 300]
    default_n_critics: ClassVar[int] = 2

    def _constraints(self) -> dict[str, v.Constraint]:
        return {
            **super()._constraints(),
            "policy_delay": v.positive_int(),
            "target_policy_noise": v.Interval(0, None),
            "target_noise_clip": v.Interval(0, None),
            "critic_backup": v.Options(CRITIC_BACKUPS),
        }

    def _check_combinations(self) -> None:
        n_critics = v.policy_kwargs(self.policy_kwargs).get("n_critics", self.default_n_critics)
        check_critic_backup(self.critic_backup, n_critics, self.algorithm_name)

    # ------------------------------------------------------------------ networks
    def _build_policy(self, space: ObsSpace, action_dim: int, policy_kwargs: dict[str, Any]) -> TD3Policy:
        activation = policy_kwargs.get("activation_fn", nn.ReLU)
        features = PolicyFeatures(space, self._param("policy"), policy_kwargs)
        actor = DeterministicActor(
            features.actor(), action_dim, v.net_arch(policy_kwargs, "pi", self.default_net_arch), activation
        )
        n_critics = policy_kwargs.get("n_critics", self.default_n_critics)
        critic = CriticEnsemble(
            features.critic(), action_dim, v.net_arch(policy_kwargs, "qf", self.default_net_arch), activation,
            n_critics=n_critics, options=critic_options(policy_kwargs, n_critics),
        )  # fmt: skip
        return TD3Policy(actor, critic)

    def _build_optimizers(self) -> None:
        policy = self._policy
        # lr is set from the learning-rate schedules before every training phase.
        self.actor_optimizer = adam(policy.actor.parameters())
        self.critic_optimizer = adam(policy.critic.own_parameters())

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.actor_optimizer, self.critic_optimizer]

    # ------------------------------------------------------------------ update
    def _critic_target(self, policy: TD3Policy, batch: ReplayBatch) -> torch.Tensor:
        """y = r + γ (1 − terminated) min_i Q̄_i(s', clip(π̄(s') + ε, −1, 1)), shape (B,).

        ``critic_backup`` replaces the min (shape (n_critics, B) for "single" and "crossed"), and
        with ``n_steps`` > 1, r and γ are the n-step return and γ^k.
        """
        with torch.no_grad():
            rng = self.training_state.torch_rng
            next_actions = policy.actor_target(batch.next_observations)
            if self.target_policy_noise > 0:
                noise = torch.randn(
                    next_actions.shape, generator=rng, device=next_actions.device, dtype=next_actions.dtype
                )
                clip = self.target_noise_clip
                noise = (noise * self.target_policy_noise).clamp(-clip, clip)
                next_actions = (next_actions + noise).clamp(-1.0, 1.0)
            members = policy.critic.target_members(rng)  # REDQ's random subset, or every critic
            next_q = policy.critic_target(
                batch.next_observations, next_actions, members=members, generator=rng
            )
            return bootstrapped_target(batch, critic_backup(next_q, self.critic_backup))

    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        policy = self._policy
        stats: dict[str, torch.Tensor] = {}

        # Critics: regress every Q_i to the clipped double-Q target with target policy smoothing.
        target_q = self._critic_target(policy, batch)
        rng = self.training_state.torch_rng
        current_q = policy.critic(batch.observations, batch.actions, generator=rng)
        critic_loss = (current_q - target_q).pow(2).mean(dim=1).sum()
        gradient_step(self.critic_optimizer, critic_loss)
        stats["critic_loss"] = critic_loss.detach()

        # Delayed policy update: maximise Q_1(s, π(s)) (critics held fixed), then move the targets.
        if (self.training_state.n_updates + 1) % self.policy_delay == 0:
            q_pi = policy.critic(
                batch.observations,
                policy.actor(batch.observations),
                detach_params=True,
                members=1,
                generator=rng,
            )[0]
            actor_loss = -q_pi.mean()
            gradient_step(self.actor_optimizer, actor_loss)
            stats["actor_loss"] = actor_loss.detach()
            soft_update(policy.critic_target, policy.critic, self.tau)
            soft_update(policy.actor_target, policy.actor, self.tau)
        return stats
