"""Same seed, same run (on CPU); different seeds differ; global RNG does not matter."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from tests.conftest import FAST


def train(estimator: type[Any], seed: int, steps: int = 150, **kwargs: Any) -> dict[str, torch.Tensor]:
    model = estimator("Pendulum-v1", seed=seed, **{**FAST, **kwargs}).learn(steps)
    return {k: t.clone() for k, t in model.policy.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_same_seed_same_parameters(estimator: type[Any]) -> None:
    assert_same(train(estimator, 7), train(estimator, 7))


def test_global_random_state_is_not_used(estimator: type[Any]) -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    first = train(estimator, 7)
    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    assert_same(first, train(estimator, 7))


def test_different_seeds_differ(estimator: type[Any]) -> None:
    a, b = train(estimator, 1, steps=60), train(estimator, 2, steps=60)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_several_envs_are_deterministic_too(estimator: type[Any]) -> None:
    assert_same(train(estimator, 3, n_envs=2), train(estimator, 3, n_envs=2))
