"""Ready-made callbacks for the training run itself: a progress bar, checkpoints, a schedule, a stop.

Also :func:`make_callback`, which turns what ``learn(callback=...)`` accepts into one callback.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from easyrl.callbacks.base import BaseCallback, CallbackList, ConvertCallback, EventCallback, _positive_int
from easyrl.envs.vec_normalize import save_statistics


class ProgressBarCallback(BaseCallback):
    """A tqdm/rich progress bar: steps, steps per second and the latest mean episode return."""

    def __init__(self) -> None:
        super().__init__()
        self.pbar: Any = None

    def _on_training_start(self) -> None:
        from rich import get_console
        from rich.progress import BarColumn, TimeElapsedColumn, TimeRemainingColumn
        from tqdm import TqdmExperimentalWarning
        from tqdm.rich import FractionColumn, RateColumn, tqdm

        model = self._model
        total = model._total_timesteps - model.num_timesteps
        # Fewer pieces on a narrow terminal, so none is cut or wrapped (issue 16: at 80 columns the full
        # set cut the step count to "5,000/5,0…" and wrapped the rate); the bar takes what is left.
        percent, fraction = "[progress.percentage]{task.percentage:>4.0f}%", FractionColumn()
        rate, description = RateColumn(unit="steps"), "[progress.description]{task.description}"
        layouts = (
            (percent, fraction, "[", TimeElapsedColumn(), "<", TimeRemainingColumn(), ",", rate, "]", description),
            (percent, fraction, TimeRemainingColumn(), rate, description),
            (percent, fraction, rate),
        )  # fmt: skip
        # The widest text of each piece: the step count "n/total", "99,999 steps/s", "mean return -12345.6",
        # 7 per time and 1 per bracket; plus a space between columns and 10 for the bar.
        widths = {id(percent): 5, id(fraction): 2 * len(f"{total:,}") + 1, id(rate): 14, id(description): 20}
        layout = next(
            (
                columns
                for columns in layouts
                if sum(widths.get(id(c), 1 if isinstance(c, str) else 7) + 1 for c in columns) + 10
                <= get_console().width
            ),
            (percent, fraction),
        )
        columns = (layout[0], BarColumn(bar_width=None), *layout[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TqdmExperimentalWarning)  # tqdm calls its rich bar "experimental"
            self.pbar = tqdm(total=total, progress=columns)

    def _on_step(self) -> bool:
        assert self.pbar is not None
        self.pbar.update(self._model.num_envs)
        if self.n_calls % 50 == 0:
            self._show_mean_return()
        return True

    def _show_mean_return(self) -> None:
        mean_return = self._model.mean_episode_return
        if mean_return is not None:
            self.pbar.set_description_str(f"mean return {mean_return:.1f}", refresh=False)

    def _on_training_end(self) -> None:
        if self.pbar is not None:
            self._show_mean_return()
            self.pbar.close()
            self.pbar = None


class EveryNTimesteps(EventCallback):
    """Runs ``callback`` (its ``on_step``) once every ``n_steps`` env steps, counted over all envs."""

    def __init__(self, n_steps: int, callback: BaseCallback) -> None:
        super().__init__(callback)
        self.n_steps = _positive_int("n_steps", n_steps)
        self.last_time_trigger = 0

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.last_time_trigger = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_time_trigger >= self.n_steps:
            self.last_time_trigger = self.num_timesteps
            return self._on_event()
        return True


class LogEveryNTimesteps(EveryNTimesteps):
    """Writes the model's logs (``model.dump_logs()``: the rollout and time statistics and what was recorded
    since the last dump) every ``n_steps`` env steps, counted over all envs: logging by steps rather than by
    episodes (``learn(log_interval=...)``), as SB3's does."""

    def __init__(self, n_steps: int) -> None:
        super().__init__(n_steps, callback=ConvertCallback(self._log_data))

    def _log_data(self, _locals: Mapping[str, Any], _globals: dict[str, Any]) -> bool:
        self._model.dump_logs()
        return True


class StopTrainingOnMaxEpisodes(BaseCallback):
    """Stops training after ``max_episodes`` episodes per env (``max_episodes * n_envs`` in all, as SB3)."""

    def __init__(self, max_episodes: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.max_episodes = _positive_int("max_episodes", max_episodes)
        self.n_episodes = 0

    def _init_callback(self) -> None:
        self.n_episodes = 0
        self._total_max_episodes = self.max_episodes * self._model.num_envs

    def _on_step(self) -> bool:
        if self.step is not None:
            self.n_episodes += int(np.count_nonzero(self.step.dones))
        continue_training = self.n_episodes < self._total_max_episodes
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: {self.n_episodes} episodes reached max_episodes={self.max_episodes}")
        return continue_training


class CheckpointCallback(BaseCallback):
    """Saves the model every ``save_freq`` calls as ``<save_path>/<name_prefix>_<steps>_steps.zip``.

    ``save_freq`` counts vector-env steps (``save_freq * n_envs`` env steps), as in SB3. With
    ``save_replay_buffer=True`` the buffer goes to ``<name_prefix>_replay_buffer_<steps>_steps.zip``. The
    statistics of a normalising model are inside each model file; ``save_vecnormalize=True`` also writes
    them alone, to ``<name_prefix>_vecnormalize_<steps>_steps.zip`` (for ``VecNormalize.load``; SB3 writes a
    ``.pkl`` pickle there, easyrl a zip of arrays). When ``learn()`` is interrupted (Ctrl-C, SIGTERM), a last
    checkpoint of the step it stopped at is written before the KeyboardInterrupt propagates.
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str | os.PathLike[str],
        name_prefix: str = "rl_model",
        save_replay_buffer: bool = False,
        save_vecnormalize: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.save_freq = _positive_int("save_freq", save_freq)
        self.save_path = save_path
        self.name_prefix = name_prefix
        self.save_replay_buffer = save_replay_buffer
        self.save_vecnormalize = save_vecnormalize

    def _init_callback(self) -> None:
        os.makedirs(self.save_path, exist_ok=True)

    def _checkpoint_path(self, kind: str = "") -> str:
        return os.path.join(self.save_path, f"{self.name_prefix}_{kind}{self.num_timesteps}_steps.zip")

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            self._save()
        return True

    def _on_training_end(self) -> None:
        # learn() stopped by Ctrl-C or SIGTERM: a last checkpoint, of the consistent state it stopped in.
        if getattr(self._model, "interrupted", False) and not os.path.exists(self._checkpoint_path()):
            self._save()

    def _save(self) -> None:
        model = self._model
        model.save(self._checkpoint_path())
        if self.verbose >= 2:
            print(f"Saving model checkpoint to {self._checkpoint_path()}")
        if self.save_replay_buffer:
            model.save_replay_buffer(self._checkpoint_path("replay_buffer_"))
            if self.verbose >= 2:
                print(f"Saving replay buffer checkpoint to {self._checkpoint_path('replay_buffer_')}")
        normalizer = getattr(model, "_normalizer", None)
        if self.save_vecnormalize and normalizer is not None:
            save_statistics(normalizer, self._checkpoint_path("vecnormalize_"))
            if self.verbose >= 2:
                print(f"Saving VecNormalize checkpoint to {self._checkpoint_path('vecnormalize_')}")


CallbackLike: TypeAlias = BaseCallback | Sequence[BaseCallback] | Callable[..., Any] | None


def make_callback(callback: CallbackLike, progress_bar: bool = False) -> BaseCallback:
    """Turn what ``learn(callback=...)`` accepts into one callback (adding the progress bar)."""
    callbacks: list[BaseCallback]
    if callback is None:
        callbacks = []
    elif isinstance(callback, BaseCallback):
        callbacks = [callback]
    elif isinstance(callback, Sequence) and not isinstance(callback, str):
        callbacks = [c if isinstance(c, BaseCallback) else make_callback(c) for c in callback]
    elif callable(callback):
        callbacks = [ConvertCallback(callback)]
    else:
        raise TypeError(
            f"callback must be a BaseCallback, a list of callbacks or a function (locals, globals) -> bool; "
            f"got {type(callback).__name__}."
        )
    if progress_bar:
        callbacks.append(ProgressBarCallback())
    return callbacks[0] if len(callbacks) == 1 else CallbackList(callbacks)
