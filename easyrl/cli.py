"""The ``easyrl`` command (also ``python -m easyrl``): argument parsing and error reporting.

    easyrl train sac Pendulum-v1 --seed 0          # tuned settings, runs/sac/Pendulum-v1/seed0/
    easyrl eval runs/sac/Pendulum-v1/seed0/best_model.zip --episodes 10
    easyrl video runs/sac/Pendulum-v1/seed0/best_model.zip -o pendulum.mp4
    easyrl plot runs/sac/Pendulum-v1/seed* -o curve.png
    easyrl info model.zip                          # what a file holds, from its metadata alone

The work is done by :mod:`easyrl.experiment`, :mod:`easyrl.playback`, :mod:`easyrl.plotting` and
:mod:`easyrl.cli_info`. Bad input (an unknown algorithm, env or key, a value that does not parse, a
damaged file, a missing extra) is one line on standard error naming the problem and the fix, and exit
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from easyrl.extras import MissingExtraError
from easyrl.hyperparams import HyperparameterError
from easyrl.serialization import ModelFileError

USAGE_ERRORS = (HyperparameterError, ModelFileError, MissingExtraError)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and exit status 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input, 130 interrupted)."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.run
    from easyrl.playback import PlaybackError
    from easyrl.plotting import PlotError

    try:
        return command(args)
    except (*USAGE_ERRORS, PlaybackError, PlotError) as error:
        print(f"easyrl {args.command}: {' '.join(str(error).split())}", file=sys.stderr)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"easyrl {args.command}: {where}{error.strerror or error}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="easyrl", description="easyrl command line tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(commands)
    evaluate = commands.add_parser("eval", help="play a saved model and report its returns",
                                   description="Play N episodes of a saved model; print the mean ± std return, "
                                   "the episode length and, where the env reports one, the success rate.")  # fmt: skip
    _add_playback(evaluate, episodes=10)
    evaluate.set_defaults(run=_eval)
    video = commands.add_parser("video", help="render a saved model's episodes to .mp4 or .gif",
                                description="Render episodes of a saved model headless (render_mode='rgb_array') "
                                "and write them with imageio (the video extra).")  # fmt: skip
    _add_playback(video, episodes=1)
    video.add_argument("-o", "--output", required=True, help="the video file, .mp4 or .gif")
    video.add_argument("--fps", type=int, help="frames per second (default: the env's render_fps)")
    video.set_defaults(run=_video)
    plot = commands.add_parser("plot", help="draw learning curves of runs",
                               description="Learning curves of run folders (evaluations.npz, else progress.csv). "
                               "Runs that differ only by seed are drawn as a mean with a shaded band; each "
                               "configuration is one line in the legend. Needs the plot extra (matplotlib).")  # fmt: skip
    plot.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders, e.g. runs/sac/Pendulum-v1/seed*"
    )
    plot.add_argument("-o", "--output", required=True, help="the image file (.png, .svg or .pdf)")
    plot.add_argument("--band", choices=("std", "minmax"), default="std", help="±1 std (default) or min-max")
    plot.add_argument(
        "--x", choices=("steps", "time"), default="steps", help="env steps (default) or wall time"
    )
    plot.add_argument("--title", help="the figure's title")
    plot.set_defaults(run=_plot)
    info = commands.add_parser("info", help="describe a saved model or replay buffer without loading it",
                               description="Print what a saved model (or replay buffer) file holds, from its "
                               "metadata only: the file's weights and any pickled members are never read.")  # fmt: skip
    info.add_argument("path", help="a file written by model.save() or model.save_replay_buffer()")
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    info.set_defaults(run=_info)
    _add_package(commands)
    from easyrl.cli_sweeps import add_commands

    add_commands(commands)  # easyrl sweep, easyrl tune
    return parser


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", help="train with tuned settings into a run folder",
                                description="Train ALGO (sac, td3, ddpg, tqc, crossq) on the env id ENV with rl-zoo's tuned "
                                "settings, into OUTPUT/ALGO/ENV/seedK/: config.yml, progress.csv, evaluations.npz, "
                                "best_model.zip, checkpoints/ and final_model.zip.")  # fmt: skip
    train.add_argument("algo", help="sac, td3, ddpg, tqc or crossq")
    train.add_argument("env", help="a gymnasium env id, e.g. Pendulum-v1 or HalfCheetah-v4")
    train.add_argument("--steps", help="the budget in env steps, e.g. 20000 or 1e6 (default: the settings')")
    train.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    train.add_argument("--n-envs", type=int, help="parallel envs (default: the settings', else 1)")
    train.add_argument("--hyperparams", metavar="FILE.yml", help="settings laid over the shipped ones")
    train.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                       help="one setting, a Python literal or a word, e.g. -p learning_rate=3e-4 (repeatable)")  # fmt: skip
    train.add_argument(
        "--print-hyperparams", action="store_true", help="print the settings that would be used, and stop"
    )
    train.add_argument(
        "--eval-freq",
        type=int,
        help="evaluate every N env steps (default: budget/20, at most 10,000; 0: never)",
    )
    train.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (default 5)")
    train.add_argument(
        "--save-freq",
        type=int,
        help="checkpoint every N env steps (default: budget/10, at most 100,000; 0: never)",
    )
    train.add_argument("--device", help="auto (default), cpu or cuda")
    train.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard events to the run folder"
    )
    train.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=0, help="1: the logger's tables and evaluations"
    )
    train.add_argument("--output", default="runs", help="where run folders go (default runs/)")
    train.add_argument("--force", action="store_true", help="delete an existing run folder and start again")
    train.add_argument("--resume", action="store_true", help="continue the run from its newest checkpoint")
    bar = train.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress-bar", dest="progress", action="store_true", default=None, help="draw a progress bar"
    )
    bar.add_argument(
        "--no-progress-bar", dest="progress", action="store_false", help="print plain progress lines"
    )
    train.set_defaults(run=_train)


def _add_playback(parser: argparse.ArgumentParser, episodes: int) -> None:
    parser.add_argument("model", metavar="MODEL.zip", help="a model file (e.g. a run's best_model.zip)")
    parser.add_argument(
        "--episodes", type=int, default=episodes, help=f"episodes to play (default {episodes})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="the policy's mean action (default)")  # fmt: skip
    mode.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample actions")
    parser.add_argument("--env", help="play on this env id instead of the one saved with the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")


def _train(args: argparse.Namespace) -> int:
    from easyrl import experiment, hyperparams

    options = dict(
        steps=args.steps, seed=args.seed, n_envs=args.n_envs, hyperparams=args.hyperparams, overrides=args.param,
        eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, save_freq=args.save_freq,
    )  # fmt: skip
    if args.print_hyperparams:
        config = experiment.run_config(args.algo, args.env, **options, device=args.device or "auto",
                                       tensorboard=args.tensorboard)  # fmt: skip
        source = "easyrl's tuned settings" if config["tuned"] else f"{config['algorithm'].upper()}'s defaults"
        changed = ", with your changes" if args.hyperparams or args.param else ""
        print(f"# {config['algorithm']} on {config['env']}: {source}{changed}")
        print(hyperparams.dump(config["hyperparams"]), end="")
        print("# run options")
        print(hyperparams.dump({**config["run"], "seed": config["seed"]}), end="")
        return 0
    if not args.resume:  # check the settings before saying anything
        experiment.run_config(args.algo, args.env, **options)
    verb = "Resuming" if args.resume else "Training"
    print(f"{verb} {args.algo.upper()} on {args.env} (seed {args.seed}) ...", flush=True)
    started = time.perf_counter()
    try:
        model, folder = experiment.train(
            args.algo, args.env, **options, device=args.device, tensorboard=args.tensorboard,
            verbose=args.verbose, output=args.output, force=args.force, resume=args.resume, progress=args.progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"\neasyrl train: interrupted; continue from the newest checkpoint with: easyrl train {args.algo} "
              f"{args.env} --seed {args.seed} --output {args.output} --resume", file=sys.stderr)  # fmt: skip
        return 130
    seconds = time.perf_counter() - started
    print(f"Trained {model.num_timesteps:,} steps in {seconds:.0f} s; run folder {folder}")
    from easyrl.runs import load_results

    results = load_results(folder) if (folder / "evaluations.npz").is_file() else None
    if results is not None and len(results.timesteps):
        means = results.mean_returns
        last = results.returns[-1]
        print(f"Last evaluation (step {int(results.timesteps[-1]):,}): return {last.mean():.1f} ± {last.std():.1f} "
              f"over {last.size} episodes; best mean {means.max():.1f} (best_model.zip)")  # fmt: skip
    return 0


def _eval(args: argparse.Namespace) -> int:
    from easyrl.playback import evaluate_file

    report = evaluate_file(args.model, args.episodes, args.deterministic, args.env, args.seed)
    print("\n".join(report.lines(args.deterministic)))
    return 0


def _video(args: argparse.Namespace) -> int:
    from easyrl.playback import record_video

    report = record_video(
        args.model, args.output, args.episodes, args.deterministic, args.env, args.seed, args.fps
    )
    returns = ", ".join(f"{r:.1f}" for r in report.returns)
    print(f"Wrote {report.path}: {report.env_id}, {len(report.returns)} episode(s), {report.frames} frames at "
          f"{report.fps} fps (returns {returns})")  # fmt: skip
    return 0


def _plot(args: argparse.Namespace) -> int:
    from easyrl.plotting import load_all, plot_runs, summary

    plot_runs(args.runs, args.output, band=args.band, x=args.x, title=args.title)
    print(summary(load_all(args.runs)))
    print(f"Wrote {args.output}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from easyrl.cli_info import info

    return info(args.path, args.json, sys.stdout, sys.stderr)


def _add_package(commands: Any) -> None:
    package = commands.add_parser("package", help="write a shareable folder: model, model card, evaluation, video",
                                  description="Write OUT_DIR with the model (model.zip), a README.md model card, the "
                                  "evaluation as results.json and, with the video extra, a replay (replay.mp4).")  # fmt: skip
    package.add_argument("model", help="a model file written by model.save()")
    package.add_argument("out_dir", help="the folder to write (new or empty, unless --force)")
    package.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    package.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    package.add_argument("--env", help="evaluate on this env id instead of the one saved with the model")
    package.add_argument("--no-video", dest="video", action="store_false", help="skip the replay video")
    package.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    package.set_defaults(run=_package)


def _package(args: argparse.Namespace) -> int:
    from easyrl.packaging import package_model

    report = package_model(
        args.model, args.out_dir, args.episodes, args.seed, args.env, args.video, args.force
    )
    print(f"Wrote {report.folder}: {', '.join(report.files)}; return {report.mean_return:.2f} ± "
          f"{report.std_return:.2f} over {report.episodes} episodes")  # fmt: skip
    if report.video_skipped:
        print(f"No replay video: {report.video_skipped}")
    return 0
