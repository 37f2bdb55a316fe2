"""TQC (Kuznetsov et al. 2020): its maths on small fixed tensors, its losses and gradients against
sb3-contrib's on the same weights and batch, files, and learning Pendulum-v1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from easyrl import TQC, load, losses
from easyrl.algorithms.faults import NonFiniteError
from easyrl.algorithms.sb3_weights import _convert, _Layout, _stack_weights
from easyrl.buffers import ReplayBatch
from tests.conftest import FAST


def test_truncation_pools_the_critics_sorts_and_drops_the_largest() -> None:
    quantiles = torch.tensor(
        [[[1.0, 5.0, 3.0], [0.0, 0.0, 9.0]], [[4.0, 2.0, 6.0], [7.0, 8.0, 1.0]]]
    )  # N=2, B=2, M=3
    assert losses.truncated_quantiles(quantiles, 1).tolist() == [[1, 2, 3, 4], [0, 0, 1, 7]]
    assert losses.truncated_quantiles(quantiles, 0).tolist() == [[1, 2, 3, 4, 5, 6], [0, 0, 1, 7, 8, 9]]


def test_the_quantile_huber_loss_is_its_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    quantiles, atoms = torch.randn(2, 3, 4, generator=generator), 2 * torch.randn(3, 5, generator=generator)
    total, pairs = 0.0, 0
    for n in range(2):
        for b in range(3):
            for m in range(4):
                for k in range(5):
                    delta = float(atoms[b, k] - quantiles[n, b, m])
                    huber = abs(delta) - 0.5 if abs(delta) > 1 else 0.5 * delta**2
                    total += abs((m + 0.5) / 4 - (delta < 0)) * huber
                    pairs += 1
    assert losses.quantile_huber_loss(quantiles, atoms).item() == pytest.approx(total / pairs, rel=1e-6)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="top_quantiles_to_drop_per_net=25 drops every quantile"):
        TQC("Pendulum-v1", top_quantiles_to_drop_per_net=25).learn(1)
    with pytest.raises(ValueError, match="critic_backup"):
        TQC("Pendulum-v1", critic_backup="mean").learn(1)
    with pytest.raises(ValueError, match="n_quantiles"):
        TQC("Pendulum-v1", policy_kwargs=dict(n_quantiles=0)).learn(1)


def test_a_tqc_model_saves_loads_and_resumes(tmp_path: Path) -> None:
    fast = {**FAST, "policy_kwargs": dict(net_arch=[32, 32], n_quantiles=7, n_critics=3)}
    model = TQC("Pendulum-v1", **fast, seed=0)
    model.learn(150)
    model.save(tmp_path / "tqc.zip")
    loaded = load(tmp_path / "tqc.zip", device="cpu")
    assert isinstance(loaded, TQC) and loaded.get_params() == model.get_params()
    assert loaded.policy.critic(torch.zeros(4, 3), torch.zeros(4, 1)).shape == (3, 4, 7)
    obs = torch.zeros(1, 3).numpy()
    assert (loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]).all()


def test_a_tqc_checkpoint_resumes_exactly(tmp_path: Path) -> None:
    from tests.test_resume import assert_same_learner, checkpoint_and_resume

    a, b = checkpoint_and_resume(TQC, tmp_path, 400, 150, n_steps=3)  # Pendulum's episodes last 200 steps
    assert_same_learner(a, b)


def test_a_nonfinite_quantile_loss_never_reaches_the_weights() -> None:
    from tests.test_nonfinite import Spoiled

    # The quantile Huber loss grows only linearly, so it takes rewards near float32's largest to overflow.
    model = TQC(lambda: Spoiled("reward", 1, 3e38, always=True), **FAST, seed=0, max_nonfinite_updates=3)
    with pytest.raises(NonFiniteError, match="critic_loss was NaN or infinite"):
        model.learn(1_000)
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


# ---------------------------------------------------------------------------------------------- sb3-contrib
def test_losses_and_gradients_match_sb3_contrib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same weights, batch and sampled actions in easyrl's TQC and sb3-contrib's: the critic loss, its
    gradients for every critic weight, the actor loss and its gradient for the actions all agree."""
    sb3_contrib = pytest.importorskip("sb3_contrib")

    def settings() -> dict[str, Any]:  # a new dict for each: sb3-contrib adds keys to its policy_kwargs
        return dict(policy_kwargs=dict(net_arch=[32, 32], n_quantiles=5), top_quantiles_to_drop_per_net=2)

    ours = TQC("Pendulum-v1", **settings(), seed=0, device="cpu")
    theirs = sb3_contrib.TQC("MlpPolicy", "Pendulum-v1", **settings(), seed=1, device="cpu")
    own = ours.policy.state_dict()
    ours.policy.load_state_dict(
        {**own, **_convert(_Layout(ours), list(own), theirs.policy.state_dict(), own)}
    )

    g = torch.Generator().manual_seed(0)
    size = 16
    obs, next_obs = torch.randn(size, 3, generator=g), torch.randn(size, 3, generator=g)
    actions, rewards = torch.rand(size, 1, generator=g) * 2 - 1, torch.randn(size, generator=g)
    terminated = (torch.rand(size, generator=g) < 0.25).float()
    next_actions, next_log_prob = torch.rand(size, 1, generator=g) * 2 - 1, torch.randn(size, generator=g)
    actions_pi, log_prob = torch.rand(size, 1, generator=g) * 2 - 1, torch.randn(size, generator=g)

    # sb3-contrib: one real train() step on that batch, with its actor's samples fixed and its optimizers
    # recording the gradients instead of stepping.
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    samples = ReplayBufferSamples(obs, actions, next_obs, terminated[:, None], rewards[:, None])
    monkeypatch.setattr(theirs.replay_buffer, "sample", lambda *a, **k: samples)
    their_pi = actions_pi.clone().requires_grad_()
    draws = iter([(their_pi, log_prob.clone()), (next_actions, next_log_prob)])
    monkeypatch.setattr(theirs.actor, "action_log_prob", lambda *a, **k: next(draws))
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for name, optimizer in (
        ("critic", theirs.critic.optimizer),
        ("actor", theirs.actor.optimizer),
        ("ent", theirs.ent_coef_optimizer),
    ):

        def record(*args: Any, _name: str = name, _optimizer: Any = optimizer, **kwargs: Any) -> None:
            grads[_name] = {
                str(i): p.grad.clone()
                for i, p in enumerate(_optimizer.param_groups[0]["params"])
                if p.grad is not None
            }

        monkeypatch.setattr(optimizer, "step", record)
    critic_grads = {n: p for n, p in theirs.critic.named_parameters()}
    from stable_baselines3.common.logger import configure

    theirs.set_logger(configure(None, []))
    theirs.train(gradient_steps=1, batch_size=size)
    their_critic_grad = {n: grads["critic"][str(i)] for i, n in enumerate(critic_grads)}
    their_losses = dict(theirs.logger.name_to_value)

    # easyrl: the same step through TQC's own target, losses and actor value.
    fixed = iter([(next_actions, next_log_prob)])
    monkeypatch.setattr(ours.policy.actor, "forward", lambda *a, **k: next(fixed))
    batch = ReplayBatch(obs, actions, rewards, next_obs, terminated, torch.full((size,), ours.gamma))
    alpha = torch.tensor(1.0)
    critic_loss = ours._critic_loss(
        ours.policy.critic(obs, actions), ours._critic_target(ours.policy, batch, alpha)
    )
    critic_loss.backward()
    our_pi = actions_pi.clone().requires_grad_()
    q_all = ours.policy.critic(obs, our_pi, detach_params=True)
    actor_loss = losses.actor_loss("reparameterization", log_prob, ours._actor_q(q_all), alpha)
    actor_loss.backward()

    assert critic_loss.item() == pytest.approx(their_losses["train/critic_loss"], rel=1e-5)
    assert actor_loss.item() == pytest.approx(their_losses["train/actor_loss"], rel=1e-5)
    for layer, ensemble in enumerate(ours.policy.critic.layers):
        mine = ensemble.weight.grad
        expected = _stack_weights([their_critic_grad[f"qf{i}.{2 * layer}.weight"] for i in range(2)])
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-7)
    assert their_pi.grad is not None and our_pi.grad is not None
    torch.testing.assert_close(our_pi.grad, their_pi.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_tqc_learns_pendulum(seed: int) -> None:
    from easyrl import evaluate_policy

    model = TQC("Pendulum-v1", learning_rate=1e-3, seed=seed, device="cpu").learn(5_000)
    mean, _ = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=5, seed=100 + seed)
    assert mean >= -250, mean
