"""Generalized State-Dependent Exploration (gSDE): SAC's actor with noise that is a function of the state.

Raffin et al. 2021, "Smooth Exploration for Robotic Reinforcement Learning". Instead of fresh
Gaussian noise at every step, the pre-squash action is u = μ(s) + ε(s) with ε(s) = θ_s(s) θ_ε:
θ_s(s) are the actor's last hidden features (its *latent*, shape (latent_dim,)) and θ_ε an
exploration matrix (latent_dim, action_dim) drawn from N(0, σ²), σ a learned parameter. While the
matrix is held, the same state gives the same noise, so the actions change smoothly along a
trajectory instead of jittering at every step; the matrix is redrawn every ``sde_sample_freq`` steps.
Given s, ε(s) is Gaussian with variance Σ_i θ_s(s)_i² σ_ij² for action j: that is the density
π(a|s) whose log SAC's entropy terms use (with the tanh correction).

SB3's choices for SAC are kept: the features are not detached (SB3's ``learn_features=True``), the
mean is clipped by a hardtanh before the squash (``clip_mean``), and σ is unclamped, either exp(log σ)
or, with ``use_expln``, the paper's expln.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from easyrl import validation as v
from easyrl.blocks import BatchNormSettings
from easyrl.networks import LOG_SQRT_2PI, Features, FromObservations, in_float32, log_det_tanh, mlp

POLICY_KWARGS: dict[str, Any] = {"log_std_init": -3.0, "use_expln": False, "full_std": True, "clip_mean": 2.0}
"""The ``policy_kwargs`` entries that configure gSDE, with their defaults (SB3's for SAC)."""

_CONSTRAINTS: dict[str, v.Constraint] = {
    "log_std_init": v.Interval(),
    "use_expln": v.Options((False, True)),
    "full_std": v.Options((True, False)),
    "clip_mean": v.Interval(0, None),
}

VARIANCE_EPSILON = 1e-6
"""Added to the noise's variance, as SB3 does, so that it stays positive where the latent is all zeros."""


def check_policy_kwargs(policy_kwargs: Mapping[str, Any] | None, use_sde: bool) -> None:
    """Raise ValueError for a gSDE entry of ``policy_kwargs`` without ``use_sde=True``, or an invalid one.

    SB3's SAC accepts these entries without gSDE and ignores them; here that is an error, since a
    ``log_std_init`` that silently does nothing is a setting the user believes in and does not get.
    """
    given = {key: value for key, value in (policy_kwargs or {}).items() if key in POLICY_KWARGS}
    if given and not use_sde:
        raise ValueError(
            f"policy_kwargs {sorted(given)} configure gSDE, which is off: pass use_sde=True to use gSDE, "
            "or leave them out (SB3 ignores them without use_sde)."
        )
    v.check_params(
        {f"policy_kwargs['{key}']": value for key, value in given.items()},
        {f"policy_kwargs['{key}']": _CONSTRAINTS[key] for key in given},
    )


def expln(log_std: torch.Tensor) -> torch.Tensor:
    """exp(x) for x <= 0, log(1 + x) + 1 above: positive, and growing only logarithmically (the
    paper's alternative to exp, so that σ cannot blow up)."""
    # Each branch sees only its own side, so neither overflows nor puts a NaN in the other's gradient.
    return torch.where(log_std <= 0, log_std.clamp(max=0).exp(), torch.log1p(log_std.clamp(min=0)) + 1.0)


class StateDependentActor(FromObservations):
    """SAC's policy with gSDE: a = tanh(u), u = clip(μ(s)) + θ_s(s) θ_ε, θ_ε ~ N(0, σ²).

    ``log_std`` has shape (latent_dim, action_dim), or (latent_dim, 1) shared by every action when
    ``full_std=False``. The buffer ``exploration_noise`` (n, latent_dim, action_dim) holds the standard
    normal draws ξ of the acting matrices θ_ε = σ ⊙ ξ, one per env (n rows); it is saved with the
    weights, so a resumed run continues with the same matrices.

    ``act`` explores with the held matrices (row i for row i of a batch of n, else row 0);
    ``forward``, the sampler of the updates, draws one fresh matrix from ``generator`` for its whole
    batch at the current σ, as SB3 redraws the matrix at every gradient step.
    """

    exploration_noise: torch.Tensor

    def __init__(
        self,
        features: int | Features,
        action_dim: int,
        hidden: Sequence[int],
        activation_fn: type[nn.Module],
        log_std_init: float = POLICY_KWARGS["log_std_init"],
        use_expln: bool = POLICY_KWARGS["use_expln"],
        full_std: bool = POLICY_KWARGS["full_std"],
        clip_mean: float = POLICY_KWARGS["clip_mean"],
        batch_norm: BatchNormSettings | None = None,
    ) -> None:
        super().__init__()
        features_dim = self._set_features(features)
        self.trunk = mlp(features_dim, hidden, activation_fn, batch_norm)
        latent_dim = hidden[-1] if hidden else features_dim
        self.mean = nn.Linear(latent_dim, action_dim)
        self.log_std = nn.Parameter(
            torch.full((latent_dim, action_dim if full_std else 1), float(log_std_init))
        )
        self.use_expln = use_expln
        self.clip_mean = float(clip_mean)
        self.register_buffer("exploration_noise", torch.randn(1, latent_dim, action_dim))

    def get_std(self) -> torch.Tensor:
        """σ, shape (latent_dim, action_dim) or (latent_dim, 1): the standard deviations of θ_ε's entries."""
        return expln(self.log_std) if self.use_expln else self.log_std.exp()

    def reset_noise(self, n_envs: int = 1, generator: torch.Generator | None = None) -> None:
        """Draw new exploration matrices, one per env (SB3's ``reset_noise``)."""
        shape = (n_envs, *self.exploration_noise.shape[1:])
        noise = self.exploration_noise
        self.exploration_noise = torch.randn(
            shape, generator=generator, device=noise.device, dtype=noise.dtype
        )

    def _mean_and_latent(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.trunk.forward(self.extract_features(obs))
        mean = self.mean.forward(latent).float()  # the density is float32 in any precision
        if self.clip_mean > 0:  # SB3: bounds the mean so that tanh does not saturate and its gradient vanish
            mean = nn.functional.hardtanh(mean, -self.clip_mean, self.clip_mean)
        return mean, latent.float()

    def forward(
        self,
        obs: Any,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        reparameterize: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample actions and their log-probabilities, shapes (B, A) and (B,), with a fresh matrix.

        log π(a|s) = Σ_j log N(u_j; μ_j(s), Σ_i θ_s(s)_i² σ_ij² + ε) − Σ_j log(1 − tanh(u_j)²), the
        tanh term from :func:`~easyrl.networks.log_det_tanh`. ``reparameterize=False`` holds the sample
        fixed, so that only log π carries gradients (score-function estimates).
        """
        mean, latent = self._mean_and_latent(obs)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        with in_float32(mean):
            return self._sample(mean, latent, generator, reparameterize)

    def _sample(
        self,
        mean: torch.Tensor,
        latent: torch.Tensor,
        generator: torch.Generator | None,
        reparameterize: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        std = self.get_std()
        draw = torch.randn(self.exploration_noise.shape[1:], generator=generator, device=mean.device)
        pre_tanh = mean + latent @ (std * draw)
        if not reparameterize:
            pre_tanh = pre_tanh.detach()
        variance = latent.pow(2) @ std.pow(2) + VARIANCE_EPSILON  # (B, A), or (B, 1) shared by every action
        gaussian_log_prob = -0.5 * (pre_tanh - mean).pow(2) / variance - 0.5 * variance.log() - LOG_SQRT_2PI
        # Summed before tanh(u) is taken: the autograd graph's order sets the gradients' rounding.
        log_prob = (gaussian_log_prob - log_det_tanh(pre_tanh)).sum(dim=-1)
        return torch.tanh(pre_tanh), log_prob

    def act(self, obs: Any, deterministic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions only: tanh of the mean, or of the mean plus the held matrices' noise (no draw)."""
        mean, latent = self._mean_and_latent(obs)
        if deterministic:
            return torch.tanh(mean)
        with in_float32(mean):
            matrices = self.get_std() * self.exploration_noise
            if matrices.shape[0] == latent.shape[0]:
                noise = torch.einsum("bi,bij->bj", latent, matrices)
            else:
                noise = latent @ matrices[0]
            return torch.tanh(mean + noise)

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # A file holds one matrix per env of the run that saved it; a model built for another number
        # of envs takes them all (and draws its own at its next rollout).
        saved = state_dict.get(prefix + "exploration_noise")
        held = self.exploration_noise
        if isinstance(saved, torch.Tensor) and saved.dim() == 3 and saved.shape[1:] == held.shape[1:]:
            self.exploration_noise = held.new_empty(saved.shape)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
