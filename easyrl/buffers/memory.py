"""Whether a buffer fits in the memory free now: measured before any of it is used.

A buffer that fills past the machine's memory ends the run when it does, hours in, and loses it; SB3 only
warns. easyrl's buffers allocate their storage uninitialised (pages never written cost nothing), measure it,
and refuse it here, with the size it needs, before storing anything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch


def available_memory(device: torch.device) -> int | None:
    """Bytes of memory free for new allocations on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(needed: int, capacity: int, device: torch.device) -> None:
    """Refuse a buffer that cannot fit in the memory free now, before it is allocated: a buffer that fills
    past the machine's memory would end the run, losing it, hours in (SB3 only warns)."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise ValueError(
            f"buffer_size={capacity} needs {needed / 2**30:.1f} GiB of {device.type} memory when full, more "
            f"than the {free / 2**30:.1f} GiB free: lower buffer_size."
        )


@contextlib.contextmanager
def measured_allocation(capacity: int, device: torch.device, measure: Callable[[], int]) -> Iterator[None]:
    """Around the uninitialised allocation of a buffer of ``capacity`` transitions: more than the machine can
    address at all, or then more bytes (``measure()``) than the memory free now, is a ValueError naming
    ``buffer_size``."""
    try:
        yield
    except (RuntimeError, MemoryError):
        raise ValueError(
            f"buffer_size={capacity} is more than this machine can allocate: lower buffer_size."
        ) from None
    check_fits_in_memory(measure(), capacity, device)
