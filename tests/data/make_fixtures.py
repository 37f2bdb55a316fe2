"""Write the refactor guards in tests/data/: a determinism snapshot and model and replay-buffer files.

Run it from the repository root, on the code whose behaviour the tests must keep::

    python tests/data/make_fixtures.py

For each estimator (and SAC v1), a short fixed-seed run on Pendulum-v1 is trained; the script
records the SHA-256 of its parameters (``snapshot.json``), saves the model and its replay buffer
(``<name>.zip``, ``<name>_replay.zip``), and records what the files must reproduce when loaded:
the deterministic actions on fixed observations, and the parameters' hash after loading both
files and training on. ``tests/test_snapshot.py`` checks all of it against the current code.

The hashes are of float32 arithmetic on one CPU thread: another CPU kind (AMD EPYC here; Intel
Xeon with AMX elsewhere) may round differently. On a mismatch there, check out the commit named
in ``snapshot.json`` and rerun this script before comparing.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from easyrl import DDPG, SAC, TD3  # noqa: E402
from easyrl.noise import NormalActionNoise  # noqa: E402

SETTINGS: dict[str, Any] = dict(
    learning_starts=50, batch_size=32, buffer_size=500, policy_kwargs=dict(net_arch=[16, 16]), device="cpu"
)
STEPS = 300
THEN = 120
CASES: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "sac": (SAC, {}),
    "sac_v1": (SAC, dict(value_network=True, ent_coef=0.2)),
    "td3": (TD3, dict(action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)))),
    "ddpg": (DDPG, dict(action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)))),
}
OBSERVATIONS = np.random.default_rng(0).uniform(-1, 1, size=(8, 3)).astype(np.float32)


def parameter_hash(model: Any) -> str:
    """SHA-256 of the policy's parameters and buffers, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.policy.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cpu_model() -> str:
    """The CPU's model name (its rounding is what the hashes depend on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(name: str) -> Any:
    estimator, extra = CASES[name]
    return estimator("Pendulum-v1", seed=0, **SETTINGS, **extra)


def main() -> None:
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    record: dict[str, Any] = {
        "recorded_on": {"cpu": cpu_model(), "torch": torch.__version__},
        "commit": commit.strip(),
        "steps": STEPS,
        "then": THEN,
        "observations": OBSERVATIONS.tolist(),
        "cases": {},
    }
    for name in CASES:
        model = build(name).learn(STEPS)
        model.save(HERE / f"{name}.zip")
        model.save_replay_buffer(HERE / f"{name}_replay.zip")
        actions, _ = model.predict(OBSERVATIONS, deterministic=True)
        entry = {"after_training": parameter_hash(model), "actions": actions.tolist()}
        estimator = CASES[name][0]
        loaded = estimator.load(HERE / f"{name}.zip", device="cpu")
        loaded.load_replay_buffer(HERE / f"{name}_replay.zip")
        entry["after_resume"] = parameter_hash(loaded.learn(THEN, reset_num_timesteps=False))
        record["cases"][name] = entry
        print(name, entry["after_training"][:16], entry["after_resume"][:16])
    (HERE / "snapshot.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
