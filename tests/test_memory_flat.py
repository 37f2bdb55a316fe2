"""Long runs hold memory flat: once the buffer is full, no per-step Python object accumulates.

A cheaper form of benchmarks/memory_flat.py (which prints the resident memory of 100,000 steps): a run
with the logger writing progress.csv, an EvalCallback and a CheckpointCallback, sampled every 1,000
steps. After the buffer has filled, the number of objects the garbage collector tracks must stay flat,
and so must the containers that could grow with the steps: the logger's pending values, the episode
statistics, the evaluation results kept in memory grow only by one entry per evaluation.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def memory_flat(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other as top-level modules
    return importlib.import_module("memory_flat")


def test_live_objects_stay_flat_after_the_buffer_fills(memory_flat: ModuleType, tmp_path: Path) -> None:
    samples = memory_flat.measure(6_000, 1_000, 1_000, tmp_path, net_arch=[32, 32])
    assert [s[0] for s in samples] == [0, 1000, 2000, 3000, 4000, 5000, 6000]
    objects = [s[2] for s in samples]
    # From 2,000 steps on the buffer is full and every component has run at least once. Each evaluation
    # adds a handful of entries (its results row); 4,000 more steps must not add thousands of objects.
    assert objects[-1] - objects[2] < 100, objects
    assert (tmp_path / "progress.csv").stat().st_size > 0 and (tmp_path / "evaluations.npz").is_file()
