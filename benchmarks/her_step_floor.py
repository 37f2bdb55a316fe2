"""Where a SAC + HER training step on FetchReach spends its time, in easyrl and in SB3, piece by piece.

Usage:
    pip install -e ".[robotics,compare]"
    python benchmarks/her_step_floor.py                 # her_fetch_reach.py's settings, one thread
    python benchmarks/her_step_floor.py --rounds 10 --warmup 1500

Both libraries are built with ``her_fetch_reach.py``'s settings (rl-zoo's, normalised observations)
and trained for ``--warmup`` steps; then these pieces are timed, interleaved in one process so that the
machine's drift hits them alike (milliseconds per call, median of the rounds):

- ``env step``: one step of the vector env each library trains on, with the running statistics'
  update (easyrl's ``EnvStepper`` over a gymnasium ``SyncVectorEnv``, then its normaliser; SB3's
  ``VecNormalize`` over a ``DummyVecEnv``, as ``her_fetch_reach.py`` builds it), and the bare env under
  easyrl's (``gym.make``'s wrappers only);
- ``act``: choosing the exploration action for the current observation;
- ``sample``: drawing a batch of 256 with HER's relabelling (easyrl: and scaling it with the running
  statistics and extracting its features, as its training loop does; SB3 scales inside its sampling);
- ``train``: one whole gradient step as the training loop takes it (sampling included);
- ``update``: easyrl's gradient step alone, on a fixed batch; ``matmuls``: its matrix products alone,
  replayed on tensors of the same shapes (``update_floor.py``'s recording);
- with ``--compile``, ``train, compiled``: the gradient step of a model built with ``compile_update=True``
  (and how long its warm-up took, compiling included).

The summary adds each library's pieces into a step and says how short easyrl's step would have to be
for 2x SB3's steps/s. These are tight-loop times: inside a training run the env step takes longer
(the update before it leaves the caches cold), so the run's own steps/s is ``her_fetch_reach.py``'s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from her_fetch_reach import build, make_env  # this folder's HER benchmark: its models and env
from machine import cpu_model
from update_floor import RecordMatmuls, interleaved, replay

from easyrl.algorithms import arithmetic


def easyrl_pieces(model: Any) -> dict[str, Callable[[], Any]]:
    normalizer = model._normalizer
    actions = np.zeros((1, model.action_dim), dtype=np.float32)
    fixed = model._training_batch()

    def update() -> None:
        with arithmetic.computing(model.precision, model.device):
            model._update(fixed)

    recorder = RecordMatmuls()
    with recorder:
        update()
    bare = make_env()
    bare.reset(seed=0)

    def bare_step() -> None:
        if any(bare.step(actions[0])[2:4]):
            bare.reset()

    def env_step() -> None:  # with the running statistics' update, as SB3's VecNormalize.step does
        result = model._stepper.step(actions)
        normalizer.update(result.obs, result.rewards, result.dones, result.valid)

    return {
        "env step": env_step,
        "env (bare)": bare_step,
        "act": model._exploration_actions,
        "sample": model._training_batch,
        "train": lambda: model._train(1),
        "update": update,
        "matmuls": replay(recorder.shapes),
    }


def sb3_pieces(model: Any) -> dict[str, Callable[[], Any]]:
    env = model.get_env()
    actions = np.zeros((1, 4), dtype=np.float32)
    return {
        "env step": lambda: env.step(actions),
        "act": lambda: model._sample_action(model.learning_starts, None, 1),
        "sample": lambda: model.replay_buffer.sample(model.batch_size, env=env),
        "train": lambda: model.train(gradient_steps=1, batch_size=model.batch_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=int, default=2000, help="training steps before timing")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds")
    parser.add_argument("--per-round", type=int, default=30, help="calls of each piece per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time the gradient step of a model with compile_update=True",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"SAC + HER on FetchReach-v4, normalised; {cpu_model()}, torch {torch.__version__} ({args.threads} threads)"
    )
    pieces = {f"easyrl {k}": f for k, f in easyrl_pieces(build("easyrl", 0, True).learn(args.warmup)).items()}
    pieces |= {f"sb3 {k}": f for k, f in sb3_pieces(build("sb3", 0, True).learn(args.warmup)).items()}
    if args.compile:
        start = time.perf_counter()
        compiled = build("easyrl", 0, True, compile_update=True).learn(args.warmup)
        print(
            f"compile_update=True: {args.warmup} warm-up steps, compiling included, in {time.perf_counter() - start:.1f} s"
        )
        pieces["easyrl train, compiled"] = lambda: compiled._train(1)
    ms = interleaved(pieces, args.rounds, args.per_round)
    print("milliseconds per call (median of the rounds):")
    for name, value in ms.items():
        print(f"  {name:24s} {value:7.3f}")
    step = {lib: ms[f"{lib} env step"] + ms[f"{lib} act"] + ms[f"{lib} train"] for lib in ("easyrl", "sb3")}
    print(
        f"summary: a step (env step + act + train) takes {step['easyrl']:.3f} ms in easyrl and "
        f"{step['sb3']:.3f} ms in SB3 ({step['sb3'] / step['easyrl']:.2f}x); 2x needs easyrl's at "
        f"{step['sb3'] / 2:.3f} ms. Of easyrl's, the env step is {ms['easyrl env step']:.3f} ms and the "
        f"update's matrix products {ms['easyrl matmuls']:.3f} ms: the rest ({step['easyrl'] - ms['easyrl env step'] - ms['easyrl matmuls']:.3f} ms) "
        f"would have to fit in {step['sb3'] / 2 - ms['easyrl env step'] - ms['easyrl matmuls']:.3f} ms."
    )


if __name__ == "__main__":
    main()
