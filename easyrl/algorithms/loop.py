"""The training loop of every off-policy algorithm: collect, store, and update every ``train_freq`` steps.

Collect with the current policy (uniform random actions before ``learning_starts``), add
exploration noise if any, store, and every ``train_freq`` env steps run ``gradient_steps`` updates
(times the number of envs, so the update-to-data ratio is the one the user set) of ``batch_size``.
Everything the loop counts and draws is the model's :class:`TrainingState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Self, cast

import numpy as np
import torch

from easyrl import validation as v
from easyrl.callbacks import BaseCallback, CallbackLike, StepData, TrainingModel, make_callback
from easyrl.schedules import Schedule, make_schedule

if TYPE_CHECKING:
    from easyrl.algorithms.training_state import TrainingState
    from easyrl.buffers import ReplayBatch, ReplayBuffer
    from easyrl.envs import EnvStepper
    from easyrl.logger import Logger
    from easyrl.networks import Policy
    from easyrl.normalization import Normalizer
    from easyrl.observations import Obs, TensorObs


class TrainingLoop:
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
    _stepper: EnvStepper
    _normalizer: Normalizer | None
    _env_normalizes: bool  # the env is a VecNormalize: predict takes normalised observations
    _custom_logger: bool
    _start_time: float
    _start_timesteps: int

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
    ) -> Self:
        """Train for ``total_timesteps`` env steps (counted over all envs); returns ``self``.

        ``log_interval`` is in episodes; ``reset_num_timesteps=False`` continues the step count
        (and the episode in progress) of an earlier ``learn``.
        """
        if not isinstance(total_timesteps, int) or isinstance(total_timesteps, bool) or total_timesteps < 0:
            raise ValueError(f"total_timesteps={total_timesteps!r} is invalid: it must be an integer >= 0.")
        self._setup()
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

        callback_obj = make_callback(callback, progress_bar)
        callback_obj.init_callback(cast(TrainingModel, self))  # an OffPolicyAlgorithm, as callbacks see it
        callback_obj.on_training_start(locals(), globals())
        try:
            while state.num_timesteps < state.total_timesteps:
                steps, keep_going = self._collect_rollout(callback_obj, log_interval)
                if not keep_going:
                    break
                if state.num_timesteps > self.learning_starts and self.replay_buffer.n_sampleable > 0:
                    updates = self.gradient_steps * self.num_envs if self.gradient_steps >= 0 else steps
                    self._train(updates)
        finally:
            callback_obj.on_training_end()
            if not self._custom_logger:
                self.logger.close()  # the files of the logger this learn() built; set_logger's stays open
        return self

    def _collect_rollout(self, callback: BaseCallback, log_interval: int | None) -> tuple[int, bool]:
        """Step the envs until the train frequency is reached; returns (transitions, keep going)."""
        state = self.training_state
        callback.on_rollout_start()
        steps = episodes = 0
        frequency, unit = self._train_frequency
        while (steps // self.num_envs if unit == "step" else episodes) < frequency:
            if state.num_timesteps >= state.total_timesteps:
                break
            self._before_env_step(steps // self.num_envs)
            scaled = self._exploration_actions()
            env_actions = self._unscale(scaled)
            result = self._stepper.step(env_actions)
            if self._normalizer is not None:
                self._normalizer.update(result.obs, result.rewards, result.dones, result.valid)
            state.num_timesteps += self.num_envs
            steps += self.num_envs
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
            if not callback.on_step():
                callback.on_rollout_end()
                return steps, False
        callback.on_rollout_end()
        return steps, True

    def _train(self, gradient_steps: int) -> None:
        state = self.training_state
        progress_remaining = 1.0 - state.num_timesteps / max(state.total_timesteps, 1)
        for optimizer, schedule in self._learning_rate_schedules().items():
            rate = schedule(progress_remaining)
            for group in optimizer.param_groups:
                group["lr"] = rate
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(
                self.batch_size, state.torch_rng, gamma=self.gamma, n_steps=self.n_steps
            )
            if self._normalizer is not None:  # raw in the buffer, scaled with the statistics of now
                batch = self._normalizer.normalize_batch(batch)
            stats = self._update(batch)
            state.n_updates += 1
            for key, value in stats.items():
                self.logger.record_mean(f"train/{key}", value)
        self.logger.record("train/n_updates", state.n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", make_schedule(self.learning_rate)(progress_remaining))

    def _exploration_actions(self) -> np.ndarray:
        """Actions in [-1, 1] for the next step: uniform during warm-up, then the policy's, plus noise."""
        state = self.training_state
        assert state.last_obs is not None
        if state.num_timesteps < self.learning_starts and not self._policy_acts_in_warmup():
            scaled = state.warmup_rng.uniform(-1.0, 1.0, size=(self.num_envs, self.action_dim))
        else:
            with torch.no_grad():
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
