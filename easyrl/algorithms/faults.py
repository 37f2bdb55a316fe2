"""What ``learn()`` does when something goes wrong: signals, non-finite env values, non-finite updates.

- :class:`DeferredInterrupts`: SIGINT and SIGTERM become a ``KeyboardInterrupt`` at the loop's
  next safe point (between env steps, between updates), so an interrupted model is consistent:
  its counters match the transitions stored, and no update stopped half-way. A second signal
  interrupts at once.
- :func:`check_step`: an env that returns NaN or ±inf gets an error naming the env, the step and
  the field (``check_finite=False`` turns it off).
- :func:`nonfinite_updates_error`: the error that stops training after too many skipped updates in
  a row (the skipping itself is :class:`easyrl.updates.NonFiniteGuard`).

docs/faults.md lists each guarantee and the test that proves it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from easyrl import validation as v

if TYPE_CHECKING:
    from easyrl.envs import StepResult


@dataclass(kw_only=True, repr=False, eq=False)
class FaultSettings:
    """The estimators' settings for faults (documented with the common parameters):

    check_finite: raise an error when an env returns NaN or ±inf in an observation or a reward
        (costs well under 1% of a step: benchmarks/check_finite_cost.py). False stores such values.
    max_nonfinite_updates: stop training after this many updates in a row whose loss or gradients
        were not finite. Each such update is skipped (the weights and optimizer states are left as
        they were) and counted in ``train/skipped_updates``.
    """

    check_finite: bool = True
    max_nonfinite_updates: int = 10


FAULT_CONSTRAINTS: dict[str, v.Constraint] = {
    "check_finite": v.Options((False, True)),
    "max_nonfinite_updates": v.positive_int(),
}


class NonFiniteError(ValueError):
    """An env returned NaN or ±inf, or training produced only non-finite updates for too long."""


class DeferredInterrupts:
    """Within ``with``: SIGINT and SIGTERM set a flag that :meth:`check` turns into KeyboardInterrupt.

    Installed only in the main thread, and only over Python's default handlers: a handler the
    program set itself is left alone. A second signal before the first was acted on raises at once.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            for signum, default in (
                (signal.SIGINT, signal.default_int_handler),
                (signal.SIGTERM, signal.SIG_DFL),
            ):
                if signal.getsignal(signum) == default:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is not None:
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received again: stopping at once")
        self.pending = signum

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal arrived (a safe point of the loop)."""
        if self.pending is not None:
            raise KeyboardInterrupt(f"{signal.Signals(self.pending).name} received during learn()")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def check_step(result: StepResult, num_timesteps: int) -> None:
    """Raise NonFiniteError if a step's observations or rewards hold NaN or ±inf."""
    fields: list[tuple[str, Any]] = [("reward", result.rewards)]
    for name, obs in (("observation", result.next_obs), ("observation after reset", result.obs)):
        if isinstance(obs, dict):
            fields.extend((f"{name}[{key!r}]", array) for key, array in obs.items())
        else:
            fields.append((name, obs))
    for field, array in fields:
        array = np.asarray(array)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            _raise_nonfinite(field, array, result, num_timesteps)


def _raise_nonfinite(field: str, array: np.ndarray, result: StepResult, num_timesteps: int) -> None:
    bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    env = int(np.flatnonzero(bad)[0])
    values = array[env].ravel()
    value = values[~np.isfinite(values)][0]
    if field == "observation" and bool(result.dones[env]):
        field = "final observation"
    raise NonFiniteError(
        f"env {env} returned a non-finite {field} ({value}) at step {num_timesteps + 1} of training "
        f"(env steps over all envs, counting from 1). Find the cause with easyrl.env_checker.check_env(env) "
        f"(often a division by zero, a log of 0 or an unbounded physics state), or clean the env's output "
        f"with a wrapper; to store such values anyway, pass check_finite=False."
    )


def nonfinite_updates_error(
    in_a_row: int, last_update: int, losses: Iterable[str], limit: int
) -> NonFiniteError:
    """The error that stops training after ``limit`` skipped updates in a row."""
    names = " and ".join(sorted(losses)) or "the loss"
    return NonFiniteError(
        f"{names} was NaN or infinite (or had such gradients) in {in_a_row} updates in a row, the last at "
        f"update {last_update}: training stopped (max_nonfinite_updates={limit}). Each of those updates was "
        f"skipped, so the model keeps its last good parameters. Usual causes: a learning rate too high for the "
        f"reward scale (lower learning_rate), rewards of very large magnitude (scale them, or normalize=True), "
        f"or non-finite values in the replay buffer (keep check_finite=True)."
    )
