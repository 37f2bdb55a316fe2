"""Evaluation during training, and the early stops that read its results.

:class:`EvalCallback` evaluates the model every so many steps, keeps the best model and writes SB3's
``evaluations.npz``; :class:`StopTrainingOnRewardThreshold` and
:class:`StopTrainingOnNoModelImprovement` are given to it and stop training from its results.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from easyrl.callbacks.base import BaseCallback, EventCallback, _positive_int
from easyrl.envs import EnvLike, builds_new_env, to_vector_env
from easyrl.evaluation import run_episodes
from easyrl.observations import space_shapes


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
    An env that reports ``info["is_success"]`` (goal-conditioned envs do) also gets
    ``eval/success_rate``, the fraction of evaluation episodes whose last step succeeded, kept in
    ``evaluations_successes`` (and as ``successes`` in ``evaluations.npz``).
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
        self.evaluations_successes: list[list[float]] = []
        self._vec_env: VectorEnv | None = None
        self._seed: int | None = None

    def _children(self) -> list[BaseCallback]:
        return super()._children() + ([self.callback_after_eval] if self.callback_after_eval else [])

    def _init_callback(self) -> None:
        model = self._model
        if self._vec_env is None:
            self._vec_env = to_vector_env(self.eval_env, 1)
            # Seed the first evaluation from the model's seed (later ones continue the env's
            # generators), so a seeded run is repeatable, evaluations included.
            self._seed = int(np.random.SeedSequence(model.seed_used).spawn(1)[0].generate_state(1)[0])
        eval_space, train_space = self._vec_env.single_observation_space, model.observation_space
        eval_shapes = (
            space_shapes(eval_space) if isinstance(eval_space, gym.spaces.Box | gym.spaces.Dict) else None
        )
        if eval_shapes != space_shapes(train_space):
            raise ValueError(
                f"EvalCallback: the evaluation env's observations are {eval_space}, but the model was trained "
                f"on {train_space}; evaluate on the same kind of env."
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
        returns, lengths, successes = run_episodes(
            self._model, self._vec_env, self.n_eval_episodes, self.deterministic, self.render, self._seed
        )
        self._seed = None
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(returns)
        self.evaluations_length.append(lengths)
        if successes:
            self.evaluations_successes.append(successes)
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
        if successes:
            success_rate = float(np.mean(successes))
            self.logger.record("eval/success_rate", success_rate)
            if self.verbose >= 1:
                print(f"Success rate: {100 * success_rate:.2f}%")
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
        arrays = {
            "timesteps": np.array(self.evaluations_timesteps),
            "results": np.array(self.evaluations_results),
            "ep_lengths": np.array(self.evaluations_length),
        }
        if self.evaluations_successes:
            arrays["successes"] = np.array(self.evaluations_successes)
        with open(path + ".tmp", "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]
        os.replace(path + ".tmp", path)

    def _on_training_end(self) -> None:
        super()._on_training_end()
        if self._vec_env is not None and builds_new_env(self.eval_env):
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


def _eval_parent(callback: BaseCallback) -> EvalCallback:
    if not isinstance(callback.parent, EvalCallback):
        raise ValueError(
            f"{type(callback).__name__} reads the evaluation results, so it must be given to an EvalCallback "
            "(callback_on_new_best=... or callback_after_eval=...), not used on its own."
        )
    return callback.parent
