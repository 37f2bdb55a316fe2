"""The variants' maths, one small pure function per definition, shared by SAC and TD3.

- How the target critics' values at the next state combine into the backup (``critic_backup``).
- The bootstrapped target, one-step or n-step (``bootstrapped_target``).
- SAC's two actor-gradient estimators (``actor_loss``).

See docs/variants.md for the sources.
"""

from __future__ import annotations

import torch

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
