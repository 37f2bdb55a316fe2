"""``easyrl sweep`` (many runs on Ray, :mod:`easyrl.sweeps`) and ``easyrl tune`` (Optuna, :mod:`easyrl.tuning`).

easyrl sweep sac Pendulum-v1 -p learning_rate=1e-3,3e-4 --seeds 0-2 --steps 20000
easyrl tune sac Pendulum-v1 --n-trials 50 --steps 20000 --storage sqlite:///study.db
"""

from __future__ import annotations

import argparse
import itertools
import re
from typing import Any

from easyrl.hyperparams import HyperparameterError, load_file, parse_override


def add_commands(commands: Any) -> None:
    """Add the ``sweep`` and ``tune`` subcommands to the ``easyrl`` parser's ``commands``."""
    sweep = commands.add_parser("sweep", help="many runs on Ray: seeds and a grid of settings",
                                description="Train ALGO on ENV (with the tuned settings) for every combination of "
                                "the grid's values and every seed, one Ray Tune trial per run (the ray extra), into "
                                "OUTPUT/<settings>/ALGO/ENV/seedK/; prints the results table and writes results.csv "
                                "and curves.png to OUTPUT.")  # fmt: skip
    sweep.add_argument("algo", help="sac, td3, ddpg, tqc or crossq")
    sweep.add_argument("env", help="a gymnasium env id, e.g. Pendulum-v1")
    sweep.add_argument("-p", "--param", action="append", default=[], metavar="KEY=V1,V2",
                       help="values of one setting to sweep, e.g. -p learning_rate=1e-3,3e-4 (repeatable)")  # fmt: skip
    sweep.add_argument("--grid", metavar="FILE.yml", help="a YAML mapping of settings to lists of values")
    sweep.add_argument("--seeds", default="0", help="seeds: 0-4, or 0,3,7 (default 0)")
    sweep.add_argument("--steps", help="each run's budget in env steps (default: the settings')")
    sweep.add_argument("--eval-freq", type=int, help="evaluate every N env steps (default: budget/10)")
    sweep.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (default 5)")
    sweep.add_argument("--output", default="sweeps", help="where the runs and the table go (default sweeps/)")
    sweep.add_argument("--address", help="a Ray cluster's address (default: RAY_ADDRESS, else local Ray)")
    sweep.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs (= torch threads) per trial (default 1)"
    )
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU fraction per trial (default 0)")
    sweep.add_argument(
        "--max-failures", type=int, default=2, help="restarts of a trial whose worker died (default 2)"
    )
    sweep.add_argument("--resume", action="store_true", help="finish an interrupted sweep in OUTPUT")
    sweep.set_defaults(run=_sweep)
    tune = commands.add_parser("tune", help="tune hyperparameters with Optuna (TPE, median pruning)",
                               description="Search ALGO's settings on ENV with Optuna (the tune extra): TPE sampling "
                               "over rl-zoo's search space, trials pruned at the median of their evaluations; writes "
                               "the best settings as a YAML file for easyrl train --hyperparams.")  # fmt: skip
    tune.add_argument("algo", help="sac, td3, ddpg or tqc (crossq: pass a search space from Python)")
    tune.add_argument("env", help="a gymnasium env id, e.g. Pendulum-v1")
    tune.add_argument("--n-trials", type=int, required=True, help="trials to run (more, on a resumed study)")
    tune.add_argument("--steps", required=True, help="each trial's budget in env steps")
    tune.add_argument(
        "--storage", help="an Optuna storage URL to keep and resume the study, e.g. sqlite:///study.db"
    )
    tune.add_argument("--study-name", help="the study's name (default ALGO-ENV)")
    tune.add_argument("--n-evaluations", type=int, default=5, help="evaluations per trial (default 5)")
    tune.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (default 5)")
    tune.add_argument(
        "--n-startup-trials", type=int, default=5, help="random trials before TPE and pruning (default 5)"
    )
    tune.add_argument("--seed", type=int, default=0, help="the trials' and the sampler's seed (default 0)")
    tune.add_argument("--n-jobs", type=int, default=1, help="trials at once in this process (default 1)")
    tune.add_argument("--ray", action="store_true", help="run the trials on Ray (Ray Tune's Optuna searcher)")
    tune.add_argument(
        "--address", help="with --ray: a Ray cluster's address (default: RAY_ADDRESS, else local)"
    )
    tune.add_argument(
        "--cpus-per-trial",
        type=float,
        default=1.0,
        help="with --ray: CPUs (= torch threads) per trial (default 1)",
    )
    tune.add_argument("--output", default="tuning", help="where the trials' run folders go (default tuning/)")
    tune.add_argument(
        "--best", metavar="FILE.yml", help="the best settings' file (default OUTPUT/best_hyperparams.yml)"
    )
    tune.set_defaults(run=_tune)


def seed_list(text: str) -> list[int]:
    """``0-4`` or ``0,3,7`` (or both, ``0-2,9``) as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise HyperparameterError(f"--seeds {text!r} is invalid: give seeds >= 0 as 0-4 or 0,3,7.")
        last = int(match.group(2) or match.group(1))
        seeds.extend(range(int(match.group(1)), last + 1))
    return list(dict.fromkeys(seeds))


def _split(values: str) -> list[str]:
    """``1e-3,3e-4`` or ``[64,64],[256,256]``: split at the commas outside brackets and quotes."""
    parts, depth, current, quote = [], 0, "", ""
    for char in values:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def grid(params: list[str], grid_file: str | None) -> list[dict[str, Any]]:
    """Every combination of the values of ``-p KEY=V1,V2`` and of a grid file (rl-zoo-form settings)."""
    axes: dict[str, list[Any]] = {}
    if grid_file is not None:
        for key, values in load_file(grid_file).items():
            axes[str(key)] = list(values) if isinstance(values, list) else [values]
    for text in params:
        key, _, values = text.partition("=")
        if not values:
            raise HyperparameterError(
                f"-p {text!r} is invalid: give KEY=V1,V2,... such as learning_rate=1e-3,3e-4."
            )
        axes[key.strip()] = [parse_override(f"{key.strip()}={value.strip()}")[1] for value in _split(values)]
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def _sweep(args: argparse.Namespace) -> int:
    from easyrl import experiment
    from easyrl.hyperparams import model_arguments, positive_steps

    configs = grid(args.param, args.grid)
    seeds = seed_list(args.seeds)
    base = experiment.run_config(args.algo, args.env, steps=args.steps, eval_episodes=args.eval_episodes)
    model = experiment._build(base, verbose=0)  # built, so its action space is known
    shape = tuple(model.action_space.shape or ())
    settings = [model_arguments(type(model), config, shape) for config in configs]
    for name, value in (("--cpus-per-trial", args.cpus_per_trial), ("--max-failures", args.max_failures + 1)):
        if value <= 0:
            raise HyperparameterError(f"{name} must be > 0.")
    total = positive_steps(base["hyperparams"]["n_timesteps"], "--steps")
    print(f"Sweeping {args.algo.upper()} on {args.env}: {len(configs)} setting(s) x {len(seeds)} seed(s), "
          f"{total:,} steps each ...", flush=True)  # fmt: skip
    table = experiment.run_many(
        model, settings, seeds, total_timesteps=total, eval_freq=args.eval_freq, n_eval_episodes=args.eval_episodes,
        output_dir=args.output, address=args.address, max_failures=args.max_failures, resume=args.resume,
        resources_per_trial={"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )  # fmt: skip
    return 0 if (table["status"] == "done").all() else 1


def _tune(args: argparse.Namespace) -> int:
    from easyrl.tuning import tune

    result = tune(
        args.algo, args.env, n_trials=args.n_trials, steps=args.steps, storage=args.storage,
        study_name=args.study_name, n_evaluations=args.n_evaluations, eval_episodes=args.eval_episodes,
        seed=args.seed, n_startup_trials=args.n_startup_trials, n_jobs=args.n_jobs, output=args.output,
        best_file=args.best, on_ray=args.ray, address=args.address, cpus_per_trial=args.cpus_per_trial,
    )  # fmt: skip
    study = result.study
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    print(f"Study {study.study_name}: {len(study.trials)} trials ({', '.join(f'{n} {s}' for s, n in states.items())}); "
          f"best: trial {study.best_trial.number}, return {study.best_value:.2f}")  # fmt: skip
    print(
        f"Wrote {result.best_file}; train with: easyrl train {args.algo} {args.env} --hyperparams {result.best_file}"
    )
    return 0
