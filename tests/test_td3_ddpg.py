"""TD3 and DDPG: defaults, the three TD3 mechanisms, DDPG as settings of TD3, learning rates, learning."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import numpy as np
import pytest
import torch

from easyrl import DDPG, SAC, TD3
from easyrl.algorithms.td3 import TD3Policy
from easyrl.buffers import ReplayBatch
from easyrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from tests.conftest import ESTIMATORS, FAST, mean_return


def trained(estimator: type[TD3] = TD3, steps: int = 120, **kwargs: Any) -> TD3:
    """A model after a short ``learn``: built, with a replay buffer to sample from."""
    return estimator("Pendulum-v1", seed=0, **{**FAST, **kwargs}).learn(steps)


def sample(model: TD3, batch_size: int = 32) -> ReplayBatch:
    return model.replay_buffer.sample(batch_size, torch.Generator().manual_seed(0), gamma=model.gamma)


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


# Defaults and structure


@pytest.mark.parametrize("estimator", [TD3, DDPG])
def test_defaults_follow_sb3(estimator: type[TD3]) -> None:
    params = estimator("Pendulum-v1").get_params()
    assert params["learning_rate"] == 1e-3
    assert (params["batch_size"], params["learning_starts"], params["buffer_size"]) == (256, 100, 1_000_000)
    assert (params["tau"], params["gamma"]) == (0.005, 0.99)
    assert params["actor_learning_rate"] is None and params["critic_learning_rate"] is None
    assert params["action_noise"] is None
    model = estimator("Pendulum-v1", buffer_size=1_000, device="cpu")
    policy = model.policy
    assert isinstance(policy, TD3Policy)
    widths = [layer.out_features for layer in policy.actor.trunk if isinstance(layer, torch.nn.Linear)]
    assert widths == [400, 300]
    assert [layer.weight.shape[-1] for layer in policy.critic.layers] == [400, 300, 1]


def td3_settings(model: TD3) -> tuple[int, float, float]:
    return model.policy_delay, model.target_policy_noise, model.target_noise_clip


def test_td3_settings() -> None:
    model = TD3("Pendulum-v1", buffer_size=1_000, device="cpu")
    assert td3_settings(model) == (2, 0.2, 0.5)
    assert model.policy.critic.n_critics == 2
    assert repr(TD3("Pendulum-v1", policy_delay=3)) == "TD3(env='Pendulum-v1', policy_delay=3)"


def test_ddpg_is_td3_with_one_critic_no_delay_and_no_smoothing() -> None:
    assert issubclass(DDPG, TD3)
    model = DDPG("Pendulum-v1", buffer_size=1_000, device="cpu")
    assert td3_settings(model) == (1, 0.0, 0.0)
    assert model.policy.critic.n_critics == 1
    assert repr(model) == "DDPG(env='Pendulum-v1', buffer_size=1000, device='cpu')"
    # n_critics stays a setting: DDPG with two critics is allowed.
    twin = DDPG("Pendulum-v1", buffer_size=1_000, device="cpu", policy_kwargs=dict(n_critics=2))
    assert twin.policy.critic.n_critics == 2


def test_targets_start_as_copies_and_need_no_gradients() -> None:
    policy = TD3("Pendulum-v1", **FAST).policy
    for online, target in ((policy.actor, policy.actor_target), (policy.critic, policy.critic_target)):
        for p, q in zip(online.parameters(), target.parameters(), strict=True):
            assert torch.equal(p, q) and p is not q and not q.requires_grad


@pytest.mark.parametrize("estimator", [TD3, DDPG])
def test_predict_is_deterministic_either_way(estimator: type[TD3]) -> None:
    model = trained(estimator, action_noise=NormalActionNoise(np.zeros(1), 0.5 * np.ones(1)))
    obs = np.array([0.5, -0.5, 1.0], dtype=np.float32)
    stochastic, _ = model.predict(obs, deterministic=False)
    deterministic, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(stochastic, deterministic)  # the exploration noise is for training only


RATE_OR_NONE = (
    "a number > 0 or a callable or 'lin_<value>' or 'constant_<value>' or None (to follow learning_rate)."
)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("policy_delay", 0, "an integer >= 1."),
        ("target_policy_noise", -0.1, "a number >= 0."),
        ("target_noise_clip", -1.0, "a number >= 0."),
        ("actor_learning_rate", 0.0, RATE_OR_NONE),
        ("critic_learning_rate", "fast", RATE_OR_NONE),
    ],
)
def test_invalid_settings_are_named(name: str, value: Any, message: str) -> None:
    expected = f"{name}={value!r} is invalid: {name} must be {message}"
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        TD3("Pendulum-v1", **{**FAST, name: value}).learn(10)


# Delayed policy updates

NETWORKS = ("actor", "actor_target", "critic", "critic_target")


@pytest.mark.parametrize("policy_delay", [1, 2, 3])
def test_actor_and_targets_move_only_every_policy_delay_updates(policy_delay: int) -> None:
    model = trained(policy_delay=policy_delay)
    policy: TD3Policy = model.policy
    batch = sample(model)
    model._n_updates = 0
    for update in range(1, 7):
        before = {name: snapshot(getattr(policy, name)) for name in NETWORKS}
        stats = model._update(batch)
        model._n_updates += 1  # as the base loop counts
        delayed = update % policy_delay == 0
        assert changed(before["critic"], policy.critic)
        assert changed(before["actor"], policy.actor) == delayed
        assert changed(before["actor_target"], policy.actor_target) == delayed
        assert changed(before["critic_target"], policy.critic_target) == delayed
        assert ("actor_loss" in stats) == delayed and "critic_loss" in stats


def test_training_loop_updates_the_actor_every_policy_delay_steps() -> None:
    model = TD3("Pendulum-v1", seed=0, **{**FAST, "learning_starts": 20}, policy_delay=3)
    model._setup()
    updates = []
    real_update = model._update

    def recording_update(batch: Any) -> Any:
        before = [p.clone() for p in model.policy.actor.parameters()]
        stats = real_update(batch)
        if any(not torch.equal(a, b) for a, b in zip(before, model.policy.actor.parameters(), strict=True)):
            updates.append(model._n_updates)
        return stats

    model._update = recording_update  # type: ignore[method-assign]
    model.learn(50)
    assert model._n_updates == 30
    assert updates == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]  # the 3rd, 6th, ... update (0-based counter)


def test_actor_follows_the_first_critic_only() -> None:
    # TD3 (paper and SB3) trains the actor through Q_1; changing Q_2 must not change the actor's step.
    model = trained(policy_delay=1)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for layer in twin.policy.critic.layers:
            layer.weight[1].normal_()
    batch = sample(model)
    model._update(batch)
    twin._update(batch)
    for a, b in zip(model.policy.actor.parameters(), twin.policy.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# Target policy smoothing


def target_actions(model: TD3, batch: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The actions the target critics were evaluated at, and the target actor's own actions."""
    seen: list[torch.Tensor] = []
    handle = model.policy.critic_target.register_forward_hook(lambda m, inputs, out: seen.append(inputs[1]))
    try:
        model._critic_target(model.policy, batch)
    finally:
        handle.remove()
    with torch.no_grad():
        return seen[0], model.policy.actor_target(batch.next_observations)


def test_target_smoothing_perturbs_target_actions_by_clipped_noise() -> None:
    model = trained(target_policy_noise=1e4, target_noise_clip=0.3)
    batch = sample(model, 256)
    smoothed, clean = target_actions(model, batch)
    offset = smoothed - clean
    assert offset.abs().max() <= 0.3 + 1e-6
    assert smoothed.abs().max() <= 1.0
    inside = (clean + offset.sign() * 0.3).abs() < 1.0
    # σ ≫ c: (almost) every draw is clipped, to exactly ±c where the action bound does not cut it.
    at_clip = (offset.abs()[inside] - 0.3).abs() < 1e-5
    assert inside.sum() > 128 and at_clip.float().mean() > 0.99


def test_target_smoothing_noise_has_sigma_and_comes_from_the_model_generator() -> None:
    model = trained(target_policy_noise=0.05, target_noise_clip=0.5)
    batch = sample(model, 256)
    state = model.training_state.torch_rng.get_state()
    smoothed, clean = target_actions(model, batch)
    away_from_bounds = clean.abs() < 0.8  # where clipping to [-1, 1] cannot cut the noise
    assert 0.04 < (smoothed - clean)[away_from_bounds].std() < 0.06
    first = model._critic_target(model.policy, batch)
    model.training_state.torch_rng.set_state(state)
    torch.manual_seed(123)  # global random state plays no part
    again = model._critic_target(model.policy, batch)
    model.training_state.torch_rng.set_state(state)
    torch.manual_seed(456)
    torch.testing.assert_close(model._critic_target(model.policy, batch), again)
    assert not torch.equal(first, again)  # the generator moved on: fresh noise each update


@pytest.mark.parametrize("estimator", [TD3, DDPG])
def test_critic_target_is_the_clipped_double_q_target(estimator: type[TD3]) -> None:
    model = trained(estimator, target_policy_noise=0.0, gamma=0.9)
    policy: TD3Policy = model.policy
    batch = sample(model)
    state = model.training_state.torch_rng.get_state()
    target = model._critic_target(policy, batch)
    assert torch.equal(model.training_state.torch_rng.get_state(), state)  # no noise drawn without smoothing
    with torch.no_grad():
        next_q = policy.critic_target(batch.next_observations, policy.actor_target(batch.next_observations))
        expected = batch.rewards + 0.9 * (1 - batch.terminated) * next_q.min(dim=0).values
    torch.testing.assert_close(target, expected)
    smoothing = copy.deepcopy(model).set_params(target_policy_noise=0.2, target_noise_clip=0.5)
    assert not torch.equal(smoothing._critic_target(smoothing.policy, batch), target)


# Learning rates


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_separate_learning_rates_reach_the_optimizers(estimator: type[Any]) -> None:
    progress: list[float] = []

    def critic_schedule(progress_remaining: float) -> float:
        progress.append(progress_remaining)
        return 2e-3 * (1 + progress_remaining)

    model = estimator(
        "Pendulum-v1", seed=0, learning_rate=5e-4, actor_learning_rate=1e-4, critic_learning_rate=critic_schedule,
        **FAST,
    ).learn(100)  # fmt: skip
    assert [g["lr"] for g in model.actor_optimizer.param_groups] == [1e-4]
    assert len(progress) == 50 and progress[0] > progress[-1]  # a schedule, read before each training phase
    assert model.critic_optimizer.param_groups[0]["lr"] == 2e-3 * (1 + progress[-1])
    others = [o for o in model._optimizers() if o not in (model.actor_optimizer, model.critic_optimizer)]
    assert all(g["lr"] == 5e-4 for o in others for g in o.param_groups)
    assert len(others) == (1 if issubclass(estimator, SAC) else 0)  # SAC's temperature follows learning_rate
    model.set_params(actor_learning_rate=None, critic_learning_rate=3e-3).learn(60, reset_num_timesteps=False)
    assert model.actor_optimizer.param_groups[0]["lr"] == 5e-4
    assert model.critic_optimizer.param_groups[0]["lr"] == 3e-3


def test_learning_rate_alone_sets_every_optimizer() -> None:
    model = trained(learning_rate=7e-4)
    assert {g["lr"] for o in model._optimizers() for g in o.param_groups} == {7e-4}


def test_ddpg_paper_setup_with_ou_noise_trains() -> None:
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1), theta=0.15, dt=1.0)
    model = DDPG(
        "Pendulum-v1", seed=0, tau=0.001, actor_learning_rate=1e-4, critic_learning_rate=1e-3,
        action_noise=noise, **{**FAST, "batch_size": 64},
    )  # fmt: skip
    model._setup()
    actor, critic_target = snapshot(model.policy.actor), snapshot(model.policy.critic_target)
    model.learn(300)
    assert changed(actor, model.policy.actor) and changed(critic_target, model.policy.critic_target)
    assert model.actor_optimizer.param_groups[0]["lr"] == 1e-4
    assert model.critic_optimizer.param_groups[0]["lr"] == 1e-3
    assert model.training_state.noise is not None and np.all(model.training_state.noise.noises[0].state != 0)
    assert noise.state.tolist() == [0.0]  # the user's object is a template, never advanced
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


# Learning: Pendulum-v1 within 8,000 steps, Gaussian exploration noise σ = 0.1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("estimator", [TD3, DDPG])
def test_learns_pendulum_in_8000_steps(estimator: type[TD3], seed: int) -> None:
    # Hyperparameters as a user would pick them for Pendulum (rl-zoo's gamma, a short warm-up),
    # with networks smaller than the [400, 300] default for speed.
    model = estimator(
        "Pendulum-v1", seed=seed, device="cpu", learning_starts=1_000, gamma=0.98,
        policy_kwargs=dict(net_arch=[128, 128]), action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
    ).learn(8_000)  # fmt: skip
    score = mean_return(model)
    print(f"{estimator.__name__} seed {seed}: mean return {score:.1f}")
    assert score >= -300


def test_global_random_state_does_not_change_training() -> None:
    def run() -> list[torch.Tensor]:
        model = trained(steps=150, action_noise=NormalActionNoise(np.zeros(1), 0.3 * np.ones(1)))
        return snapshot(model.policy)

    np.random.seed(0)
    random.seed(0)
    torch.manual_seed(0)
    first = run()
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    for a, b in zip(first, run(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
