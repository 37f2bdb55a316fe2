"""gSDE's part of SAC: its settings' checks, when the exploration matrix is redrawn, and the actor it builds.

SAC declares the settings (``use_sde``, ``sde_sample_freq``, ``use_sde_at_warmup``) and mixes
:class:`StateDependentExploration` in ahead of its base class; the training loop calls the two hooks
below, which do nothing in the base. The network and its density are in ``easyrl.sde``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from easyrl import sde
from easyrl import validation as v
from easyrl.blocks import BatchNormSettings
from easyrl.networks import Features, SquashedGaussianActor
from easyrl.sde import StateDependentActor

if TYPE_CHECKING:
    from easyrl.algorithms.training_state import TrainingState

Actor = SquashedGaussianActor | StateDependentActor
"""SAC's actor: a squashed Gaussian with state-dependent σ(s), or with gSDE its state-dependent-noise version."""

POLICY_KWARGS_KEYS = frozenset(sde.POLICY_KWARGS)
"""The ``policy_kwargs`` entries gSDE adds to SAC's: ``log_std_init``, ``use_expln``, ``full_std``, ``clip_mean``."""


class StateDependentExploration:
    """SAC's gSDE behaviour, for SAC to inherit ahead of ``OffPolicyAlgorithm``."""

    # SAC's fields, and what the model provides.
    use_sde: bool
    sde_sample_freq: int
    use_sde_at_warmup: bool
    num_envs: int
    training_state: TrainingState

    if TYPE_CHECKING:

        @property
        def _policy(self) -> Any: ...

        def _param(self, name: str) -> Any: ...

    def _validate_params(self) -> None:
        super()._validate_params()  # type: ignore[misc]  # OffPolicyAlgorithm's: next in SAC's MRO
        v.check_params(
            {name: getattr(self, name) for name in ("use_sde", "sde_sample_freq", "use_sde_at_warmup")},
            {
                "use_sde": v.Options((False, True)),
                "sde_sample_freq": v.AnyOf((v.positive_int(), v.Options((-1,)))),
                "use_sde_at_warmup": v.Options((False, True)),
            },
        )
        sde.check_policy_kwargs(v.policy_kwargs(self._param("policy_kwargs")), self.use_sde)
        samples = getattr(self, "num_actor_samples", 1)  # SAC's setting; CrossQ samples one action per state
        if self.use_sde and samples != 1:
            # One matrix serves a whole batch: the copies of a state would all get the same action.
            raise ValueError(
                f"num_actor_samples={samples} cannot be used with use_sde=True: gSDE draws one "
                "exploration matrix per batch, so the samples of one state would all be the same action. "
                "Use num_actor_samples=1."
            )

    def _build_actor(
        self,
        features: Features,
        action_dim: int,
        hidden: Sequence[int],
        activation_fn: type[nn.Module],
        policy_kwargs: dict[str, Any],
        batch_norm: BatchNormSettings | None = None,
    ) -> Actor:
        if not self.use_sde:
            return SquashedGaussianActor(features, action_dim, hidden, activation_fn, batch_norm)
        settings = {key: policy_kwargs.get(key, default) for key, default in sde.POLICY_KWARGS.items()}
        return StateDependentActor(
            features, action_dim, hidden, activation_fn, **settings, batch_norm=batch_norm
        )

    @property
    def _sde_actor(self) -> StateDependentActor:
        actor = self._policy.actor
        assert isinstance(actor, StateDependentActor)
        return actor

    # ------------------------------------------------------------------ the training loop's hooks
    def _before_env_step(self, rollout_step: int) -> None:
        """Redraw the exploration matrices at the start of each rollout and every ``sde_sample_freq``
        steps into it (SB3's schedule; the paper's "sample every n steps")."""
        if self.use_sde and (
            rollout_step == 0 or (self.sde_sample_freq > 0 and rollout_step % self.sde_sample_freq == 0)
        ):
            self._sde_actor.reset_noise(self.num_envs, self.training_state.torch_rng)

    def _policy_acts_in_warmup(self) -> bool:
        """With ``use_sde_at_warmup``, gSDE's smooth noise replaces the uniform warm-up actions."""
        return self.use_sde and self.use_sde_at_warmup
