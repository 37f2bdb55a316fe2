"""The layers critics and actors are built from, each able to serve a batched ensemble of members.

- :class:`EnsembleLinear`: n independent linear layers as one batched matrix product.
- :class:`BatchRenorm`: batch renormalisation (Ioffe 2017), CrossQ's normalisation (Bhatt et al. 2024).
- :class:`EnsembleLayerNorm`: layer normalisation with each member's own gain and bias.
- :func:`dropout`: inverted dropout drawn from a given generator (DroQ, Hiraoka et al. 2022).
- :class:`ResidualBlock`: SimBa's pre-LayerNorm residual MLP block (Lee et al. 2025).
- :class:`CriticOptions`: the ``policy_kwargs`` that pick among them, checked.

Members' parameters have shape (n, ..., features); a block's ``forward`` reads each of them through
``take`` (see :data:`Take`), which the critic ensemble uses to evaluate only some members, or all of them
as fixed functions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Take = Callable[[torch.Tensor], torch.Tensor]
"""How a block reads one of its members' parameters (n, ...): as is, sliced to some members, or detached."""


def same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied as one batched matrix product.

    Initialised like ``nn.Linear`` (uniform in ±1/sqrt(fan_in)), so an ensemble of n starts
    from the same distribution as n separate critics.
    """

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, take: Take = same) -> torch.Tensor:
        """x W_i + b_i for each member i, shape (n, B, out): x (n, B, in), or (B, in) shared by all."""
        weight, bias = take(self.weight), take(self.bias)
        if weight.shape[-1] == 1:
            # A batched matrix-vector product is several times slower on CPUs than multiply-and-sum.
            return (x * weight.transpose(1, 2)).sum(dim=-1, keepdim=True) + bias
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """Layer normalisation over the features (Ba et al. 2016), with each member's own gain and bias."""

    def __init__(self, n: int, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n, 1, features))
        self.bias = nn.Parameter(torch.zeros(n, 1, features))

    def forward(self, x: torch.Tensor, take: Take = same) -> torch.Tensor:
        normed = F.layer_norm(x.float(), x.shape[-1:], eps=self.eps)  # float32 statistics in any precision
        return torch.addcmul(take(self.bias), normed, take(self.weight))


def dropout(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout: each value zeroed with probability ``rate``, the rest scaled by 1/(1 − rate).

    The mask comes from ``generator`` (the model's training generator), so a run with dropout is
    reproducible and resumes exactly; ``torch.nn.functional.dropout`` would draw from the global one.
    """
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate
    return x * keep * (1.0 / (1.0 - rate))


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017, "Batch Renormalization"), as CrossQ uses it.

    In training mode a batch x (B, f), or (n, B, f) for n members, is normalised with its own mean μ_B
    and variance σ²_B, corrected toward the running statistics μ, σ² once ``warmup_steps`` training
    batches have been seen: x̂ = (x − μ_B)/σ_B · r + d, with r = clip(σ_B/σ, 1/r_max, r_max) and
    d = clip((μ_B − μ)/σ, −d_max, d_max) held constant in the backward pass; before that, r = 1 and d = 0
    (plain batch normalisation). The running statistics then move toward the batch's by ``momentum``.
    In evaluation mode (the default: acting, ``predict``, export) the running statistics normalise.
    Names and defaults follow sb3-contrib (``ra_mean``, ``ra_var``, ``steps``; momentum 0.01, eps 1e-3,
    r_max 3, d_max 5), and so does its arithmetic, so the two agree to float rounding.

    ``shape`` is (f,) for one network, (n, 1, f) for an ensemble; a batch shared by all members (B, f)
    gives every member the same statistics and its own gain and bias.
    """

    ra_mean: torch.Tensor
    ra_var: torch.Tensor
    steps: torch.Tensor

    def __init__(
        self,
        shape: tuple[int, ...],
        momentum: float = 0.01,
        eps: float = 0.001,
        warmup_steps: int = 100_000,
        r_max: float = 3.0,
        d_max: float = 5.0,
    ) -> None:
        super().__init__()
        self.momentum, self.eps, self.warmup_steps, self.r_max, self.d_max = (
            momentum,
            eps,
            warmup_steps,
            r_max,
            d_max,
        )
        self.scale = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("ra_mean", torch.zeros(shape))
        self.register_buffer("ra_var", torch.ones(shape))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))
        self.train(False)  # running statistics unless an update asks for batch statistics

    def forward(self, x: torch.Tensor, take: Take = same) -> torch.Tensor:
        x = x.float()  # float32 statistics in any precision (a bf16 update's products give bf16)
        ra_mean, ra_var = take(self.ra_mean), take(self.ra_var)
        if not self.training:
            mean, var = ra_mean, ra_var
        else:
            batch_var, batch_mean = torch.var_mean(x, dim=-2, keepdim=x.dim() > 2)
            with torch.no_grad():
                running_std = (ra_var + self.eps).sqrt()
                renorm = self.steps > self.warmup_steps  # a device flag: no host read
                r = ((batch_var + self.eps).sqrt() / running_std).clamp(1 / self.r_max, self.r_max)
                d = ((batch_mean - ra_mean) / running_std).clamp(-self.d_max, self.d_max)
                r, d = torch.where(renorm, r, 1.0), torch.where(renorm, d, 0.0)
                ra_mean += self.momentum * (batch_mean - ra_mean)
                ra_var += self.momentum * (batch_var - ra_var)
                self.steps += 1
            # σ_B without eps, as sb3-contrib; clamped so that a feature constant over the batch (a dead
            # ReLU) has a finite gradient, where d = 0 multiplies it (sqrt's derivative at 0 is infinite).
            mean = batch_mean - d * batch_var.clamp_min(1e-30).sqrt() / r
            var = batch_var / r**2
        # (x − mean)/sqrt(var + eps)·scale + bias as one fused x·k + c per feature: a third of the
        # elementwise passes over a (B, f) batch, forward and backward, and CrossQ's critics are 1024 wide.
        k = take(self.scale) * (var + self.eps).rsqrt()
        return torch.addcmul(take(self.bias) - mean * k, x, k)


@contextlib.contextmanager
def batch_statistics(network: nn.Module) -> Iterator[None]:
    """Inside, ``network``'s batch renormalisation layers normalise with the batch's statistics and update
    their running ones (training mode); outside, they use the running statistics (evaluation mode)."""
    layers = [module for module in network.modules() if isinstance(module, BatchRenorm)]
    for layer in layers:
        layer.train(True)
    try:
        yield
    finally:
        for layer in layers:
            layer.train(False)


class ResidualBlock(nn.Module):
    """SimBa's residual block (Lee et al. 2025): x + W₂ act(W₁ LayerNorm(x)), W₁ widening 4×, per member."""

    def __init__(self, n: int, width: int, activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.norm = EnsembleLayerNorm(n, width)
        self.up = EnsembleLinear(n, width, 4 * width)
        self.down = EnsembleLinear(n, 4 * width, width)
        self.activation = activation_fn()

    def forward(self, x: torch.Tensor, take: Take = same) -> torch.Tensor:
        hidden = self.activation.forward(self.up.forward(self.norm.forward(x, take), take))
        return x + self.down.forward(hidden, take)


# ---------------------------------------------------------------------------------------------- options
NET_TYPES = ("mlp", "simba")


@dataclass(frozen=True)
class CriticOptions:
    """The critics' architecture options, from ``policy_kwargs`` (defaults: SAC's and TD3's plain MLP critics).

    - ``layer_norm``: LayerNorm after each hidden linear layer, before the activation;
    - ``dropout_rate``: dropout after each hidden linear layer, before the LayerNorm (DroQ's order), in
      training updates only;
    - ``net_type="simba"``: a linear embedding, one SimBa residual block per ``net_arch`` entry (all of one
      width), a final LayerNorm and the output layer;
    - ``critic_subset``: REDQ's target, the minimum over this many target critics drawn at random for each
      update; the actor of SAC then maximises the mean of all critics;
    - ``batch_norm`` (CrossQ): batch renormalisation before each linear layer.
    """

    layer_norm: bool = False
    dropout_rate: float = 0.0
    net_type: str = "mlp"
    critic_subset: int | None = None
    batch_norm: BatchNormSettings | None = None


@dataclass(frozen=True)
class BatchNormSettings:
    """CrossQ's batch renormalisation settings, sb3-contrib's ``policy_kwargs`` names."""

    batch_norm_momentum: float = 0.01
    batch_norm_eps: float = 0.001
    renorm_warmup_steps: int = 100_000

    def layer(self, shape: tuple[int, ...]) -> BatchRenorm:
        return BatchRenorm(shape, self.batch_norm_momentum, self.batch_norm_eps, self.renorm_warmup_steps)


CRITIC_OPTION_KEYS = frozenset({"layer_norm", "dropout_rate", "net_type", "critic_subset"})
"""The ``policy_kwargs`` of :class:`CriticOptions` that SAC, TD3 and DDPG accept."""
BATCH_NORM_KEYS = frozenset({"batch_norm", "batch_norm_momentum", "batch_norm_eps", "renorm_warmup_steps"})
"""CrossQ's ``policy_kwargs`` for batch renormalisation."""


def batch_norm_settings(policy_kwargs: Mapping[str, Any]) -> BatchNormSettings | None:
    """CrossQ's batch renormalisation from ``policy_kwargs`` (on unless ``batch_norm=False``), checked."""
    if not policy_kwargs.get("batch_norm", True):
        return None
    settings = BatchNormSettings(
        **{key: policy_kwargs[key] for key in BATCH_NORM_KEYS - {"batch_norm"} if key in policy_kwargs}
    )
    if not 0 < settings.batch_norm_momentum <= 1:
        raise ValueError(
            f"batch_norm_momentum={settings.batch_norm_momentum} must be in (0, 1] (0.01 by default)."
        )
    if not settings.batch_norm_eps > 0:
        raise ValueError(f"batch_norm_eps={settings.batch_norm_eps} must be positive (0.001 by default).")
    if not (isinstance(settings.renorm_warmup_steps, int) and settings.renorm_warmup_steps >= 0):
        raise ValueError(f"renorm_warmup_steps={settings.renorm_warmup_steps!r} must be an int >= 0.")
    return settings


def critic_options(
    policy_kwargs: Mapping[str, Any], n_critics: int, batch_norm: BatchNormSettings | None = None
) -> CriticOptions:
    """The critic options in ``policy_kwargs``, checked against each other and the number of critics."""
    options = CriticOptions(
        layer_norm=policy_kwargs.get("layer_norm", False),
        dropout_rate=policy_kwargs.get("dropout_rate", 0.0),
        net_type=policy_kwargs.get("net_type", "mlp"),
        critic_subset=policy_kwargs.get("critic_subset"),
        batch_norm=batch_norm,
    )
    if options.layer_norm not in (True, False):
        raise ValueError(f"layer_norm={options.layer_norm!r} must be True or False.")
    if not (isinstance(options.dropout_rate, int | float) and 0 <= options.dropout_rate < 1):
        raise ValueError(f"dropout_rate={options.dropout_rate!r} must be in [0, 1) (DroQ uses 0.01).")
    if options.net_type not in NET_TYPES:
        raise ValueError(f"net_type={options.net_type!r} is not known: use one of {NET_TYPES}.")
    if options.net_type == "simba" and (options.layer_norm or options.dropout_rate or batch_norm is not None):
        raise ValueError(
            "net_type='simba' has its own LayerNorms and takes no layer_norm, dropout_rate or batch norm: "
            "leave those out, or use net_type='mlp'."
        )
    subset = options.critic_subset
    if subset is not None and not (isinstance(subset, int) and 1 <= subset <= n_critics):
        raise ValueError(
            f"critic_subset={subset!r} must be an int from 1 to n_critics={n_critics} (REDQ: "
            "policy_kwargs=dict(n_critics=10, critic_subset=2))."
        )
    return options
