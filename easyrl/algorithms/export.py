"""A model's deterministic policy as a file that runs without easyrl: ONNX or TorchScript (``model.export``).

:class:`DeployedPolicy` is the whole path from an observation, as the env gives it, to an action in the
env's bounds: the model's observation normalisation (its running mean and standard deviation, frozen into
constants), the actor's features extractor with its image preprocessing (float32, /255), the actor's
deterministic action in [-1, 1], and the scaling to ``[low, high]``. It is traced once with
``torch.jit.trace`` (no Python control flow survives: the branches taken for this model are fixed) and
written either as TorchScript (``.pt``, ``torch.jit.load``) or as ONNX (``.onnx``, with torch's
TorchScript-based exporter, which needs no extra package; run it with onnxruntime).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from easyrl.extras import require

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm

FORMATS = {".onnx": "ONNX", ".pt": "TorchScript"}
OUTPUT_NAME = "action"
BOX_INPUT_NAME = "observation"


class DeployedPolicy(nn.Module):
    """Raw observations in, deterministic actions in the env's bounds out, shape (B, *action_shape).

    Takes one tensor (B, *obs_shape) for a ``Box`` space, or one per key, in the space's key order, for a
    ``Dict`` space; dtypes are the observation space's (uint8 for images).
    """

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, model: OffPolicyAlgorithm[Any]) -> None:
        super().__init__()
        model._setup()
        self.actor = copy.deepcopy(model._policy.actor).cpu().eval().requires_grad_(False)
        space = model.observation_space
        self.keys: list[str] | None = list(space.spaces) if isinstance(space, gym.spaces.Dict) else None
        action_space = model.action_space
        self.action_shape = tuple(action_space.shape)
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        self.scaling: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
        normalizer = model._normalizer
        if normalizer is not None and normalizer.norm_obs:
            statistics = (
                normalizer.obs_rms if isinstance(normalizer.obs_rms, dict) else {"": normalizer.obs_rms}
            )
            for key, rms in statistics.items():
                mean = torch.as_tensor(rms.mean, dtype=torch.float32)
                std = torch.as_tensor(np.sqrt(rms.var + normalizer.epsilon), dtype=torch.float32)
                self.scaling[key] = (mean, std, normalizer.clip_obs)

    def _normalize(self, key: str, obs: torch.Tensor) -> torch.Tensor:
        if key not in self.scaling:
            return obs
        mean, std, clip = self.scaling[key]
        return ((obs.float() - mean) / std).clamp(-clip, clip)

    def forward(self, *observations: torch.Tensor) -> torch.Tensor:
        if self.keys is None:
            obs: Any = self._normalize("", observations[0])
        else:
            obs = {
                key: self._normalize(key, value) for key, value in zip(self.keys, observations, strict=True)
            }
        act = getattr(self.actor, "act", None)
        scaled = act(obs, True, None) if act is not None else self.actor(obs)
        actions = self.low + (scaled.reshape(-1, *self.action_shape) + 1.0) * 0.5 * (self.high - self.low)
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def example_inputs(self, space: gym.Space[Any], batch: int = 2) -> tuple[torch.Tensor, ...]:
        spaces = [space] if self.keys is None else [space[key] for key in self.keys]  # type: ignore[index]
        return tuple(torch.as_tensor(np.stack([s.sample() for _ in range(batch)])) for s in spaces)

    def input_names(self) -> list[str]:
        return [BOX_INPUT_NAME] if self.keys is None else list(self.keys)


def export_policy(model: OffPolicyAlgorithm[Any], path: str | Path) -> Path:
    """Write ``model``'s deterministic policy to ``path``: ``.onnx`` (ONNX) or ``.pt`` (TorchScript); returns it."""
    target = Path(path)
    if target.suffix not in FORMATS:
        raise ValueError(
            f"cannot export to {target.name!r}: name the file with .onnx (ONNX, for onnxruntime and other "
            "runtimes) or .pt (TorchScript, for torch.jit.load)."
        )
    onnx = require("onnx", "onnx", "Exporting to ONNX") if target.suffix == ".onnx" else None
    deployed = DeployedPolicy(model)
    inputs = deployed.example_inputs(model.observation_space)
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing fixes this model's branches (its dtypes, its extractor), which is what is wanted here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch 2.13 marks torch.jit (and the TorchScript-based ONNX exporter, which unlike torch.export's
        # needs no onnxscript) deprecated; both still write files that load and run.
        warnings.simplefilter("ignore", DeprecationWarning)
        if target.suffix == ".pt":
            torch.jit.save(torch.jit.trace(deployed, inputs, check_trace=False), str(target))
            return target
        names = deployed.input_names()
        torch.onnx.export(
            deployed, inputs, str(target), dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT_NAME]},
        )  # fmt: skip
    assert onnx is not None
    onnx.checker.check_model(str(target))
    return target
