"""Non-finite values: an env that returns NaN or ±inf, and losses or gradients that are not finite.

An env's NaN is caught at the step it happens, naming env, step and field. A non-finite loss or
gradient is caused for real (rewards so large that the squared error overflows float32, a square
root at 0): the step is skipped on the device, counted, and after ``max_nonfinite_updates`` in a row
training stops with the last good parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl import SAC, TD3
from easyrl.algorithms.faults import NonFiniteError
from easyrl.updates import NonFiniteGuard, adam, gradient_step, guarded
from tests.conftest import FAST


class Spoiled(gym.Wrapper[Any, Any, Any, Any]):
    """Pendulum whose ``field`` becomes ``value`` at the ``at``-th step of its life (or every step from it)."""

    def __init__(self, field: str, at: int, value: float = np.nan, always: bool = False) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.field, self.at, self.value, self.always, self.steps = field, at, value, always, 0

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at or (self.always and self.steps >= self.at):
            if self.field == "reward":
                reward = self.value
            else:
                obs = obs.copy()
                obs[1] = self.value
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize(
    ("field", "value"), [("reward", np.nan), ("observation", np.inf), ("observation", -np.inf)]
)
def test_a_nonfinite_env_value_names_env_step_and_field(
    estimator: type[Any], field: str, value: float
) -> None:
    model = estimator(lambda: Spoiled(field, 37, value), **FAST, seed=0)
    with pytest.raises(NonFiniteError, match=rf"env 0 returned a non-finite {field} \({value}\) at step 37 "):
        model.learn(100)
    assert model.num_timesteps == len(model.replay_buffer) == 36  # the bad step is not stored
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_with_several_envs_the_error_names_the_env() -> None:
    envs = [lambda: Spoiled("reward", 10**9), lambda: Spoiled("reward", 20)]
    model = SAC(gym.vector.SyncVectorEnv(envs), **FAST, seed=0)
    with pytest.raises(
        NonFiniteError, match=r"env 1 returned a non-finite reward \(nan\) at step 39 .*check_finite=False"
    ):
        model.learn(100)


def test_check_finite_false_stores_the_values(tmp_path: Path) -> None:
    model = SAC(lambda: Spoiled("reward", 5), **FAST, seed=0, check_finite=False).learn(20)
    rewards = model.replay_buffer.export_state()[0]["rewards"]
    assert torch.isnan(rewards).sum() == 1
    assert model.get_params()["check_finite"] is False
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env="Pendulum-v1", device="cpu")
    assert loaded.check_finite is False and loaded.max_nonfinite_updates == 10
    assert "check_finite=False" in repr(loaded)


@pytest.mark.parametrize("setting", [dict(check_finite="yes"), dict(max_nonfinite_updates=0)])
def test_fault_settings_are_checked(setting: dict[str, Any]) -> None:
    name = next(iter(setting))
    with pytest.raises(ValueError, match=rf"{name}=.* is invalid"):
        SAC("Pendulum-v1", **FAST, **setting).learn(1)


def test_nonfinite_losses_stop_training_with_the_last_good_parameters(estimator: type[Any]) -> None:
    # Rewards of 1e30 are finite, but the critics' squared error overflows float32: every update's
    # critic loss is inf from the first update on.
    model = estimator(
        lambda: Spoiled("reward", 1, 1e30, always=True), **FAST, seed=0, max_nonfinite_updates=5
    )
    fresh = estimator("Pendulum-v1", **FAST, seed=0)
    fresh._setup()
    with pytest.raises(
        NonFiniteError,
        match=r"critic_loss was NaN or infinite .* in 5 updates in a row, the last at update 5: .*learning rate",
    ):
        model.learn(1_000)
    assert model._n_updates == 5 and model.training_state.skipped_updates == 5
    # The critics never took a step: as they were built, Adam's moments untouched. The actor's loss was
    # finite (the critics' values were), so it trained; every parameter is finite.
    critics = {name: p for name, p in fresh.get_parameters()["policy"].items() if name.startswith("critic")}
    assert critics
    for name, built in critics.items():
        assert torch.equal(model.get_parameters()["policy"][name], built), name
    assert all(s["step"] == 0 for s in model.critic_optimizer.state.values())
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_occasional_nonfinite_updates_are_skipped_and_counted() -> None:
    class Sometimes(Spoiled):
        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, (1e30 if self.steps in (60, 61, 62) else reward), terminated, truncated, info

    model = TD3(lambda: Sometimes("reward", 10**9), **FAST, seed=0, max_nonfinite_updates=1_000).learn(300)
    skipped = model.training_state.skipped_updates
    assert 0 < skipped < model._n_updates
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    assert model.logger.name_to_value.get("train/skipped_updates", skipped) == skipped


def test_a_nonfinite_gradient_with_a_finite_loss_is_skipped() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    optimizer = adam(net.parameters(), 1e-2)
    guard = NonFiniteGuard({optimizer: "value_loss"}, limit=2)
    x = torch.randn(8, 3)
    with guarded(guard):
        gradient_step(optimizer, net(x).pow(2).mean())
        guard.end_update()
        before = [p.clone() for p in net.parameters()]
        steps = [s["step"].clone() for s in optimizer.state.values()]
        for _ in range(2):
            loss = (net(x) - net(x).detach()).abs().sqrt().mean()  # 0, with an infinite gradient
            assert torch.isfinite(loss)
            gradient_step(optimizer, loss)
            guard.end_update()
    assert guard.read() == [False, True, True]
    assert guard.tripped == (3, 2, frozenset({"value_loss"}))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert [s["step"] for s in optimizer.state.values()] == steps


def test_another_optimizer_is_skipped_too() -> None:
    net = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.clone() for p in net.parameters()]
    with guarded(NonFiniteGuard({}, limit=1)):
        gradient_step(optimizer, net(torch.randn(4, 3)).sum() * float("nan"))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
