"""Features extractors: what turns an observation batch into the flat features a network's layers read.

SB3's classes, names and constructor signatures, so an extractor written for SB3 works here:

- :class:`FlattenExtractor` for any ``Box`` (vectors, frame stacks, ...): a reshape to (B, n);
- :class:`NatureCNN` for images (Mnih et al. 2015, the Nature DQN's convolutional torso);
- :class:`CombinedExtractor` for ``Dict`` observations: one of the two above per key, concatenated.

Before an extractor sees them, observations are preprocessed (:class:`Preprocessor`): converted to
float32 and, for image spaces with ``normalize_images``, divided by 255; nothing else. The storage
dtype therefore stays what the env gives (uint8 images stay uint8 in the replay buffer).

:func:`default_extractor_class` picks the extractor from the space and the policy name
(``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or None), :func:`extractor_options` reads
the extractor's entries of ``policy_kwargs``, and :func:`make_extractor` builds and checks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from easyrl.observations import ObsSpace, TensorObs

IMAGE_CHANNELS = (1, 3, 4)
"""Channel counts of an image (grey, RGB, RGBA) when its layout is checked (``check_channels``)."""

MIN_IMAGE_SIZE = 36
"""The smallest height and width NatureCNN's three convolutions fit (8 stride 4, 4 stride 2, 3 stride 1)."""

POLICY_KWARGS_KEYS = frozenset(
    {"features_extractor_class", "features_extractor_kwargs", "share_features_extractor", "normalize_images"}
)
"""The ``policy_kwargs`` entries that configure the features extractors (SB3's names)."""


# ---------------------------------------------------------------------------------------------- images
IMAGE_HINT = (
    "Images are Box spaces of dtype uint8 in [0, 255], shaped (channels, height, width) or (height, width, "
    "channels) with 1, 3 or 4 channels; for float images already scaled to [0, 1] pass "
    "policy_kwargs=dict(normalize_images=False); for other observations use policy='MlpPolicy'."
)
"""What an image space is, and the ways out when a space is not one."""


def is_image_space_channels_first(space: gym.spaces.Box) -> bool:
    """Whether a 3-D image space is laid out (channels, height, width): its smallest axis comes first.

    (SB3's rule; a tie between the first and the last axis counts as channels first.)
    """
    return int(np.argmin(space.shape)) == 0


def image_space_problem(
    space: gym.Space[Any], check_channels: bool = False, normalized_image: bool = False
) -> str | None:
    """Why ``space`` is not an image space for :func:`is_image_space`, or None when it is one."""
    if not isinstance(space, gym.spaces.Box):
        return f"it is a {type(space).__name__} space, not a Box"
    if len(space.shape) != 3:
        return (
            f"its shape {tuple(space.shape)} is not 3-D (channels, height, width or height, width, channels)"
        )
    if not normalized_image:
        if space.dtype != np.uint8:
            return f"its dtype is {space.dtype}, not uint8"
        if np.any(space.low != 0) or np.any(space.high != 255):
            return f"its bounds are [{np.min(space.low)}, {np.max(space.high)}], not [0, 255]"
    if check_channels:
        shape = space.shape
        channels = shape[0] if is_image_space_channels_first(space) else shape[-1]
        if channels not in IMAGE_CHANNELS:
            return (
                f"its shape {tuple(shape)} has no channel axis of 1, 3 or 4 (grey, RGB, RGBA) first or last, "
                "the smallest axis being the channels"
            )
    return None


def is_image_space(
    space: gym.Space[Any], check_channels: bool = False, normalized_image: bool = False
) -> bool:
    """Whether ``space`` holds images: a 3-D ``Box`` of uint8 in [0, 255] (SB3's test).

    ``check_channels`` also requires 1, 3 or 4 channels on the first or the last (smallest) axis;
    ``normalized_image`` drops the dtype and bounds conditions (float images already in [0, 1]).
    """
    return image_space_problem(space, check_channels, normalized_image) is None


# ---------------------------------------------------------------------------------------------- preprocessing
class Preprocessor:
    """Observation batches in their storage dtype -> the float32 tensors an extractor reads.

    Each tensor becomes float32; those of image spaces are divided by 255 when ``normalize_images``.
    For a ``Dict`` space, each key's tensor is preprocessed for its own entry.
    """

    def __init__(self, observation_space: ObsSpace, normalize_images: bool = True) -> None:
        self._image: bool | dict[str, bool]
        if isinstance(observation_space, gym.spaces.Dict):
            self._image = {
                key: normalize_images and is_image_space(sub) for key, sub in observation_space.spaces.items()
            }
        else:
            self._image = normalize_images and is_image_space(observation_space)

    @property
    def reads_dict(self) -> bool:
        """Whether the observations are a ``Dict`` space's (a dict of tensors per batch)."""
        return isinstance(self._image, dict)

    def __call__(self, obs: TensorObs) -> TensorObs:
        image = self._image
        if isinstance(image, dict):
            assert isinstance(obs, dict), "a Dict observation space needs a dict of tensors"
            return {key: _preprocess(obs[key], scale) for key, scale in image.items()}
        assert isinstance(obs, torch.Tensor), "a Box observation space needs one tensor"
        return _preprocess(obs, image)


def _preprocess(x: torch.Tensor, image: bool) -> torch.Tensor:
    if x.dtype != torch.float32:
        x = x.float()
    return x / 255.0 if image else x


# ---------------------------------------------------------------------------------------------- extractors
class BaseFeaturesExtractor(nn.Module):
    """The base of the features extractors: a module from observations to features (B, ``features_dim``)."""

    def __init__(self, observation_space: gym.Space[Any], features_dim: int = 0) -> None:
        super().__init__()
        if features_dim <= 0:
            raise ValueError(f"features_dim must be a positive int, got {features_dim!r}")
        self._observation_space = observation_space
        self._features_dim = features_dim

    @property
    def features_dim(self) -> int:
        """The number of features per observation."""
        return self._features_dim


class FlattenExtractor(BaseFeaturesExtractor):
    """The observation as it is, flattened to (B, n): no parameters, and for a 1-D ``Box`` no work."""

    def __init__(self, observation_space: gym.Space[Any]) -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                f"FlattenExtractor reads a Box space, not {type(observation_space).__name__}; for Dict "
                "observations use CombinedExtractor (policy='MultiInputPolicy')."
            )
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        self.flat_input = len(observation_space.shape) == 1
        """Whether observation batches already come flat, (B, n): then this extractor does nothing."""

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations if self.flat_input else observations.reshape(observations.shape[0], -1)


class NatureCNN(BaseFeaturesExtractor):
    """The Nature DQN's CNN (Mnih et al. 2015): three convolutions, then one linear layer, all ReLU.

    Conv 32 8×8 stride 4, conv 64 4×4 stride 2, conv 64 3×3 stride 1, flatten, linear to
    ``features_dim``. Images may come channels first (C, H, W) or last (H, W, C; permuted here, so
    the replay buffer keeps the env's layout); the smaller axis of the first and last is the channels.
    They must be at least 36×36. ``normalized_image=True`` accepts float images (already in [0, 1],
    from ``normalize_images=False``) instead of uint8 ones in [0, 255].
    """

    def __init__(
        self, observation_space: gym.Space[Any], features_dim: int = 512, normalized_image: bool = False
    ) -> None:
        problem = image_space_problem(observation_space, normalized_image=normalized_image)
        if problem is not None:
            raise ValueError(
                f"NatureCNN reads images, but {observation_space} is not one: {problem}. {IMAGE_HINT}"
            )
        assert isinstance(observation_space, gym.spaces.Box)
        super().__init__(observation_space, features_dim)
        shape = observation_space.shape
        self.channels_first = is_image_space_channels_first(observation_space)
        channels, height, width = shape if self.channels_first else (shape[2], shape[0], shape[1])
        if min(height, width) < MIN_IMAGE_SIZE:
            raise ValueError(
                f"NatureCNN needs images of at least {MIN_IMAGE_SIZE}×{MIN_IMAGE_SIZE}, but {observation_space} "
                f"holds {height}×{width} ones ({'channels first' if self.channels_first else 'channels last'}). "
                "Resize them (gymnasium.wrappers.ResizeObservation), flatten them (policy='MlpPolicy') or pass "
                "your own policy_kwargs['features_extractor_class']."
            )
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        for kernel, stride in ((8, 4), (4, 2), (3, 1)):
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        self.linear = nn.Sequential(nn.Linear(64 * height * width, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations if self.channels_first else observations.permute(0, 3, 1, 2)
        for layer in self.cnn:
            x = layer.forward(x)
        for layer in self.linear:
            x = layer.forward(x)
        return x


class CombinedExtractor(BaseFeaturesExtractor):
    """For ``Dict`` observations: each key through its own extractor, the features concatenated.

    Image entries (:func:`is_image_space`) go through a :class:`NatureCNN` with ``cnn_output_dim``
    features, every other entry is flattened; the keys keep the space's order.
    """

    def __init__(
        self, observation_space: gym.Space[Any], cnn_output_dim: int = 256, normalized_image: bool = False
    ) -> None:
        if not isinstance(observation_space, gym.spaces.Dict):
            raise ValueError(
                f"CombinedExtractor reads a Dict space, not {type(observation_space).__name__}; for a Box use "
                "policy='MlpPolicy' or 'CnnPolicy'."
            )
        extractors: dict[str, BaseFeaturesExtractor] = {}
        for key, sub in observation_space.spaces.items():
            if is_image_space(sub, normalized_image=normalized_image):
                extractors[key] = NatureCNN(
                    sub, features_dim=cnn_output_dim, normalized_image=normalized_image
                )
            else:
                extractors[key] = FlattenExtractor(sub)
        super().__init__(observation_space, sum(e.features_dim for e in extractors.values()))
        self.extractors = nn.ModuleDict(extractors)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(
            [extractor.forward(observations[key]) for key, extractor in self.extractors.items()], dim=1
        )


BUILT_IN = (FlattenExtractor, NatureCNN, CombinedExtractor)
"""easyrl's extractor classes (a model file names them instead of pickling them)."""


# ---------------------------------------------------------------------------------------------- choosing
def default_extractor_class(
    space: ObsSpace, policy: str | None, normalize_images: bool = True
) -> type[BaseFeaturesExtractor]:
    """The extractor SB3's policy of that name would use; None picks by the space.

    ``"MlpPolicy"`` flattens a Box (images too), ``"CnnPolicy"`` needs an image, ``"MultiInputPolicy"``
    a Dict; a Dict gets the combined extractor under any name but ``"CnnPolicy"``, and with no name an
    image (1, 3 or 4 channels first or last) gets NatureCNN. Raises ValueError on a mismatch.
    """
    is_dict = isinstance(space, gym.spaces.Dict)
    if policy == "MultiInputPolicy" and not is_dict:
        raise ValueError(
            f"policy='MultiInputPolicy' is for Dict observation spaces, but the env's is {space}; use "
            "policy='MlpPolicy' (vectors) or 'CnnPolicy' (images), or leave policy out to choose from the space."
        )
    if is_dict:
        if policy == "CnnPolicy":
            raise ValueError(
                "policy='CnnPolicy' reads one image, but the env's observations are a Dict; use "
                "policy='MultiInputPolicy' (a CNN for each image entry, the others flattened) or leave it out."
            )
        return CombinedExtractor
    problem = image_space_problem(space, check_channels=True, normalized_image=not normalize_images)
    if policy == "CnnPolicy" and problem is not None:
        raise ValueError(
            f"policy='CnnPolicy' needs image observations, but {space} is not one: {problem}. {IMAGE_HINT}"
        )
    if policy == "CnnPolicy" or (policy is None and problem is None):
        return NatureCNN
    return FlattenExtractor


@dataclass(frozen=True)
class ExtractorOptions:
    """The features-extractor entries of ``policy_kwargs``, checked (SB3's names and defaults)."""

    extractor_class: Any
    extractor_kwargs: Mapping[str, Any]
    share: bool
    normalize_images: bool


def extractor_options(
    space: ObsSpace, policy: str | None, policy_kwargs: Mapping[str, Any]
) -> ExtractorOptions:
    """Read and check ``features_extractor_class``/``_kwargs``, ``share_features_extractor``, ``normalize_images``."""
    normalize_images = policy_kwargs.get("normalize_images", True)
    share = policy_kwargs.get("share_features_extractor", False)
    for name, value in (("normalize_images", normalize_images), ("share_features_extractor", share)):
        if not isinstance(value, bool):
            raise ValueError(f"policy_kwargs[{name!r}]={value!r} is invalid: use True or False.")
    kwargs = policy_kwargs.get("features_extractor_kwargs") or {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
        raise ValueError(
            f"policy_kwargs['features_extractor_kwargs']={kwargs!r} is invalid: use a dict of keyword arguments "
            "for the extractor's constructor, e.g. dict(features_dim=256)."
        )
    extractor_class = policy_kwargs.get("features_extractor_class")
    if extractor_class is None:
        extractor_class = default_extractor_class(space, policy, normalize_images)
    elif not callable(extractor_class):
        raise ValueError(
            f"policy_kwargs['features_extractor_class']={extractor_class!r} is invalid: pass an nn.Module class "
            "taking (observation_space, **features_extractor_kwargs), e.g. NatureCNN."
        )
    if (
        not normalize_images
        and isinstance(extractor_class, type)
        and issubclass(extractor_class, (NatureCNN, CombinedExtractor))
    ):
        kwargs = {"normalized_image": True, **kwargs}  # float images in [0, 1]: no uint8 or bounds check
    return ExtractorOptions(extractor_class, dict(kwargs), share, normalize_images)


def make_extractor(space: ObsSpace, options: ExtractorOptions) -> nn.Module:
    """A new extractor of ``options``' class for ``space``; it must be an nn.Module with an int ``features_dim``."""
    extractor = options.extractor_class(space, **options.extractor_kwargs)
    name = getattr(options.extractor_class, "__name__", repr(options.extractor_class))
    if not isinstance(extractor, nn.Module):
        raise TypeError(
            f"features_extractor_class {name} built a {type(extractor).__name__}, not an nn.Module."
        )
    dim = getattr(extractor, "features_dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise TypeError(
            f"features_extractor_class {name} has features_dim={dim!r} after construction; an extractor must set "
            "a positive int features_dim, the width of the features its forward returns (subclass "
            "easyrl.extractors.BaseFeaturesExtractor and pass it to super().__init__, as in SB3)."
        )
    return extractor
