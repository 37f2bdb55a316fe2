"""The speed-ups compute what the plain PyTorch formulation computes.

Every estimator trains with a batched critic ensemble (matrix products over all critics at
once, the output layer as a multiply-and-sum) and fused Adam, stepped by calling its kernel with
the gradients autograd returns. Here each is checked against its plain counterpart: separate
``nn.functional.linear`` critics, ``Adam.step`` itself, and, for one full update step of each
estimator on fixed inputs, both together against the per-tensor Adam loop. SAC's acting path, which skips
the log-probability, is checked against the full sampling path.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from easyrl.critics import CriticEnsemble
from easyrl.networks import SquashedGaussianActor
from easyrl.updates import gradient_step
from tests.conftest import FAST


def plain_critics(
    ensemble: CriticEnsemble, obs: torch.Tensor, actions: torch.Tensor, detach_params: bool = False,
    members: int | None = None, generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """The ensemble's Q-values computed one critic at a time with ``nn.functional.linear``."""
    x = torch.cat([obs, actions], dim=-1)
    values = []
    for i in range(members or ensemble.n_critics):
        h = x
        for j, layer in enumerate(ensemble.layers):
            weight, bias = layer.weight[i].T, layer.bias[i, 0]  # type: ignore[index]
            if detach_params:
                weight, bias = weight.detach(), bias.detach()
            h = nn.functional.linear(h, weight, bias)
            if j < len(ensemble.layers) - 1:
                h = ensemble.activation(h)
        values.append(h.squeeze(-1))
    return torch.stack(values)


@pytest.mark.parametrize("n_critics", [1, 2, 3])
@pytest.mark.parametrize("hidden", [[], [8], [16, 8]])
def test_ensemble_matches_separate_critics(n_critics: int, hidden: list[int]) -> None:
    torch.manual_seed(0)
    ensemble = CriticEnsemble(5, 2, hidden, nn.Tanh, n_critics=n_critics)
    obs, actions = torch.randn(7, 5), torch.randn(7, 2)
    target = torch.randn(n_critics, 7)

    grads = []
    for forward in (ensemble, lambda o, a: plain_critics(ensemble, o, a)):
        ensemble.zero_grad(set_to_none=True)
        q = forward(obs, actions)
        assert q.shape == (n_critics, 7)
        (q - target).pow(2).sum().backward()
        grads.append((q.detach(), [p.grad.clone() for p in ensemble.parameters()]))  # type: ignore[union-attr]
    (q_fast, g_fast), (q_plain, g_plain) = grads
    torch.testing.assert_close(q_fast, q_plain)
    for fast, plain in zip(g_fast, g_plain, strict=True):
        torch.testing.assert_close(fast, plain)


@pytest.mark.parametrize("members", [None, 1])
def test_ensemble_with_fixed_parameters_passes_gradients_to_the_actions_only(members: int | None) -> None:
    torch.manual_seed(0)
    ensemble = CriticEnsemble(5, 2, [16, 8], nn.ReLU, n_critics=2)
    obs = torch.randn(7, 5)
    action_grads = []
    for forward in (ensemble, lambda o, a, **kw: plain_critics(ensemble, o, a, **kw)):
        actions = torch.randn(7, 2, generator=torch.Generator().manual_seed(1), requires_grad=True)
        q = forward(obs, actions, detach_params=True, members=members)
        assert q.shape == (members or 2, 7)
        q.sum().backward()
        assert all(p.grad is None for p in ensemble.parameters())
        action_grads.append(actions.grad)
    torch.testing.assert_close(action_grads[0], action_grads[1])


@pytest.mark.parametrize(
    "settings",
    [
        {},
        dict(amsgrad=True),
        dict(weight_decay=0.1, maximize=True),
        dict(weight_decay=0.1, decoupled_weight_decay=True),
    ],
    ids=["default", "amsgrad", "weight_decay-maximize", "decoupled"],
)
def test_direct_fused_adam_step_matches_adam_step(settings: dict[str, Any]) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2))
    unused = net[3]  # gets no gradient: Adam leaves it and its state alone
    twin = copy.deepcopy(net)
    direct = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True, **settings)
    stepped = torch.optim.Adam(twin.parameters(), lr=1e-2, fused=True, **settings)
    before = copy.deepcopy(unused.state_dict())
    for step in range(3):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(step))
        gradient_step(direct, net[:3](x).pow(2).mean())
        stepped.zero_grad()
        twin[:3](x).pow(2).mean().backward()
        stepped.step()
    assert all(p.grad is None for p in net.parameters())
    torch.testing.assert_close(net.state_dict(), twin.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(unused.state_dict(), before, rtol=0, atol=0)
    # The state is an ordinary Adam's: it saves, and loads into a stock Adam, unchanged.
    torch.testing.assert_close(direct.state_dict(), stepped.state_dict(), rtol=0, atol=0)


def plain_update(model: Any) -> Any:
    """A copy of ``model`` whose critics and optimizers take the plain path."""
    twin = copy.deepcopy(model)
    for critic in (twin.policy.critic, getattr(twin.policy, "critic_target", None)):
        if isinstance(critic, CriticEnsemble):
            critic.forward = lambda *args, _c=critic, **kw: plain_critics(_c, *args, **kw)  # type: ignore[method-assign]
    for name, optimizer in vars(twin).items():
        if isinstance(optimizer, torch.optim.Adam):
            plain = torch.optim.Adam([p for g in optimizer.param_groups for p in g["params"]])
            plain.load_state_dict(optimizer.state_dict())
            for group in plain.param_groups:
                group["fused"], group["foreach"] = None, False
            setattr(twin, name, plain)
    return twin


def test_one_update_matches_the_plain_path(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=3, **FAST)
    model.learn(FAST["learning_starts"] + 20)  # some updates: Adam's moments are not zero
    twin = plain_update(model)
    assert all(g.get("fused") for o in model._optimizers() for g in o.param_groups)
    assert not any(g.get("fused") for o in twin._optimizers() for g in o.param_groups)
    batch = model.replay_buffer.sample(32, torch.Generator().manual_seed(0), gamma=model.gamma)
    before = {key: tensor.clone() for key, tensor in model.policy.state_dict().items()}
    for m in (model, twin):
        m.training_state.torch_rng.manual_seed(1)
        for _ in range(2):  # TD3's delayed actor step is in the second
            m._update(batch)
            m._n_updates += 1
    fast, plain = model.policy.state_dict(), twin.policy.state_dict()
    for key in fast:
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-5, atol=1e-6, msg=key)
    assert all(not torch.equal(fast[key], before[key]) for key in fast if "critic." in key)


@pytest.mark.parametrize("deterministic", [False, True])
def test_acting_skips_the_log_probability_but_not_the_draws(deterministic: bool) -> None:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 2, [16], nn.ReLU)
    obs = torch.randn(9, 5)
    with torch.no_grad():
        full = actor(obs, torch.Generator().manual_seed(4), deterministic)[0]
        fast = actor.act(obs, deterministic, torch.Generator().manual_seed(4))
    torch.testing.assert_close(fast, full)
