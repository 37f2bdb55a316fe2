"""Small update steps shared by the algorithms: gradient steps, the non-finite guard, target networks."""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeGuard

import torch
from torch import nn


def adam(
    params: Iterable[torch.Tensor], lr: float = 0.0, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """The optimizer every algorithm uses (its rate is set from the schedules before training).

    ``fused=True`` updates each tensor in one pass that reads and writes its parameter, gradient
    and moments once, instead of ten or so separate passes (PyTorch's default on CPU): on a 2-core
    CPU it steps SAC's networks in a third of the time. Same algorithm (Kingma & Ba 2015, with
    PyTorch's defaults), results equal up to float rounding.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def gradient_step(
    optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer], loss: torch.Tensor
) -> None:
    """One backward pass of ``loss`` and a step of each optimizer (of disjoint parameters).

    The gradients go from autograd straight to the optimizers, and a fused Adam (see
    :func:`adam`) is stepped by calling its kernel (:func:`fused_adam_step`): no ``.grad`` to
    write and zero, and none of ``Optimizer.step``'s per-call bookkeeping, which took longer than
    the arithmetic for these small networks. Any other optimizer takes its own ``step``.

    Inside :func:`guarded` (the training loop's updates), a step whose loss or gradients are not
    all finite changes nothing: see :class:`NonFiniteGuard`.
    """
    optimizers = (optimizers,) if isinstance(optimizers, torch.optim.Optimizer) else optimizers
    owned = [[p for group in optimizer.param_groups for p in group["params"]] for optimizer in optimizers]
    grads = torch.autograd.grad(loss, [p for params in owned for p in params], allow_unused=True)
    guard = _ACTIVE_GUARD
    found_inf = None if guard is None else guard.check(optimizers[0], loss, grads)
    start = 0
    for optimizer, params in zip(optimizers, owned, strict=True):
        own_grads = grads[start : start + len(params)]
        start += len(params)
        if _steps_directly(optimizer):
            fused_adam_step(optimizer, params, own_grads, found_inf)
            continue
        if found_inf is not None and bool(found_inf):  # another optimizer: one host read to skip it
            continue
        for param, grad in zip(params, own_grads, strict=True):
            param.grad = grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _steps_directly(optimizer: torch.optim.Optimizer) -> TypeGuard[torch.optim.Adam]:
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return bool(group["fused"]) and not group["differentiable"]


def fused_adam_step(
    optimizer: torch.optim.Adam,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
    found_inf: torch.Tensor | None = None,
) -> None:
    """What ``optimizer.step()`` does for a one-group ``Adam(fused=True)``, given the gradients.

    The same state (``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``;
    created as Adam creates them), the same kernel and the group's own hyperparameters, so
    saving, loading and ``state_dict`` see an ordinary Adam. Parameters without a gradient are
    skipped, as Adam skips them. ``found_inf`` (a one-element float tensor on the device, as
    ``GradScaler`` passes) set to 1 makes the kernel leave parameters and moments untouched, and the
    step counts are put back: a skipped step, decided on the device without a host read.
    """
    group = optimizer.param_groups[0]
    stepped, used_grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs = [], [], [], [], [], []
    for param, grad in zip(params, grads, strict=True):
        if grad is None:
            continue
        state = optimizer.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        stepped.append(param)
        used_grads.append(grad)
        steps.append(state["step"])
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
        if group["amsgrad"]:
            max_exp_avg_sqs.append(state["max_exp_avg_sq"])
    if not stepped:
        return
    torch._foreach_add_(steps, 1)
    kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
    beta1, beta2 = group["betas"]
    kernel(
        stepped, used_grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
        amsgrad=group["amsgrad"], lr=group["lr"], beta1=beta1, beta2=beta2,
        weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
        grad_scale=None, found_inf=found_inf,
    )  # fmt: skip
    if found_inf is not None:
        torch._foreach_sub_(steps, [found_inf.reshape(())] * len(steps))


class NonFiniteGuard:
    """Keeps non-finite losses and gradients out of the weights, without a host read per update.

    Each gradient step inside :func:`guarded` sets a device flag when its loss or any of its
    gradients is NaN or ±inf (one fused pass, as ``GradScaler`` does); the fused Adam kernel then
    skips the step. The flags wait on the device until :meth:`read`, once per training phase, turns
    them into counts: updates with a skipped step, and how many in a row.
    """

    def __init__(self, loss_names: dict[torch.optim.Optimizer, str], limit: int) -> None:
        self.loss_names, self.limit = loss_names, limit
        self._flags: list[torch.Tensor] = []
        self._steps: list[str] = []  # the loss of each flag
        self._update_ends: list[int] = []  # len(_flags) at the end of each update
        self.in_a_row = 0
        """Updates with a skipped step, in a row, up to the last :meth:`read`."""
        self.losses: set[str] = set()
        """The non-finite losses of the current run of skipped updates."""
        self.tripped: tuple[int, int, frozenset[str]] | None = None
        """Where the run reached ``limit`` in the last read: (1-based position, length, losses)."""

    def check(
        self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grads: Sequence[torch.Tensor | None]
    ) -> torch.Tensor:
        """A one-element float tensor: 1.0 if ``loss`` or a gradient is not finite, else 0.0."""
        found = torch.zeros(1, dtype=torch.float32, device=loss.device)
        tensors = [g for g in grads if g is not None and g.dtype == torch.float32]
        tensors.append(loss.detach().float().reshape(1).clone())
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, torch.ones_like(found))
        self._flags.append(found)
        self._steps.append(self.loss_names.get(optimizer, "loss"))
        return found

    def end_update(self) -> None:
        self._update_ends.append(len(self._flags))

    def read(self) -> list[bool]:
        """Whether each update since the last read was skipped (one host read); updates the counts."""
        if not self._update_ends:
            return []
        flags = torch.cat(self._flags).tolist() if self._flags else []
        skipped, start = [], 0
        self.tripped = None
        for end in self._update_ends:
            bad = {self._steps[i] for i in range(start, end) if flags[i]}
            start = end
            skipped.append(bool(bad))
            if bad:
                self.in_a_row += 1
                self.losses |= bad
                if self.in_a_row >= self.limit and self.tripped is None:
                    self.tripped = (len(skipped), self.in_a_row, frozenset(self.losses))
            else:
                self.in_a_row, self.losses = 0, set()
        self._flags.clear()
        self._steps.clear()
        self._update_ends.clear()
        return skipped


_ACTIVE_GUARD: NonFiniteGuard | None = None


@contextlib.contextmanager
def guarded(guard: NonFiniteGuard | None) -> Iterator[None]:
    """Let ``guard`` watch every :func:`gradient_step` taken inside (None: no guard)."""
    global _ACTIVE_GUARD
    previous, _ACTIVE_GUARD = _ACTIVE_GUARD, guard
    try:
        yield
    finally:
        _ACTIVE_GUARD = previous


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for a target network; no gradients are ever computed for it."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


_PARAMETER_LISTS: weakref.WeakKeyDictionary[
    nn.Module, tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]]
] = weakref.WeakKeyDictionary()


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging θ̄ ← (1 − τ) θ̄ + τ θ, as one fused call over all parameters.

    The two parameter lists are built once per (target, source) pair: walking the modules costs
    more than the averaging itself for small networks. Parameters are only ever changed in place
    (training, ``load_state_dict``, ``.to``), so the lists stay valid.
    """
    cached = _PARAMETER_LISTS.get(target)
    if cached is None or cached[0] is not source:
        cached = (source, list(target.parameters()), list(source.parameters()))
        _PARAMETER_LISTS[target] = cached
    torch._foreach_lerp_(cached[1], cached[2], tau)
