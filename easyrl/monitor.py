"""SB3's ``Monitor``: a wrapper that records each episode's return, length and time, and writes them
to a ``monitor.csv`` file in Stable-Baselines3's format, with ``load_results`` and ``ts2xy`` to read
them back (``stable_baselines3.common.monitor`` and ``results_plotter``).

The file is SB3's, byte for byte in layout, so SB3's ``load_results`` and plotting scripts read the
files easyrl writes, and the other way round::

    #{"t_start": 1700000000.123, "env_id": "Pendulum-v1"}
    r,l,t
    -1234.5,200,0.412

``load_results`` returns a pandas ``DataFrame``, as SB3's does; pandas is an optional dependency
(``pip install "easyrl[pandas]"``), imported only there.
"""

from __future__ import annotations

import csv
import json
import os
import time
from glob import glob
from typing import TYPE_CHECKING, Any, SupportsFloat, TextIO

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    import pandas

__all__ = [
    "EXT",
    "POSSIBLE_X_AXES",
    "X_EPISODES",
    "X_TIMESTEPS",
    "X_WALLTIME",
    "LoadMonitorResultsError",
    "Monitor",
    "ResultsWriter",
    "get_monitor_files",
    "load_results",
    "ts2xy",
]

EXT = "monitor.csv"
"""The suffix of every monitor file (``<name>.monitor.csv``, or ``monitor.csv`` in a folder)."""
X_TIMESTEPS = "timesteps"
X_EPISODES = "episodes"
X_WALLTIME = "walltime_hrs"
POSSIBLE_X_AXES = [X_TIMESTEPS, X_EPISODES, X_WALLTIME]
"""The x axes :func:`ts2xy` understands (SB3's ``results_plotter`` constants)."""

PANDAS_MISSING = (
    "load_results returns a pandas DataFrame and needs the pandas package; install it with "
    '`pip install "easyrl[pandas]"` (or `pip install pandas`).'
)


class Monitor(gym.Wrapper[Any, Any, Any, Any]):
    """Records every episode's return ``r``, length ``l`` and time ``t`` (seconds since the wrapper was
    made), adds them to the last step's ``info["episode"]`` and, given a ``filename``, writes them to a
    ``monitor.csv`` file, as SB3's ``Monitor`` does.

    Args:
        env: the env to watch.
        filename: where to write the episodes (None: nowhere). A folder gets ``<folder>/monitor.csv``;
            a name not ending in ``monitor.csv`` gets ``.monitor.csv`` appended (``logs/0`` writes
            ``logs/0.monitor.csv``). Missing folders are created.
        allow_early_resets: allow ``reset()`` before the episode ended (False: RuntimeError).
        reset_keywords: keyword arguments of ``reset()`` to record with each episode (each becomes a
            column; every reset must pass them).
        info_keywords: keys of the last step's ``info`` to record with each episode (a column each).
        override_existing: True overwrites an existing file; False appends to it (its header is kept,
            and no new header is written).
    """

    EXT = EXT

    def __init__(
        self,
        env: gym.Env,
        filename: str | None = None,
        allow_early_resets: bool = True,
        reset_keywords: tuple[str, ...] = (),
        info_keywords: tuple[str, ...] = (),
        override_existing: bool = True,
    ) -> None:
        super().__init__(env)
        self.t_start = time.time()
        self.results_writer: ResultsWriter | None = None
        if filename is not None:
            env_id = env.spec.id if env.spec is not None else None
            self.results_writer = ResultsWriter(
                filename,
                header={"t_start": self.t_start, "env_id": str(env_id)},
                extra_keys=tuple(reset_keywords) + tuple(info_keywords),
                override_existing=override_existing,
            )
        self.reset_keywords = tuple(reset_keywords)
        self.info_keywords = tuple(info_keywords)
        self.allow_early_resets = allow_early_resets
        self.rewards: list[float] = []
        self.needs_reset = True
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_times: list[float] = []
        self.total_steps = 0
        self.current_reset_info: dict[str, Any] = {}
        """The ``reset_keywords`` values of the current episode."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Resets the env (``seed`` and ``options`` pass through); the ``reset_keywords`` are required
        and recorded with the episode."""
        if not self.allow_early_resets and not self.needs_reset:
            raise RuntimeError(
                "Tried to reset an environment before done. If you want to allow early resets, "
                "wrap your env with Monitor(env, path, allow_early_resets=True)"
            )
        self.rewards = []
        self.needs_reset = False
        for key in self.reset_keywords:
            value = kwargs.get(key)
            if value is None:
                raise ValueError(f"Expected you to pass keyword argument {key} into reset")
            self.current_reset_info[key] = value
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Steps the env; at an episode's end, records it and sets ``info["episode"]``."""
        if self.needs_reset:
            raise RuntimeError("Tried to step environment that needs reset")
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.rewards.append(float(reward))
        if terminated or truncated:
            self.needs_reset = True
            episode_return = sum(self.rewards)
            length = len(self.rewards)
            elapsed = time.time() - self.t_start
            # Rounded as SB3 rounds them, so both libraries write the same text.
            episode: dict[str, Any] = {"r": round(episode_return, 6), "l": length, "t": round(elapsed, 6)}
            for key in self.info_keywords:
                if key not in info:
                    raise KeyError(
                        f"Monitor(info_keywords={self.info_keywords}) records info[{key!r}] at each episode's "
                        f"end, but the env's last info has only the keys {sorted(info)}."
                    )
                episode[key] = info[key]
            self.episode_returns.append(episode_return)
            self.episode_lengths.append(length)
            self.episode_times.append(elapsed)
            episode.update(self.current_reset_info)
            if self.results_writer is not None:
                self.results_writer.write_row(episode)
            info["episode"] = episode
        self.total_steps += 1
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        """Closes the env and the monitor file."""
        super().close()
        if self.results_writer is not None:
            self.results_writer.close()

    def get_total_steps(self) -> int:
        """Steps taken over every episode."""
        return self.total_steps

    def get_episode_rewards(self) -> list[float]:
        """The return of every finished episode."""
        return self.episode_returns

    def get_episode_lengths(self) -> list[int]:
        """The length (steps) of every finished episode."""
        return self.episode_lengths

    def get_episode_times(self) -> list[float]:
        """Seconds from the wrapper's creation to the end of every finished episode."""
        return self.episode_times


class LoadMonitorResultsError(Exception):
    """No monitor file where :func:`load_results` was pointed."""


class ResultsWriter:
    """Writes a ``monitor.csv`` file: a ``#``-prefixed JSON header line, the CSV header ``r,l,t`` plus the
    extra keys, and one row per episode (flushed at once, so a crash loses nothing)."""

    def __init__(
        self,
        filename: str = "",
        header: dict[str, float | str] | None = None,
        extra_keys: tuple[str, ...] = (),
        override_existing: bool = True,
    ) -> None:
        if not filename.endswith(EXT):
            filename = os.path.join(filename, EXT) if os.path.isdir(filename) else f"{filename}.{EXT}"
        filename = os.path.realpath(filename)
        os.makedirs(os.path.dirname(filename), exist_ok=True)
        # newline="\n": the same bytes on every platform (SB3 issue #692).
        self.file_handler: TextIO = open(  # noqa: SIM115  (closed in close())
            filename, "w" if override_existing else "a", newline="\n", encoding="utf-8"
        )
        self.logger = csv.DictWriter(self.file_handler, fieldnames=("r", "l", "t", *extra_keys))
        if override_existing:
            self.file_handler.write(f"#{json.dumps(header or {})}\n")
            self.logger.writeheader()
        self.file_handler.flush()

    def write_row(self, epinfo: dict[str, Any]) -> None:
        """Writes one episode's row."""
        self.logger.writerow(epinfo)
        self.file_handler.flush()

    def close(self) -> None:
        """Closes the file."""
        self.file_handler.close()


def get_monitor_files(path: str) -> list[str]:
    """The monitor files (``*monitor.csv``) directly in the folder ``path``."""
    return glob(os.path.join(path, "*" + EXT))


def load_results(path: str) -> pandas.DataFrame:
    """Every monitor file in the folder ``path``, as one pandas ``DataFrame`` sorted by time.

    Columns ``r`` (return), ``l`` (length), ``t`` (seconds since the earliest file's start) and any
    extra keys, plus ``index`` (the row's index in its own file), exactly as SB3's ``load_results``.
    Raises :class:`LoadMonitorResultsError` when there is no monitor file, and ImportError naming the
    ``easyrl[pandas]`` extra when pandas is missing.
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError(PANDAS_MISSING) from error
    monitor_files = get_monitor_files(path)
    if not monitor_files:
        raise LoadMonitorResultsError(f"No monitor files of the form *{EXT} found in {path}")
    data_frames, starts = [], []
    for file_name in monitor_files:
        with open(file_name, encoding="utf-8") as file:
            first_line = file.readline()
            if not first_line.startswith("#"):
                raise LoadMonitorResultsError(
                    f"{file_name} is not a monitor file: its first line should be '#' and a JSON header, "
                    f"got {first_line[:60]!r}"
                )
            header = json.loads(first_line[1:])
            data_frame = pandas.read_csv(file, index_col=None)
        data_frame["t"] += header["t_start"]
        starts.append(header["t_start"])
        data_frames.append(data_frame)
    data_frames = [frame for frame in data_frames if not frame.empty]
    if not data_frames:
        return pandas.DataFrame(columns=["r", "l", "t"]).reset_index()
    result = pandas.concat(data_frames).sort_values("t").reset_index()
    result["t"] -= min(starts)
    return result


def ts2xy(data_frame: Any, x_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """The x and y of a learning curve from :func:`load_results`' frame: y is the episode returns, x
    the cumulated steps (``"timesteps"``), the episode number (``"episodes"``) or the wall time in hours
    (``"walltime_hrs"``)."""
    returns = np.asarray(data_frame["r"])
    if x_axis == X_TIMESTEPS:
        return np.cumsum(np.asarray(data_frame["l"])), returns
    if x_axis == X_EPISODES:
        return np.arange(len(data_frame)), returns
    if x_axis == X_WALLTIME:
        return np.asarray(data_frame["t"]) / 3600.0, returns
    raise NotImplementedError(f"Unsupported x_axis={x_axis!r}, please use one of {POSSIBLE_X_AXES}")
