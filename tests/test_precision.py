"""``precision``: bf16 matrix products with float32 weights, losses and optimizer state; TF32 on CUDA only;
saved with the model; used for acting unless ``predict`` asks for fp32. One update in bf16 lands close to
the same update in fp32, and every estimator learns Pendulum-v1 in bf16 (slow tests)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from easyrl import DDPG, SAC, TD3, TQC, CrossQ, load
from easyrl.algorithms import arithmetic
from easyrl.buffers import ReplayBatch
from tests.conftest import FAST
from tests.pendulum_cases import pendulum_returns

ALL = [SAC, TD3, DDPG, TQC, CrossQ]


class MatmulDtypes(TorchDispatchMode):
    """The input dtypes of every matrix product run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket.__name__ in {"mm", "addmm", "bmm", "baddbmm", "linear"}:
            self.dtypes |= {a.dtype for a in args if isinstance(a, torch.Tensor) and a.dim() >= 2}
        return func(*args, **(kwargs or {}))


def small(estimator: type[Any], **extra: Any) -> Any:
    arch = dict(pi=[32, 32], qf=[64, 64]) if estimator is CrossQ else [32, 32]
    return estimator("Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=arch)}, seed=0, **extra)


def fixed_batch(size: int = 64) -> ReplayBatch:
    g = torch.Generator().manual_seed(0)
    return ReplayBatch(
        torch.randn(size, 3, generator=g), torch.rand(size, 1, generator=g) * 2 - 1, torch.randn(size, generator=g),
        torch.randn(size, 3, generator=g), (torch.rand(size, generator=g) < 0.1).float(), torch.full((size,), 0.99),
    )  # fmt: skip


@pytest.mark.parametrize("estimator", ALL, ids=lambda c: c.__name__)
def test_bf16_runs_the_products_in_bf16_and_keeps_everything_else_float32(estimator: type[Any]) -> None:
    model = small(estimator, precision="bf16")
    model.learn(60)
    recorded = MatmulDtypes()
    with recorded, arithmetic.computing("bf16", model.device):
        stats = model._update(fixed_batch())
    assert torch.bfloat16 in recorded.dtypes
    assert all(stats[name].dtype == torch.float32 for name in stats if name.endswith("loss"))
    assert all(p.dtype == torch.float32 for p in model.policy.parameters())
    for optimizer in model._optimizers():
        for state in optimizer.state.values():
            assert all(t.dtype == torch.float32 for t in state.values() if t.dim() > 0)
    obs, actions = torch.randn(5, 3), torch.rand(5, 1)
    with arithmetic.computing("bf16", model.device):
        assert model.policy.critic(obs, actions).dtype == torch.float32


@pytest.mark.parametrize("estimator", ALL, ids=lambda c: c.__name__)
def test_one_bf16_update_lands_close_to_the_fp32_update(estimator: type[Any]) -> None:
    """Same weights, same batch, same draws: one update in each precision. Adam's first step moves each
    weight by about the learning rate, lr·g/|g|, so the bf16 rounding of a gradient can at worst flip the
    direction of a weight whose gradient is near zero (a difference of 2·lr); almost all weights move alike."""
    fp32, bf16, before = (small(estimator).learn(60) for _ in range(3))  # three identical models (CPU)
    lr = 1e-3
    for model, precision in ((fp32, "fp32"), (bf16, "bf16")):
        for optimizer in model._optimizers():
            optimizer.param_groups[0]["lr"] = lr
        with arithmetic.computing(precision, model.device):
            model._update(fixed_batch())
    moved = total = flipped = 0
    for (name, a), b, start in zip(
        fp32.policy.named_parameters(), bf16.policy.parameters(), before.policy.parameters(), strict=True
    ):
        difference = (a.detach() - b.detach()).abs()
        assert difference.max().item() <= 2 * lr + 1e-6, name
        moved += int(((a.detach() - start.detach()).abs() > 0).sum())
        flipped += int((difference > lr).sum())
        total += a.numel()
    assert moved > 1_000 and flipped <= 0.02 * moved, (flipped, moved, total)  # (TD3's actor waits a step)


def test_the_precision_is_saved_and_acting_uses_it_unless_predict_asks_for_fp32(tmp_path: Path) -> None:
    model = small(SAC, precision="bf16").learn(80)
    assert model.get_params()["precision"] == "bf16"
    model.save(tmp_path / "m.zip")
    loaded = load(tmp_path / "m.zip", device="cpu")
    assert loaded.precision == "bf16"
    recorded = MatmulDtypes()
    obs = torch.zeros(4, 3).numpy()
    with recorded:
        bf16_actions = loaded.predict(obs, deterministic=True)[0]
    assert torch.bfloat16 in recorded.dtypes
    recorded = MatmulDtypes()
    with recorded:
        fp32_actions = loaded.predict(obs, deterministic=True, precision="fp32")[0]
    assert recorded.dtypes == {torch.float32}
    assert abs(bf16_actions - fp32_actions).max() < 0.05


def test_precisions_the_device_cannot_run_are_refused_or_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="precision='tf32' is a CUDA mode"):
        SAC("Pendulum-v1", precision="tf32", device="cpu").learn(1)
    with pytest.raises(ValueError, match="precision"):
        SAC("Pendulum-v1", precision="fp16").learn(1)
    model = small(SAC)
    with pytest.raises(ValueError, match="precision='half' is not known"):
        model.predict(torch.zeros(3).numpy(), precision="half")
    model.set_params(precision="tf32")  # not a build setting: checked when learning starts
    with pytest.raises(ValueError, match="precision='tf32' is a CUDA mode"):
        model.learn(10)
    monkeypatch.setattr(arithmetic, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(arithmetic, "_warned_slow_bf16", False)
    with pytest.warns(RuntimeWarning, match="without bf16 matrix instructions"):
        small(SAC, precision="bf16").policy  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small(TD3, precision="bf16").policy  # noqa: B018  (once per process)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 is a CUDA mode (GPU-only test)")
def test_tf32_turns_on_tensor_cores_for_the_update_only() -> None:
    model = SAC("Pendulum-v1", **{**FAST, "device": "cuda"}, precision="tf32")
    seen = []
    update = model._update
    model._update = lambda batch: seen.append(torch.backends.cuda.matmul.allow_tf32) or update(batch)  # type: ignore[method-assign]
    model.learn(60)
    assert seen and all(seen) and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sac", "td3", "ddpg", "tqc", "crossq"])
def test_every_estimator_learns_pendulum_in_bf16(case: str) -> None:
    """benchmarks/pendulum_options.py's bf16 cases, two seeds."""
    returns = pendulum_returns(f"{case}_bf16")
    assert min(returns) >= -250, returns
