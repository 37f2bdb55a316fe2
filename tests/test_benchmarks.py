"""The benchmark scripts still run against the current code, on a small env and few steps.

They print figures rather than assert speeds (speed is never a test); what is checked here is
that their measurements are well formed: phases add up, products are recorded from a real update.
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
ALGOS = ["SAC", "TD3", "DDPG"]
ENV = "Pendulum-v1"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other as top-level modules
    return importlib.import_module


def small_run() -> argparse.Namespace:
    return argparse.Namespace(env=ENV, warmup=100, steps=40, device="cpu", compile=False)


@pytest.mark.parametrize("algo", ALGOS)
def test_steps_per_second_measures_a_training_run(bench, algo):
    compare = bench("compare_sb3")
    assert compare.steps_per_second("easyrl", algo, small_run()) > 0


@pytest.mark.parametrize("library", ["easyrl", "sb3"])
@pytest.mark.parametrize("algo", ALGOS)
def test_step_phases_add_up_to_the_step(bench, algo, library):
    if library == "sb3":
        pytest.importorskip("stable_baselines3")
    phases = bench("step_phases").phases(library, algo, small_run())
    parts = ["act", "env step", "store", "sample", "update", "rest"]
    assert math.isclose(sum(phases[key] for key in parts), phases["total"], rel_tol=1e-9)
    assert all(phases[key] > 0 for key in parts if key != "rest")
    assert phases["rest"] >= 0
    assert 0 < phases["of which the env"] < phases["env step"]  # the wrappers cost something


def test_env_step_alone_is_timed(bench):
    assert bench("step_phases").env_step_alone(ENV, steps=50) > 0


@pytest.mark.parametrize("algo", ALGOS)
def test_update_floor_records_the_updates_products(bench, algo):
    floor = bench("update_floor")
    steps = floor.build(algo, ENV, warmup=100)
    recorder = floor.RecordMatmuls()
    with recorder:
        steps["easyrl"]()
    hidden = floor.SB3_DEFAULTS[algo]["net_arch"]
    # Forward and backward products of every hidden layer, in both networks.
    assert len(recorder.shapes) >= 6
    assert any(tuple(shape[-2:]) == tuple(hidden) for shapes in recorder.shapes for shape in shapes)
    steps["matmuls"]()  # the replay runs on tensors of the recorded shapes
    recorder = floor.RecordMatmuls()
    with recorder:
        steps["easyrl bf16"]()
        steps["matmuls bf16"]()
    assert len(recorder.shapes) >= 12  # the bf16 update and its products run too


def test_compare_sb3_times_easyrl_in_bf16_beside_fp32_and_sb3():
    out = run_script("compare_sb3", "--algos", "SAC", "--env", ENV, "--pairs", "3", "--steps", "40",
                     "--warmup", "100", "--precision", "bf16", "--capacity", "1000")  # fmt: skip
    assert "easyrl fp32" in out and "easyrl bf16" in out
    assert "easyrl fp32/sb3" in out and "easyrl bf16/sb3" in out


def run_script(name: str, *args: str) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_image_memory_prints_the_ratio_to_one_uint8_copy():
    out = run_script("image_memory", "--transitions", "20000", "--size", "36", "--episode-length", "500")
    ratio = float(out.split("easyrl buffer, its arrays:")[1].split()[2].rstrip("x"))
    sb3_ratio = float(out.split("SB3 ReplayBuffer (default layout):")[1].split()[2].rstrip("x"))
    assert 1.0 <= ratio <= 1.05 and 1.9 <= sb3_ratio <= 2.1 and "target <= 1.05x:" in out


def test_her_fetch_reach_reports_both_libraries():
    out = run_script("her_fetch_reach", "--steps", "120", "--seeds", "0", "--episodes", "1", "--threads", "1")
    for library in ("easyrl", "sb3"):
        assert f"{library:7s} seed 0: success" in out
    assert "easyrl / sb3 steps/s:" in out and "normalised observations" in out


def test_her_step_floor_times_every_piece_of_both_libraries():
    out = run_script("her_step_floor", "--warmup", "1100", "--rounds", "1", "--per-round", "1")
    for piece in ("env step", "act", "sample", "train"):
        assert f"easyrl {piece}" in out and f"sb3 {piece}" in out
    assert "easyrl matmuls" in out and "2x needs easyrl's at" in out


def test_gsde_mountain_car_reports_both_variants():
    out = run_script("gsde_mountain_car", "--steps", "64", "--seeds", "0", "--episodes", "1")
    for variant in ("gsde", "plain"):
        assert f"{variant:5s} seed 0: mean return" in out
    assert "summary:" in out and "(1 thread)" in out


def test_learning_prints_an_evaluation_row_per_interval_for_each_library_and_precision():
    out = run_script("learning", "SAC", ENV, "--steps", "300", "--eval-every", "150", "--episodes", "1",
                     "--threads", "1", "--precision", "fp32", "bf16", "--sb3")  # fmt: skip
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(row[0], row[-3]) for row in rows if row[0] == "easyrl"] == [
        ("easyrl", "150"), ("easyrl", "300"), ("easyrl", "150"), ("easyrl", "300")
    ]  # fmt: skip
    assert [row[1] for row in rows if row[0] == "easyrl"] == ["fp32", "fp32", "bf16", "bf16"]
    assert [row[-3] for row in rows if row[0] == "sb3"] == ["150", "300"]


def test_critic_options_cost_prints_a_ratio_to_sac():
    out = run_script(
        "critic_options_cost", "--env", ENV, "--rounds", "1", "--configs", "SAC", "SAC layer_norm"
    )
    assert "SAC layer_norm" in out and "1.00" in out


def test_critic_options_cost_times_both_precisions():
    out = run_script(
        "critic_options_cost",
        "--env",
        ENV,
        "--rounds",
        "1",
        "--configs",
        "SAC",
        "--precision",
        "fp32",
        "bf16",
    )
    rows = [line.split() for line in out.splitlines() if line.startswith("SAC ")]
    assert [row[1] for row in rows] == ["fp32", "bf16"]
    assert rows[0][-1] == "-" and float(rows[1][-1]) > 0  # bf16's time as a ratio to fp32's


def test_matmul_bf16_times_every_shape_in_both_precisions():
    out = run_script("matmul_bf16", "--threads", "1", "--repeats", "1", "--blocks", "1")
    assert "bf16 matrix instructions:" in out
    rows = [line for line in out.splitlines() if line.rstrip().endswith("x") and " x " not in line]
    assert len(rows) == 5
    for row in rows:  # fp32 us, its GFLOP/s, bf16 us, its GFLOP/s: all measured, all positive
        assert all(float(value) > 0 for value in row.split()[-5:-1])
