"""Training-metrics logger with rich console, CSV, JSON-lines and TensorBoard outputs.

Values are recorded between dumps and written at ``dump(step)``. Tensors (possibly on a GPU) are never
read when recorded: they stay on their device and are all read in :meth:`Logger.dump`, with one transfer
per device, so recording statistics inside the training loop costs no synchronisation.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, TypeAlias

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

Scalar: TypeAlias = int | float | str
"""A value as written to the outputs."""
LogValue: TypeAlias = Scalar | np.generic | np.ndarray | torch.Tensor
"""A value accepted by :meth:`Logger.record`: a number, a string, or a one-element array or tensor."""

FORMATS = ("stdout", "log", "csv", "json", "tensorboard")
"""Output format names understood by :func:`configure`."""

TENSORBOARD_MISSING = (
    "TensorBoard logging needs the tensorboard package; install it with "
    '`pip install "easyrl[tensorboard]"` (or `pip install tensorboard`), or leave `tensorboard_log` unset.'
)


def format_value(value: Scalar) -> str:
    """Formats a value for the console table: ints as ints, floats to about 4 significant digits."""
    if isinstance(value, bool | str | int) or not math.isfinite(value):
        return str(value)
    if 1e4 <= abs(value) < 1e15:
        return f"{value:.0f}"  # large rewards and counts read better whole than as 1.235e+04
    return f"{value:.4g}"


class OutputFormat:
    """One destination for dumped values; ``name`` is what ``exclude=`` refers to."""

    name: str = ""

    def write(self, values: Mapping[str, Scalar], step: int) -> None:
        """Writes one dump; ``values`` holds plain Python values, excluded keys already removed."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases files; the default has nothing to release."""


class ConsoleOutput(OutputFormat):
    """A table of keys and values grouped by prefix (``rollout/``, ``train/``…), printed with rich."""

    def __init__(self, console: Console | None = None, name: str = "stdout", file: TextIO | None = None):
        self.name = name
        self._file = file
        self.console = console if console is not None else Console(file=file)

    def write(self, values: Mapping[str, Scalar], step: int) -> None:
        table = Table(box=box.ROUNDED, show_header=False, pad_edge=True)
        table.add_column("key", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        groups: dict[str, list[tuple[str, Scalar]]] = {}
        for key in sorted(values):
            group, _, name = key.rpartition("/")
            groups.setdefault(group, []).append((name, values[key]))
        for index, (group, items) in enumerate(groups.items()):
            if index:
                table.add_section()
            if group:
                table.add_row(Text(f"{group}/", style="bold"), "")
            indent = "  " if group else ""
            for name, value in items:
                table.add_row(Text(indent + name), Text(format_value(value)))
        self.console.print(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class CSVOutput(OutputFormat):
    """``progress.csv``; when new keys appear the file is rewritten with the widened header.

    With ``append=True`` an existing file is continued: its header gives the columns.
    """

    name = "csv"

    def __init__(self, path: str, append: bool = False):
        self.path = path
        self.keys: list[str] = []
        if append and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as file:
                self.keys = next(csv.reader(file), [])
        mode = "a" if self.keys else "w"
        self._file = open(path, mode, newline="", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write(self, values: Mapping[str, Scalar], step: int) -> None:
        new_keys = sorted(key for key in values if key not in self.keys)
        if new_keys:
            self._widen(new_keys)
        csv.writer(self._file).writerow([values.get(key, "") for key in self.keys])
        self._file.flush()

    def _widen(self, new_keys: list[str]) -> None:
        self._file.close()
        with open(self.path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))[1:]
        self.keys.extend(new_keys)
        # Rewrite beside and rename, so a crash mid-rewrite leaves the previous file whole.
        with open(self.path + ".tmp", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(self.keys)
            writer.writerows(row + [""] * (len(self.keys) - len(row)) for row in rows)
        os.replace(self.path + ".tmp", self.path)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        self._file.close()


class JSONOutput(OutputFormat):
    """``progress.jsonl``: one JSON object per dump."""

    name = "json"

    def __init__(self, path: str, append: bool = False):
        self.path = path
        self._file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write(self, values: Mapping[str, Scalar], step: int) -> None:
        self._file.write(json.dumps(dict(values)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardOutput(OutputFormat):
    """TensorBoard scalars (strings are skipped), written with ``torch.utils.tensorboard.SummaryWriter``."""

    name = "tensorboard"

    def __init__(self, folder: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(TENSORBOARD_MISSING) from error
        self.writer = SummaryWriter(log_dir=folder)

    def write(self, values: Mapping[str, Scalar], step: int) -> None:
        for key, value in values.items():
            if not isinstance(value, str):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _read_tensors(tensors: Sequence[torch.Tensor]) -> list[int | float]:
    """Reads one-element tensors to Python numbers with one host transfer per (device, int/float) group."""
    results: list[int | float] = [0] * len(tensors)
    groups: dict[tuple[torch.device, bool], list[int]] = {}
    for index, tensor in enumerate(tensors):
        groups.setdefault((tensor.device, tensor.is_floating_point()), []).append(index)
    for (device, is_float), indices in groups.items():
        float_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        dtype = float_dtype if is_float else torch.int64
        stacked = torch.stack([tensors[index].reshape(()).to(dtype) for index in indices])
        for index, value in zip(indices, stacked.tolist(), strict=True):
            results[index] = value
    return results


class Logger:
    """Collects key/value pairs between dumps and writes them to its output formats.

    Build one with :func:`configure`. ``record`` keeps the last value given for a key, ``record_mean``
    averages the values given since the last dump; tensors are kept on their device until :meth:`dump`.
    """

    def __init__(self, folder: str | None = None, output_formats: Sequence[OutputFormat] = ()):
        self.folder = folder
        self.output_formats = list(output_formats)
        self.last_dumped: dict[str, Scalar] = {}
        """The values written by the last :meth:`dump` (plain Python values)."""
        self._values: dict[str, Scalar | torch.Tensor] = {}
        self._sums: dict[str, float | torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._excluded: dict[str, tuple[str, ...]] = {}

    def get_dir(self) -> str | None:
        """The folder that file outputs write to (``None`` when there are none), as in SB3."""
        return self.folder

    def record(self, key: str, value: LogValue, exclude: str | Sequence[str] | None = None) -> None:
        """Sets ``key`` to ``value`` until the next dump (the last value recorded wins).

        ``exclude`` names formats that should not show this key, e.g. ``exclude=("stdout",)``. A tensor is
        copied on its device (so later in-place updates do not change it) but not read.
        """
        value = _check_value(key, value)
        self._values[key] = value.detach().clone() if isinstance(value, torch.Tensor) else value
        self._sums.pop(key, None)
        self._counts.pop(key, None)
        self._set_excluded(key, exclude)

    def record_mean(self, key: str, value: LogValue, exclude: str | Sequence[str] | None = None) -> None:
        """Adds ``value`` to a running mean of ``key``, written at the next dump. Tensors stay on device."""
        value = _check_value(key, value)
        if isinstance(value, str):
            raise TypeError(f"record_mean({key!r}, ...) needs a number, got the string {value!r}")
        self._values.pop(key, None)
        if isinstance(value, torch.Tensor):
            value = value.detach()
        if key in self._sums:
            self._sums[key] = self._sums[key] + value  # a new tensor: later in-place updates cannot leak in
            self._counts[key] += 1
        else:
            self._sums[key] = value.clone() if isinstance(value, torch.Tensor) else float(value)
            self._counts[key] = 1
        self._set_excluded(key, exclude)

    def _set_excluded(self, key: str, exclude: str | Sequence[str] | None) -> None:
        if exclude is None:
            self._excluded.pop(key, None)
        else:
            self._excluded[key] = (exclude,) if isinstance(exclude, str) else tuple(exclude)

    @property
    def name_to_value(self) -> dict[str, Scalar]:
        """The values recorded since the last dump, as plain Python values (reading tensors: a sync)."""
        pending: dict[str, Any] = {**self._values, **self._sums}
        keys = [key for key, value in pending.items() if isinstance(value, torch.Tensor)]
        pending.update(zip(keys, _read_tensors([pending[key] for key in keys]), strict=True))
        for key, count in self._counts.items():
            pending[key] = pending[key] / count
        return pending

    def get_value(self, key: str, default: Scalar | None = None) -> Scalar | None:
        """The current value of ``key`` (a mean for ``record_mean`` keys), or ``default``."""
        return self.name_to_value.get(key, default)

    def dump(self, step: int = 0) -> None:
        """Reads all tensors at once, writes the values to every output format, then clears them."""
        values = self.name_to_value
        if values:
            for output in self.output_formats:
                shown = {k: v for k, v in values.items() if output.name not in self._excluded.get(k, ())}
                if shown:
                    output.write(shown, step)
        self.last_dumped = values
        self._values.clear()
        self._sums.clear()
        self._counts.clear()
        self._excluded.clear()

    def close(self) -> None:
        """Closes every output format (pending values are not written; call :meth:`dump` first)."""
        for output in self.output_formats:
            output.close()
        self.output_formats = []


def _check_value(key: str, value: LogValue) -> Scalar | torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{key}: can only log a real one-element tensor, got shape {tuple(value.shape)}")
        return value
    if isinstance(value, np.ndarray | np.generic):
        if value.size != 1:
            raise ValueError(f"{key}: can only log a one-element array, got shape {value.shape}")
        return value.item()  # host memory: no device sync
    if isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{key}: can log a number, a string or a one-element tensor, got {type(value).__name__}")


def configure(
    folder: str | None = None,
    format_strings: str | Sequence[str] | None = ("stdout",),
    console: Console | None = None,
    *,
    append: bool = False,
) -> Logger:
    """Builds a :class:`Logger` writing to the named formats, as SB3's ``configure`` does.

    Args:
        folder: where ``log.txt``, ``progress.csv``, ``progress.jsonl`` and TensorBoard events go; created if
            missing. Needed by every format except ``"stdout"``.
        format_strings: names from :data:`FORMATS`, or one comma-separated string; empty names are ignored,
            so ``configure(None, [])`` gives a logger that writes nothing.
        console: the rich console for ``"stdout"`` (default: a new one on ``sys.stdout``).
        append: continue ``log.txt``, ``progress.csv`` and ``progress.jsonl`` if they exist, instead of
            overwriting them (a continued run, ``learn(..., reset_num_timesteps=False)``).
    """
    if isinstance(format_strings, str):
        format_strings = format_strings.split(",")
    names = [name.strip() for name in format_strings or () if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown log format(s) {unknown}; valid formats are: {', '.join(FORMATS)}")
    file_formats = [name for name in names if name != "stdout"]
    if file_formats and folder is None:
        raise ValueError(f"Log formats {file_formats} write files: pass a folder, e.g. configure('logs')")
    if "tensorboard" in names:
        _require_tensorboard()  # before creating anything, so a missing package leaves no empty run folder
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
    outputs: list[OutputFormat] = []
    try:
        for name in names:
            outputs.append(_make_output(name, folder or "", console, append))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return Logger(folder, outputs)


def _make_output(name: str, folder: str, console: Console | None, append: bool = False) -> OutputFormat:
    if name == "stdout":
        return ConsoleOutput(console)
    if name == "log":
        path = os.path.join(folder, "log.txt")
        file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115  (closed by output)
        return ConsoleOutput(Console(file=file, width=120, no_color=True), name="log", file=file)
    if name == "csv":
        return CSVOutput(os.path.join(folder, "progress.csv"), append)
    if name == "json":
        return JSONOutput(os.path.join(folder, "progress.jsonl"), append)
    return TensorBoardOutput(folder)


def _require_tensorboard() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401  (only checking that it can be imported)
    except ImportError as error:
        raise ImportError(TENSORBOARD_MISSING) from error


def next_run_dir(root: str, name: str, *, reuse_latest: bool = False) -> str:
    """``root/name_N`` for a new run, as SB3 picks TensorBoard folders: N is one past the highest used index.

    With ``reuse_latest=True`` (SB3's ``reset_num_timesteps=False``) the latest run's folder is returned
    instead, so a continued run keeps writing to it; ``name_1`` when there is none. Nothing is created.
    """
    pattern = re.compile(rf"{re.escape(name)}_(\d+)")
    entries = os.listdir(root) if os.path.isdir(root) else []
    used = [int(m.group(1)) for entry in entries if (m := pattern.fullmatch(entry))]
    latest = max(used, default=0)
    return os.path.join(root, f"{name}_{latest if reuse_latest and latest else latest + 1}")
