"""Long runs hold memory flat: resident memory and live Python objects while SAC trains past a full buffer.

Usage:
    python benchmarks/memory_flat.py                          # 100,000 steps of SAC on Pendulum-v1
    python benchmarks/memory_flat.py --steps 30000 --every 5000

The run is a real training run with everything that could hold per-step objects switched on: the
logger writing progress.csv, an EvalCallback (its evaluations and episode infos), a CheckpointCallback
and the model's own episode statistics. ``buffer_size`` (10,000 by default) is small, so the buffer is
full after the first tenth of the run; from then on nothing should grow. Every ``--every`` steps the
script samples the process's resident memory (VmRSS) and the number of objects the garbage collector
tracks, and prints the curve and the growth from the first sample after the buffer filled to the last.
The target (issue 19): no growth beyond allocator noise, and a flat object count.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import torch
from machine import cpu_model, resident_bytes  # this folder's machine description

from easyrl import SAC
from easyrl.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback
from easyrl.logger import configure


class Sampler(BaseCallback):
    """Every ``every`` env steps: (steps, resident bytes, objects tracked by the garbage collector)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.samples: list[tuple[int, int, int]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            gc.collect()
            self.samples.append((self.num_timesteps, resident_bytes(), len(gc.get_objects())))
        return True


def measure(
    steps: int, buffer_size: int, every: int, folder: Path, net_arch: list[int] | None = None
) -> list[tuple[int, int, int]]:
    """Train SAC on Pendulum-v1 for ``steps`` with logging, evaluations and checkpoints into ``folder``;
    returns the samples (steps, resident bytes, tracked objects), the first taken before training."""
    kwargs = {"policy_kwargs": {"net_arch": net_arch}} if net_arch else {}
    model = SAC("Pendulum-v1", buffer_size=buffer_size, learning_starts=1000, seed=0, device="cpu", **kwargs)
    model.set_logger(configure(str(folder), ["csv"]))
    sampler = Sampler(every)
    callbacks = CallbackList([
        EvalCallback("Pendulum-v1", eval_freq=every, n_eval_episodes=2, log_path=str(folder), verbose=0),
        CheckpointCallback(save_freq=every, save_path=str(folder / "checkpoints"), name_prefix="sac"),
        sampler,
    ])  # fmt: skip
    model.policy  # noqa: B018  (built now, so the first sample counts the model)
    gc.collect()
    sampler.samples.append((0, resident_bytes(), len(gc.get_objects())))
    model.learn(steps, callback=callbacks)
    return sampler.samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--buffer-size", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=10_000, help="sample every this many env steps")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}, {args.threads} torch thread(s); SAC on Pendulum-v1, {args.steps} steps, "
          f"buffer_size={args.buffer_size}, logger + EvalCallback + CheckpointCallback every {args.every} steps")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        samples = measure(args.steps, args.buffer_size, args.every, Path(folder))
    print(f"{'steps':>8} {'RSS MiB':>9} {'objects':>9}")
    for steps, rss, objects in samples:
        print(f"{steps:>8} {rss / 2**20:>9.1f} {objects:>9}")
    full = next((s for s in samples if s[0] > args.buffer_size), None)
    if full is None or full is samples[-1]:
        print("The run is too short to compare after the buffer filled: give more --steps.")
        return
    last = samples[-1]
    print(
        f"After the buffer filled (from {full[0]} to {last[0]} steps): RSS {(last[1] - full[1]) / 2**20:+.1f} MiB "
        f"({(last[1] / full[1] - 1) * 100:+.2f}%), tracked objects {last[2] - full[2]:+d}"
    )


if __name__ == "__main__":
    main()
