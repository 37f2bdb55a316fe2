"""Small Stable-Baselines3 models, trained at test time and saved as SB3 zips (the import tests' fixtures).

Run as a script, it writes them to a folder and prints how far easyrl's imports are from SB3::

    python tests/sb3_models.py /tmp/sb3-models
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np

SB3_SETTINGS: dict[str, Any] = dict(
    learning_starts=100,
    batch_size=32,
    buffer_size=1_000,
    policy_kwargs=dict(net_arch=[32, 32]),
    seed=0,
    device="cpu",
)


def train_sb3_model(algorithm: str, folder: Path, steps: int = 300, **settings: Any) -> Path:
    """Train SB3's ``algorithm`` ("SAC", "TD3" or "DDPG") on Pendulum-v1 for ``steps`` steps; returns its zip."""
    import stable_baselines3

    cls = getattr(stable_baselines3, algorithm)
    settings = {**copy.deepcopy(SB3_SETTINGS), **settings}  # SB3 writes into its policy_kwargs
    model = cls("MlpPolicy", "Pendulum-v1", **settings).learn(steps)
    path = folder / f"sb3_{algorithm.lower()}.zip"
    model.save(path)
    return path


def pendulum_observations(n: int = 1_000, seed: int = 0) -> np.ndarray:
    """``n`` observations spread over Pendulum-v1's whole observation space (cos, sin, angular velocity)."""
    angles = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    velocities = np.random.default_rng(seed + 1).uniform(-8, 8, n)
    return np.stack([np.cos(angles), np.sin(angles), velocities], axis=1).astype(np.float32)


def differences(path: Path, algorithm: str) -> tuple[float, float]:
    """The largest differences between SB3's and easyrl's deterministic actions and Q-values on 1,000 observations."""
    import stable_baselines3
    import torch

    import easyrl

    sb3_model = getattr(stable_baselines3, algorithm).load(
        path, device="cpu"
    )  # our own file: SB3 may unpickle it
    model = easyrl.import_sb3(path, device="cpu")
    obs = pendulum_observations()
    ours, _ = model.predict(obs, deterministic=True)
    theirs, _ = sb3_model.predict(obs, deterministic=True)
    scaled = torch.as_tensor(sb3_model.policy.scale_action(theirs))
    with torch.no_grad():
        q_theirs = torch.cat(sb3_model.critic(torch.as_tensor(obs), scaled), dim=1).T
        q_ours = model.critic(torch.as_tensor(obs), scaled)
    return float(np.abs(ours - theirs).max()), float((q_ours - q_theirs).abs().max())


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "sb3-models")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("SAC", "TD3", "DDPG"):
        action, q_value = differences(train_sb3_model(name, out), name)
        print(f"{name}: max |action difference| {action:.3g}, max |Q difference| {q_value:.3g}")
