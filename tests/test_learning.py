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
