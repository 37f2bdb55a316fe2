"""``set_random_seed`` (SB3's, from stable_baselines3.common.utils): the global generators, and only them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from easyrl import SAC
from easyrl.algorithms.policies import BasePolicy
from easyrl.utils import set_random_seed
from tests.conftest import FAST


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_set_random_seed_makes_the_global_generators_repeatable() -> None:
    set_random_seed(3)
    first = draws()
    set_random_seed(3)
    assert draws() == first
    set_random_seed(4)
    assert draws() != first


def test_it_seeds_as_sb3_does() -> None:
    utils = pytest.importorskip("stable_baselines3.common.utils")
    utils.set_random_seed(5, using_cuda=False)
    theirs = draws()
    set_random_seed(5, using_cuda=False)
    assert draws() == theirs


def test_a_model_does_not_depend_on_it(estimator: type[Any]) -> None:
    runs = []
    for global_seed in (1, 2):
        set_random_seed(global_seed)
        model = estimator("Pendulum-v1", seed=0, **FAST).learn(60)
        runs.append(model.predict(np.ones((4, 3), np.float32))[0])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_a_loaded_policy_samples_from_torchs_generator_as_in_sb3(tmp_path: Path) -> None:
    path = SAC("Pendulum-v1", seed=0, **FAST).policy.save(tmp_path / "policy.zip")
    policy = BasePolicy.load(path)
    observations = np.ones((4, 3), np.float32)
    set_random_seed(7)
    first, _ = policy.predict(observations)
    set_random_seed(7)
    np.testing.assert_array_equal(policy.predict(observations)[0], first)
