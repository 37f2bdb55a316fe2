"""SAC with HER on gymnasium-robotics' FetchReach: success rate and training speed, easyrl and SB3.

Usage:
    pip install -e ".[robotics,compare]"
    python benchmarks/her_fetch_reach.py                     # 20,000 steps, seeds 0 and 1, both libraries
    python benchmarks/her_fetch_reach.py --steps 5000 --seeds 0 --libraries easyrl

rl-zoo's settings for FetchReach: SAC, MultiInputPolicy, HER with n_sampled_goal=4 and the "future"
strategy, gamma 0.95, learning rate 1e-3, batch 256, buffer 1M, learning_starts 1,000, networks
[64, 64], and observations and rewards normalised (rl-zoo's ``normalize: True``, with the model's gamma):
``normalize=True`` in easyrl, a ``VecNormalize`` around SB3's ``DummyVecEnv``. ``--no-normalize`` runs
both libraries without it, as the figures before easyrl had normalisation were taken. Each run trains for ``--steps`` env
steps and then measures the success rate (``info["is_success"]`` at the end of the episode) over 20
deterministic episodes of a separately seeded env (``easyrl.evaluate_success_rate``, which runs SB3's
models too). The libraries run one after the other in this
process, seed by seed, with the same number of torch threads; the speed figure is env steps per second
of ``learn`` wall time, warm-up included. Do not run anything else meanwhile.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from machine import cpu_model  # this folder's machine description

import easyrl
from easyrl import evaluate_success_rate

ENV_ID = "FetchReach-v4"
SETTINGS: dict[str, Any] = dict(
    gamma=0.95, learning_rate=1e-3, batch_size=256, buffer_size=1_000_000, learning_starts=1000
)
HER_KWARGS: dict[str, Any] = dict(n_sampled_goal=4, goal_selection_strategy="future")


def make_env() -> gym.Env[Any, Any]:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    return gym.make(ENV_ID)


class NormalizedSB3:
    """An SB3 model trained on a ``VecNormalize``, taking raw observations as easyrl's models do: the
    observations are scaled with the training statistics, frozen, before ``predict``."""

    def __init__(self, model: Any) -> None:
        self.model, self.vec_normalize = model, model.get_vec_normalize_env()

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> Any:
        return self.model.predict(self.vec_normalize.normalize_obs(observation), *args, **kwargs)


def build(library: str, seed: int, normalize: bool, **options: Any) -> Any:
    """One library's SAC + HER model with these settings, untrained (``options``: easyrl's own extras)."""
    env: Any = make_env()
    if library == "easyrl":
        sac, her = easyrl.SAC, easyrl.HerReplayBuffer
        options["normalize"] = normalize
    else:
        import stable_baselines3 as sb3
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        sac, her = sb3.SAC, sb3.HerReplayBuffer
        if normalize:
            env = VecNormalize(DummyVecEnv([lambda raw=env: raw]), gamma=SETTINGS["gamma"])
    return sac(
        "MultiInputPolicy", env, replay_buffer_class=her, replay_buffer_kwargs=HER_KWARGS,
        policy_kwargs=dict(net_arch=[64, 64]), seed=seed, device="cpu", **SETTINGS, **options,
    )  # fmt: skip


def train(library: str, steps: int, seed: int, normalize: bool) -> tuple[float, Any]:
    """Train one library's SAC + HER for ``steps``; the seconds ``learn`` took, and the model."""
    model = build(library, seed, normalize)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    return seconds, NormalizedSB3(model) if library == "sb3" and normalize else model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--libraries", nargs="+", default=["easyrl", "sb3"], choices=["easyrl", "sb3"])
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--no-normalize", dest="normalize", action="store_false", help="no observation normalisation"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"SAC + HER on {ENV_ID}, {args.steps} steps per run, {args.episodes} deterministic evaluation episodes, "
        f"{'normalised' if args.normalize else 'raw'} observations; "
        f"{cpu_model()}, torch {torch.__version__} ({args.threads} threads)",
        flush=True,
    )
    results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in args.libraries}
    for seed in args.seeds:
        for name in args.libraries:
            seconds, model = train(name, args.steps, seed, args.normalize)
            rate = evaluate_success_rate(model, make_env(), args.episodes, seed=10_000 + seed)
            results[name].append((seed, args.steps / seconds, rate))
            print(
                f"  {name:7s} seed {seed}: success {rate:.2f}, {args.steps / seconds:6.1f} env steps/s",
                flush=True,
            )
    print("summary:")
    for name, runs in results.items():
        speeds = [speed for _, speed, _ in runs]
        rates = ", ".join(f"seed {seed}: {rate:.2f}" for seed, _, rate in runs)
        print(f"  {name:7s} success {rates}; mean {np.mean(speeds):.1f} env steps/s")
    if len(results) == 2:
        ratio = np.mean([s for _, s, _ in results["easyrl"]]) / np.mean([s for _, s, _ in results["sb3"]])
        print(f"  easyrl / sb3 steps/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
