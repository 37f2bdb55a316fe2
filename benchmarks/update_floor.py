"""How far the gradient update is from its floor: the matrix products it cannot avoid.

Usage:
    python benchmarks/update_floor.py                  # SAC, TD3, DDPG on HalfCheetah-v4
    python benchmarks/update_floor.py --algos TD3 --rounds 60

For each algorithm (SB3's default hyperparameters, batch 256) this times, interleaved in one
process so that the machine's drift hits all three alike:

- ``sb3``: one SB3 gradient step (``model.train(gradient_steps=1)``), if SB3 is installed;
- ``easyrl``: one easyrl gradient step (sampling included);
- ``matmuls``: the matrix products of that easyrl step alone, replayed on preallocated tensors
  of the same shapes. They are recorded from a real update (every ``mm``, ``addmm``, ``bmm``
  and ``baddbmm`` it runs, forward and backward), so this is the time an update would take
  if everything else in it (elementwise maths, optimizer, autograd and Python) were free.
- ``easyrl bf16`` and ``matmuls bf16``: the same with ``precision="bf16"``, and the same products
  in bfloat16 (what bf16 matrix units can do for this update).

``matmuls / sb3`` is the best easyrl/SB3 time ratio any implementation of the same update in
fp32 could reach on this machine; its inverse bounds the speed-up over SB3.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from compare_sb3 import (  # this folder's side-by-side benchmark
    SB3_DEFAULTS,
    benchmark_parser,
    make_model,
    sb3,
)
from machine import cpu_model  # this folder's machine description
from torch.utils._python_dispatch import TorchDispatchMode

from easyrl.algorithms import arithmetic

MATMULS = {"mm", "addmm", "bmm", "baddbmm"}


class RecordMatmuls(TorchDispatchMode):
    """Records the operand shapes of every matrix product run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[list[torch.Size]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket.__name__ in MATMULS:
            self.shapes.append([a.shape for a in args if isinstance(a, torch.Tensor)])
        return func(*args, **(kwargs or {}))


def replay(calls: list[list[torch.Size]], dtype: torch.dtype = torch.float32) -> Callable[[], None]:
    """A function running the recorded products on random tensors of the recorded shapes, in ``dtype``."""
    prepared = []
    for shapes in calls:
        a, b = (torch.randn(shape, dtype=dtype) for shape in shapes[-2:])  # the two matrices (after any bias)
        out = torch.empty(*a.shape[:-1], b.shape[-1], dtype=dtype)
        prepared.append((torch.bmm if a.dim() == 3 else torch.mm, a, b, out))

    def run() -> None:
        for matmul, a, b, out in prepared:
            matmul(a, b, out=out)

    return run


def gradient_step(algo: str, env_id: str, warmup: int, precision: str) -> Callable[[], None]:
    """One easyrl gradient step (sampling included) of a model trained for a few steps, in ``precision``."""
    model = make_model("easyrl", algo, env_id, warmup, "cpu", False, precision).learn(warmup + 50)

    def step() -> None:
        batch = model.replay_buffer.sample(
            model.batch_size, model.training_state.torch_rng, gamma=model.gamma
        )
        with arithmetic.computing(precision, model.device):
            model._update(batch)
        model._n_updates += 1

    return step


def build(algo: str, env_id: str, warmup: int) -> dict[str, Callable[[], None]]:
    easyrl_step = gradient_step(algo, env_id, warmup, "fp32")

    # Two consecutive steps (TD3 updates its actor every other step); replayed alternately.
    recorded = []
    for _ in range(2):
        recorder = RecordMatmuls()
        with recorder:
            easyrl_step()
        recorded.append(recorder.shapes)
    floors = {
        dtype: [replay(shapes, dtype) for shapes in recorded] for dtype in (torch.float32, torch.bfloat16)
    }
    turn = [0]

    def matmuls(dtype: torch.dtype) -> None:
        floors[dtype][turn[0] % 2]()
        turn[0] += 1

    steps = {
        "easyrl": easyrl_step,
        "easyrl bf16": gradient_step(algo, env_id, warmup, "bf16"),
        "matmuls": lambda: matmuls(torch.float32),
        "matmuls bf16": lambda: matmuls(torch.bfloat16),
    }
    if sb3 is not None:
        baseline = make_model("sb3", algo, env_id, warmup, "cpu", False).learn(warmup + 50)
        steps = {"sb3": lambda: baseline.train(gradient_steps=1, batch_size=256), **steps}
    return steps


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int) -> dict[str, float]:
    """Median milliseconds per call of each function, timed in alternating blocks."""
    for step in steps.values():
        for _ in range(5):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            times[name].append((time.perf_counter() - start) / per_round * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=40, help="interleaved timing rounds")
    args = parser.parse_args()
    print(
        f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.env}, batch 256"
    )
    for algo in args.algos:
        steps = build(algo, args.env, args.warmup)
        ms = interleaved(steps, args.rounds, per_round=6)
        print(f"\n{algo} ({SB3_DEFAULTS[algo]['net_arch']}), milliseconds per gradient step (median):")
        for name, value in ms.items():
            print(f"  {name:12s} {value:6.2f}")
        print(
            f"  bf16 / fp32: update {ms['easyrl bf16'] / ms['easyrl']:.2f}, products {ms['matmuls bf16'] / ms['matmuls']:.2f}"
        )
        if "sb3" in ms:
            print(
                f"  easyrl / sb3   {ms['easyrl'] / ms['sb3']:.2f}  (speed-up {ms['sb3'] / ms['easyrl']:.2f}x)"
            )
            print(
                f"  matmuls / sb3  {ms['matmuls'] / ms['sb3']:.2f}  (best possible {ms['sb3'] / ms['matmuls']:.2f}x)"
            )
            print(
                f"  easyrl bf16 / sb3  {ms['easyrl bf16'] / ms['sb3']:.2f}  (speed-up {ms['sb3'] / ms['easyrl bf16']:.2f}x)"
            )


if __name__ == "__main__":
    main()
