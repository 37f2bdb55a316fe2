"""Tiny learning tests: each estimator solves Pendulum-v1 well within a few thousand steps."""

from __future__ import annotations

import pytest

from easyrl import SAC
from tests.conftest import mean_return


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sac_learns_pendulum_in_5000_steps(seed: int) -> None:
    # SB3's defaults; SB3 itself reaches about -135 and -185 here.
    model = SAC("Pendulum-v1", seed=seed, device="cpu").learn(5_000)
    score = mean_return(model)
    print(f"SAC seed {seed}: mean return {score:.1f}")
    assert score >= -250


@pytest.mark.slow
def test_cnn_sac_learns_the_image_env_from_pixels() -> None:
    import numpy as np

    from easyrl.envs import DotImageEnv

    def mean_image_return(model: SAC | None) -> float:
        env, returns = DotImageEnv(size=36), []
        rng = np.random.default_rng(0)
        for episode in range(10):
            obs, _ = env.reset(seed=500 + episode)
            total, done = 0.0, False
            while not done:
                action = model.predict(obs, deterministic=True)[0] if model else rng.uniform(-1, 1, 2)
                obs, reward, terminated, truncated, _ = env.step(action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    model = SAC(
        "CnnPolicy", DotImageEnv(size=36), seed=0, device="cpu", batch_size=64, buffer_size=10_000,
        learning_starts=500,
    ).learn(3_000)  # fmt: skip
    random, learned = mean_image_return(None), mean_image_return(model)
    print(f"CNN SAC on DotImageEnv(36): random {random:.1f}, learned {learned:.1f}")
    assert learned > 0.5 * random  # returns are negative distances: half the random policy's cost
