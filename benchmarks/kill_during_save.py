"""SIGKILL in the middle of ``save()`` and ``save_replay_buffer()``, and two processes saving to one path.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/kill_during_save.py                 # 50 kills per file kind
    OMP_NUM_THREADS=1 python benchmarks/kill_during_save.py --kills 10 --json

A large model (SAC with 1024x1024 networks, about 60 MB with its Adam moments) and a large replay
buffer (3,000 of DotImageEnv's 84x84x3 images, about 130 MB) are built once. For each kill, a forked process
saves the file to the same path over and over (each model save with a new ``num_timesteps``); after
a random delay of up to two save durations it is killed with SIGKILL, a real kill of a real process.
A hidden temporary file left beside the target shows the kill came in the middle of a write. Then
the file at the path must be intact: the model loads;
the buffer's bytes are those of a complete save (and it loads). Then two forked processes save
different models to one path at the same time: one complete file must remain, with no temporary file.

Prints, per kind: kills tried, kills that hit a write in progress, and files intact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from easyrl import SAC
from easyrl.envs.image import DotImageEnv


def build(buffer_transitions: int) -> tuple[Any, Any]:
    model = SAC(
        "Pendulum-v1", policy_kwargs=dict(net_arch=[1024, 1024]), buffer_size=1_000, device="cpu", seed=0
    )
    model.learn(120)  # the Adam moments exist
    images = SAC(
        lambda: DotImageEnv(max_episode_steps=200), buffer_size=buffer_transitions, learning_starts=10**9,
        policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0,
    )  # fmt: skip
    images.learn(buffer_transitions)
    return model, images


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def timed(save: Any) -> float:
    start = time.perf_counter()
    save()
    return time.perf_counter() - start


def writer(save: Any) -> None:
    """The body of a forked writer: save until killed."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    generation = 1
    while True:
        save(generation)
        generation += 1


def kill_trials(
    kind: str, save: Any, check: Any, folder: Path, kills: int, rng: np.random.Generator
) -> dict[str, Any]:
    save(0)
    duration = timed(lambda: save(0))
    tried = mid_write = intact = 0
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the killed process
            try:
                writer(save)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 2.0 * duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        tried += 1
        leftovers = list(folder.glob(".*.tmp"))
        mid_write += bool(leftovers)
        intact += check()
        for leftover in leftovers:
            leftover.unlink()
    return dict(kind=kind, kills=tried, mid_write=mid_write, intact=intact, save_seconds=round(duration, 3))


def concurrent_writers(model: Any, folder: Path, saves: int) -> dict[str, Any]:
    path = folder / "shared.zip"
    pids = []
    for writer_id in (1, 2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a writer
            try:
                for i in range(saves):
                    model.training_state.num_timesteps = writer_id * 1_000_000 + i
                    model.save(path)
            finally:
                os._exit(0)
        pids.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    loaded = SAC.load(path, device="cpu")
    last = {1_000_000 + saves - 1, 2_000_000 + saves - 1}
    return dict(
        writers=2, saves_each=saves, exit_codes=codes, complete=loaded.num_timesteps in last,
        temp_files=len(list(folder.glob(".*.tmp"))),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50, help="kills per file kind")
    parser.add_argument("--buffer-transitions", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    model, images = build(args.buffer_transitions)
    results = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model_path = folder / "model.zip"

        def save_model(generation: int) -> None:
            model.training_state.num_timesteps = generation
            model.save(model_path)

        def check_model() -> bool:
            try:
                return SAC.load(model_path, device="cpu").num_timesteps >= 0
            except Exception as error:  # any failure is a corrupt file
                print(f"model file damaged: {error!r}")
                return False

        results.append(kill_trials("model", save_model, check_model, folder, args.kills, rng))
        model_path.unlink()

        buffer_path = folder / "buffer.zip"
        images.save_replay_buffer(buffer_path)
        reference = digest(buffer_path)

        def check_buffer() -> bool:
            if digest(buffer_path) != reference:
                print("buffer file differs from a complete save")
                return False
            images.load_replay_buffer(buffer_path)
            return True

        results.append(
            kill_trials(
                "replay buffer",
                lambda _: images.save_replay_buffer(buffer_path),
                check_buffer,
                folder,
                args.kills,
                rng,
            )
        )
        buffer_path.unlink()
        concurrent = concurrent_writers(model, folder, saves=5)
    if args.json:
        print(json.dumps(dict(kills=results, concurrent=concurrent)))
        return
    print(f"{'file':<14} {'one save':>9} {'kills':>6} {'mid-write':>10} {'intact':>7}")
    for row in results:
        print(
            f"{row['kind']:<14} {row['save_seconds']:>8.2f}s {row['kills']:>6} {row['mid_write']:>10} {row['intact']:>7}"
        )
    print(f"two writers, {concurrent['saves_each']} saves each to one path: complete={concurrent['complete']}, "
          f"temporary files left={concurrent['temp_files']}")  # fmt: skip


if __name__ == "__main__":
    main()
