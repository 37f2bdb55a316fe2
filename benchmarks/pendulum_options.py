"""Every newer algorithm and critic option on Pendulum-v1: the return each reaches, and what it costs.

    python benchmarks/pendulum_options.py                  # every case, seeds 0 and 1
    python benchmarks/pendulum_options.py --cases droq redq --seeds 0 1 2

Each case is trained for its step budget (at most 8,000 env steps) and evaluated deterministically over
10 episodes; a row gives the mean return, the wall time and the time per env step. The cases use small
networks ([64, 64], CrossQ's critics [128, 128]) so that the slow tests (tests/test_critic_options.py,
which run these same cases) stay cheap: the aim is to show that each one learns, not to rank them.
The plain `sac`, `td3` and `ddpg` cases are fp32 references for the `*_bf16` cases (docs/precision.md).
One torch thread per run (``--threads``), as in the test suite.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from machine import cpu_model  # this folder's machine description

from easyrl import DDPG, SAC, TD3, TQC, CrossQ, evaluate_policy
from easyrl.noise import NormalActionNoise

SMALL = [64, 64]


@dataclass(frozen=True)
class Case:
    """One estimator class with settings, and the env steps it trains for."""

    estimator: type[Any]
    steps: int
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # policy_kwargs beyond net_arch

    def build(self, seed: int) -> Any:
        settings = {"learning_rate": 1e-3, **self.settings}
        if issubclass(self.estimator, TD3):  # and DDPG
            settings["action_noise"] = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
        policy_kwargs = {"net_arch": SMALL, **self.options}
        return self.estimator("Pendulum-v1", policy_kwargs=policy_kwargs, seed=seed, device="cpu", **settings)


CASES: dict[str, Case] = {
    "crossq": Case(CrossQ, 4_000, options=dict(net_arch=dict(pi=SMALL, qf=[128, 128]))),
    "tqc": Case(TQC, 5_000),
    "layer_norm": Case(SAC, 5_000, options=dict(layer_norm=True)),
    "td3_layer_norm": Case(
        TD3, 8_000, settings=dict(gamma=0.98, learning_starts=1_000), options=dict(layer_norm=True)
    ),
    "droq": Case(
        SAC, 3_000, settings=dict(gradient_steps=2), options=dict(dropout_rate=0.01, layer_norm=True)
    ),
    "redq": Case(SAC, 3_000, settings=dict(gradient_steps=2), options=dict(n_critics=10, critic_subset=2)),
    "simba": Case(SAC, 5_000, options=dict(net_type="simba")),
    # The plain estimators in fp32, beside which the bf16 cases below are read (docs/precision.md).
    "sac": Case(SAC, 5_000),
    "td3": Case(TD3, 8_000, settings=dict(gamma=0.98, learning_starts=1_000)),
    "ddpg": Case(DDPG, 8_000, settings=dict(gamma=0.98, learning_starts=1_000)),
    # Every estimator in precision="bf16" (tests/test_precision.py).
    "sac_bf16": Case(SAC, 5_000, settings=dict(precision="bf16")),
    "td3_bf16": Case(TD3, 8_000, settings=dict(precision="bf16", gamma=0.98, learning_starts=1_000)),
    "ddpg_bf16": Case(DDPG, 8_000, settings=dict(precision="bf16", gamma=0.98, learning_starts=1_000)),
    "tqc_bf16": Case(TQC, 6_000, settings=dict(precision="bf16")),  # at 5,000: -292 and -178 (see docs)
    "crossq_bf16": Case(
        CrossQ, 4_000, settings=dict(precision="bf16"), options=dict(net_arch=dict(pi=SMALL, qf=[128, 128]))
    ),
    "resets": Case(SAC, 4_000, settings=dict(gradient_steps=2), options=dict(reset_interval=4_000)),
}


def run(name: str, seed: int) -> tuple[float, float]:
    """The mean deterministic return over 10 episodes after the case's budget, and the training seconds."""
    case = CASES[name]
    model = case.build(seed)
    start = time.perf_counter()
    model.learn(case.steps)
    seconds = time.perf_counter() - start
    mean, _ = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=10, seed=100 + seed)
    return mean, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s); Pendulum-v1, 10 evaluation episodes"
    )
    print(
        f"{'case':16s} {'class':7s} {'steps':>6s} {'seed':>4s} {'return':>8s} {'seconds':>8s} {'ms/step':>8s}"
    )
    for name in args.cases:
        for seed in args.seeds:
            mean, seconds = run(name, seed)
            case = CASES[name]
            row = f"{name:16s} {case.estimator.__name__:7s} {case.steps:6d} {seed:4d} {mean:8.1f} {seconds:8.1f}"
            print(f"{row} {1000 * seconds / case.steps:8.2f}", flush=True)


if __name__ == "__main__":
    main()
