"""CrossQ (Bhatt et al. 2024): batch renormalisation on small tensors, whole updates against sb3-contrib's on
the same weights and batches, the networks' modes, files and exact resume (its Pendulum-v1 runs are in
tests/test_critic_options.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from easyrl import CrossQ, load
from easyrl.blocks import BatchRenorm, batch_statistics
from easyrl.buffers import ReplayBatch
from tests.conftest import FAST

SMALL = dict(net_arch=dict(pi=[16, 16], qf=[32, 32]))


# ---------------------------------------------------------------------------------------------- batch renorm
def test_batch_renorm_is_batch_norm_during_warmup_and_uses_running_statistics_in_evaluation() -> None:
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(64, 5)
    layer = BatchRenorm((5,), momentum=0.1, eps=1e-3, warmup_steps=10)
    assert not layer.training  # acting mode unless an update asks for batch statistics
    with batch_statistics(layer):
        out = layer(x)
    expected = (x - x.mean(0)) / (x.var(0) + 1e-3).sqrt()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(layer.ra_mean, 0.1 * x.mean(0))
    torch.testing.assert_close(layer.ra_var, 0.9 + 0.1 * x.var(0))
    assert layer.steps.item() == 1
    torch.testing.assert_close(layer(x), (x - layer.ra_mean) / (layer.ra_var + 1e-3).sqrt())
    assert layer.steps.item() == 1  # evaluation changes nothing


def test_after_warmup_batch_renorm_corrects_toward_the_running_statistics() -> None:
    torch.manual_seed(0)
    layer = BatchRenorm(
        (3,), momentum=0.5, eps=1e-8, warmup_steps=0
    )  # the identity below is exact without eps
    layer.ra_mean.fill_(1.0)
    layer.ra_var.fill_(4.0)
    layer.steps.fill_(1)
    x = torch.randn(32, 3)
    mean, var = x.mean(0), x.var(0)
    running_std = torch.full((3,), 4.0).sqrt()
    r = (var.sqrt() / running_std).clamp(1 / 3, 3)
    d = ((mean - 1.0) / running_std).clamp(-5, 5)
    with batch_statistics(layer):
        out = layer(x)
    # x̂ = (x − μ_B)/σ_B · r + d: the running statistics' normalisation, reached through the batch's.
    torch.testing.assert_close(out, (x - mean) / var.sqrt() * r + d, rtol=1e-4, atol=1e-5)


def test_ensemble_batch_renorm_keeps_each_members_statistics() -> None:
    layer = BatchRenorm((2, 1, 4))
    x = torch.stack([torch.randn(10, 4), 5 + torch.randn(10, 4)])
    with batch_statistics(layer):
        layer(x)
    torch.testing.assert_close(layer.ra_mean[1, 0], 0.01 * x[1].mean(0))
    torch.testing.assert_close(layer.ra_mean[0, 0], 0.01 * x[0].mean(0))


def test_a_constant_feature_gets_a_finite_gradient() -> None:
    x = torch.cat([torch.randn(8, 1), torch.zeros(8, 1)], dim=1).requires_grad_()  # a dead ReLU unit
    layer = BatchRenorm((2,))
    with batch_statistics(layer):
        layer(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------------------- the model
def test_defaults_follow_sb3_contrib() -> None:
    model = CrossQ("Pendulum-v1")
    assert (model.learning_rate, model.policy_delay, model.batch_size, model.tau) == (1e-3, 3, 256, 1.0)
    widths = [layer.weight.shape[-1] for layer in model.policy.critic.layers]
    assert widths == [1024, 1024, 1] and model.policy.actor.trunk[1].out_features == 256
    assert model.critic_optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert model.actor_optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert not hasattr(model.policy, "critic_target")


def test_settings_without_meaning_for_crossq_are_refused() -> None:
    with pytest.raises(ValueError, match="no target networks"):
        CrossQ("Pendulum-v1", tau=0.005).learn(1)
    with pytest.raises(ValueError, match="critic_subset"):
        CrossQ("Pendulum-v1", policy_kwargs=dict(critic_subset=2)).learn(1)
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        CrossQ("Pendulum-v1", policy_kwargs=dict(batch_norm_momentum=0)).learn(1)


def test_acting_uses_running_statistics_and_updates_use_batch_statistics() -> None:
    model = CrossQ("Pendulum-v1", **{**FAST, "policy_kwargs": SMALL}, seed=0).learn(200)
    norms = [m for m in model.policy.modules() if isinstance(m, BatchRenorm)]
    assert norms and not any(m.training for m in norms)  # back in evaluation mode after the updates
    critic_steps = model.policy.critic.batch_norms[0].steps.item()
    actor_steps = model.policy.actor.trunk[0].steps.item()
    assert critic_steps == model._n_updates  # one joint batch per update
    assert actor_steps == model._n_updates // 3  # only the delayed actor updates
    obs = torch.zeros(1, 3).numpy()
    before = [m.ra_mean.clone() for m in norms]
    first = model.predict(obs, deterministic=True)[0]
    assert (
        model.predict(obs, deterministic=True)[0] == first
    ).all()  # a batch of one is normalised as always
    assert all(torch.equal(m.ra_mean, b) for m, b in zip(norms, before, strict=True))


def test_a_crossq_model_saves_loads_and_resumes_exactly(tmp_path: Path) -> None:
    from tests.test_resume import assert_same_learner, checkpoint_and_resume

    model = CrossQ("Pendulum-v1", **{**FAST, "policy_kwargs": SMALL}, seed=0).learn(150)
    model.save(tmp_path / "crossq.zip")
    loaded = load(tmp_path / "crossq.zip", device="cpu")
    assert isinstance(loaded, CrossQ) and loaded.get_params() == model.get_params()
    state = loaded.policy.state_dict()
    assert torch.equal(
        state["critic.batch_norms.1.ra_var"], model.policy.state_dict()["critic.batch_norms.1.ra_var"]
    )
    a, b = checkpoint_and_resume(
        CrossQ, tmp_path, 400, 150, policy_kwargs=SMALL, n_steps=2
    )  # at an episode end
    assert_same_learner(a, b)


# ---------------------------------------------------------------------------------------------- sb3-contrib
def _their_state(ours: CrossQ) -> dict[str, torch.Tensor]:
    """Our weights and statistics under sb3-contrib's names: actor.latent_pi.* and critic.qf{i}.*."""
    own = ours.policy.state_dict()
    state = {}
    for key, value in own.items():
        if key.startswith("actor.trunk."):
            state["actor.latent_pi." + key[len("actor.trunk.") :]] = value
        elif key.startswith(("actor.mean.", "actor.log_std.")):
            state[key.replace("actor.mean.", "actor.mu.")] = value
    critic = ours.policy.critic
    for i in range(critic.n_critics):
        for j, norm in enumerate(critic.batch_norms):
            for name in ("scale", "bias", "ra_mean", "ra_var"):
                state[f"critic.qf{i}.{3 * j}.{name}"] = getattr(norm, name)[i, 0]
            state[f"critic.qf{i}.{3 * j}.steps"] = norm.steps
        for j, layer in enumerate(critic.layers):
            state[f"critic.qf{i}.{3 * j + 1}.weight"] = layer.weight[i].T
            state[f"critic.qf{i}.{3 * j + 1}.bias"] = layer.bias[i, 0]
    return {k: v.detach().clone() for k, v in state.items()}


def test_three_updates_match_sb3_contrib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same weights and batches: after three of sb3-contrib's train() steps and three of ours (the third
    with the delayed actor), every weight and running statistic of actor and critics agrees.

    The actors' σ is pinned at its floor (log σ = −20) so that both libraries' own Gaussian draws give the
    same actions to 1e-9, and α is fixed (0, so log π, which depends on the draw, drops out of the losses)."""
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    settings: dict[str, Any] = dict(ent_coef=0.0, policy_kwargs=dict(net_arch=dict(pi=[16, 16], qf=[32, 32])))
    ours = CrossQ("Pendulum-v1", **settings, seed=0, device="cpu")
    with torch.no_grad():
        ours.policy.actor.log_std.weight.zero_()
        ours.policy.actor.log_std.bias.fill_(-30.0)
    theirs = sb3_contrib.CrossQ("MlpPolicy", "Pendulum-v1", **settings, seed=1, device="cpu")
    theirs.policy.load_state_dict(_their_state(ours))

    g = torch.Generator().manual_seed(0)
    size = 32
    batches = []
    for _ in range(3):
        obs, next_obs = torch.randn(size, 3, generator=g), torch.randn(size, 3, generator=g)
        actions, rewards = torch.rand(size, 1, generator=g) * 2 - 1, torch.randn(size, generator=g)
        terminated = (torch.rand(size, generator=g) < 0.25).float()
        batches.append((obs, actions, next_obs, terminated, rewards))

    samples = iter(ReplayBufferSamples(o, a, n, t[:, None], r[:, None]) for o, a, n, t, r in batches)
    monkeypatch.setattr(theirs.replay_buffer, "sample", lambda *a, **k: next(samples))
    theirs.set_logger(configure(None, []))
    theirs.train(gradient_steps=3, batch_size=size)

    for optimizer in ours._optimizers():
        optimizer.param_groups[0]["lr"] = 1e-3
    for obs, actions, next_obs, terminated, rewards in batches:
        ours._update(
            ReplayBatch(obs, actions, rewards, next_obs, terminated, torch.full((size,), ours.gamma))
        )
        ours.training_state.n_updates += 1

    expected = theirs.policy.state_dict()
    for key, value in _their_state(ours).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-6, msg=key)
    assert (
        ours.policy.critic.batch_norms[0].steps.item() == 3 and ours.policy.actor.trunk[0].steps.item() == 1
    )


def test_crossq_is_a_scikit_learn_estimator() -> None:
    from sklearn.base import clone

    model = CrossQ("Pendulum-v1", policy_delay=2, policy_kwargs=dict(renorm_warmup_steps=10))
    copy = clone(model)
    assert copy.get_params() == model.get_params() and "policy_delay=2" in repr(model)
    copy.set_params(policy_delay=4)
    assert copy.policy_delay == 4 and model.policy_delay == 2
    assert copy.policy.critic.batch_norms[0].warmup_steps == 10
