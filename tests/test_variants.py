"""Variants from the literature: each option changes the target or loss as its definition says.

critic_backup (SAC, TD3, DDPG), actor_gradient and num_actor_samples (SAC), backup_entropy (SAC) and
value_network (SAC v1): the maths on small fixed tensors, the errors for invalid settings, and a short
training run of each option on Pendulum-v1, n_steps included (its windows: tests/test_n_steps.py).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
from torch import nn

from easyrl import DDPG, SAC, TD3
from easyrl.buffers import ReplayBatch
from easyrl.losses import actor_loss, bootstrapped_target, critic_backup
from easyrl.networks import SquashedGaussianActor
from tests.conftest import FAST

# ---------------------------------------------------------------------------------------------- critic backups
NEXT_Q = torch.tensor([[1.0, 5.0, -2.0], [3.0, 4.0, 0.0]])  # (n_critics=2, B=3)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("min", [1.0, 4.0, -2.0]),
        ("mean", [2.0, 4.5, -1.0]),
        ("single", [[1.0, 5.0, -2.0], [3.0, 4.0, 0.0]]),  # each critic its own target
        ("crossed", [[3.0, 4.0, 0.0], [1.0, 5.0, -2.0]]),  # y1 from Q̄2, y2 from Q̄1
    ],
)
def test_critic_backup_follows_its_definition(strategy: str, expected: list[Any]) -> None:
    assert torch.equal(critic_backup(NEXT_Q, strategy), torch.tensor(expected))


def test_crossed_backup_of_three_critics_is_a_cyclic_shift() -> None:
    next_q = torch.tensor([[1.0], [2.0], [3.0]])
    assert critic_backup(next_q, "crossed").flatten().tolist() == [2.0, 3.0, 1.0]


def batch_of(b: int = 3, **fields: torch.Tensor) -> ReplayBatch:
    """A fixed batch of ``b`` transitions with one-dimensional observations and actions."""
    defaults = dict(
        observations=torch.linspace(-1, 1, b)[:, None],
        actions=torch.linspace(0.5, -0.5, b)[:, None],
        rewards=torch.tensor([1.0, -2.0, 0.5])[:b],
        next_observations=torch.linspace(1, -1, b)[:, None],
        terminated=torch.tensor([0.0, 1.0, 0.0])[:b],
        discounts=torch.tensor([0.9, 0.9, 0.81])[:b],
    )
    return ReplayBatch(**{**defaults, **fields})


def test_bootstrapped_target_uses_the_batch_discounts() -> None:
    batch = batch_of()
    target = bootstrapped_target(batch, torch.tensor([10.0, 10.0, 10.0]))
    torch.testing.assert_close(target, torch.tensor([1.0 + 9.0, -2.0, 0.5 + 8.1]))
    per_critic = bootstrapped_target(batch, NEXT_Q)  # one target per critic
    torch.testing.assert_close(per_critic[1], torch.tensor([1.0 + 0.9 * 3.0, -2.0, 0.5]))


# ---------------------------------------------------------------------------------------------- SAC targets
def sac(steps: int = 120, **kwargs: Any) -> SAC:
    return SAC("Pendulum-v1", seed=0, **{**FAST, **kwargs}).learn(steps)


def sample(model: Any, batch_size: int = 32) -> ReplayBatch:
    buffer = model.replay_buffer
    return buffer.sample(
        batch_size, torch.Generator().manual_seed(0), gamma=model.gamma, n_steps=model.n_steps
    )


def sac_next_values(model: SAC, batch: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The target critics' values (n, B) and log π at s' for the actions the update would draw."""
    with torch.no_grad():
        next_actions, next_log_prob = model.policy.actor(
            batch.next_observations, model.training_state.torch_rng
        )
        return model.policy.critic_target(batch.next_observations, next_actions), next_log_prob


@pytest.mark.parametrize("strategy", ["min", "mean", "single", "crossed"])
@pytest.mark.parametrize("backup_entropy", [True, False])
def test_sac_critic_target_follows_the_backup_and_entropy_settings(
    strategy: str, backup_entropy: bool
) -> None:
    model = sac(critic_backup=strategy, backup_entropy=backup_entropy, ent_coef=0.3)
    batch = sample(model)._replace(discounts=torch.linspace(0.5, 0.99, 32))  # any per-sample discounts
    alpha = torch.tensor(0.3)
    state = model.training_state.torch_rng.get_state()
    target = model._critic_target(model.policy, batch, alpha)
    model.training_state.torch_rng.set_state(state)
    next_q, next_log_prob = sac_next_values(model, batch)
    backup = {
        "min": next_q.min(dim=0).values,
        "mean": next_q.mean(dim=0),
        "single": next_q,
        "crossed": next_q[[1, 0]],
    }[strategy]
    soft = backup - alpha * next_log_prob if backup_entropy else backup
    torch.testing.assert_close(target, batch.rewards + batch.discounts * (1 - batch.terminated) * soft)
    assert target.shape == ((32,) if strategy in ("min", "mean") else (2, 32))


def test_the_critic_loss_compares_each_critic_with_its_own_target() -> None:
    model = sac(critic_backup="crossed")
    batch = sample(model)
    captured: dict[str, torch.Tensor] = {}
    real_target = model._critic_target

    def spy(*args: Any) -> torch.Tensor:
        captured["target"] = real_target(*args)
        return captured["target"]

    model._critic_target = spy  # type: ignore[method-assign]
    with torch.no_grad():
        current = model.policy.critic(batch.observations, batch.actions)
    stats = model._update(batch)
    expected = 0.5 * (
        (current[0] - captured["target"][0]).pow(2).mean()
        + (current[1] - captured["target"][1]).pow(2).mean()
    )
    torch.testing.assert_close(stats["critic_loss"], expected)


# ---------------------------------------------------------------------------------------------- SAC v1
def test_value_network_replaces_the_target_critics_with_v_and_its_target() -> None:
    model = sac(value_network=True, ent_coef=0.2)
    policy = model.policy
    assert not hasattr(policy, "critic_target")
    for p, q in zip(policy.value.parameters(), policy.value_target.parameters(), strict=True):
        assert not q.requires_grad and p.requires_grad
    batch = sample(model)._replace(discounts=torch.full((32,), 0.5))
    state = model.training_state.torch_rng.get_state()
    target = model._critic_target(policy, batch, torch.tensor(0.2))
    # No next action is drawn: V̄ needs none.
    assert torch.equal(model.training_state.torch_rng.get_state(), state)
    with torch.no_grad():
        expected = batch.rewards + 0.5 * (1 - batch.terminated) * policy.value_target(batch.next_observations)
    torch.testing.assert_close(target, expected)


@pytest.mark.parametrize(("strategy", "backup_entropy"), [("min", True), ("mean", True), ("min", False)])
def test_value_regresses_to_the_soft_value_of_the_actor_samples(strategy: str, backup_entropy: bool) -> None:
    model = sac(value_network=True, ent_coef=0.5, critic_backup=strategy, backup_entropy=backup_entropy)
    model.set_params(num_actor_samples=2)
    obs = torch.tensor([[0.1, 0.2, 0.3], [-0.5, 0.0, 1.0]])  # B = 2, two samples each
    q = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 4.0, 1.0, 6.0]])  # (n_critics, samples * B)
    log_prob = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    with torch.no_grad():
        v = model.policy.value(obs)
    loss = model._value.step(
        model.value_optimizer, obs, q, log_prob, torch.tensor(0.5), strategy, backup_entropy, num_samples=2
    )
    soft_q = (q.min(dim=0).values if strategy == "min" else q.mean(dim=0)) - (
        0.5 * log_prob if backup_entropy else 0
    )
    value_target = soft_q.view(2, 2).mean(dim=0)  # rows: sample 1 of each state, sample 2 of each state
    torch.testing.assert_close(loss, 0.5 * (v - value_target).pow(2).mean())
    assert not torch.equal(model.policy.value(obs).detach(), v)  # and V took a step


def test_value_network_moves_v_target_and_follows_the_critic_learning_rate() -> None:
    model = sac(value_network=True, ent_coef=0.2, critic_learning_rate=1e-3, learning_rate=5e-4)
    before = [p.clone() for p in model.policy.value_target.parameters()]
    model.learn(20, reset_num_timesteps=False)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.policy.value_target.parameters(), strict=True)
    )
    assert model.value_optimizer.param_groups[0]["lr"] == 1e-3
    assert model.actor_optimizer.param_groups[0]["lr"] == 5e-4
    assert model.value_optimizer in model._optimizers()
    assert "value_optimizer" in model.get_parameters()


# ---------------------------------------------------------------------------------------------- actor gradient
def test_actor_losses_follow_their_definitions_on_fixed_tensors() -> None:
    log_prob = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    q = torch.tensor([3.0, -1.0, 0.0])
    alpha = torch.tensor(0.2)
    reparameterized = actor_loss("reparameterization", log_prob, q, alpha)
    torch.testing.assert_close(reparameterized, (0.2 * log_prob - q).mean())
    reinforce = actor_loss("reinforce", log_prob, q, alpha)
    torch.testing.assert_close(reinforce, (log_prob * (0.2 * log_prob - q)).mean())
    (grad,) = torch.autograd.grad(reinforce, log_prob)
    # The bracket is held fixed: d/dlogπ is (α logπ − Q) / N, not (2α logπ − Q) / N.
    torch.testing.assert_close(grad, (0.2 * log_prob.detach() - q) / 3)


def tiny_actor() -> SquashedGaussianActor:
    actor = SquashedGaussianActor(1, 1, [], nn.ReLU).double()
    with torch.no_grad():
        actor.mean.weight.fill_(0.5)
        actor.mean.bias.fill_(0.1)
        actor.log_std.weight.fill_(0.0)
        actor.log_std.bias.fill_(math.log(0.4))
    return actor


def actor_gradient(estimator: str, n: int, seed: int = 0) -> torch.Tensor:
    """∇ of SAC's actor loss over the mean and log-σ biases of a one-state, one-action policy."""
    actor = tiny_actor()
    obs = torch.ones(n, 1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    actions, log_prob = actor(obs, generator, reparameterize=estimator == "reparameterization")
    q = -4.0 * (actions[:, 0] - 0.3) ** 2  # a fixed critic, maximal at a = 0.3
    loss = actor_loss(estimator, log_prob, q, torch.tensor(0.2, dtype=torch.float64))
    return torch.stack(torch.autograd.grad(loss, [actor.mean.bias, actor.log_std.bias])).flatten()


def test_reinforce_and_reparameterization_estimate_the_same_gradient_differently() -> None:
    # On the same few samples the two estimators differ ...
    assert not torch.allclose(
        actor_gradient("reinforce", 8), actor_gradient("reparameterization", 8), atol=1e-3
    )
    # ... but both are unbiased: over many samples they agree (REINFORCE's standard error here is ~0.003).
    torch.testing.assert_close(
        actor_gradient("reinforce", 1_000_000),
        actor_gradient("reparameterization", 1_000_000),
        atol=0.02,
        rtol=0,
    )


def test_reinforce_draws_the_same_actions_without_a_path_to_the_parameters() -> None:
    actor = tiny_actor()
    obs = torch.ones(5, 1, dtype=torch.float64)
    a1, lp1 = actor(obs, torch.Generator().manual_seed(3))
    a2, lp2 = actor(obs, torch.Generator().manual_seed(3), reparameterize=False)
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(lp1, lp2)
    assert a1.requires_grad and not a2.requires_grad and lp2.requires_grad


def test_num_actor_samples_draws_that_many_actions_per_state() -> None:
    model = sac(num_actor_samples=3, actor_gradient="reinforce")
    seen: list[tuple[int, ...]] = []
    handle = model.policy.critic.register_forward_hook(lambda m, inputs, out: seen.append(tuple(out.shape)))
    try:
        stats = model._update(sample(model))
    finally:
        handle.remove()
    assert seen == [(2, 32), (2, 96)]  # the critic loss on the batch, the actor's Q on 3 samples per state
    assert torch.isfinite(stats["actor_loss"])


# ---------------------------------------------------------------------------------------------- TD3 and DDPG targets
@pytest.mark.parametrize("strategy", ["min", "mean", "single", "crossed"])
def test_td3_critic_target_follows_the_backup(strategy: str) -> None:
    model = TD3("Pendulum-v1", seed=0, target_policy_noise=0.0, critic_backup=strategy, **FAST).learn(120)
    batch = sample(model)._replace(discounts=torch.linspace(0.5, 0.99, 32))
    target = model._critic_target(model.policy, batch)
    with torch.no_grad():
        next_actions = model.policy.actor_target(batch.next_observations)
        next_q = model.policy.critic_target(batch.next_observations, next_actions)
    backup = {
        "min": next_q.min(0).values,
        "mean": next_q.mean(0),
        "single": next_q,
        "crossed": next_q[[1, 0]],
    }
    expected = batch.rewards + batch.discounts * (1 - batch.terminated) * backup[strategy]
    torch.testing.assert_close(target, expected)


@pytest.mark.parametrize("strategy", ["min", "mean", "single"])
def test_ddpg_backups_of_one_critic_are_its_target(strategy: str) -> None:
    model = DDPG("Pendulum-v1", seed=0, critic_backup=strategy, **FAST).learn(120)
    batch = sample(model)
    with torch.no_grad():
        next_q = model.policy.critic_target(
            batch.next_observations, model.policy.actor_target(batch.next_observations)
        )
    target = model._critic_target(model.policy, batch)
    torch.testing.assert_close(
        target.reshape(-1), (batch.rewards + 0.99 * (1 - batch.terminated) * next_q[0])
    )


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("estimator", "name", "value", "message"),
    [
        (SAC, "critic_backup", "max", "one of 'min', 'mean', 'single', 'crossed'"),
        (TD3, "critic_backup", "double", "one of 'min', 'mean', 'single', 'crossed'"),
        (SAC, "actor_gradient", "score", "one of 'reparameterization', 'reinforce'"),
        (SAC, "num_actor_samples", 0, "an integer >= 1"),
        (SAC, "backup_entropy", "yes", "one of True, False"),
        (SAC, "value_network", 1, "one of False, True"),
        (SAC, "n_steps", 0, "an integer >= 1"),
        (TD3, "n_steps", 2.5, "an integer >= 1"),
        (DDPG, "n_steps", -1, "an integer >= 1"),
    ],
)
def test_invalid_variant_settings_are_named(
    estimator: type[Any], name: str, value: Any, message: str
) -> None:
    expected = f"{name}={value!r} is invalid: {name} must be {message}."
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        estimator("Pendulum-v1", **{**FAST, name: value}).learn(10)


@pytest.mark.parametrize("estimator", [DDPG, SAC, TD3])
def test_crossed_backup_needs_two_critics(estimator: type[Any]) -> None:
    policy_kwargs = {**FAST["policy_kwargs"], "n_critics": 1}
    with pytest.raises(
        ValueError,
        match=rf"critic_backup='crossed' needs at least 2 critics .* this {estimator.__name__} has 1",
    ):
        estimator("Pendulum-v1", **{**FAST, "policy_kwargs": policy_kwargs}, critic_backup="crossed").learn(
            10
        )
    if estimator is DDPG:  # DDPG's one critic by default
        with pytest.raises(ValueError, match="pass policy_kwargs=dict\\(n_critics=2\\)"):
            DDPG("Pendulum-v1", **FAST, critic_backup="crossed").learn(10)


def test_value_network_needs_a_fixed_temperature() -> None:
    with pytest.raises(
        ValueError,
        match=r"value_network=True \(SAC v1\) uses a fixed temperature.*ent_coef='auto'.*e\.g\. ent_coef=0\.2",
    ):
        SAC("Pendulum-v1", **FAST, value_network=True).learn(10)


@pytest.mark.parametrize("strategy", ["single", "crossed"])
def test_value_network_takes_the_min_or_mean_of_the_critics(strategy: str) -> None:
    with pytest.raises(
        ValueError, match=rf"critic_backup='{strategy}' does not apply with value_network=True"
    ):
        SAC("Pendulum-v1", **FAST, value_network=True, ent_coef=0.2, critic_backup=strategy).learn(10)


def test_value_network_cannot_change_after_the_model_was_built() -> None:
    model = SAC("Pendulum-v1", **FAST, ent_coef=0.2)
    model._setup()
    with pytest.raises(ValueError, match="value_network cannot change after the model was built"):
        model.set_params(value_network=True)
    model.set_params(
        critic_backup="mean", actor_gradient="reinforce", n_steps=3, backup_entropy=False
    )  # per update


# ---------------------------------------------------------------------------------------------- training
VARIANTS = [
    (SAC, dict(critic_backup="mean")),
    (SAC, dict(critic_backup="single")),
    (SAC, dict(critic_backup="crossed")),
    (SAC, dict(actor_gradient="reinforce", num_actor_samples=4)),
    (SAC, dict(backup_entropy=False)),
    (SAC, dict(value_network=True, ent_coef=0.2)),
    (SAC, dict(value_network=True, ent_coef=0.2, critic_backup="mean", n_steps=3, num_actor_samples=2)),
    (SAC, dict(n_steps=3, n_envs=2)),
    (TD3, dict(critic_backup="mean")),
    (TD3, dict(critic_backup="single")),
    (TD3, dict(critic_backup="crossed", n_steps=3)),
    (DDPG, dict(critic_backup="single", n_steps=5)),
]


@pytest.mark.parametrize(
    ("estimator", "options"), VARIANTS, ids=lambda x: x.__name__ if isinstance(x, type) else repr(x)
)
def test_each_variant_trains_on_pendulum(estimator: type[Any], options: dict[str, Any]) -> None:
    model = estimator("Pendulum-v1", seed=0, **FAST, **options)
    model._setup()
    initial = {k: t.clone() for k, t in model.policy.state_dict().items()}
    model.learn(300)
    state = model.policy.state_dict()
    assert all(torch.isfinite(t).all() for t in state.values())
    assert all(not torch.equal(initial[k], state[k]) for k in state)  # every network, targets included, moved
