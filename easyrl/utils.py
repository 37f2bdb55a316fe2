"""SB3's ``stable_baselines3.common.utils`` helpers that scripts call directly."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_random_seed(seed: int, using_cuda: bool = False) -> None:
    """Seed Python's ``random``, numpy's global generator and torch's (CPU and every GPU), as SB3 does.

    easyrl's models never read these global generators: a model's ``seed`` drives everything it draws,
    so this only matters for the script's own randomness (and a loaded policy's stochastic ``predict``,
    which, as in SB3, draws from torch's). ``using_cuda`` also makes cuDNN pick deterministic kernels.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (SB3's contract: it is the legacy global generator that is seeded)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    if using_cuda:
        # Deterministic cuDNN kernels, at some cost in speed (as SB3).
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
