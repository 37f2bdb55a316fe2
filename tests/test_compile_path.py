"""The opt-in compiled path computes the same update as the plain eager one."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.conftest import FAST


@pytest.mark.slow
def test_compiled_update_matches_eager(estimator: type[Any]) -> None:
    models = [estimator("Pendulum-v1", seed=5, compile_update=flag, **FAST) for flag in (False, True)]
    for model in models:
        model.learn(FAST["learning_starts"])  # warm-up only: no update yet, identical buffers
    initial = {k: t.clone() for k, t in models[0].policy.state_dict().items()}
    batch = models[0].replay_buffer.sample(16, torch.Generator().manual_seed(0), gamma=models[0].gamma)
    for model in models:
        model.training_state.torch_rng.manual_seed(1)
        for optimizer in model._optimizers():
            for group in optimizer.param_groups:
                group["lr"] = 1e-3
        for _ in range(2):  # two updates: TD3's delayed actor step happens in the second
            model._update(batch)
            model._n_updates += 1
    plain, compiled = (m.policy.state_dict() for m in models)
    assert plain.keys() == compiled.keys()  # compiling in place keeps parameter names (and save files)
    for key in plain:
        torch.testing.assert_close(compiled[key], plain[key], rtol=1e-4, atol=1e-5, msg=key)
    assert any(not torch.equal(plain[k], initial[k]) for k in plain)  # the updates did change the networks


def test_compile_update_is_validated(estimator: type[Any]) -> None:
    with pytest.raises(
        ValueError, match=r"compile_update='yes' is invalid: compile_update must be one of False, True"
    ):
        estimator("Pendulum-v1", compile_update="yes").learn(10)
