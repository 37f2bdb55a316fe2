"""Hyperparameter tuning with Optuna (``easyrl tune``): TPE sampling, median pruning, rl-zoo's search spaces.

    from easyrl.tuning import tune
    result = tune("sac", "Pendulum-v1", n_trials=50, steps=20_000, storage="sqlite:///study.db")
    # result.best_file: a hyperparameter YAML for `easyrl train --hyperparams`

Each trial samples settings from the algorithm's search space (:data:`SEARCH_SPACES`, the ranges of
rl-baselines3-zoo's ``hyperparams_opt.py``) in rl-zoo's form, and trains with them through
:func:`easyrl.experiment.train` into ``<output>/trial_<n>``; each evaluation is reported to Optuna, whose
median pruner stops trials below the median of earlier ones at the same step. A study kept in
``storage`` (e.g. ``sqlite:///study.db``) continues where it stopped when run again with the same name.
Optuna is imported here only (the ``tune`` extra).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from easyrl import experiment, runs, sweeps
from easyrl.extras import require
from easyrl.hyperparams import HyperparameterError, check_algorithm, check_env, dump, positive_steps
from easyrl.trial_report import EvalReporter, evaluation_means

NET_ARCHS = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}
GAMMAS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
TAUS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.08]
TRAIN_FREQS = [1, 4, 8, 16, 32, 64, 128, 256, 512]


def _common(trial: Any, batch_sizes: list[int]) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", TRAIN_FREQS)
    return {
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", batch_sizes),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 100_000, 1_000_000]),
        "tau": trial.suggest_categorical("tau", TAUS),
        "train_freq": train_freq,
        "gradient_steps": train_freq,
    }


def sample_sac(trial: Any) -> dict[str, Any]:
    """rl-zoo's SAC space: gamma, learning rate, batch and buffer size, learning starts, train frequency
    (= gradient steps), tau and the network size; entropy coefficient "auto". rl-zoo also samples
    ``log_std_init``, which SB3 ignores without gSDE and easyrl refuses there, so it is left out."""
    settings = _common(trial, [16, 32, 64, 128, 256, 512, 1024, 2048])
    settings["learning_starts"] = trial.suggest_categorical("learning_starts", [0, 1000, 10000, 20000])
    settings["ent_coef"] = "auto"
    net_arch = NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))]
    settings["policy_kwargs"] = f"dict(net_arch={net_arch!r})"
    return settings


def sample_td3(trial: Any) -> dict[str, Any]:
    """rl-zoo's TD3 (and DDPG) space: as SAC's without the entropy settings, plus the action noise's type
    (Ornstein-Uhlenbeck, normal or none) and scale."""
    settings = _common(trial, [16, 32, 64, 100, 128, 256, 512, 1024, 2048])
    noise_type = trial.suggest_categorical("noise_type", ["ornstein-uhlenbeck", "normal", None])
    noise_std = trial.suggest_float("noise_std", 0, 1)
    if noise_type is not None:
        settings.update(noise_type=noise_type, noise_std=noise_std)
    net_arch = NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))]
    settings["policy_kwargs"] = f"dict(net_arch={net_arch!r})"
    return settings


def sample_tqc(trial: Any) -> dict[str, Any]:
    """rl-zoo's TQC space: SAC's, plus the quantiles dropped per critic (0 to 5)."""
    settings = sample_sac(trial)
    settings["top_quantiles_to_drop_per_net"] = trial.suggest_int("top_quantiles_to_drop_per_net", 0, 5)
    return settings


SEARCH_SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "sac": sample_sac,
    "td3": sample_td3,
    "ddpg": sample_td3,
    "tqc": sample_tqc,
}
"""The search space of each algorithm: a function of an Optuna trial returning rl-zoo-form settings."""


@dataclass(frozen=True)
class TrialRun:
    """One trial's training: ``settings`` (rl-zoo's form) into the run folder ``<output>/<name>/...``, each
    evaluation handed to ``report`` (False stops the run: pruned). Returns the last evaluation's mean
    return, or None for a pruned trial."""

    algo: str
    env: str
    budget: int
    seed: int
    eval_freq: int
    eval_episodes: int
    output: Path

    def __call__(
        self, name: str, settings: dict[str, Any], report: Callable[[dict[str, Any]], bool]
    ) -> float | None:
        stopped = []

        def reporting(metrics: dict[str, Any]) -> bool:
            keep_going = report(metrics)
            stopped.extend([] if keep_going else [metrics["timesteps"]])
            return keep_going

        output = self.output / name
        run = runs.run_folder(output, self.algo, self.env, self.seed)
        _, trained = experiment.train(
            self.algo, self.env, steps=self.budget, seed=self.seed, overrides=settings, eval_freq=self.eval_freq,
            eval_episodes=self.eval_episodes, save_freq=0, output=output, force=True, progress=False,
            callback=EvalReporter(run, self.eval_freq, reporting),
        )  # fmt: skip
        if stopped:
            return None
        means = evaluation_means(trained)
        if means is None:
            raise HyperparameterError("a trial made no evaluation: give --steps >= --n-evaluations.")
        return float(means[1][-1])


class SettingsOf:
    """A search space for Ray Tune's Optuna searcher: the sampled settings under one key of the trial's config,
    so a Ray worker gets them as they are and never needs the search space function itself (which may live in
    a module the workers cannot import, a script's say)."""

    KEY = "easyrl_settings"

    def __init__(self, sample: Callable[[Any], dict[str, Any]]) -> None:
        self.sample = sample

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {self.KEY: self.sample(trial)}


def _tune_on_ray(
    trial_run: TrialRun,
    sample: Callable[[Any], dict[str, Any]],
    optuna: Any,
    sampler: Any,
    name: str,
    storage: str | None,
    n_trials: int,
    n_startup_trials: int,
    n_warmup_evaluations: int,
    address: str | None,
    cpus_per_trial: float,
) -> Any:
    """Run the trials as Ray Tune trials: Ray Tune's Optuna searcher samples them from ``sample`` with
    ``sampler`` into the study ``name`` (kept in ``storage``), Ray's median stopping rule prunes them.
    Returns the Optuna study."""
    tune = require("ray.tune", "ray", "Tuning on Ray (easyrl tune --ray)")
    from ray.tune.search.optuna import OptunaSearch

    ray = sys.modules["ray"]
    rdb = optuna.storages.RDBStorage(storage) if storage else None
    searcher = OptunaSearch(space=SettingsOf(sample), metric="eval_return", mode="max", sampler=sampler,
                            study_name=name, storage=rdb)  # fmt: skip
    stopping = tune.schedulers.MedianStoppingRule(
        time_attr="timesteps", metric="eval_return", mode="max",
        grace_period=trial_run.eval_freq * n_warmup_evaluations, min_samples_required=max(n_startup_trials, 1),
    )  # fmt: skip

    def trainable(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(max(int(cpus_per_trial), 1))
        settings = config[SettingsOf.KEY]
        trial = f"trial_{tune.get_context().get_trial_id()}"
        trial_run(trial, settings, lambda metrics: tune.report(metrics) or True)

    with sweeps.ray_session(ray, address, verbose=0):
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpus_per_trial}),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=stopping, num_samples=n_trials),
            run_config=tune.RunConfig(name="ray", storage_path=str(trial_run.output), verbose=0),
        )  # fmt: skip
        grid = sweeps.fit(tuner, verbose=0)
        errors = [" ".join(str(result.error).split()) for result in grid if result.error is not None]
        if errors and len(errors) == len(grid):
            raise HyperparameterError(f"Every trial failed on Ray; the first: {errors[0][:800]}")
    return optuna.load_study(study_name=name, storage=rdb) if rdb else searcher._ot_study


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` returns: the study, its best settings (rl-zoo's form) and the YAML file of them."""

    study: Any
    best_settings: dict[str, Any]
    best_file: Path


def tune(
    algo: str,
    env: str,
    *,
    n_trials: int,
    steps: int | float | str,
    storage: str | None = None,
    study_name: str | None = None,
    n_evaluations: int = 5,
    eval_episodes: int = 5,
    seed: int = 0,
    n_startup_trials: int = 5,
    n_warmup_evaluations: int = 1,
    n_jobs: int = 1,
    output: str | os.PathLike[str] = "tuning",
    best_file: str | os.PathLike[str] | None = None,
    search_space: Callable[[Any], dict[str, Any]] | None = None,
    on_ray: bool = False,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
) -> TuneResult:
    """Run ``n_trials`` more trials of the study ``study_name`` (default ``<algo>-<env>``) and write the best
    settings to ``best_file`` (default ``<output>/best_hyperparams.yml``) as ``{env: settings}``.

    Args:
        steps: each trial's budget in env steps, evaluated ``n_evaluations`` times on ``eval_episodes``
            episodes (the values the pruner compares).
        storage: an Optuna storage URL (``sqlite:///study.db``) to keep and resume the study; None: in memory.
        n_startup_trials: trials sampled at random before TPE, and run to the end before any pruning.
        n_warmup_evaluations: evaluations of a trial before it can be pruned.
        n_jobs: trials at once in this process (threads; keep 1 on a small machine).
        search_space: a function of a trial giving rl-zoo-form settings (default :data:`SEARCH_SPACES`).
        on_ray: run the trials on Ray (the ray extra) through Ray Tune's Optuna searcher, with the same
            sampler and the study in ``storage``; pruning is then Ray's median stopping rule. ``address``:
            a Ray cluster's (default ``RAY_ADDRESS``, else a local Ray); ``cpus_per_trial``: CPUs, and torch
            threads, of each trial.

    Raises:
        MissingExtraError: Optuna is not installed; HyperparameterError: bad arguments.
    """
    optuna = require("optuna", "tune", "Tuning hyperparameters (easyrl tune)")
    algo = check_algorithm(algo)
    check_env(env)
    budget = positive_steps(steps, "--steps")
    for name, value in (("--n-trials", n_trials), ("--n-evaluations", n_evaluations), ("--n-jobs", n_jobs)):
        positive_steps(value, name)
    sample = search_space or SEARCH_SPACES.get(algo)
    if sample is None:
        raise HyperparameterError(
            f"easyrl ships no search space for {algo} (rl-zoo has none either): pass search_space= from Python, "
            f"or tune one of {', '.join(SEARCH_SPACES)}."
        )
    folder = Path(output).resolve()
    eval_freq = max(budget // n_evaluations, 1)
    sampler = optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed)
    name = study_name or f"{algo}-{env}"
    trial_run = TrialRun(algo, env, budget, seed, eval_freq, eval_episodes, folder)
    if on_ray:
        study = _tune_on_ray(trial_run, sample, optuna, sampler, name, storage, n_trials, n_startup_trials,
                             n_warmup_evaluations, address, cpus_per_trial)  # fmt: skip
    else:
        study = optuna.create_study(
            study_name=name, storage=storage, load_if_exists=True, direction="maximize", sampler=sampler,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_evaluations),
        )  # fmt: skip

        def objective(trial: Any) -> float:
            settings = sample(trial)
            trial.set_user_attr("settings", settings)

            def report(metrics: dict[str, Any]) -> bool:
                trial.report(metrics["eval_return"], int(metrics["timesteps"]) // eval_freq)
                return not trial.should_prune()

            value = trial_run(f"trial_{trial.number}", settings, report)
            if value is None:
                raise optuna.TrialPruned("pruned at the median of earlier trials")
            return value

        # Settings a model refuses (a ValueError when it is built) make a failed trial; the study goes on.
        study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, catch=(ValueError,))
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise HyperparameterError(
            f"No trial of the study {study.study_name} finished (all pruned or failed): run more trials."
        )
    best = sample(optuna.trial.FixedTrial(study.best_trial.params))
    path = Path(best_file) if best_file is not None else folder / "best_hyperparams.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# easyrl tune: best of {len(finished)} finished trials of {study.study_name} "
              f"(trial {study.best_trial.number}, last evaluation {study.best_value:.2f} after {budget} steps)\n")  # fmt: skip
    path.write_text(header + dump({env: best}), encoding="utf-8")
    return TuneResult(study, best, path)
