"""Observation and reward normalisation with running statistics (what SB3's ``VecNormalize`` computes).

Observations are scaled to ``clip((o − μ) / sqrt(σ² + ε), ±clip_obs)`` with the running mean μ and
variance σ² of every observation the envs returned, per Dict key where the space is a Dict (only
the keys in ``norm_obs_keys``; image keys never). Rewards are divided by the running standard
deviation of the discounted return R_t = γ R_{t−1} + r_t (reset at each episode's end), and clipped
to ±clip_reward; their mean is not subtracted, which would change what is optimal.

A :class:`Normalizer` belongs to a model: the model stores raw observations and rewards in its
replay buffer, and normalises each batch when it is drawn, with the statistics of that moment (as
SB3 does), so HER's relabelled rewards are computed on raw goals first. The statistics go into the
model file as float64 arrays and JSON (never a pickle), and ``easyrl.envs.VecNormalize`` writes them as
a file of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch

from easyrl.observations import Obs, ObsSpace, TensorObs

if TYPE_CHECKING:
    from easyrl.buffers import ReplayBatch

SETTINGS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs_keys")
"""The settings of a normaliser: SB3's ``VecNormalize`` parameters (besides ``training``)."""


class RunningMeanStd:
    """Mean and variance of every sample seen, merged batch by batch (Chan et al. 1979), in float64.

    Starts from a count of ``epsilon`` with mean 0 and variance 1, as SB3's does.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, *self.mean.shape)
        if batch.shape[0] == 0:
            return
        batch_count = batch.shape[0]
        if batch_count == 1:  # one env's step: its mean is itself and its variance 0, exactly as computed
            batch_mean, batch_var = batch[0], np.zeros_like(self.var)
        else:
            batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total


class Normalizer:
    """Running statistics of a model's observations and returns, and the scaling they define.

    Args:
        observation_space: the envs' (single) observation space, a Box or a Dict of Boxes.
        num_envs: how many envs step together (each has its own running return).
        norm_obs, norm_reward: whether to scale observations and rewards.
        clip_obs, clip_reward: the bounds of the scaled values.
        gamma: the discount of the running return that rewards are scaled by.
        epsilon: added to the variances before the square root.
        norm_obs_keys: for a Dict space, the keys to scale (default: every key that is not an image).
        training: whether new steps update the statistics (False: frozen, as for evaluation).
    """

    def __init__(
        self,
        observation_space: ObsSpace,
        num_envs: int,
        norm_obs: bool = True,
        norm_reward: bool = True,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        gamma: float = 0.99,
        epsilon: float = 1e-8,
        norm_obs_keys: Iterable[str] | None = None,
        training: bool = True,
    ) -> None:
        for name, value in (("clip_obs", clip_obs), ("clip_reward", clip_reward), ("epsilon", epsilon)):
            if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"{name}={value!r} is invalid: it must be a number > 0.")
        if not (isinstance(gamma, int | float) and 0 <= gamma <= 1):
            raise ValueError(f"gamma={gamma!r} is invalid: it must be a number in [0, 1].")
        for name, flag in (("norm_obs", norm_obs), ("norm_reward", norm_reward), ("training", training)):
            if not isinstance(flag, bool | np.bool_):
                raise ValueError(f"{name}={flag!r} is invalid: it must be True or False.")
        self.observation_space = observation_space
        self.num_envs = num_envs
        self.norm_obs, self.norm_reward, self.training = bool(norm_obs), bool(norm_reward), bool(training)
        self.clip_obs, self.clip_reward = float(clip_obs), float(clip_reward)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        self.norm_obs_keys = _obs_keys(observation_space, norm_obs_keys) if self.norm_obs else None
        self.obs_rms: RunningMeanStd | dict[str, RunningMeanStd] = self._new_obs_statistics()
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self._version = 0
        self._tensors: dict[tuple[torch.device, str], tuple[int, torch.Tensor, torch.Tensor]] = {}

    def _new_obs_statistics(self) -> RunningMeanStd | dict[str, RunningMeanStd]:
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            return {key: RunningMeanStd(tuple(space[key].shape or ())) for key in self.norm_obs_keys or ()}
        return RunningMeanStd(tuple(space.shape or ()))

    def settings(self) -> dict[str, Any]:
        """The settings, as JSON values (``training`` included)."""
        keys = None if self.norm_obs_keys is None else list(self.norm_obs_keys)
        values = (
            self.norm_obs,
            self.norm_reward,
            self.clip_obs,
            self.clip_reward,
            self.gamma,
            self.epsilon,
            keys,
        )
        return {**dict(zip(SETTINGS, values, strict=True)), "training": self.training}

    @property
    def fresh(self) -> bool:
        """True when no step has updated the statistics yet."""
        return self._version == 0 and self.ret_rms.count < 1

    # ------------------------------------------------------------------ updating
    def update(self, obs: Obs | None, rewards: np.ndarray | None = None, dones: np.ndarray | None = None,
               valid: np.ndarray | None = None) -> None:  # fmt: skip
        """Add the observations the envs returned and, after a step, its rewards (only where ``valid``),
        ending the running returns where ``dones``; nothing while not ``training``."""
        if not self.training:
            return
        if obs is not None and self.norm_obs:
            for key, rms in self._obs_statistics():
                rms.update(
                    cast(dict[str, np.ndarray], obs)[key] if key is not None else cast(np.ndarray, obs)
                )
        if rewards is not None:
            rows = np.ones(self.num_envs, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
            self.returns[rows] = self.returns[rows] * self.gamma + np.asarray(rewards, dtype=np.float64)[rows]
            self.ret_rms.update(self.returns[rows])
            if dones is not None:
                self.returns[np.asarray(dones, dtype=bool)] = 0.0
        self._version += 1

    def reset_returns(self) -> None:
        """All envs start new episodes: their running returns start from zero."""
        self.returns[:] = 0.0

    def _obs_statistics(self) -> list[tuple[str | None, RunningMeanStd]]:
        if isinstance(self.obs_rms, dict):
            return list(self.obs_rms.items())
        return [(None, self.obs_rms)]

    # ------------------------------------------------------------------ scaling (numpy)
    def normalize_obs(self, obs: Obs) -> Obs:
        """Scaled observations (float32), a new array or dict; unscaled keys are passed through."""
        if not self.norm_obs:
            return obs
        if isinstance(self.obs_rms, dict):
            assert isinstance(obs, Mapping)
            scaled = dict(obs)
            for key, rms in self.obs_rms.items():
                scaled[key] = self._scale(obs[key], rms)
            return scaled
        return self._scale(np.asarray(obs), self.obs_rms)

    def _scale(self, values: np.ndarray, rms: RunningMeanStd) -> np.ndarray:
        scaled = (np.asarray(values, dtype=np.float64) - rms.mean) / np.sqrt(rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def unnormalize_obs(self, obs: Obs) -> Obs:
        """The inverse of :meth:`normalize_obs` (where no value was clipped)."""
        if not self.norm_obs:
            return obs
        if isinstance(self.obs_rms, dict):
            assert isinstance(obs, Mapping)
            restored = dict(obs)
            for key, rms in self.obs_rms.items():
                restored[key] = (np.asarray(obs[key]) * np.sqrt(rms.var + self.epsilon) + rms.mean).astype(
                    np.float32
                )
            return restored
        rms = self.obs_rms
        return (np.asarray(obs) * np.sqrt(rms.var + self.epsilon) + rms.mean).astype(np.float32)

    def normalize_reward(self, rewards: np.ndarray) -> np.ndarray:
        if not self.norm_reward:
            return np.asarray(rewards)
        scaled = np.asarray(rewards, dtype=np.float64) / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    def unnormalize_reward(self, rewards: np.ndarray) -> np.ndarray:
        if not self.norm_reward:
            return np.asarray(rewards)
        return (np.asarray(rewards) * np.sqrt(self.ret_rms.var + self.epsilon)).astype(np.float32)

    # ------------------------------------------------------------------ scaling (a drawn batch)
    def normalize_batch(self, batch: ReplayBatch) -> ReplayBatch:
        """The batch with scaled observations and rewards (as float32 tensors on the batch's device)."""
        observations, next_observations, rewards = batch.observations, batch.next_observations, batch.rewards
        if self.norm_obs:
            observations = self.normalize_tensor_obs(observations)
            next_observations = self.normalize_tensor_obs(next_observations)
        if self.norm_reward:
            scale = float(np.sqrt(self.ret_rms.var + self.epsilon))
            rewards = (rewards / scale).clamp(-self.clip_reward, self.clip_reward)
        return batch._replace(observations=observations, next_observations=next_observations, rewards=rewards)

    def normalize_tensor_obs(self, obs: TensorObs) -> TensorObs:
        if isinstance(obs, dict):
            scaled = dict(obs)
            for key in self.norm_obs_keys or ():
                scaled[key] = self._scale_tensor(obs[key], key)
            return scaled
        return self._scale_tensor(obs, "")

    def _scale_tensor(self, values: torch.Tensor, key: str) -> torch.Tensor:
        cached = self._tensors.get((values.device, key))
        if cached is None or cached[0] != self._version:
            rms = self.obs_rms[key] if isinstance(self.obs_rms, dict) else self.obs_rms
            mean = torch.as_tensor(rms.mean, dtype=torch.float32, device=values.device)
            std = torch.as_tensor(np.sqrt(rms.var + self.epsilon), dtype=torch.float32, device=values.device)
            cached = (self._version, mean, std)
            self._tensors[(values.device, key)] = cached
        return ((values.float() - cached[1]) / cached[2]).clamp(-self.clip_obs, self.clip_obs)

    # ------------------------------------------------------------------ files
    def to_file(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON description, float64 arrays): everything needed to continue exactly."""
        arrays: dict[str, np.ndarray] = {}
        for key, rms in self._obs_statistics():
            name = "obs" if key is None else f"obs.{key}"
            arrays[f"{name}.mean"], arrays[f"{name}.var"] = rms.mean, rms.var
            arrays[f"{name}.count"] = np.array(rms.count, dtype=np.float64)
        arrays["ret.mean"], arrays["ret.var"] = np.asarray(self.ret_rms.mean), np.asarray(self.ret_rms.var)
        arrays["ret.count"] = np.array(self.ret_rms.count, dtype=np.float64)
        arrays["returns"] = self.returns
        return {**self.settings(), "updates": self._version}, {k: np.array(v) for k, v in arrays.items()}

    @classmethod
    def from_file(
        cls, description: Any, arrays: Mapping[str, Any], observation_space: ObsSpace, num_envs: int
    ) -> Normalizer:
        """The normaliser :meth:`to_file` described, checked first (it may come from a stranger's file):
        ValueError or TypeError naming what is wrong."""
        if not isinstance(description, dict) or not set(SETTINGS) | {"training"} <= set(description):
            raise ValueError(
                f"the normalisation settings must be a JSON object with {', '.join(SETTINGS)} and training"
            )
        settings = {name: description[name] for name in (*SETTINGS, "training")}
        keys = settings["norm_obs_keys"]
        if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise ValueError("norm_obs_keys must be null or a list of strings")
        normalizer = cls(observation_space, num_envs, **settings)
        expected = {name: value for name, value in normalizer.to_file()[1].items()}
        if set(arrays) != set(expected):
            raise ValueError(f"the statistics have the arrays {sorted(arrays)}, expected {sorted(expected)}")
        for name, reference in expected.items():
            value = np.asarray(arrays[name])
            if value.shape != reference.shape or value.dtype != np.float64 or not np.isfinite(value).all():
                raise ValueError(
                    f"statistics array {name!r} must be finite float64 of shape {reference.shape}"
                )
            if (name.endswith(".var") or name.endswith(".count")) and (value < 0).any():
                raise ValueError(f"statistics array {name!r} must not be negative")
        for key, rms in normalizer._obs_statistics():
            name = "obs" if key is None else f"obs.{key}"
            rms.mean, rms.var = np.array(arrays[f"{name}.mean"]), np.array(arrays[f"{name}.var"])
            rms.count = float(arrays[f"{name}.count"])
        normalizer.ret_rms.mean, normalizer.ret_rms.var = (
            np.array(arrays["ret.mean"]),
            np.array(arrays["ret.var"]),
        )
        normalizer.ret_rms.count = float(arrays["ret.count"])
        normalizer.returns = np.array(arrays["returns"])
        updates = description.get("updates", 1)
        normalizer._version = updates if type(updates) is int and updates >= 0 else 1
        return normalizer


def _obs_keys(space: ObsSpace, keys: Iterable[str] | None) -> list[str] | None:
    """The Dict keys to scale (checked), or None for a Box space (which must not be an image)."""
    if not isinstance(space, gym.spaces.Dict):
        if keys is not None:
            raise ValueError("norm_obs_keys is for Dict observation spaces; this one is a Box: leave it out.")
        if space.dtype == np.uint8:
            raise ValueError(
                "The observations are uint8 images, which the networks scale to [0, 1] themselves; running "
                "statistics would not help. Pass norm_obs=False (norm_reward still works)."
            )
        return None
    if keys is None:
        return [key for key, sub in space.spaces.items() if sub.dtype != np.uint8]
    if isinstance(keys, str):
        raise ValueError(f"norm_obs_keys must be a list of keys, not the string {keys!r}: pass [{keys!r}].")
    chosen = list(keys)
    for key in chosen:
        if key not in space.spaces:
            raise ValueError(
                f"norm_obs_keys names {key!r}, which is not a key of the observations ({list(space.spaces)})."
            )
        if space[key].dtype == np.uint8:
            raise ValueError(
                f"norm_obs_keys names {key!r}, an image key; the networks scale images themselves."
            )
    return chosen
