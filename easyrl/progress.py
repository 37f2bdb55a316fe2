"""Training progress as plain lines, for output that is not a terminal (a log file, CI, a pipe).

A progress bar redrawn in place turns into thousands of lines in a log; :class:`ProgressLines` prints one
line every tenth of the run (or every minute, whichever comes first) and one at the end.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from easyrl.callbacks import BaseCallback

if TYPE_CHECKING:
    from easyrl.callbacks import EvalCallback


class ProgressLines(BaseCallback):
    """Prints ``step 2,000/20,000 (10%)  415 steps/s  eta 0:00:43  mean return -1203.4  eval -1150.2``.

    Args:
        evaluation: the run's EvalCallback, whose latest mean return is shown (None: not shown).
        every_fraction: print after each such fraction of the run's steps.
        every_seconds: and at least this often.
        file: where to print (default: standard output).
    """

    def __init__(
        self,
        evaluation: EvalCallback | None = None,
        every_fraction: float = 0.1,
        every_seconds: float = 60.0,
        file: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.evaluation = evaluation
        self.every_fraction = every_fraction
        self.every_seconds = every_seconds
        self.file = file
        self._start_time = self._last_time = 0.0
        self._start_steps = self._last_steps = self._total = 0

    def _on_training_start(self) -> None:
        model = self._model
        self._start_time = self._last_time = time.perf_counter()
        self._start_steps = self._last_steps = model.num_timesteps
        self._total = model._total_timesteps

    def _on_step(self) -> bool:
        now, steps = time.perf_counter(), self._model.num_timesteps
        span = max(self._total - self._start_steps, 1)
        if (
            steps - self._last_steps >= self.every_fraction * span
            or now - self._last_time >= self.every_seconds
        ):
            self._print(now, steps)
        return True

    def _on_training_end(self) -> None:
        if self._model.num_timesteps != self._last_steps:
            self._print(time.perf_counter(), self._model.num_timesteps)

    def _print(self, now: float, steps: int) -> None:
        self._last_time, self._last_steps = now, steps
        rate = (steps - self._start_steps) / max(now - self._start_time, 1e-9)
        remaining = max(self._total - steps, 0) / rate if rate > 0 else 0.0
        parts = [
            f"step {steps:,}/{self._total:,} ({100 * steps / max(self._total, 1):.0f}%)",
            f"{rate:,.0f} steps/s",
            f"eta {timedelta(seconds=round(remaining))}",
        ]
        mean_return = self._model.mean_episode_return
        if mean_return is not None:
            parts.append(f"mean return {mean_return:.1f}")
        if self.evaluation is not None and self.evaluation.evaluations_results:
            parts.append(f"eval {self.evaluation.last_mean_reward:.1f}")
        print("  ".join(parts), file=self.file or sys.stdout, flush=True)
