"""Checks and conversions run when a model is built: train frequency, device, spaces."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv


class TrainFrequency(NamedTuple):
    frequency: int
    unit: str  # "step" or "episode"


def parse_train_freq(train_freq: Any) -> TrainFrequency:
    """``4`` -> (4, "step"); ``(1, "episode")`` -> (1, "episode"), with a clear error otherwise."""
    if isinstance(train_freq, int) and not isinstance(train_freq, bool) and train_freq > 0:
        return TrainFrequency(train_freq, "step")
    if (
        isinstance(train_freq, (tuple, list))
        and len(train_freq) == 2
        and isinstance(train_freq[0], int)
        and train_freq[0] > 0
        and train_freq[1] in ("step", "episode")
    ):
        return TrainFrequency(int(train_freq[0]), str(train_freq[1]))
    raise ValueError(
        f"train_freq={train_freq!r} is invalid: train_freq must be a positive integer (env steps) "
        "or a tuple (n, 'step') / (n, 'episode') with n >= 1."
    )


def valid_device(device: Any) -> bool:
    if isinstance(device, torch.device):
        return True
    return isinstance(device, str) and (
        device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use device='cpu' or 'auto'."
        )
    return resolved


def check_spaces(env: VectorEnv, algorithm: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The single-env observation and action spaces, checked for what these algorithms support."""
    obs_space, action_space = env.single_observation_space, env.single_action_space
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"{algorithm} needs a continuous (Box) action space, but the env has {action_space}. "
            "For discrete actions use a discrete-action algorithm such as DQN."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"{algorithm} needs finite action bounds, but the action space is {action_space}. "
            "Wrap the env with gymnasium.wrappers.RescaleAction or ClipAction to give it bounds."
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(
            f"easyrl supports Box observation spaces, but the env has {type(obs_space).__name__}. "
            "Wrap the env with gymnasium.wrappers.FlattenObservation."
        )
    return obs_space, action_space
