"""What a model reports: its score, episode statistics and the training logs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from easyrl.envs import EnvLike, VecEnv
from easyrl.evaluation import evaluate_policy
from easyrl.logger import Logger, configure, next_run_dir

if TYPE_CHECKING:
    from easyrl.algorithms.training_state import TrainingState


class ReportingMixin:
    """``score``, ``mean_episode_return`` and logging, for OffPolicyAlgorithm."""

    # Provided by OffPolicyAlgorithm.
    logger: Logger
    training_state: TrainingState
    verbose: int
    tensorboard_log: str | None
    algorithm_name: ClassVar[str]
    _is_setup: bool
    _custom_logger: bool
    _start_time: float
    _start_timesteps: int

    if TYPE_CHECKING:  # defined by OffPolicyAlgorithm and Estimator

        def _setup(self) -> None: ...

        def _param(self, name: str) -> Any: ...

        def predict(
            self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
        ) -> tuple[np.ndarray, Any]: ...

    def score(self, env: EnvLike | None = None, n_episodes: int = 10, deterministic: bool = True) -> float:
        """Mean return over ``n_episodes`` whole episodes (scikit-learn's name; see ``evaluate_policy``).

        ``env=None`` evaluates on a new env built like the training env (never the training env
        itself, which is mid-episode), seeded from the model's seed, so the score is repeatable.
        """
        self._setup()
        seed = None
        if env is None:
            env, seed = self._fresh_env(), self.seed_used
        mean_return, _ = evaluate_policy(self, env, n_episodes, deterministic, seed=seed)
        return mean_return

    def _fresh_env(self) -> EnvLike:
        """What ``evaluate_policy`` can build a new env like the training env from."""
        env_arg = self._param("env")
        if isinstance(env_arg, str) or (callable(env_arg) and not isinstance(env_arg, gym.Env | VectorEnv)):
            return env_arg  # an id or a factory: evaluate_policy builds a new env from it, and closes it
        spec = getattr(env_arg, "spec", None)
        if isinstance(env_arg, VecEnv) and spec is not None:
            return str(spec.id)  # SB3's vec envs: the id alone (their wrappers are not in the spec)
        if spec is None:
            raise ValueError(
                f"score() cannot build a new env like the {type(env_arg).__name__} the model was given (it has "
                "no registered spec); pass one: model.score(env=...) with an env id, an env or a factory."
            )
        return lambda: gym.make(spec)

    @property
    def seed_used(self) -> int:
        """The seed every generator was drawn from: ``seed``, or the one drawn when ``seed`` is None."""
        self._setup()
        return self.training_state.seed_used

    @property
    def mean_episode_return(self) -> float | None:
        """Mean return of the last ``stats_window_size`` finished episodes (None before the first)."""
        if not self._is_setup or not self.training_state.episode_stats:
            return None
        return float(np.mean([r for r, _ in self.training_state.episode_stats]))

    def _configure_logger(self, tb_log_name: str | None, reset_num_timesteps: bool) -> None:
        if self._custom_logger:
            return
        formats = ["stdout"] if self.verbose >= 1 else []
        folder = None
        if self.tensorboard_log is not None:
            formats += ["csv", "json", "tensorboard"]
            # A continued run (reset_num_timesteps=False) appends to the latest run's folder.
            folder = next_run_dir(
                self.tensorboard_log, tb_log_name or self.algorithm_name, reuse_latest=not reset_num_timesteps
            )
        self.logger = configure(folder, formats, append=not reset_num_timesteps)

    def set_logger(self, logger: Logger) -> None:
        """Use ``logger`` (from ``easyrl.logger.configure``) instead of the one built from ``verbose``."""
        self.logger = logger
        self._custom_logger = True

    def dump_logs(self) -> None:
        """Record the rollout and time statistics and write the logs (SB3's name; ``learn`` calls it every
        ``log_interval`` episodes, ``LogEveryNTimesteps`` every n steps)."""
        state = self.training_state
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        fps = int((state.num_timesteps - self._start_timesteps) / elapsed)
        if state.episode_stats:
            self.logger.record("rollout/ep_rew_mean", float(np.mean([r for r, _ in state.episode_stats])))
            self.logger.record("rollout/ep_len_mean", float(np.mean([n for _, n in state.episode_stats])))
        if state.success_stats:  # envs that report info["is_success"] (goal-conditioned ones do)
            self.logger.record("rollout/success_rate", float(np.mean(state.success_stats)))
        self.logger.record("time/episodes", state.episode_num, exclude="tensorboard")
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", state.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=state.num_timesteps)
