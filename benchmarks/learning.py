"""Learning curves at a fixed budget: deterministic evaluation returns every N steps, easyrl beside SB3.

    python benchmarks/learning.py CrossQ HalfCheetah-v4 --steps 100000 --seeds 0
    python benchmarks/learning.py SAC HalfCheetah-v4 --steps 100000 --seeds 0 1 --sb3
    python benchmarks/learning.py SAC Hopper-v4 --policy-kwargs "dict(layer_norm=True)"
    python benchmarks/learning.py TD3 HalfCheetah-v4 --steps 50000 --precision fp32 bf16

Each run trains the algorithm with its defaults (plus ``--policy-kwargs`` for easyrl) and, every
``--eval-every`` steps, evaluates the deterministic policy on ``--episodes`` episodes of a separate env
(seeded per evaluation), printing one row per evaluation: library, algorithm, seed, steps, mean return and
the training steps per second so far (evaluation excluded). With ``--sb3``, the same run follows with
Stable-Baselines3's or sb3-contrib's class of the same name, one library after the other, for a
side-by-side table. Long runs are meant for the background: ``--threads`` torch threads (2 by default;
never two such runs at once on a 2-core machine).
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

import gymnasium as gym
import torch
from machine import cpu_model  # this folder's machine description

import easyrl
from easyrl.zoo import parse_policy_kwargs  # rl-zoo's "dict(...)" form, read without eval

SB3_HOMES = {"SAC": "stable_baselines3", "TD3": "stable_baselines3", "DDPG": "stable_baselines3",
             "TQC": "sb3_contrib", "CrossQ": "sb3_contrib"}  # fmt: skip


def build(
    library: str, algo: str, env: str, seed: int, policy_kwargs: dict[str, Any] | None, precision: str
) -> Any:
    if library == "easyrl":
        return getattr(easyrl, algo)(
            env, seed=seed, policy_kwargs=policy_kwargs, device="cpu", precision=precision
        )
    cls = getattr(importlib.import_module(SB3_HOMES[algo]), algo)
    return cls("MlpPolicy", env, seed=seed, device="cpu")


def evaluate(library: str, model: Any, env_id: str, episodes: int, seed: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=seed)
    if library == "easyrl":
        mean, _ = easyrl.evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    else:
        from stable_baselines3.common.evaluation import evaluate_policy

        mean, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    env.close()
    return float(mean)


def run(library: str, args: argparse.Namespace, seed: int, precision: str = "fp32") -> None:
    policy_kwargs = parse_policy_kwargs(args.policy_kwargs) if args.policy_kwargs else None
    model = build(library, args.algo, args.env, seed, policy_kwargs, precision)
    trained, seconds = 0, 0.0
    while trained < args.steps:
        chunk = min(args.eval_every, args.steps - trained)
        start = time.perf_counter()
        model.learn(chunk, reset_num_timesteps=trained == 0)
        seconds += time.perf_counter() - start
        trained += chunk
        mean = evaluate(library, model, args.env, args.episodes, 10_000 + trained)
        name = library if library == "sb3" else f"{library} {precision}"
        print(
            f"{name:11s} {args.algo:7s} {seed:4d} {trained:8d} {mean:9.1f} {trained / seconds:8.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("algo", choices=sorted(SB3_HOMES))
    parser.add_argument("env")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policy-kwargs", help='easyrl only, rl-zoo\'s form, e.g. "dict(layer_norm=True)"')
    parser.add_argument(
        "--sb3", action="store_true", help="also run SB3's / sb3-contrib's class, after easyrl's"
    )
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16", "tf32"),
                        help="easyrl's precision; several run one after the other, seed by seed")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s); {args.algo} on {args.env}, defaults, "
          f"deterministic evaluation over {args.episodes} episodes every {args.eval_every} steps")  # fmt: skip
    print(f"{'library':11s} {'algo':7s} {'seed':>4s} {'steps':>8s} {'return':>9s} {'steps/s':>8s}")
    for seed in args.seeds:
        for precision in args.precision:
            run("easyrl", args, seed, precision)
    for seed in args.seeds if args.sb3 else []:
        run("sb3", args, seed)


if __name__ == "__main__":
    main()
