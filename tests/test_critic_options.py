"""The critic options of SAC, TD3 and DDPG (``policy_kwargs``): LayerNorm, DroQ's dropout, REDQ's random-subset
target, SimBa's residual blocks and periodic resets. Each is checked against its definition on small fixed
tensors; the slow tests train every option (and every newer class) on Pendulum-v1, two seeds each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from easyrl import SAC, TD3
from easyrl.algorithms import resets
from easyrl.blocks import CriticOptions
from easyrl.buffers import ReplayBatch
from easyrl.critics import CriticEnsemble
from tests.conftest import FAST
from tests.pendulum_cases import pendulum_returns


def member(ensemble: CriticEnsemble, name: str, i: int) -> torch.Tensor:
    return dict(ensemble.named_parameters())[name][i]


def test_layer_norm_normalises_each_hidden_layer_before_its_activation() -> None:
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 1, [8, 8], nn.ReLU, n_critics=2, options=CriticOptions(layer_norm=True))
    with torch.no_grad():
        for p in critic.norms.parameters():
            p.uniform_(0.5, 1.5)
    obs, actions = torch.randn(5, 3), torch.randn(5, 1)
    for i in range(2):
        h = torch.cat([obs, actions], dim=1)
        for j in range(2):
            h = h @ member(critic, f"layers.{j}.weight", i) + member(critic, f"layers.{j}.bias", i)
            gain, bias = member(critic, f"norms.{j}.weight", i)[0], member(critic, f"norms.{j}.bias", i)[0]
            h = F.relu(F.layer_norm(h, (8,), gain, bias))
        q = h @ member(critic, "layers.2.weight", i) + member(critic, "layers.2.bias", i)
        torch.testing.assert_close(critic(obs, actions)[i], q.squeeze(-1))


def test_dropout_masks_hidden_units_only_when_an_update_passes_its_generator() -> None:
    torch.manual_seed(0)
    options = CriticOptions(dropout_rate=0.5)
    critic = CriticEnsemble(3, 1, [256, 256], nn.ReLU, n_critics=1, options=options)
    plain = CriticEnsemble(3, 1, [256, 256], nn.ReLU, n_critics=1)
    plain.load_state_dict(critic.state_dict())
    obs, actions = torch.randn(64, 3), torch.randn(64, 1)
    torch.testing.assert_close(critic(obs, actions), plain(obs, actions))  # no generator: no dropout
    first = critic(obs, actions, generator=torch.Generator().manual_seed(1))
    again = critic(obs, actions, generator=torch.Generator().manual_seed(1))
    other = critic(obs, actions, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)  # the masks come from the generator
    # Inverted dropout: half the units zeroed, the rest doubled, so the expectation is unchanged.
    g = torch.Generator().manual_seed(0)
    from easyrl.blocks import dropout

    x = torch.ones(200_000)
    dropped = dropout(x, 0.5, g)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.01)


def test_simba_is_an_embedding_residual_blocks_a_final_layer_norm_and_a_head() -> None:
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 1, [8, 8], nn.ReLU, n_critics=2, options=CriticOptions(net_type="simba"))
    obs, actions = torch.randn(5, 3), torch.randn(5, 1)
    for i in range(2):
        h = torch.cat([obs, actions], dim=1) @ member(critic, "layers.0.weight", i) + member(
            critic, "layers.0.bias", i
        )
        for b in range(2):
            p = {name: member(critic, f"blocks.{b}.{name}", i) for name in ("norm.weight", "norm.bias")}
            z = F.layer_norm(h, (8,), p["norm.weight"][0], p["norm.bias"][0])
            z = F.relu(
                z @ member(critic, f"blocks.{b}.up.weight", i) + member(critic, f"blocks.{b}.up.bias", i)
            )
            h = (
                h
                + z @ member(critic, f"blocks.{b}.down.weight", i)
                + member(critic, f"blocks.{b}.down.bias", i)
            )
        gain, bias = member(critic, "final_norm.weight", i)[0], member(critic, "final_norm.bias", i)[0]
        q = F.layer_norm(h, (8,), gain, bias) @ member(critic, "layers.1.weight", i) + member(
            critic, "layers.1.bias", i
        )
        torch.testing.assert_close(critic(obs, actions)[i], q.squeeze(-1))
    assert member(critic, "blocks.0.up.weight", 0).shape == (8, 32)  # each block widens 4x


def test_redq_targets_the_minimum_of_a_random_subset_and_the_actor_the_mean_of_all() -> None:
    model = SAC(
        "Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[16], n_critics=10, critic_subset=2)}
    )
    policy, rng = model.policy, model.training_state.torch_rng
    chosen = [tuple(sorted(policy.critic.target_members(rng).tolist())) for _ in range(50)]
    assert all(len(set(c)) == 2 for c in chosen) and len(set(chosen)) > 10  # two distinct critics, drawn anew
    g = torch.Generator().manual_seed(0)
    batch = ReplayBatch(
        torch.randn(6, 3, generator=g), torch.rand(6, 1, generator=g), torch.randn(6, generator=g),
        torch.randn(6, 3, generator=g), torch.tensor([0.0, 1, 0, 0, 1, 0]), torch.full((6,), 0.99),
    )  # fmt: skip
    alpha = torch.tensor(0.2)
    state = rng.get_state()
    target = model._critic_target(policy, batch, alpha)
    rng.set_state(state)  # the same draws again, by hand
    next_actions, next_log_prob = policy.actor(batch.next_observations, rng)
    members = policy.critic.target_members(rng)
    assert members is not None
    every = policy.critic_target(batch.next_observations, next_actions)
    expected = every[members].min(dim=0).values - alpha * next_log_prob
    torch.testing.assert_close(target, batch.rewards + 0.99 * (1 - batch.terminated) * expected)
    q_all = torch.randn(10, 6)
    torch.testing.assert_close(model._actor_q(q_all), q_all.mean(dim=0))


def test_td3_uses_the_subset_target_too() -> None:
    model = TD3("Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[16], n_critics=5, critic_subset=1)})
    calls: list[Any] = []
    target_critic = model.policy.critic_target
    original = target_critic.forward
    target_critic.forward = lambda *a, **k: calls.append(k.get("members")) or original(*a, **k)  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(0)
    batch = ReplayBatch(
        torch.randn(4, 3, generator=g), torch.rand(4, 1, generator=g), torch.randn(4, generator=g),
        torch.randn(4, 3, generator=g), torch.zeros(4), torch.full((4,), 0.99),
    )  # fmt: skip
    assert model._critic_target(model.policy, batch).shape == (4,)
    assert calls and calls[0] is not None and len(calls[0]) == 1


def test_a_reset_redraws_every_network_and_clears_the_optimizers_but_keeps_the_temperature() -> None:
    model = SAC("Pendulum-v1", **FAST, seed=0).learn(120)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    log_alpha = model.log_ent_coef.detach().clone()
    assert model.critic_optimizer.state
    resets.reset_networks(model)
    after = model.policy.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
    for key in after:
        if key.startswith("critic_target."):  # targets start equal to the fresh critics
            assert torch.equal(after[key], after["critic." + key[len("critic_target.") :]])
    assert not model.critic_optimizer.state and not model.actor_optimizer.state
    assert model.ent_coef_optimizer is not None and model.ent_coef_optimizer.state
    assert torch.equal(model.log_ent_coef.detach(), log_alpha)


def test_resets_happen_every_interval_and_resume_exactly(tmp_path: Path) -> None:
    from tests.test_resume import assert_same_learner, checkpoint_and_resume

    model = SAC(
        "Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[32, 32], reset_interval=40)}, seed=0
    )
    model.learn(131)  # updates 1..81 (from step 51 on): resets after updates 40 and 80
    assert model._n_updates == 81
    state = model.actor_optimizer.state
    assert [int(s["step"]) for s in state.values()] == [1] * len(state)  # one update since the last reset
    a, b = checkpoint_and_resume(
        SAC, tmp_path, 400, 150, policy_kwargs=dict(net_arch=[32, 32], reset_interval=64)
    )
    assert_same_learner(a, b)


@pytest.mark.parametrize(
    ("policy_kwargs", "message"),
    [
        (dict(layer_norm="yes"), "layer_norm='yes' must be True or False"),
        (dict(dropout_rate=1.0), "dropout_rate=1.0 must be in"),
        (dict(net_type="resnet"), "net_type='resnet' is not known"),
        (dict(net_type="simba", layer_norm=True), "net_type='simba' has its own LayerNorms"),
        (dict(net_type="simba", net_arch=[64, 32]), "net_arch of equal widths"),
        (dict(critic_subset=3), "critic_subset=3 must be an int from 1 to n_critics=2"),
        (dict(reset_interval=0), "reset_interval=0 must be a positive number"),
        (dict(batch_norm=True), "policy_kwargs"),  # CrossQ's, not SAC's
    ],
)
def test_bad_options_name_the_problem_and_the_fix(policy_kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SAC("Pendulum-v1", policy_kwargs=policy_kwargs).learn(1)


# ---------------------------------------------------------------------------------------------- learning
@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["crossq", "layer_norm", "td3_layer_norm", "droq", "redq", "simba", "resets"]
)
def test_every_class_and_option_learns_pendulum(case: str) -> None:
    """benchmarks/pendulum_options.py's cases (TQC's is in tests/test_tqc.py), two seeds, at most 8,000 steps."""
    returns = pendulum_returns(case)
    assert min(returns) >= -250, returns


def test_tqc_takes_the_architecture_options() -> None:
    from easyrl import TQC

    kwargs = dict(net_arch=[16, 16], n_quantiles=5, layer_norm=True, dropout_rate=0.1)
    model = TQC("Pendulum-v1", **{**FAST, "policy_kwargs": kwargs}, seed=0)
    before = model.policy.critic.norms[0].weight.detach().clone()
    model.learn(80)
    assert model.policy.critic(torch.zeros(2, 3), torch.zeros(2, 1)).shape == (2, 2, 5)
    assert not torch.equal(model.policy.critic.norms[0].weight, before)  # the LayerNorm gains train
