"""Network building blocks: MLPs, the two actor types and a state-value network (the critic ensemble is in
``easyrl.critics``), and how each reads observations through its features extractor.

Every network reads raw observation batches -- a tensor (B, *obs_shape) in its storage dtype, or for
a ``Dict`` space a dict of them -- through its features extractor (``easyrl.extractors``), after
the preprocessing that converts them to float32 and scales images; it works on actions scaled to
[-1, 1]. :class:`PolicyFeatures` builds each network's extractor from the observation space and
``policy_kwargs``: its own, or with ``share_features_extractor`` the actor's, which the critics
then read without training (SB3's rule). A network built from an int reads flat float features
of that size, as given. Target networks are frozen copies, each with its own copy of the extractor.

Inside a network, layers are applied through their ``forward`` rather than by calling them:
``nn.Module.__call__`` spends a few microseconds per call on hooks that these inner layers
never have, which for small networks is as long as a layer's own work. The networks
themselves are called normally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from easyrl.blocks import (
    BatchNormSettings,
)
from easyrl.extractors import (
    CombinedExtractor,
    ExtractorOptions,
    FlattenExtractor,
    Preprocessor,
    extractor_options,
    make_extractor,
)
from easyrl.observations import ObsSpace, TensorObs
from easyrl.validation import policy_name

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""Bounds of the SAC actor's log standard deviation (as in SB3 and the authors' code)."""

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mlp(
    input_dim: int,
    hidden: Sequence[int],
    activation_fn: type[nn.Module],
    batch_norm: BatchNormSettings | None = None,
) -> MLP:
    """Linear layers of the given widths, each followed by ``activation_fn``; with ``batch_norm`` (CrossQ's
    actor), batch renormalisation before each linear layer and after the last activation."""
    layers: list[nn.Module] = []
    for width in hidden:
        if batch_norm is not None:
            layers.append(batch_norm.layer((input_dim,)))
        layers += [nn.Linear(input_dim, width), activation_fn()]
        input_dim = width
    if batch_norm is not None and hidden:
        layers.append(batch_norm.layer((input_dim,)))
    return MLP(*layers)


class MLP(nn.Sequential):
    """An ``nn.Sequential`` (same parameter names) that applies its layers through ``forward``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer.forward(x)
        return x


class Features:
    """What a network reads its observations through: an extractor, the preprocessing before it, and
    whether the extractor is shared (the actor's: this network neither trains it nor differentiates it)."""

    def __init__(self, extractor: nn.Module, preprocess: Preprocessor | None, shared: bool = False) -> None:
        self.extractor = extractor
        self.preprocess = preprocess
        self.shared = shared

    @classmethod
    def flat(cls, dim: int) -> Features:
        """Flat float features of ``dim`` values, read as given (no conversion, no parameters)."""
        return cls(FlattenExtractor(gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)), None)


class PolicyFeatures:
    """The extractors of one policy's networks, built from the observation space and ``policy_kwargs``.

    ``actor()`` builds the actor's; ``critic()`` builds a critic's (or V's) own, or returns the actor's
    as shared when ``share_features_extractor`` is set (one extractor, trained by the actor's loss only).
    """

    def __init__(self, space: ObsSpace, policy: str | type | None, policy_kwargs: Mapping[str, Any]) -> None:
        self.space = space
        # ``policy`` is a name or one of easyrl's policy classes (SB3's SAC(CnnPolicy, env)); its name picks.
        self.options: ExtractorOptions = extractor_options(space, policy_name(policy), policy_kwargs)
        self._actor: nn.Module | None = None

    def _new(self) -> Features:
        return Features(
            make_extractor(self.space, self.options), Preprocessor(self.space, self.options.normalize_images)
        )

    def actor(self) -> Features:
        features = self._new()
        self._actor = features.extractor
        return features

    def critic(self) -> Features:
        if not self.options.share:
            return self._new()
        assert self._actor is not None, "build the actor first: the critics share its extractor"
        return Features(self._actor, Preprocessor(self.space, self.options.normalize_images), shared=True)


class FromObservations(nn.Module):
    """A network that reads observations through a features extractor (``features_extractor``)."""

    features_extractor: nn.Module

    def _set_features(self, features: int | Features) -> int:
        """Attach the extractor; returns its ``features_dim``, the width of the first layer's input."""
        if isinstance(features, int):
            features = Features.flat(features)
        self.features_extractor = features.extractor
        self._preprocess = features.preprocess
        self.share_features_extractor = features.shared
        self._extractor_has_parameters = any(True for _ in features.extractor.parameters())
        # Flat vectors (the common case) skip the extractor: at most a conversion to float32.
        self._flat_input = isinstance(features.extractor, FlattenExtractor) and features.extractor.flat_input
        # A Dict space's batch is a dict; a tensor given instead is its features (Policy.batch_features).
        self._reads_dict = features.preprocess is not None and features.preprocess.reads_dict
        return cast(int, features.extractor.features_dim)

    def extract_features(self, obs: TensorObs, fixed: bool = False) -> torch.Tensor:
        """The features (B, features_dim) of an observation batch; ``fixed`` (or a shared extractor)
        computes them without gradients. For a ``Dict`` space, a tensor is taken as the features."""
        if self._flat_input or (self._reads_dict and isinstance(obs, torch.Tensor)):
            flat = cast(torch.Tensor, obs)
            return flat if self._preprocess is None or flat.dtype == torch.float32 else flat.float()
        if self._preprocess is not None:
            obs = self._preprocess(obs)
        if self._extractor_has_parameters and (fixed or self.share_features_extractor):
            with torch.no_grad():
                return cast(torch.Tensor, self.features_extractor.forward(obs))
        return cast(torch.Tensor, self.features_extractor.forward(obs))

    def own_parameters(self) -> list[nn.Parameter]:
        """The parameters this network's loss trains: all of them, less a shared extractor's."""
        if not self.share_features_extractor:
            return list(self.parameters())
        shared = {id(p) for p in self.features_extractor.parameters()}
        return [p for p in self.parameters() if id(p) not in shared]


def in_float32(like: torch.Tensor) -> torch.autocast:
    """A region where matrix products run in float32 even inside a bf16 update (``precision="bf16"``)."""
    return torch.autocast(like.device.type, enabled=False)


def log_det_tanh(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh(u)²), elementwise, as 2 (log 2 − u − softplus(−2u)): the tanh change of variables
    of a squashed Gaussian's log-probability, stable where tanh saturates."""
    return 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))


class SquashedGaussianActor(FromObservations):
    """SAC's policy: a = tanh(u), u ~ N(μ(s), σ(s)²), with state-dependent, clamped log σ."""

    def __init__(
        self,
        features: int | Features,
        action_dim: int,
        hidden: Sequence[int],
        activation_fn: type[nn.Module],
        batch_norm: BatchNormSettings | None = None,
    ) -> None:
        super().__init__()
        features_dim = self._set_features(features)
        self.trunk = mlp(features_dim, hidden, activation_fn, batch_norm)
        last = hidden[-1] if hidden else features_dim
        self.mean = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)

    def forward(
        self,
        obs: TensorObs,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        reparameterize: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample actions (reparameterised) and their log-probabilities, shapes (B, A) and (B,).

        The log-probability includes the tanh change of variables,
        log π(a|s) = log N(u; μ, σ²) − Σ log(1 − tanh(u)²)  (Haarnoja et al. 2018, appendix C),
        with log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)) for numerical stability.
        ``reparameterize=False`` draws the same actions as constants: only log π(a|s) carries
        gradients to the parameters, as score-function (REINFORCE) estimates need.
        """
        mean, log_std, noise = self._draw(obs, generator, deterministic)
        if log_std is None or noise is None:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        pre_tanh = mean + noise * log_std.exp()
        if not reparameterize:
            pre_tanh = pre_tanh.detach()
            noise = (pre_tanh - mean) / log_std.exp()
        gaussian_log_prob = -0.5 * noise.pow(2) - log_std - LOG_SQRT_2PI
        # Summed before tanh(u) is taken: the autograd graph's order sets the gradients' rounding.
        log_prob = (gaussian_log_prob - log_det_tanh(pre_tanh)).sum(dim=-1)
        return torch.tanh(pre_tanh), log_prob

    def act(
        self, obs: TensorObs, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions only: the same draws as ``forward``, without the log-probability (for acting)."""
        mean, log_std, noise = self._draw(obs, generator, deterministic)
        if log_std is None or noise is None:
            return torch.tanh(mean)
        return torch.tanh(mean + noise * log_std.exp())

    def _draw(
        self, obs: TensorObs, generator: torch.Generator | None, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """μ(s) and, unless deterministic, the clamped log σ(s) and a standard normal draw ε."""
        latent = self.trunk.forward(self.extract_features(obs))
        mean = self.mean.forward(latent).float()  # float32 in any precision: the density's maths
        if deterministic:
            return mean, None, None
        log_std = self.log_std.forward(latent).float().clamp(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean, log_std, noise


class DeterministicActor(FromObservations):
    """TD3/DDPG's policy: a = tanh(f(s)), bounded to [-1, 1]."""

    def __init__(
        self, features: int | Features, action_dim: int, hidden: Sequence[int], activation_fn: type[nn.Module]
    ) -> None:
        super().__init__()
        features_dim = self._set_features(features)
        self.trunk = mlp(features_dim, hidden, activation_fn)
        self.head = nn.Linear(hidden[-1] if hidden else features_dim, action_dim)

    def forward(self, obs: TensorObs) -> torch.Tensor:
        return torch.tanh(self.head.forward(self.trunk.forward(self.extract_features(obs))).float())


class StateValue(FromObservations):
    """A state-value network V(s), shape (B,) (SAC v1's soft value function)."""

    def __init__(
        self, features: int | Features, hidden: Sequence[int], activation_fn: type[nn.Module]
    ) -> None:
        super().__init__()
        features_dim = self._set_features(features)
        self.trunk = mlp(features_dim, hidden, activation_fn)
        self.head = nn.Linear(hidden[-1] if hidden else features_dim, 1)

    def forward(self, obs: TensorObs) -> torch.Tensor:
        return self.head.forward(self.trunk.forward(self.extract_features(obs))).float().squeeze(-1)


class Policy(nn.Module):
    """An algorithm's networks, with the one method the training loop and ``predict`` need."""

    def batch_features(self, obs: TensorObs) -> TensorObs:
        """``obs`` for every network of the policy: as given, or, for ``Dict`` observations that every
        network reads through the same parameter-free extractor (easyrl's ``CombinedExtractor`` without
        images), their features, computed once instead of once per network."""
        networks = self.__dict__.get("_same_fixed_features")
        if networks is None:
            networks = [m for m in self.modules() if isinstance(m, FromObservations)]
            if not networks or not all(_fixed_dict_features(n) for n in networks):
                networks = []
            self.__dict__["_same_fixed_features"] = networks  # the networks never change once built
        if not networks or not isinstance(obs, dict):
            return obs
        return networks[0].extract_features(obs, fixed=True)

    def act(
        self, obs: TensorObs, deterministic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions in [-1, 1], shape (B, action_dim), for a raw observation batch (as stored)."""
        raise NotImplementedError


def _fixed_dict_features(network: FromObservations) -> bool:
    """Whether ``network`` reads ``Dict`` observations through a ``CombinedExtractor`` of flattening only:
    features without parameters, the same for any network built for the same space."""
    extractor = network.features_extractor
    return (
        network._reads_dict
        and type(extractor) is CombinedExtractor
        and all(type(part) is FlattenExtractor for part in extractor.extractors.values())
    )
