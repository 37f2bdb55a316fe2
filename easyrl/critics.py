"""The batched critic ensemble: ``n_critics`` Q-networks Q_i(s, a) evaluated in one pass.

Each layer is one :class:`easyrl.blocks.EnsembleLinear` over all members; ``policy_kwargs``' critic
options (:class:`easyrl.blocks.CriticOptions`) add LayerNorm, dropout or batch renormalisation, or make
it a SimBa network. Members can be evaluated all together, some of them (REDQ's subset, TD3's first
critic), or as fixed functions of the actions (the actor's loss).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from easyrl.blocks import CriticOptions, EnsembleLayerNorm, EnsembleLinear, ResidualBlock, Take, dropout, same
from easyrl.networks import Features, FromObservations
from easyrl.observations import TensorObs


class CriticEnsemble(FromObservations):
    """``n_critics`` Q-networks Q_i(s, a), evaluated together in one batched pass.

    The members share one features extractor (as SB3's critics do), run once per pass. ``options``
    (``easyrl.blocks.CriticOptions``, from ``policy_kwargs``) adds LayerNorm, dropout or batch
    renormalisation to the MLP, or makes it a SimBa network of residual blocks; the default is
    SAC's and TD3's plain MLP, with the same parameters as before the options existed.
    """

    def __init__(
        self,
        features: int | Features,
        action_dim: int,
        hidden: Sequence[int],
        activation_fn: type[nn.Module],
        n_critics: int = 2,
        n_outputs: int = 1,
        options: CriticOptions = CriticOptions(),  # noqa: B008  # frozen: one shared default is safe
    ) -> None:
        super().__init__()
        self.n_critics = n_critics
        self.n_outputs = n_outputs
        self.options = options
        self.activation = activation_fn()
        input_dim = self._set_features(features) + action_dim
        if options.net_type == "simba":
            if not hidden or len(set(hidden)) != 1:
                raise ValueError(
                    f"net_type='simba' takes a net_arch of equal widths, one residual block each, not {list(hidden)}: "
                    "e.g. net_arch=[256, 256]."
                )
            width = hidden[0]
            self.layers = nn.ModuleList(
                [EnsembleLinear(n_critics, input_dim, width), EnsembleLinear(n_critics, width, n_outputs)]
            )
            self.blocks = nn.ModuleList(ResidualBlock(n_critics, width, activation_fn) for _ in hidden)
            self.final_norm = EnsembleLayerNorm(n_critics, width)
            return
        widths = [input_dim, *hidden, n_outputs]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, w_in, w_out) for w_in, w_out in itertools.pairwise(widths)
        )
        if options.layer_norm:
            self.norms = nn.ModuleList(EnsembleLayerNorm(n_critics, width) for width in hidden)
        if options.batch_norm is not None:
            self.batch_norms = nn.ModuleList(options.batch_norm.layer((n_critics, 1, w)) for w in widths[:-1])

    def forward(
        self,
        obs: TensorObs,
        actions: torch.Tensor,
        detach_params: bool = False,
        members: int | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Q-values of shape (n_critics, B), or (members, B) for only the first ``members`` critics (an
        int) or those indexed (a tensor); with ``n_outputs`` > 1 (TQC's quantiles), (n_critics, B, n_outputs).

        ``detach_params=True`` evaluates the critics as fixed functions: gradients flow to the
        inputs (the actor's actions) but none are computed for the critics' own weights (nor
        their extractor's). ``generator`` draws the dropout masks; without one there is no dropout.
        """
        x = torch.cat([self.extract_features(obs, fixed=detach_params), actions], dim=-1)
        take = _taker(members, detach_params)
        layers = cast(list[EnsembleLinear], self.layers)
        if self.options.net_type == "simba":
            x = layers[0].forward(x, take)
            for block in cast(list[ResidualBlock], self.blocks):
                x = block.forward(x, take)
            x = layers[1].forward(self.final_norm.forward(x, take), take)
        else:
            x = self._mlp(x, layers, take, generator)
        x = x.float()  # the losses and targets are float32 in any precision
        return x.squeeze(-1) if self.n_outputs == 1 else x

    def _mlp(
        self, x: torch.Tensor, layers: list[EnsembleLinear], take: Take, generator: torch.Generator | None
    ) -> torch.Tensor:
        options, last = self.options, len(layers) - 1
        for i, layer in enumerate(layers):
            if options.batch_norm is not None:
                x = self.batch_norms[i].forward(x, take)
            x = layer.forward(x, take)
            if i < last:
                if options.dropout_rate and generator is not None:
                    x = dropout(x, options.dropout_rate, generator)
                if options.layer_norm:
                    x = self.norms[i].forward(x, take)
                x = self.activation.forward(x)
        return x

    def target_members(self, generator: torch.Generator) -> torch.Tensor | None:
        """REDQ's random subset of ``critic_subset`` critics for one update's target (None: every critic)."""
        subset = self.options.critic_subset
        if subset is None or subset == self.n_critics:
            return None
        return torch.randperm(self.n_critics, generator=generator, device=generator.device)[:subset]


def _taker(members: int | torch.Tensor | None, detach: bool) -> Take:
    """How the ensemble's blocks read their members' parameters: a slice (its backward would zero-fill a
    full-size gradient, where slicing the output would not), an indexed subset, detached, or as they are."""
    if members is None and not detach:
        return same

    def take(tensor: torch.Tensor) -> torch.Tensor:
        if isinstance(members, int):
            tensor = tensor[:members]
        elif members is not None:
            tensor = tensor.index_select(0, members)
        return tensor.detach() if detach else tensor

    return take
