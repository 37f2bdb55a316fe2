"""Exploration noise added to deterministic actions (DDPG, TD3; optional for SAC).

Noise is expressed in the policy's action scale, [-1, 1], as in SB3, and the noisy action is
clipped back into it. Each object draws from its own numpy Generator, which the model seeds
from its ``seed`` (and restores on resume), never from global random state.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np


class ActionNoise:
    """Base class: ``noise()`` returns one sample of shape ``mean.shape``."""

    def __init__(self, mean: Any, sigma: Any) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        if self.mean.shape != self.sigma.shape:
            raise ValueError(
                f"mean and sigma must have the same shape, got {self.mean.shape} and {self.sigma.shape}."
            )
        if np.any(self.sigma < 0):
            raise ValueError(f"sigma must be >= 0, got {self.sigma}.")
        self.rng = np.random.default_rng()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape)

    def seed(self, seed: int | np.random.SeedSequence | None) -> None:
        """Reseed this noise's own generator."""
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Called at the end of each episode; stateless noise has nothing to reset."""

    def noise(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self) -> np.ndarray:
        return self.noise()

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state: the generator and any process state."""
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _settings(self) -> tuple[Any, ...]:
        return (self.mean.tolist(), self.sigma.tolist())

    def __eq__(self, other: object) -> bool:
        """Same class and settings (the generator's state is not a setting), as after save and load."""
        return (
            isinstance(other, ActionNoise)
            and type(other) is type(self)
            and self._settings() == other._settings()
        )

    # Mutable and compared by value, so not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean.tolist()}, sigma={self.sigma.tolist()})"


class NormalActionNoise(ActionNoise):
    """Independent Gaussian noise N(mean, sigma²) each step (TD3's exploration)."""

    def noise(self) -> np.ndarray:
        return self.rng.normal(self.mean, self.sigma)


class OrnsteinUhlenbeckActionNoise(ActionNoise):
    """Temporally correlated noise (DDPG's exploration, Lillicrap et al. 2015):

    x_{t+1} = x_t + θ (μ − x_t) dt + σ √dt · N(0, 1).
    """

    def __init__(
        self, mean: Any, sigma: Any, theta: float = 0.15, dt: float = 1e-2, initial_noise: Any = None
    ) -> None:
        super().__init__(mean, sigma)
        self.theta = theta
        self.dt = dt
        self.initial_noise = None if initial_noise is None else np.asarray(initial_noise, dtype=np.float64)
        if self.initial_noise is not None and self.initial_noise.shape != self.mean.shape:
            raise ValueError(
                f"initial_noise must have the shape of mean, {self.mean.shape}; "
                f"got {self.initial_noise.shape}."
            )
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros_like(self.mean) if self.initial_noise is None else self.initial_noise.copy()

    def noise(self) -> np.ndarray:
        x = self.state
        step = self.theta * (self.mean - x) * self.dt
        x = x + step + self.sigma * np.sqrt(self.dt) * self.rng.normal(size=self.mean.shape)
        self.state = x
        return x

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "state": self.state.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.state = np.asarray(state["state"], dtype=np.float64)

    def _settings(self) -> tuple[Any, ...]:
        initial = None if self.initial_noise is None else self.initial_noise.tolist()
        return (*super()._settings(), self.theta, self.dt, initial)

    def __repr__(self) -> str:
        return (
            f"OrnsteinUhlenbeckActionNoise(mean={self.mean.tolist()}, sigma={self.sigma.tolist()}, "
            f"theta={self.theta}, dt={self.dt})"
        )


class VectorizedActionNoise:
    """One independent copy of ``base`` per environment, reset per env at its episode end."""

    def __init__(self, base: ActionNoise, n_envs: int, seed: int | None) -> None:
        self.base = base
        self.noises = [copy.deepcopy(base) for _ in range(n_envs)]
        for noise, s in zip(self.noises, np.random.SeedSequence(seed).spawn(n_envs), strict=True):
            noise.seed(s)
            noise.reset()

    def __call__(self) -> np.ndarray:
        return np.stack([n() for n in self.noises])

    def reset(self, envs: Any) -> None:
        for i in np.atleast_1d(envs):
            self.noises[int(i)].reset()

    def get_state(self) -> list[dict[str, Any]]:
        return [n.get_state() for n in self.noises]

    def set_state(self, states: list[dict[str, Any]]) -> None:
        for noise, state in zip(self.noises, states, strict=True):
            noise.set_state(state)
