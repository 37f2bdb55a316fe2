"""How updates and actions are computed: the ``precision`` setting, and the compiled networks of ``compile_update``.

``precision``:
- ``"fp32"`` (the default): everything in float32.
- ``"bf16"``: the networks' matrix products (and convolutions) run in bfloat16 under ``torch.autocast``,
  forward and backward; the parameters, gradients, optimizer state, targets, losses, Polyak averaging
  and the replay buffer stay float32 (the "fp32 master weights" recipe). The networks hand float32
  values to the losses (``easyrl.networks``), and each update is its own autocast region, so a weight is
  cast to bf16 once per update and never read stale after its optimizer step. On CPUs with bf16 matrix
  units (Intel AMX, AMD Zen 4's AVX-512 BF16) the wide products run several times faster; elsewhere
  bf16 works but is slow, and a warning says so once.
- ``"tf32"`` (CUDA only): float32 values, with the GPU's TF32 tensor cores for matrix products and
  convolutions.

Acting (the rollouts and ``predict``) uses the model's precision; ``predict(..., precision="fp32")``
asks for float32.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "tf32")
"""The values of ``precision``."""

_warned_slow_bf16 = False


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (oneDNN's check: AVX-512 BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check(precision: str, device: torch.device) -> None:
    """Raise for a precision the device cannot run; warn once where bf16 would be emulated (slow)."""
    global _warned_slow_bf16
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not known: use one of {', '.join(PRECISIONS)}.")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(
            f"precision='tf32' is a CUDA mode (TF32 tensor cores), but this model is on {device.type}: "
            "use precision='bf16' for a CPU's bf16 matrix units, or 'fp32'."
        )
    if precision == "bf16" and device.type == "cpu" and not _warned_slow_bf16 and not cpu_has_bf16():
        _warned_slow_bf16 = True
        warnings.warn(
            "precision='bf16' on a CPU without bf16 matrix instructions (AVX-512 BF16 or AMX): it works, "
            "emulated, but slower than fp32. Use precision='fp32' on this machine.",
            RuntimeWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def computing(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed networks in ``precision``: one update, or one batch of actions."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    else:
        yield


def compile_networks(policy: nn.Module, device: torch.device) -> None:
    """``compile_update``: compile every network of the policy in place.

    Each network is compiled on its own (``nn.Module.compile``), so parameter names, the optimizers and
    the Python control flow of the updates (delays, intervals) are unchanged; on a GPU,
    ``mode="reduce-overhead"`` replays the compiled kernels as CUDA graphs.
    """
    mode = "reduce-overhead" if device.type == "cuda" else None
    for network in policy.children():
        network.compile(mode=mode)
