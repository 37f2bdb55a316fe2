"""The training loop of every off-policy algorithm: collect, store, and update every ``train_freq`` steps.

Collect with the current policy (uniform random actions before ``learning_starts``), add
exploration noise if any, store, and every ``train_freq`` env steps run ``gradient_steps`` updates
(times the number of envs, so the update-to-data ratio is the one the user set) of ``batch_size``.
Everything the loop counts and draws is the model's :class:`TrainingState`, including how far
the current rollout has gone, so that a checkpoint saved by a callback inside a rollout resumes
exactly. What goes wrong (signals, non-finite values) is handled as faults.py describes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np
import torch

from easyrl import validation as v
from easyrl.algorithms import arithmetic, resets
from easyrl.algorithms.faults import (
    FAULT_CONSTRAINTS,
    DeferredInterrupts,
    FaultSettings,
    check_step,
    nonfinite_updates_error,
)
from easyrl.callbacks import BaseCallback, CallbackLike, StepData, TrainingModel, make_callback
from easyrl.schedules import Schedule, make_schedule
from easyrl.updates import NonFiniteGuard, guarded

__all__ = ["TrainingLoop", "replay_buffer_path"]


def replay_buffer_path(model_path: str | os.PathLike[str]) -> Path:
    """Where ``learn(save_on_interrupt=path)`` writes the replay buffer: ``<stem>_replay_buffer.zip`` beside it."""
    path = Path(model_path)
    return path.with_name(f"{path.stem if path.suffix == '.zip' else path.name}_replay_buffer.zip")


if TYPE_CHECKING:
    from easyrl.algorithms.training_state import TrainingState
    from easyrl.buffers import ReplayBatch, ReplayBuffer
    from easyrl.envs import EnvStepper
    from easyrl.logger import Logger
    from easyrl.networks import Policy
    from easyrl.normalization import Normalizer
    from easyrl.observations import Obs, TensorObs


class TrainingLoop(FaultSettings):
    """``learn`` and its phases, for OffPolicyAlgorithm."""

    # Provided by OffPolicyAlgorithm.
    training_state: TrainingState
    replay_buffer: ReplayBuffer
    logger: Logger
    num_envs: int
    learning_starts: int
    batch_size: int
    gamma: float
    n_steps: int
    train_freq: int | tuple[int, str]
    gradient_steps: int
    learning_rate: float | str | Callable[[float], float]
    actor_learning_rate: float | str | Callable[[float], float] | None
    critic_learning_rate: float | str | Callable[[float], float] | None
    policy_kwargs: dict[str, Any] | str | None
    precision: str
    _device: torch.device
    _stepper: EnvStepper
    _normalizer: Normalizer | None
    _env_normalizes: bool  # the env is a VecNormalize: predict takes normalised observations
    _custom_logger: bool
    _start_time: float
    _start_timesteps: int
    _interrupts: DeferredInterrupts
    _nonfinite: NonFiniteGuard
    interrupted: bool = False
    """Whether the last ``learn`` ended with a KeyboardInterrupt (Ctrl-C or SIGTERM)."""

    if TYPE_CHECKING:  # defined by OffPolicyAlgorithm, ReportingMixin and each algorithm

        @property
        def action_dim(self) -> int: ...

        @property
        def _policy(self) -> Policy: ...

        def _setup(self) -> None: ...

        def _obs_tensor(self, obs: Obs) -> TensorObs: ...

        def _unscale(self, scaled: np.ndarray) -> np.ndarray: ...

        def _configure_logger(self, tb_log_name: str | None, reset_num_timesteps: bool) -> None: ...

        def dump_logs(self) -> None: ...

        def save(self, path: str | os.PathLike[str]) -> Path | None: ...

        def save_replay_buffer(self, path: str | os.PathLike[str]) -> Path | None: ...

        def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
            """One gradient step on ``batch``; returns statistics as (device) tensors."""
            ...

        def _optimizers(self) -> list[torch.optim.Optimizer]:
            """Every optimizer, each of whose learning rates ``_train`` sets from its schedule."""
            ...

    # ------------------------------------------------------------------ training
    def learn(
        self,
        total_timesteps: int,
        callback: CallbackLike = None,
        log_interval: int | None = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        save_on_interrupt: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Train for ``total_timesteps`` env steps (counted over all envs); returns ``self``.

        ``log_interval`` is in episodes; ``reset_num_timesteps=False`` continues the step count
        (and the episode in progress) of an earlier ``learn``.

        Ctrl-C (SIGINT) or SIGTERM stops training at the next step or update with a
        KeyboardInterrupt, leaving the model consistent: it can be saved and trained on.
        ``save_on_interrupt=path`` then saves the model there, and its replay buffer beside it as
        ``<stem>_replay_buffer.zip``, before the exception propagates (``CheckpointCallback`` writes
        a last checkpoint too).
        """
        if not isinstance(total_timesteps, int) or isinstance(total_timesteps, bool) or total_timesteps < 0:
            raise ValueError(f"total_timesteps={total_timesteps!r} is invalid: it must be an integer >= 0.")
        self._setup()
        arithmetic.check(self.precision, self._device)  # set_params may have changed it
        v.check_params({name: getattr(self, name) for name in FAULT_CONSTRAINTS}, FAULT_CONSTRAINTS)
        self.interrupted = False
        state = self.training_state
        self._train_frequency = v.parse_train_freq(self.train_freq)  # may have changed since the last learn
        if reset_num_timesteps:
            state.num_timesteps = 0
            state.episode_num = 0
            state.clear_episodes()
        if reset_num_timesteps or state.last_obs is None:
            if state.last_obs is not None:
                # The episodes in progress end here: their newest transitions keep their true next obs.
                self.replay_buffer.close_episodes(state.last_obs)
            state.last_obs = self._stepper.reset(seed=state.env_seed)
            if self._normalizer is not None:
                self._normalizer.reset_returns()
                self._normalizer.update(state.last_obs)
            state.resume_obs = None
            state.env_seed = None  # seeds the episode seeds' generator once; later resets continue it
            if state.noise is not None:
                state.noise.reset(np.arange(self.num_envs))
        state.total_timesteps = total_timesteps + state.num_timesteps
        self._start_time = time.perf_counter()
        self._start_timesteps = state.num_timesteps
        self._configure_logger(tb_log_name, reset_num_timesteps)

        loss_names = {
            optimizer: name.removesuffix("_optimizer") + "_loss"
            for name, optimizer in vars(self).items()
            if name.endswith("_optimizer") and isinstance(optimizer, torch.optim.Optimizer)
        }  # critic_loss, actor_loss, ...: the names of the losses in the logs
        self._nonfinite = NonFiniteGuard(loss_names, self.max_nonfinite_updates)
        callback_obj = make_callback(callback, progress_bar)
        callback_obj.init_callback(cast(TrainingModel, self))  # an OffPolicyAlgorithm, as callbacks see it
        callback_obj.on_training_start(locals(), globals())
        try:
            with DeferredInterrupts() as self._interrupts:
                try:
                    self._run(callback_obj, log_interval)
                except KeyboardInterrupt:
                    self.interrupted = True
                    if save_on_interrupt is not None:
                        self.save(save_on_interrupt)
                        self.save_replay_buffer(replay_buffer_path(save_on_interrupt))
                    raise
                finally:
                    callback_obj.on_training_end()  # CheckpointCallback's last checkpoint, if interrupted
        finally:
            if not self._custom_logger:
                self.logger.close()  # the files of the logger this learn() built; set_logger's stays open
        return self

    def _run(self, callback: BaseCallback, log_interval: int | None) -> None:
        state = self.training_state
        while state.num_timesteps < state.total_timesteps:
            steps, keep_going = self._collect_rollout(callback, log_interval)
            if not keep_going:
                state.rollout_steps = state.rollout_episodes = (
                    0  # stopped by a callback: no rollout continues
                )
                break
            state.rollout_steps = state.rollout_episodes = 0
            if state.num_timesteps > self.learning_starts and self.replay_buffer.n_sampleable > 0:
                updates = self.gradient_steps * self.num_envs if self.gradient_steps >= 0 else steps
                self._train(updates)
        self._read_nonfinite()

    def _collect_rollout(self, callback: BaseCallback, log_interval: int | None) -> tuple[int, bool]:
        """Step the envs until the train frequency is reached; returns (transitions, keep going)."""
        state = self.training_state
        callback.on_rollout_start()
        # A rollout that a checkpoint interrupted continues where it was (0, 0 otherwise).
        steps, episodes = state.rollout_steps, state.rollout_episodes
        frequency, unit = self._train_frequency
        while (steps // self.num_envs if unit == "step" else episodes) < frequency:
            if state.num_timesteps >= state.total_timesteps:
                break
            self._interrupts.check()  # a safe point: everything below is one step, stored whole
            self._before_env_step(steps // self.num_envs)
            scaled = self._exploration_actions()
            env_actions = self._unscale(scaled)
            result = self._stepper.step(env_actions)
            if self.check_finite:
                check_step(result, state.num_timesteps)
            if self._normalizer is not None:
                self._normalizer.update(result.obs, result.rewards, result.dones, result.valid)
            last_obs = state.last_obs
            assert last_obs is not None
            callback.update_step(StepData(
                observations=last_obs, actions=env_actions, rewards=result.rewards, new_obs=result.obs,
                next_obs=result.next_obs, terminated=result.terminated, truncated=result.truncated,
                infos=result.infos,
            ))  # fmt: skip
            self.replay_buffer.add(
                last_obs, scaled, result.rewards, result.next_obs,
                result.terminated, result.truncated, result.valid,
            )  # fmt: skip
            state.num_timesteps += self.num_envs  # counted once stored
            steps += self.num_envs
            state.last_obs = result.obs
            state.add_episodes(result)
            ended = np.flatnonzero(result.dones)
            if ended.size:
                episodes += ended.size
                if state.noise is not None:
                    state.noise.reset(ended)
                for _ in range(ended.size):
                    state.episode_num += 1
                    if log_interval is not None and state.episode_num % log_interval == 0:
                        self.dump_logs()
            state.rollout_steps, state.rollout_episodes = (
                steps,
                episodes,
            )  # what a checkpoint saved now resumes
            if not callback.on_step():
                callback.on_rollout_end()
                return steps, False
        callback.on_rollout_end()
        return steps, True

    def _train(self, gradient_steps: int) -> None:
        state = self.training_state
        self._read_nonfinite()  # the previous phase's flags: computed by now, on a GPU too
        progress_remaining = 1.0 - state.num_timesteps / max(state.total_timesteps, 1)
        for optimizer, schedule in self._learning_rate_schedules().items():
            rate = schedule(progress_remaining)
            for group in optimizer.param_groups:
                group["lr"] = rate
        interval = resets.reset_interval(v.policy_kwargs(self.policy_kwargs))
        with guarded(self._nonfinite):
            for _ in range(gradient_steps):
                self._interrupts.check()  # a safe point: between whole updates
                batch = self._training_batch()
                with arithmetic.computing(self.precision, self._device):  # one autocast region per update
                    stats = self._update(batch)
                self._nonfinite.end_update()
                state.n_updates += 1
                if interval is not None and state.n_updates % interval == 0:
                    resets.reset_networks(self)  # type: ignore[arg-type]  # mixed into OffPolicyAlgorithm only
                for key, value in stats.items():
                    self.logger.record_mean(f"train/{key}", value)
        self.logger.record("train/n_updates", state.n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", make_schedule(self.learning_rate)(progress_remaining))

    def _training_batch(self) -> ReplayBatch:
        """A batch for one update: drawn, scaled with the statistics of now (the buffer holds raw
        observations), and with its features computed once where every network would compute the same."""
        batch = self.replay_buffer.sample(
            self.batch_size, self.training_state.torch_rng, gamma=self.gamma, n_steps=self.n_steps
        )
        if self._normalizer is not None:
            batch = self._normalizer.normalize_batch(batch)
        return batch._replace(
            observations=self._policy.batch_features(batch.observations),
            next_observations=self._policy.batch_features(batch.next_observations),
        )

    def _read_nonfinite(self) -> None:
        """Count the updates skipped since the last read; raise once too many came in a row."""
        guard, state = self._nonfinite, self.training_state
        skipped = guard.read()
        if not any(skipped):
            return
        state.skipped_updates += sum(skipped)
        self.logger.record("train/skipped_updates", state.skipped_updates)
        if guard.tripped is not None:
            position, in_a_row, losses = guard.tripped
            last_update = state.n_updates - len(skipped) + position
            raise nonfinite_updates_error(in_a_row, last_update, losses, self.max_nonfinite_updates)

    def _exploration_actions(self) -> np.ndarray:
        """Actions in [-1, 1] for the next step: uniform during warm-up, then the policy's, plus noise."""
        state = self.training_state
        assert state.last_obs is not None
        if state.num_timesteps < self.learning_starts and not self._policy_acts_in_warmup():
            scaled = state.warmup_rng.uniform(-1.0, 1.0, size=(self.num_envs, self.action_dim))
        else:
            with torch.no_grad(), arithmetic.computing(self.precision, self._device):
                obs = self._obs_tensor(state.last_obs)
                scaled = self._policy.act(obs, False, state.torch_rng).cpu().numpy()
        if state.noise is not None:
            scaled = np.clip(scaled + state.noise().reshape(self.num_envs, -1), -1.0, 1.0)
        return scaled.astype(np.float32)

    def _before_env_step(self, rollout_step: int) -> None:
        """Called before each step of a rollout (``rollout_step`` steps of each env into it); SAC's gSDE
        redraws its exploration matrix here."""

    def _policy_acts_in_warmup(self) -> bool:
        """Whether the policy, not uniform noise, acts before ``learning_starts`` (SAC's ``use_sde_at_warmup``)."""
        return False

    def _learning_rate_schedules(self) -> dict[torch.optim.Optimizer, Schedule]:
        """Each optimizer's schedule: ``learning_rate``, unless the actor's or critics' own rate is set."""
        schedules = dict.fromkeys(self._optimizers(), make_schedule(self.learning_rate))
        for name, rate in (
            ("actor_optimizer", self.actor_learning_rate),
            ("critic_optimizer", self.critic_learning_rate),
        ):
            if rate is not None:
                schedules[getattr(self, name)] = make_schedule(rate)
        return schedules
