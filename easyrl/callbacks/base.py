"""The callback base classes: the hooks the training loop calls, and callbacks made of callbacks.

The shape is SB3's: a public ``on_step()`` calls the protected ``_on_step() -> bool``, and
returning False stops training. Unlike SB3, the current step's data reaches a callback as a
typed :class:`StepData` (``self.step``), not by string key from the loop's ``locals()``;
``self.locals`` remains as a read-only mapping for code written for SB3.

Callbacks see the model through :class:`TrainingModel`, a small protocol, not the concrete
class: any easyrl estimator is one. Import everything from :mod:`easyrl.callbacks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from gymnasium.vector import VectorEnv

from easyrl.envs.vec_env import sb3_infos
from easyrl.observations import Obs, ObsSpace, obs_row

if TYPE_CHECKING:
    from easyrl.logger import Logger


class TrainingModel(Protocol):
    """What a callback may use of the model it is attached to (every easyrl estimator is one)."""

    logger: Logger
    observation_space: ObsSpace

    @property
    def env(self) -> VectorEnv: ...
    @property
    def num_timesteps(self) -> int: ...
    @property
    def num_envs(self) -> int: ...
    @property
    def _total_timesteps(self) -> int:
        """Where the current ``learn`` call stops, in env steps (SB3's name)."""

    @property
    def seed_used(self) -> int: ...
    @property
    def mean_episode_return(self) -> float | None: ...
    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]: ...
    def dump_logs(self) -> None: ...
    def save(self, path: str) -> Path | None: ...
    def save_replay_buffer(self, path: str) -> Path | None: ...


@dataclass(frozen=True)
class StepData:
    """What happened in the latest vector-env step; arrays have a leading n_envs axis.

    ``actions`` are in the env's own bounds; ``new_obs`` are the observations to act on next
    (after any automatic reset) and ``next_obs`` the true observations reached by the actions.
    """

    observations: Obs
    actions: np.ndarray
    rewards: np.ndarray
    new_obs: Obs
    next_obs: Obs
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, Any]

    @property
    def dones(self) -> np.ndarray:
        return self.terminated | self.truncated


class _StepMapping(Mapping[str, Any]):
    """SB3's names for the step data (``locals["rewards"]``, ``locals["dones"]``, …), read-only."""

    def __init__(self, step: StepData | None, extra: Mapping[str, Any]) -> None:
        values: dict[str, Any] = dict(extra)
        if step is not None:
            values.update({f.name: getattr(step, f.name) for f in fields(step)})
            values.update(dones=step.dones, actions=step.actions, clipped_actions=step.actions)
            # SB3's infos: a list of per-env dicts, with terminal_observation where an episode ended.
            values["infos"] = sb3_infos(
                step.infos, step.terminated, step.truncated, lambda i: obs_row(step.next_obs, i)
            )
        self._values = MappingProxyType(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class BaseCallback:
    """Base class for callbacks. Override the ``_on_*`` hooks; ``_on_step`` returns False to stop."""

    def __init__(self, verbose: int = 0) -> None:
        self.verbose = verbose
        self.n_calls = 0
        self.num_timesteps = 0
        self.model: TrainingModel | None = None
        self.step: StepData | None = None
        self.parent: BaseCallback | None = None
        self._extra_locals: dict[str, Any] = {}

    @property
    def logger(self) -> Logger:
        """The model's logger."""
        return self._model.logger

    @property
    def _model(self) -> TrainingModel:
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a model; pass it to model.learn().")
        return self.model

    @property
    def locals(self) -> Mapping[str, Any]:
        """Read-only SB3-style view of the current step's data, for code written for SB3."""
        return _StepMapping(self.step, self._extra_locals)

    @property
    def training_env(self) -> Any:
        return self._model.env

    # Public hooks, called by the training loop.
    def init_callback(self, model: TrainingModel) -> None:
        self.model = model
        self._init_callback()

    def on_training_start(
        self, locals_: dict[str, Any] | None = None, globals_: dict[str, Any] | None = None
    ) -> None:
        self.num_timesteps = self._model.num_timesteps
        self._extra_locals = dict(locals_ or {})
        self._on_training_start()

    def on_rollout_start(self) -> None:
        self._on_rollout_start()

    def on_step(self) -> bool:
        """Called after each vector-env step; returns False to stop training."""
        self.n_calls += 1
        self.num_timesteps = self._model.num_timesteps
        return self._on_step()

    def on_rollout_end(self) -> None:
        self._on_rollout_end()

    def on_training_end(self) -> None:
        self._on_training_end()

    def update_step(self, step: StepData) -> None:
        """Hand the latest step's data to this callback (and its children)."""
        self.step = step
        self.update_child_step(step)

    def update_child_step(self, step: StepData) -> None:
        """Forward the step data to child callbacks; override in containers."""

    # Hooks for subclasses.
    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        pass

    def _on_training_end(self) -> None:
        pass


class CallbackList(BaseCallback):
    """Runs several callbacks in order; training stops if any of them says so."""

    def __init__(self, callbacks: Sequence[BaseCallback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def _init_callback(self) -> None:
        for callback in self.callbacks:
            callback.init_callback(self._model)

    def _on_training_start(self) -> None:
        for callback in self.callbacks:
            callback.on_training_start(self._extra_locals)

    def _on_rollout_start(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_start()

    def _on_step(self) -> bool:
        # Every callback sees every step, even after one of them asked to stop.
        results = [callback.on_step() for callback in self.callbacks]
        return all(results)

    def _on_rollout_end(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_end()

    def _on_training_end(self) -> None:
        for callback in self.callbacks:
            callback.on_training_end()

    def update_child_step(self, step: StepData) -> None:
        for callback in self.callbacks:
            callback.update_step(step)


class ConvertCallback(BaseCallback):
    """Wraps a plain function ``f(locals, globals) -> bool`` (SB3's functional callbacks)."""

    def __init__(
        self, callback: Callable[[Mapping[str, Any], dict[str, Any]], Any], verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        self.callback = callback

    def _on_step(self) -> bool:
        result = self.callback(self.locals, {})
        # SB3 treats a function that returns nothing as "continue".
        return True if result is None else bool(result)


class EventCallback(BaseCallback):
    """A callback that runs a child callback when an event happens (``_on_event``).

    The child's ``parent`` is this callback (``StopTrainingOnRewardThreshold`` reads its
    ``best_mean_reward``); :class:`EvalCallback` runs ``callback_on_new_best`` this way,
    :class:`EveryNTimesteps` its ``callback``.
    """

    def __init__(self, callback: BaseCallback | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.callback = callback
        if callback is not None:
            callback.parent = self

    def _children(self) -> list[BaseCallback]:
        return [self.callback] if self.callback is not None else []

    def init_callback(self, model: TrainingModel) -> None:
        super().init_callback(model)
        for child in self._children():
            child.init_callback(model)

    def _on_training_start(self) -> None:
        for child in self._children():
            child.on_training_start(self._extra_locals)

    def _on_event(self) -> bool:
        """Runs the child's ``on_step``; returns False to stop training."""
        return self.callback.on_step() if self.callback is not None else True

    def _on_training_end(self) -> None:
        for child in self._children():
            child.on_training_end()

    def update_child_step(self, step: StepData) -> None:
        for child in self._children():
            child.update_step(step)


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1.")
    return value
