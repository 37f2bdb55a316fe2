"""Many runs on Ray: seeds and parameter grids, one Ray Tune trial per run (``easyrl sweep``).

    from easyrl import SAC
    from easyrl.experiment import run_many
    table = run_many(SAC("Pendulum-v1"), [{"learning_rate": 1e-3}, {"learning_rate": 3e-4}],
                     seeds=range(3), total_timesteps=20_000, output_dir="sweeps/lr")

A trial is ``clone(estimator).set_params(**config, seed=seed)`` trained by :mod:`easyrl.experiment`'s
machinery into its own run folder ``<output_dir>/<config>/<algo>/<env>/seed<k>`` (:mod:`easyrl.runs`),
inside a Ray Tune function trainable that reports each evaluation with ``ray.tune.report``. Each trial sets
torch's thread count to its CPUs (one by default). A trial whose worker dies is started again by Ray
(``max_failures``) and continues from its newest checkpoint exactly; an exception in a trial is its
row's ``error`` and the others go on; ``resume=True`` runs only the trials without a ``trial.json``.
Ray is imported here only (the ``ray`` extra), so ``import easyrl`` never imports it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from easyrl.callbacks import BaseCallback
from easyrl.extras import require
from easyrl.hyperparams import HyperparameterError
from easyrl.trial_report import plain, read_row, result_row, run_trial, write_row

RESULTS = "results.csv"
CURVES = "curves.png"
COLUMNS = ("seed", "final_return", "best_return", "steps_per_s", "status", "error", "model", "folder")


def config_name(config: Mapping[str, Any]) -> str:
    """A folder name for a configuration: ``learning_rate=0.001,batch_size=64`` (``default`` for none)."""
    if not config:
        return "default"
    text = ",".join(f"{key}={plain(value)}" for key, value in config.items())
    return re.sub(r"[^\w.=,+-]+", "_", text)[:120]


def run_many(
    estimator: Any,
    configs: Sequence[Mapping[str, Any]] | None = None,
    seeds: Iterable[int] = (0,),
    *,
    total_timesteps: int,
    eval_freq: int | None = None,
    n_eval_episodes: int = 5,
    save_freq: int | None = None,
    output_dir: str | os.PathLike[str] = "sweeps",
    resources_per_trial: Mapping[str, float] | None = None,
    address: str | None = None,
    max_failures: int = 2,
    resume: bool = False,
    callback: BaseCallback | None = None,
    verbose: int = 1,
) -> Any:
    """Train ``estimator`` with each of ``configs`` (``set_params`` names) at each of ``seeds``, one Ray
    Tune trial per run; returns the results table, a pandas DataFrame with one row per trial (its
    settings, ``seed``, ``final_return``, ``best_return``, ``steps_per_s``, ``status`` "done" or "error",
    ``error``, ``model``: the final model file, ``folder``), also written to ``<output_dir>/results.csv``
    beside ``curves.png`` (every run's learning curve; needs matplotlib).

    Args:
        estimator: an unfitted easyrl model made with an env id, e.g. ``SAC("Pendulum-v1", batch_size=64)``.
        eval_freq: evaluate every this many env steps (default: a tenth of the budget); ``save_freq``:
            checkpoint (model and replay buffer) every this many steps (default: ``eval_freq``).
        resources_per_trial: ``{"cpu": 1, "gpu": 0}`` by default; torch uses ``cpu`` threads per trial.
        address: a Ray cluster's address (default: ``RAY_ADDRESS``, else a local Ray started here). On a
            cluster ``output_dir`` must be on storage every node sees.
        max_failures: how many times a trial whose worker died is started again from its checkpoint.
        resume: continue an interrupted sweep in ``output_dir``: finished trials are not run again.
        callback: a callback run beside each trial's own (each trial gets its own copy).
        verbose: 0 prints nothing, 1 the results table, 2 also Ray Tune's progress and the trials' output.

    Raises:
        MissingExtraError: Ray is not installed; HyperparameterError: bad arguments, or ``output_dir``
        holds trials already (without ``resume``).
    """
    tune = require("ray.tune", "ray", "Running many trials (run_many, easyrl sweep)")
    ray = sys.modules["ray"]
    configs = [dict(config) for config in (configs or [{}])]
    seeds = [int(seed) for seed in seeds]
    if not seeds or min(seeds) < 0 or total_timesteps < 1:
        raise HyperparameterError("run_many needs seeds >= 0 and total_timesteps >= 1.")
    eval_freq = max(total_timesteps // 10, 1) if eval_freq is None else int(eval_freq)
    options = {"total_timesteps": int(total_timesteps), "eval_freq": eval_freq,
               "n_eval_episodes": int(n_eval_episodes), "save_freq": eval_freq if save_freq is None else int(save_freq)}  # fmt: skip
    resources = {"cpu": 1.0, "gpu": 0.0, **(resources_per_trial or {})}
    output = Path(output_dir).resolve()
    env_id = estimator.get_params()["env"]
    algo = type(estimator).__name__.lower()
    trials: list[dict[str, Any]] = [
        {"config": config, "seed": seed, "folder": str(output / config_name(config) / algo / str(env_id) / f"seed{seed}")}
        for config in configs
        for seed in seeds
    ]  # fmt: skip
    if len({trial["folder"] for trial in trials}) < len(trials):
        raise HyperparameterError("run_many: two configurations are the same; give each setting once.")
    started = [t for t in trials if Path(t["folder"]).exists() and any(Path(t["folder"]).iterdir())]
    if started and not resume:
        raise HyperparameterError(
            f"{output} holds trials of a sweep already ({started[0]['folder']}): pass resume=True (--resume) "
            "to finish it, or choose another output folder."
        )
    pending = [t for t in trials if (read_row(Path(t["folder"])) or {}).get("status") != "done"]
    errors: dict[str, str] = {}
    if pending:
        with ray_session(ray, address, verbose):
            errors = _fit(
                tune, estimator, pending, options, resources, output, max_failures, callback, verbose
            )
    return _table(trials, errors, output, verbose)


@contextlib.contextmanager
def ray_session(ray: Any, address: str | None, verbose: int) -> Iterator[None]:
    """Ray for the block: the session the script started with ``ray.init()``, else one started here (local,
    or the cluster at ``address`` or ``RAY_ADDRESS``) and shut down after. Workers' output reaches this
    process from ``verbose`` 2."""
    ours = not ray.is_initialized()
    if ours:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                 logging_level="ERROR", log_to_driver=verbose >= 2)  # fmt: skip
    try:
        yield
    finally:
        if ours:
            ray.shutdown()


def fit(tuner: Any, verbose: int) -> Any:
    """``tuner.fit()``, without Ray Tune's banner below ``verbose`` 2 (Ray prints it even at its verbosity 0)."""
    quiet = contextlib.redirect_stdout(io.StringIO()) if verbose < 2 else contextlib.nullcontext()
    with quiet:
        return tuner.fit()


def _fit(
    tune: Any,
    estimator: Any,
    pending: list[dict[str, Any]],
    options: dict[str, Any],
    resources: dict[str, float],
    output: Path,
    max_failures: int,
    callback: BaseCallback | None,
    verbose: int,
) -> dict[str, str]:
    """Run the pending trials on Ray; returns the errors Ray saw (a worker that died too often), by folder."""
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, estimator=estimator, options=options, callback=callback,
                             threads=max(int(resources["cpu"]), 1)),
        {"cpu": resources["cpu"], "gpu": resources["gpu"]},
    )  # fmt: skip
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(pending)},
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(output),
            verbose=1 if verbose >= 2 else 0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    )  # fmt: skip
    grid = fit(tuner, verbose)
    errors = {}
    for result in grid:
        if result.error is not None:
            errors[result.config["trial"]["folder"]] = " ".join(str(result.error).split())[:500]
    return errors


def _trainable(
    space: dict[str, Any],
    estimator: Any,
    options: dict[str, Any],
    callback: BaseCallback | None,
    threads: int,
) -> None:
    """One trial, in a Ray worker: run it (or continue it from its checkpoint), report, write its row."""
    import torch
    from ray import tune

    torch.set_num_threads(threads)
    trial = space["trial"]
    folder = Path(trial["folder"])

    def report(metrics: dict[str, Any]) -> bool:
        tune.report(metrics)
        return True

    try:
        row = run_trial(estimator, trial["config"], trial["seed"], folder, options, report, callback)
    except Exception as error:  # the trial's error goes into its row; the sweep goes on
        row = result_row(
            trial["config"], trial["seed"], folder, "error", f"{type(error).__name__}: {error}", 0.0
        )
        write_row(folder, row)
    tune.report({"done": True, "status": row["status"], "final_return": row["final_return"]})


def _table(trials: list[dict[str, Any]], errors: dict[str, str], output: Path, verbose: int) -> Any:
    """The results table of every trial, written as ``results.csv`` beside ``curves.png``, and printed."""
    pandas = require("pandas", "ray", "The results table of run_many")
    rows = []
    for trial in trials:
        folder = Path(trial["folder"])
        row = read_row(folder)
        if row is None:
            error = errors.get(
                trial["folder"], "the trial did not finish (interrupted): run again with resume"
            )
            row = result_row(trial["config"], trial["seed"], folder, "error", error, math.nan)
        rows.append(row)
    keys = list(dict.fromkeys(key for row in rows for key in row if key not in COLUMNS))
    table = pandas.DataFrame(rows, columns=[*keys, *COLUMNS])
    output.mkdir(parents=True, exist_ok=True)
    table.to_csv(output / RESULTS, index=False)
    done = [row["folder"] for row in rows if row["status"] == "done"]
    if done:
        try:
            from easyrl.plotting import plot_runs

            plot_runs(done, output / CURVES, title=f"{len(done)} runs")
        except ImportError as error:
            print(f"No {CURVES}: {error}", file=sys.stderr)
    if verbose:
        with pandas.option_context("display.max_columns", None, "display.width", 160):
            print(table.drop(columns=["folder", "model"]).to_string(index=False))
        print(f"Wrote {output / RESULTS}" + (f" and {output / CURVES}" if done else ""))
    return table
