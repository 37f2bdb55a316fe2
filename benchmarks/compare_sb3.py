"""Training throughput, predict latency and replay memory: easyrl side by side with SB3.

Usage:
    python benchmarks/compare_sb3.py                       # SAC, TD3, DDPG on HalfCheetah-v4
    python benchmarks/compare_sb3.py --algos SAC --pairs 5 --steps 3000
    python benchmarks/compare_sb3.py --only-memory --env Humanoid-v4 --capacity 1000000
    python benchmarks/compare_sb3.py --precision bf16      # easyrl in fp32 and in bf16, beside SB3

Both libraries run with SB3's default hyperparameters for each algorithm. Each measurement
first runs ``--warmup`` steps (random actions, excluded from timing), then times ``--steps``
training steps. The libraries alternate within one process, pair after pair, and the figure
reported is the median of the per-pair ratios, with the lowest and highest pair in brackets. With
``--precision bf16`` (or ``tf32`` on a GPU) each round times easyrl in fp32, easyrl in that precision and
SB3, in rotating order, and both easyrl/SB3 ratios are printed:
these machines are noisy, and only a ratio measured side by side means much. stable-baselines3
is optional (``pip install "easyrl[compare]"``); without it only easyrl's figures are printed.

Do not run two benchmarks at once: two PyTorch processes on a 2-core machine slow each other
down by 10x or more.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from machine import cpu_model  # this folder's machine description

import easyrl

try:
    import stable_baselines3 as sb3
except ImportError:  # optional: only easyrl's figures are printed then
    sb3 = None

# SB3's defaults for each algorithm (learning rate and network are what differ).
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "SAC": dict(learning_rate=3e-4, net_arch=[256, 256]),
    "TD3": dict(learning_rate=1e-3, net_arch=[400, 300]),
    "DDPG": dict(learning_rate=1e-3, net_arch=[400, 300]),
}
LIBRARIES = ["easyrl"] + (["sb3"] if sb3 is not None else [])


def benchmark_parser(description: str | None) -> argparse.ArgumentParser:
    """The options the scripts in this folder share: which algorithms, which env, how much warm-up."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algos", nargs="+", default=list(SB3_DEFAULTS), choices=list(SB3_DEFAULTS))
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed random-action steps first")
    return parser


def make_model(
    library: str,
    algo: str,
    env_id: str,
    warmup: int,
    device: str,
    compile_update: bool,
    precision: str = "fp32",
) -> Any:
    settings = SB3_DEFAULTS[algo]
    common = dict(
        learning_rate=settings["learning_rate"],
        batch_size=256,
        learning_starts=warmup,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs=dict(net_arch=settings["net_arch"]),
        seed=0,
        device=device,
    )
    if library == "easyrl":
        extra = {"compile_update": True} if compile_update else {}
        return getattr(easyrl, algo)(env_id, **common, **extra, precision=precision)
    return getattr(sb3, algo)("MlpPolicy", gym.make(env_id), **common)


def steps_per_second(library: str, algo: str, args: argparse.Namespace, precision: str = "fp32") -> float:
    model = make_model(library, algo, args.env, args.warmup, args.device, args.compile, precision)
    model.learn(args.warmup)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return args.steps / (time.perf_counter() - start)


def predict_latency(library: str, args: argparse.Namespace, calls: int = 2000) -> float:
    """Median seconds for one observation in, one action out (SAC's network, deterministic)."""
    model = make_model(library, "SAC", args.env, 100, args.device, False)
    obs = gym.make(args.env).observation_space.sample()
    predict: Callable[..., Any] = model.predict
    for _ in range(100):
        predict(obs, deterministic=True)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predict(obs, deterministic=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def buffer_bytes(library: str, env_id: str, capacity: int) -> int:
    env = gym.make(env_id)
    if library == "easyrl":
        from easyrl.buffers import ReplayBuffer

        action_dim = int(np.prod(env.action_space.shape))
        return ReplayBuffer(capacity, env.observation_space, action_dim).nbytes
    from stable_baselines3.common.buffers import ReplayBuffer as SB3Buffer

    buffer = SB3Buffer(capacity, env.observation_space, env.action_space, device="cpu")
    arrays = [
        buffer.observations,
        buffer.next_observations,
        buffer.actions,
        buffer.rewards,
        buffer.dones,
        buffer.timeouts,
    ]
    return sum(a.nbytes for a in arrays if a is not None)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--pairs", type=int, default=3, help="side-by-side pairs per algorithm")
    parser.add_argument("--steps", type=int, default=2000, help="timed training steps per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="easyrl with compile_update=True")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "tf32"),
                        help="also time easyrl in this precision (fp32 is always timed)")  # fmt: skip
    parser.add_argument("--memory-env", default="Humanoid-v4")
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--only-memory", action="store_true")
    args = parser.parse_args()
    print(
        f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
    )
    if sb3 is None:
        print("stable-baselines3 is not installed: showing easyrl only (pip install 'easyrl[compare]').")

    memory = {lib: buffer_bytes(lib, args.memory_env, args.capacity) for lib in LIBRARIES}
    print(f"\nReplay buffer, {args.capacity:,} transitions of {args.memory_env}:")
    for lib, size in memory.items():
        print(f"  {lib:7s} {size / 1e9:6.3f} GB")
    if "sb3" in memory:
        print(f"  ratio sb3/easyrl: {memory['sb3'] / memory['easyrl']:.2f}x")
    if args.only_memory:
        return

    print(f"\nTraining env-steps/s on {args.env} ({args.steps} timed steps after {args.warmup} warm-up):")
    # (library, precision) pairs timed in each round, the order rotating from round to round.
    variants = [("easyrl", "fp32")] + ([("easyrl", args.precision)] if args.precision != "fp32" else [])
    variants += [("sb3", "fp32")] if sb3 is not None else []
    for algo in args.algos:
        figures: dict[tuple[str, str], list[float]] = {variant: [] for variant in variants}
        for pair in range(args.pairs):
            order = variants[pair % len(variants) :] + variants[: pair % len(variants)]
            for library, precision in order:
                figures[library, precision].append(steps_per_second(library, algo, args, precision))
        line = "  ".join(f"{lib}{'' if lib == 'sb3' else ' ' + p} {statistics.median(v):7.1f}"
                         for (lib, p), v in figures.items())  # fmt: skip
        print(f"  {algo:5s} {line}")
        for variant in variants[:-1] if sb3 is not None else []:
            ratios = [a / b for a, b in zip(figures[variant], figures["sb3", "fp32"], strict=True)]
            print(f"        easyrl {variant[1]}/sb3 (median of {len(ratios)} rounds) {statistics.median(ratios):.2f}x"
                  f" [rounds {min(ratios):.2f}-{max(ratios):.2f}]")  # fmt: skip

    print("\npredict latency, one observation (SAC network, deterministic):")
    latency = {lib: predict_latency(lib, args) for lib in LIBRARIES}
    for lib, seconds in latency.items():
        print(f"  {lib:7s} {seconds * 1e6:7.1f} us")
    if "sb3" in latency:
        print(f"  easyrl/sb3: {latency['easyrl'] / latency['sb3']:.2f}")


if __name__ == "__main__":
    main()
