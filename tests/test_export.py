"""``model.export``: ONNX (checked with onnxruntime) and TorchScript (checked with torch.jit.load) files that act
as ``predict(deterministic=True)`` does, normalisation, image preprocessing and action scaling included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from easyrl import SAC, TD3
from easyrl.envs.goal import PointGoalEnv
from easyrl.envs.image import DotImageEnv
from easyrl.extras import MissingExtraError
from tests.conftest import FAST
from tests.sb3_models import pendulum_observations

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
ort = pytest.importorskip("onnxruntime")  # the onnx extra, in dev: CI always has it
TOLERANCE = 1e-5
DOCS = Path(__file__).resolve().parents[1] / "docs" / "sb3-models.md"


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == list(inputs) and session.get_outputs()[
        0
    ].name == "action"
    result: np.ndarray = session.run(["action"], inputs)[0]
    return result


def run_torchscript(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    policy = torch.jit.load(str(path))
    with torch.no_grad():
        result: np.ndarray = policy(*(torch.as_tensor(v) for v in inputs.values())).numpy()
    return result


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_exported_policy_acts_as_predict(estimator: type[Any], suffix: str, tmp_path: Path) -> None:
    model = estimator("Pendulum-v1", seed=0, normalize=True, **FAST).learn(120)
    assert model._normalizer is not None and not model._normalizer.fresh
    path = model.export(tmp_path / f"policy{suffix}")
    assert path == tmp_path / f"policy{suffix}" and path.exists()
    obs = (
        pendulum_observations() * 1.5
    )  # beyond the bounds too: clipping of the normalised values and actions
    expected, _ = model.predict(obs, deterministic=True)
    run = run_onnx if suffix == ".onnx" else run_torchscript
    got = run(path, {"observation": obs})
    print(f"{estimator.__name__} {suffix}: max difference {np.abs(got - expected).max():.3g}")
    assert got.shape == (1_000, 1) and np.abs(got - expected).max() <= TOLERANCE
    one = run(path, {"observation": obs[:1]})  # the batch size is free
    assert np.abs(one - expected[:1]).max() <= TOLERANCE


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_image_policies_include_the_preprocessing(suffix: str, tmp_path: Path) -> None:
    env = DotImageEnv(size=36)
    model = SAC(env, seed=0, **{**FAST, "policy_kwargs": None})
    images = np.stack([env.observation_space.sample() for _ in range(16)]).astype(np.uint8)
    expected, _ = model.predict(images, deterministic=True)
    run = run_onnx if suffix == ".onnx" else run_torchscript
    got = run(model.export(tmp_path / f"image{suffix}"), {"observation": images})  # uint8 in, /255 inside
    assert got.shape == (16, 2) and np.abs(got - expected).max() <= TOLERANCE


def test_dict_observations_are_one_input_per_key(tmp_path: Path) -> None:
    env = PointGoalEnv()
    model = TD3(env, seed=0, **FAST)
    space = env.observation_space
    batch = {key: np.stack([space[key].sample() for _ in range(32)]) for key in space.spaces}
    expected, _ = model.predict(batch, deterministic=True)
    for suffix, run in ((".onnx", run_onnx), (".pt", run_torchscript)):
        got = run(model.export(tmp_path / f"goal{suffix}"), batch)
        assert np.abs(got - expected).max() <= TOLERANCE


def test_bad_suffix_and_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = SAC("Pendulum-v1", **FAST)
    with pytest.raises(
        ValueError, match=r"cannot export to 'policy.zip': name the file with .onnx .* or .pt"
    ):
        model.export(tmp_path / "policy.zip")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(
        MissingExtraError, match=r'Exporting to ONNX needs the onnx package.*"easyrl\[onnx\]"'
    ):
        model.export(tmp_path / "policy.onnx")
    assert not (tmp_path / "policy.onnx").exists()


def test_the_documented_script_runs_without_easyrl(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(# run_policy\.py\n.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/sb3-models.md shows the script once, starting with '# run_policy.py'"
    (tmp_path / "run_policy.py").write_text(blocks[0])
    model = SAC("Pendulum-v1", seed=0, normalize=True, **FAST).learn(120)
    model.export(tmp_path / "policy.onnx")
    # -I: isolated mode, so the checkout's easyrl is not importable; the script needs numpy and onnxruntime only.
    code = "import runpy, sys; sys.modules['easyrl'] = None; runpy.run_path('run_policy.py', run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = np.array([float(x) for x in re.findall(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?", result.stdout)])
    expected, _ = model.predict(np.array([1.0, 0.0, 0.0], dtype=np.float32), deterministic=True)
    assert printed.size == 1 and abs(printed[0] - float(expected[0])) <= 1e-4


def test_a_gsde_policy_exports_its_deterministic_action(tmp_path: Path) -> None:
    model = SAC("Pendulum-v1", seed=0, use_sde=True, **FAST).learn(100)
    obs = pendulum_observations(200)
    expected, _ = model.predict(obs, deterministic=True)
    for suffix, run in ((".onnx", run_onnx), (".pt", run_torchscript)):
        got = run(model.export(tmp_path / f"gsde{suffix}"), {"observation": obs})
        assert np.abs(got - expected).max() <= TOLERANCE


def test_a_vec_normalize_model_exports_for_raw_observations(tmp_path: Path) -> None:
    from easyrl.envs import VecNormalize, make_vec_env

    model = TD3(VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0)), seed=0, **FAST).learn(100)
    obs = pendulum_observations(200)
    expected, _ = model.predict(
        obs, deterministic=True, normalized=False
    )  # predict's default here: normalised
    got = run_onnx(model.export(tmp_path / "policy.onnx"), {"observation": obs})
    assert np.abs(got - expected).max() <= TOLERANCE
