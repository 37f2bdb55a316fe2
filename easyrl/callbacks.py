"""Callbacks: code the training loop calls at fixed points, able to stop training.

Subclass :class:`BaseCallback` and override its hooks (``_on_step() -> bool``: False stops
training), or use the ready-made ones below: evaluation with early stopping, checkpoints, a
progress bar. ``learn(callback=...)`` takes a callback, a list of them, or a function
``(locals, globals) -> bool``. The current step's data is ``self.step`` (:class:`StepData`);
``self.locals`` is a read-only SB3-style view of it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from easyrl._callback_base import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    EventCallback,
    StepData,
    _positive_int,
)
from easyrl.envs import EnvLike, make_vec_env
from easyrl.evaluation import evaluate_policy

__all__ = [
    "BaseCallback",
    "CallbackLike",
    "CallbackList",
    "CheckpointCallback",
    "ConvertCallback",
    "EvalCallback",
    "EventCallback",
    "EveryNTimesteps",
    "ProgressBarCallback",
    "StepData",
    "StopTrainingOnMaxEpisodes",
    "StopTrainingOnNoModelImprovement",
    "StopTrainingOnRewardThreshold",
    "make_callback",
]


class ProgressBarCallback(BaseCallback):
    """A tqdm/rich progress bar: steps, steps per second and the latest mean episode return."""

    def __init__(self) -> None:
        super().__init__()
        self.pbar: Any = None

    def _on_training_start(self) -> None:
        from rich.progress import BarColumn, TimeElapsedColumn, TimeRemainingColumn
        from tqdm import TqdmExperimentalWarning
        from tqdm.rich import FractionColumn, RateColumn, tqdm

        model = self._model
        columns = (
            "[progress.percentage]{task.percentage:>4.0f}%", BarColumn(bar_width=None), FractionColumn(),
            "[", TimeElapsedColumn(), "<", TimeRemainingColumn(), ",", RateColumn(unit="steps"), "]",
            "[progress.description]{task.description}",
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TqdmExperimentalWarning)  # tqdm calls its rich bar "experimental"
            self.pbar = tqdm(total=model._total_timesteps - model.num_timesteps, progress=columns)

    def _on_step(self) -> bool:
        assert self.pbar is not None
        self.pbar.update(self._model.num_envs)
        if self.n_calls % 50 == 0:
            self._show_mean_return()
        return True

    def _show_mean_return(self) -> None:
        mean_return = self._model.mean_episode_return
        if mean_return is not None:
            self.pbar.set_description_str(f"mean return {mean_return:.1f}", refresh=False)

    def _on_training_end(self) -> None:
        if self.pbar is not None:
            self._show_mean_return()
            self.pbar.close()
            self.pbar = None


class EveryNTimesteps(EventCallback):
    """Runs ``callback`` (its ``on_step``) once every ``n_steps`` env steps, counted over all envs."""

    def __init__(self, n_steps: int, callback: BaseCallback) -> None:
        super().__init__(callback)
        self.n_steps = _positive_int("n_steps", n_steps)
        self.last_time_trigger = 0

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.last_time_trigger = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_time_trigger >= self.n_steps:
            self.last_time_trigger = self.num_timesteps
            return self._on_event()
        return True


class EvalCallback(EventCallback):
    """Evaluates the model every ``eval_freq`` calls and keeps the best one.

    Args:
        eval_env: an env id, a ``gymnasium.Env``, a vector env, or a function returning an env; built
            when training starts. Use a separate env from the training one.
        callback_on_new_best: run when an evaluation beats ``best_mean_reward`` (e.g.
            :class:`StopTrainingOnRewardThreshold`); its ``parent`` is this callback.
        callback_after_eval: run after every evaluation (e.g. :class:`StopTrainingOnNoModelImprovement`).
        n_eval_episodes: episodes per evaluation.
        eval_freq: evaluate every this many calls, i.e. vector-env steps (``eval_freq * n_envs`` env
            steps), as in SB3; 0 or less never evaluates.
        log_path: folder for ``evaluations.npz``, rewritten after every evaluation, with the arrays
            ``timesteps`` (n_evals,), ``results`` (n_evals, n_eval_episodes: the returns) and
            ``ep_lengths`` (n_evals, n_eval_episodes) -- SB3's names, so its plotting scripts work.
        best_model_save_path: folder where the best model is saved as ``best_model.zip``.
        deterministic: evaluate with deterministic actions.
        render: render the evaluation env (create it with a ``render_mode``).
        verbose: 1 prints each evaluation's result.

    After training, ``best_mean_reward``, ``last_mean_reward`` and the ``evaluations_timesteps``,
    ``evaluations_results`` and ``evaluations_length`` lists hold the results. Every evaluation
    records ``eval/mean_reward``, ``eval/std_reward`` and ``eval/mean_ep_length`` and dumps the log.
    """

    def __init__(
        self,
        eval_env: EnvLike,
        callback_on_new_best: BaseCallback | None = None,
        callback_after_eval: BaseCallback | None = None,
        n_eval_episodes: int = 5,
        eval_freq: int = 10_000,
        log_path: str | os.PathLike[str] | None = None,
        best_model_save_path: str | os.PathLike[str] | None = None,
        deterministic: bool = True,
        render: bool = False,
        verbose: int = 1,
    ) -> None:
        super().__init__(callback_on_new_best, verbose)
        self.callback_after_eval = callback_after_eval
        if callback_after_eval is not None:
            callback_after_eval.parent = self
        self.eval_env = eval_env
        self.n_eval_episodes = _positive_int("n_eval_episodes", n_eval_episodes)
        self.eval_freq = eval_freq
        self.log_path = log_path
        self.best_model_save_path = best_model_save_path
        self.deterministic = deterministic
        self.render = render
        self.best_mean_reward = -np.inf
        self.last_mean_reward = -np.inf
        self.evaluations_timesteps: list[int] = []
        self.evaluations_results: list[list[float]] = []
        self.evaluations_length: list[list[int]] = []
        self._vec_env: VectorEnv | None = None
        self._seed: int | None = None

    def _children(self) -> list[BaseCallback]:
        return super()._children() + ([self.callback_after_eval] if self.callback_after_eval else [])

    def _init_callback(self) -> None:
        model = self._model
        if self._vec_env is None:
            self._vec_env = make_vec_env(self.eval_env, 1)
            # Seed the first evaluation from the model's seed (later ones continue the env's
            # generators), so a seeded run is repeatable, evaluations included.
            model_seed = getattr(model, "_seed_used", None)
            if model_seed is not None:
                self._seed = int(np.random.SeedSequence(model_seed).spawn(1)[0].generate_state(1)[0])
        eval_space, train_space = self._vec_env.single_observation_space, model.observation_space
        if eval_space.shape != train_space.shape:
            raise ValueError(
                f"EvalCallback: the evaluation env's observations have shape {eval_space.shape}, but the "
                f"model was trained on {train_space.shape}; evaluate on the same kind of env."
            )
        for folder in (self.log_path, self.best_model_save_path):
            if folder is not None:
                os.makedirs(folder, exist_ok=True)

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0:
            return True
        return self._evaluate()

    def _evaluate(self) -> bool:
        assert self._vec_env is not None
        returns, lengths = evaluate_policy(
            self._model, self._vec_env, self.n_eval_episodes, self.deterministic, self.render,
            return_episode_rewards=True, seed=self._seed,
        )  # fmt: skip
        self._seed = None
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(returns)
        self.evaluations_length.append(lengths)
        if self.log_path is not None:
            self._write_evaluations(os.path.join(self.log_path, "evaluations.npz"))
        mean_reward, std_reward = float(np.mean(returns)), float(np.std(returns))
        mean_length, std_length = float(np.mean(lengths)), float(np.std(lengths))
        self.last_mean_reward = mean_reward
        if self.verbose >= 1:
            print(
                f"Eval num_timesteps={self.num_timesteps}, "
                f"episode_reward={mean_reward:.2f} +/- {std_reward:.2f}"
            )
            print(f"Episode length: {mean_length:.2f} +/- {std_length:.2f}")
        self.logger.record("eval/mean_reward", mean_reward)
        self.logger.record("eval/std_reward", std_reward)
        self.logger.record("eval/mean_ep_length", mean_length)
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)

        continue_training = True
        if mean_reward > self.best_mean_reward:
            if self.verbose >= 1:
                print("New best mean reward!")
            if self.best_model_save_path is not None:
                self._model.save(os.path.join(self.best_model_save_path, "best_model.zip"))
            self.best_mean_reward = mean_reward
            continue_training = self._on_event()
        if self.callback_after_eval is not None:
            continue_training = self.callback_after_eval.on_step() and continue_training
        return continue_training

    def _write_evaluations(self, path: str) -> None:
        # Write beside and rename, so a crash mid-write leaves the previous file whole.
        with open(path + ".tmp", "wb") as file:
            np.savez(
                file,
                timesteps=np.array(self.evaluations_timesteps),
                results=np.array(self.evaluations_results),
                ep_lengths=np.array(self.evaluations_length),
            )
        os.replace(path + ".tmp", path)

    def _on_training_end(self) -> None:
        super()._on_training_end()
        if self._vec_env is not None and _builds_new_env(self.eval_env):
            self._vec_env.close()  # built from an id or a factory: ours to close; rebuilt by the next learn()
            self._vec_env = None


class StopTrainingOnRewardThreshold(BaseCallback):
    """Stops training once an evaluation's mean return reaches ``reward_threshold``.

    Pass it as ``EvalCallback(..., callback_on_new_best=StopTrainingOnRewardThreshold(-200))``.
    """

    def __init__(self, reward_threshold: float, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reward_threshold = reward_threshold

    def _init_callback(self) -> None:
        _eval_parent(self)

    def _on_step(self) -> bool:
        best = _eval_parent(self).best_mean_reward
        continue_training = bool(best < self.reward_threshold)
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: best mean reward {best:.2f} >= threshold {self.reward_threshold}")
        return continue_training


class StopTrainingOnNoModelImprovement(BaseCallback):
    """Stops training when ``max_no_improvement_evals`` evaluations in a row did not beat the best.

    The first ``min_evals`` evaluations are not counted. Pass it as
    ``EvalCallback(..., callback_after_eval=StopTrainingOnNoModelImprovement(3))``.
    """

    def __init__(self, max_no_improvement_evals: int, min_evals: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.max_no_improvement_evals = max_no_improvement_evals
        self.min_evals = min_evals
        self.last_best_mean_reward = -np.inf
        self.no_improvement_evals = 0

    def _init_callback(self) -> None:
        _eval_parent(self)

    def _on_step(self) -> bool:
        best = _eval_parent(self).best_mean_reward
        continue_training = True
        if self.n_calls > self.min_evals:
            if best > self.last_best_mean_reward:
                self.no_improvement_evals = 0
            else:
                self.no_improvement_evals += 1
                continue_training = self.no_improvement_evals <= self.max_no_improvement_evals
        self.last_best_mean_reward = best
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: no new best model in the last {self.no_improvement_evals} evaluations")
        return continue_training


class StopTrainingOnMaxEpisodes(BaseCallback):
    """Stops training after ``max_episodes`` episodes per env (``max_episodes * n_envs`` in all, as SB3)."""

    def __init__(self, max_episodes: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.max_episodes = _positive_int("max_episodes", max_episodes)
        self.n_episodes = 0

    def _init_callback(self) -> None:
        self.n_episodes = 0
        self._total_max_episodes = self.max_episodes * self._model.num_envs

    def _on_step(self) -> bool:
        if self.step is not None:
            self.n_episodes += int(np.count_nonzero(self.step.dones))
        continue_training = self.n_episodes < self._total_max_episodes
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: {self.n_episodes} episodes reached max_episodes={self.max_episodes}")
        return continue_training


class CheckpointCallback(BaseCallback):
    """Saves the model every ``save_freq`` calls as ``<save_path>/<name_prefix>_<steps>_steps.zip``.

    ``save_freq`` counts vector-env steps (``save_freq * n_envs`` env steps), as in SB3. With
    ``save_replay_buffer=True`` the buffer goes to ``<name_prefix>_replay_buffer_<steps>_steps.zip``.
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str | os.PathLike[str],
        name_prefix: str = "rl_model",
        save_replay_buffer: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.save_freq = _positive_int("save_freq", save_freq)
        self.save_path = save_path
        self.name_prefix = name_prefix
        self.save_replay_buffer = save_replay_buffer

    def _init_callback(self) -> None:
        os.makedirs(self.save_path, exist_ok=True)

    def _checkpoint_path(self, kind: str = "") -> str:
        return os.path.join(self.save_path, f"{self.name_prefix}_{kind}{self.num_timesteps}_steps.zip")

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            model = self._model
            model.save(self._checkpoint_path())
            if self.verbose >= 2:
                print(f"Saving model checkpoint to {self._checkpoint_path()}")
            if self.save_replay_buffer:
                model.save_replay_buffer(self._checkpoint_path("replay_buffer_"))
                if self.verbose >= 2:
                    print(f"Saving replay buffer checkpoint to {self._checkpoint_path('replay_buffer_')}")
        return True


def _eval_parent(callback: BaseCallback) -> EvalCallback:
    if not isinstance(callback.parent, EvalCallback):
        raise ValueError(
            f"{type(callback).__name__} reads the evaluation results, so it must be given to an EvalCallback "
            "(callback_on_new_best=... or callback_after_eval=...), not used on its own."
        )
    return callback.parent


def _builds_new_env(env: EnvLike) -> bool:
    return isinstance(env, str) or (callable(env) and not isinstance(env, gym.Env | VectorEnv))


CallbackLike: TypeAlias = BaseCallback | Sequence[BaseCallback] | Callable[..., Any] | None


def make_callback(callback: CallbackLike, progress_bar: bool = False) -> BaseCallback:
    """Turn what ``learn(callback=...)`` accepts into one callback (adding the progress bar)."""
    callbacks: list[BaseCallback]
    if callback is None:
        callbacks = []
    elif isinstance(callback, BaseCallback):
        callbacks = [callback]
    elif isinstance(callback, Sequence) and not isinstance(callback, str):
        callbacks = [c if isinstance(c, BaseCallback) else make_callback(c) for c in callback]
    elif callable(callback):
        callbacks = [ConvertCallback(callback)]
    else:
        raise TypeError(
            f"callback must be a BaseCallback, a list of callbacks or a function (locals, globals) -> bool; "
            f"got {type(callback).__name__}."
        )
    if progress_bar:
        callbacks.append(ProgressBarCallback())
    return callbacks[0] if len(callbacks) == 1 else CallbackList(callbacks)
