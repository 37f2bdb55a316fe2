"""SAC with gSDE on MountainCarContinuous-v0, rl-zoo's entry, against plain SAC on the same budget.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/gsde_mountain_car.py                 # seeds 0 and 1, both variants
    OMP_NUM_THREADS=1 python benchmarks/gsde_mountain_car.py --seeds 0 --variants gsde --steps 20000
    OMP_NUM_THREADS=1 python benchmarks/gsde_mountain_car.py --variants gsde --library sb3   # SB3's own gSDE

rl-zoo's ``sac.yml`` entry for MountainCarContinuous-v0: 50,000 steps, learning rate 3e-4, buffer
50,000, batch 512, ent_coef 0.1, train_freq 32, gradient_steps 32, gamma 0.9999, tau 0.01,
learning_starts 0, use_sde True, policy_kwargs "dict(log_std_init=-3.67, net_arch=[64, 64])".
The ``plain`` variant is the same entry without gSDE (and so without ``log_std_init``): SAC's
state-dependent σ(s) with fresh noise at every step. The car must build momentum over many steps to
reach the goal; step-by-step noise averages out, which is the case gSDE's smooth exploration was
made for (Raffin et al. 2021).

Each run trains for ``--steps`` env steps and then reports the mean return of ``--episodes``
deterministic episodes of a separately seeded env, and the env steps per second of ``learn`` (wall
time). One torch thread (set here; run it with OMP_NUM_THREADS=1 too); do not run anything else meanwhile.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from machine import cpu_model  # this folder's machine description

import easyrl
from easyrl import evaluate_policy

ENV_ID = "MountainCarContinuous-v0"
ZOO_ENTRY: dict[str, Any] = dict(
    learning_rate=3e-4, buffer_size=50_000, batch_size=512, ent_coef=0.1, train_freq=32, gradient_steps=32,
    gamma=0.9999, tau=0.01, learning_starts=0,
)  # fmt: skip
VARIANTS: dict[str, dict[str, Any]] = {
    "gsde": dict(use_sde=True, policy_kwargs=dict(log_std_init=-3.67, net_arch=[64, 64])),
    "plain": dict(policy_kwargs=dict(net_arch=[64, 64])),
}


def train(library: str, variant: str, steps: int, seed: int) -> tuple[float, Any]:
    """Train one SAC on the zoo entry for ``steps``; the seconds ``learn`` took, and the model."""
    if library == "easyrl":
        sac: Any = easyrl.SAC
    else:
        import stable_baselines3 as sb3

        sac = sb3.SAC
    model = sac("MlpPolicy", ENV_ID, seed=seed, device="cpu", **ZOO_ENTRY, **VARIANTS[variant])
    start = time.perf_counter()
    model.learn(steps)
    return time.perf_counter() - start, model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=["gsde", "plain"], choices=sorted(VARIANTS))
    parser.add_argument("--library", default="easyrl", choices=["easyrl", "sb3"])
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"SAC on {ENV_ID} ({args.library}), rl-zoo's entry, {args.steps} steps per run, {args.episodes} "
        f"deterministic evaluation episodes; {cpu_model()}, torch {torch.__version__} (1 thread)",
        flush=True,
    )
    results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            seconds, model = train(args.library, variant, args.steps, seed)
            mean, _ = evaluate_policy(model, ENV_ID, args.episodes, deterministic=True, seed=10_000 + seed)
            results[variant].append((seed, mean, args.steps / seconds))
            print(
                f"  {variant:5s} seed {seed}: mean return {mean:7.2f}, {args.steps / seconds:6.1f} env steps/s",
                flush=True,
            )
    print("summary:")
    for variant, runs in results.items():
        returns = ", ".join(f"seed {seed}: {mean:.2f}" for seed, mean, _ in runs)
        print(f"  {variant:5s} mean return {returns}; {np.mean([s for *_, s in runs]):.1f} env steps/s")


if __name__ == "__main__":
    main()
