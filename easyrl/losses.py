"""The variants' maths, one small pure function per definition, shared by SAC and TD3.

- How the target critics' values at the next state combine into the backup (``critic_backup``).
- The bootstrapped target, one-step or n-step (``bootstrapped_target``).
- SAC's two actor-gradient estimators (``actor_loss``).

See docs/variants.md for the sources.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from easyrl.buffers import ReplayBatch

CRITIC_BACKUPS = ("min", "mean", "single", "crossed")
"""The values of ``critic_backup``."""

ACTOR_GRADIENTS = ("reparameterization", "reinforce")
"""The values of SAC's ``actor_gradient``."""


def critic_backup(next_q: torch.Tensor, strategy: str) -> torch.Tensor:
    """The value each critic bootstraps from, given the target critics' values ``next_q`` (n, B).

    - ``"min"``: clipped double Q (Fujimoto et al. 2018), min_j Q̄_j, one target for all, shape (B,);
    - ``"mean"``: the mean of the target critics, (1/n) Σ_j Q̄_j, shape (B,);
    - ``"single"``: each critic bootstraps from its own target, Q̄_i (standard, single-critic
      Q-learning; with one critic this is DDPG's target), shape (n, B);
    - ``"crossed"``: double Q-learning (van Hasselt 2010), each critic from another one's target,
      critic i from Q̄_{(i+1) mod n} (for two critics: y₁ from Q̄₂, y₂ from Q̄₁), shape (n, B).
    """
    if strategy == "min":
        return next_q.min(dim=0).values
    if strategy == "mean":
        return next_q.mean(dim=0)
    if strategy == "single":
        return next_q
    if strategy == "crossed":
        return next_q.roll(-1, dims=0)
    raise ValueError(f"Unknown critic_backup {strategy!r}; use one of {CRITIC_BACKUPS}.")


def check_critic_backup(strategy: str, n_critics: int, algorithm: str) -> None:
    """Raise ValueError for a backup that the number of critics cannot support."""
    if strategy == "crossed" and n_critics < 2:
        raise ValueError(
            f"critic_backup='crossed' needs at least 2 critics (each critic's target comes from another "
            f"critic), but this {algorithm} has {n_critics}: pass policy_kwargs=dict(n_critics=2) or "
            "use critic_backup='min', 'mean' or 'single'."
        )


def squared_critic_loss(current_q: torch.Tensor, target_q: torch.Tensor) -> torch.Tensor:
    """Σ_i ½ E[(Q_i(s, a) − y)²] for the critics' values (n, B) and a target (B,) or (n, B)."""
    return 0.5 * (current_q - target_q).pow(2).mean(dim=1).sum()


def critic_minimum(q_all: torch.Tensor) -> torch.Tensor:
    """min_i Q_i(s, a): the critics' values (n, B) combined as SAC's actor sees them."""
    return q_all.min(dim=0).values


def bootstrapped_target(batch: ReplayBatch, next_value: torch.Tensor) -> torch.Tensor:
    """y = R + γ^k (1 − terminated) · next_value, for the (n-step) transitions of ``batch``.

    ``batch.rewards`` is R = Σ_{i<k} γ^i r_{t+i} and ``batch.discounts`` is γ^k (k = 1 for
    one-step transitions). ``next_value`` of shape (B,) gives one target, (n, B) one per critic.
    """
    return batch.rewards + batch.discounts * (1.0 - batch.terminated) * next_value


def actor_loss(
    estimator: str, log_prob: torch.Tensor, q: torch.Tensor, ent_coef: torch.Tensor
) -> torch.Tensor:
    """A loss whose gradient estimates ∇_φ E_{a~π_φ}[α log π_φ(a|s) − Q(s, a)] (SAC's actor objective).

    ``log_prob`` and ``q`` hold log π(a|s) and Q(s, a) for sampled actions a, shape (N,).
    - ``"reparameterization"``: a = f_φ(ε; s) carries gradients into Q and log π; the loss is the
      objective itself, mean(α log π(a|s) − Q(s, a)) (Haarnoja et al. 2018, eq. 12-13).
    - ``"reinforce"``: a is a constant sample and only log π(a|s) carries gradients; the loss is
      the score-function (likelihood-ratio) surrogate without a baseline,
      mean(log π(a|s) · [α log π(a|s) − Q(s, a)]), held fixed inside the brackets (Williams 1992).
      Its gradient is unbiased too: the α ∇log π term that the surrogate leaves out has
      expectation E[∇ log π] = 0.
    """
    objective = ent_coef * log_prob - q
    if estimator == "reparameterization":
        return objective.mean()
    if estimator == "reinforce":
        return (log_prob * objective.detach()).mean()
    raise ValueError(f"Unknown actor_gradient {estimator!r}; use one of {ACTOR_GRADIENTS}.")


# ---------------------------------------------------------------------------------------------- quantiles (TQC)
def truncated_quantiles(next_quantiles: torch.Tensor, drop_per_net: int) -> torch.Tensor:
    """TQC's target atoms (Kuznetsov et al. 2020, eq. 10): the N·M quantiles that N critics predict at
    (s', a'), pooled per state and sorted, without the N·d largest; (N, B, M) -> (B, N·(M − d))."""
    n, batch, m = next_quantiles.shape
    pooled = next_quantiles.permute(1, 0, 2).reshape(batch, n * m)
    return pooled.sort(dim=1).values[:, : n * (m - drop_per_net)]


def quantile_huber_loss(current_q: torch.Tensor, target_q: torch.Tensor) -> torch.Tensor:
    """The quantile Huber loss of quantile regression (Dabney et al. 2018), as TQC uses it.

    ``current_q`` (N, B, M): each critic's quantiles of the return at the fractions τ_m = (m + ½)/M;
    ``target_q`` (B, K): the atoms of the target distribution. For every pair δ = atom − quantile, the loss
    is |τ_m − 1{δ < 0}| · Huber_1(δ), averaged over all pairs, critics and states.
    """
    m = current_q.shape[-1]
    tau = (torch.arange(m, device=current_q.device, dtype=current_q.dtype) + 0.5) / m
    delta = target_q[None, :, None, :] - current_q[..., None]  # (N, B, M, K)
    # Huber_1(δ) by torch's fused kernel: a quarter of the time of the same expression written out.
    huber = F.huber_loss(delta, delta.new_zeros(()).expand_as(delta), reduction="none", delta=1.0)
    with torch.no_grad():
        weight = (tau[:, None] - (delta < 0).to(current_q.dtype)).abs()
    return (weight * huber).mean()
