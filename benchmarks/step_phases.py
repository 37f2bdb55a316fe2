"""Where a training step's time goes, phase by phase, in easyrl and in SB3.

Usage:
    python benchmarks/step_phases.py                   # SAC, TD3, DDPG on HalfCheetah-v4
    python benchmarks/step_phases.py --algos TD3 --steps 3000

Each library trains with SB3's default hyperparameters (as in ``compare_sb3.py``) for
``--warmup`` untimed steps, then for ``--steps`` steps with a stopwatch around each phase of
its training loop:

- ``act``: choosing the exploration action (policy forward pass, noise, clipping);
- ``env step``: stepping the vector env with its wrappers; ``of which the env`` is the part
  spent inside the innermost environment's own ``step`` (MuJoCo's simulation);
- ``store``: writing the transition into the replay buffer;
- ``sample``: drawing a batch of 256;
- ``update``: one gradient step, sampling excluded;
- ``rest``: everything else in the loop (callbacks, logging, bookkeeping).

Finally the innermost env's ``step`` is timed alone, in a tight loop: the gap between that
figure and ``of which the env`` is what the gradient update costs the code that runs after it
(caches and branch predictors left cold). The phases hook into the libraries' private methods,
so this is a diagnostic for this repository's benchmarks, not an API.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from compare_sb3 import LIBRARIES, benchmark_parser, make_model  # this folder's side-by-side benchmark

PHASES = ["act", "env step", "of which the env", "store", "sample", "update", "rest", "total"]


def stopwatch(owner: Any, name: str, key: str, totals: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper adding the seconds of each call to ``totals[key]``."""
    method: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    setattr(owner, name, timed)


def innermost_env(library: str, model: Any) -> Any:
    vec_env = model._stepper.env.unwrapped if library == "easyrl" else model.env
    return vec_env.envs[0].unwrapped


def hook_phases(library: str, model: Any, totals: dict[str, float]) -> None:
    """Put stopwatches on the methods that make up each phase of the library's training loop."""
    if library == "easyrl":
        stopwatch(model, "_exploration_actions", "act", totals)
        stopwatch(model._stepper, "step", "env step", totals)
        stopwatch(model.replay_buffer, "add", "store", totals)
        stopwatch(model, "_update", "update", totals)
    else:
        stopwatch(model, "_sample_action", "act", totals)
        stopwatch(model.env, "step", "env step", totals)
        stopwatch(model, "_store_transition", "store", totals)
        stopwatch(model, "train", "train (sample included)", totals)
    stopwatch(model.replay_buffer, "sample", "sample", totals)
    stopwatch(innermost_env(library, model), "step", "of which the env", totals)


def phases(library: str, algo: str, args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds per training step spent in each phase."""
    model = make_model(library, algo, args.env, args.warmup, "cpu", False)
    model.learn(args.warmup)
    totals: dict[str, float] = defaultdict(float)
    hook_phases(library, model, totals)
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    totals["total"] = time.perf_counter() - start
    if library != "easyrl":
        totals["update"] = totals.pop("train (sample included)") - totals["sample"]
    timed = ["act", "env step", "store", "sample", "update"]
    totals["rest"] = totals["total"] - sum(totals[key] for key in timed)
    return {key: totals[key] / args.steps * 1e3 for key in PHASES}


def env_step_alone(env_id: str, steps: int = 3000) -> float:
    """Milliseconds per step of the innermost env, stepped in a tight loop."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    action = env.action_space.sample()

    def step() -> None:
        if env.step(action)[2]:  # terminated (Hopper falls, HalfCheetah never does)
            env.reset()

    for _ in range(100):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--steps", type=int, default=1500, help="timed training steps per run")
    args = parser.parse_args()
    print(f"Milliseconds per training step on {args.env} ({args.steps} steps after {args.warmup} warm-up):")
    for algo in args.algos:
        figures = {library: phases(library, algo, args) for library in LIBRARIES}
        print(f"{algo}:{''.join(f'{library:>10s}' for library in LIBRARIES)}")
        for key in PHASES:
            print(f"  {key:18s}" + "".join(f"{figures[library][key]:10.3f}" for library in LIBRARIES))
    print(f"{args.env}'s own step alone, in a tight loop: {env_step_alone(args.env):.3f} ms")


if __name__ == "__main__":
    main()
