"""The ``Logger``: values recorded between dumps and written to its output formats at ``dump(step)``;
``configure`` builds one from format names, as SB3's does.

Tensors (possibly on a GPU) are never read when recorded: they stay on their device and are all read
in :meth:`Logger.dump`, with one transfer per device, so recording statistics inside the training loop
costs no synchronisation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch
from rich.console import Console

from easyrl.logger.outputs import CSVOutputFormat, HumanOutputFormat, JSONOutputFormat, KVWriter
from easyrl.logger.tensorboard import TENSORBOARD_MISSING, TensorBoardOutputFormat
from easyrl.logger.values import (
    RICH_VALUES,
    FormatUnsupportedError,
    Logged,
    LogValue,
    RichValue,
    Scalar,
    check_value,
    describe,
)

FORMATS = ("stdout", "log", "csv", "json", "tensorboard")
"""Output format names understood by :func:`configure`."""


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
    ``output_formats`` is the list of :class:`~easyrl.logger.KVWriter` outputs, as in SB3.
    """

    def __init__(self, folder: str | None = None, output_formats: Sequence[KVWriter] = ()):
        self.folder = folder
        self.output_formats = list(output_formats)
        self.last_dumped: dict[str, Logged] = {}
        """The values written by the last :meth:`dump` (plain Python values, and any richer ones)."""
        self._values: dict[str, Scalar | torch.Tensor | RichValue] = {}
        self._sums: dict[str, float | torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._excluded: dict[str, tuple[str, ...]] = {}

    def get_dir(self) -> str | None:
        """The folder that file outputs write to (``None`` when there are none), as in SB3."""
        return self.folder

    @property
    def dir(self) -> str | None:
        """SB3's attribute name for :meth:`get_dir`."""
        return self.folder

    def record(self, key: str, value: LogValue, exclude: str | Sequence[str] | None = None) -> None:
        """Sets ``key`` to ``value`` until the next dump (the last value recorded wins).

        ``exclude`` names formats that should not show this key, e.g. ``exclude=("stdout",)``. A tensor is
        copied on its device (so later in-place updates do not change it) but not read. A ``Figure``,
        ``Image``, ``Video`` or ``HParam`` goes to TensorBoard only: exclude the text formats, or this
        raises ``FormatUnsupportedError`` naming those that cannot write it.
        """
        checked = check_value(key, value)
        self._set_excluded(key, exclude)
        if isinstance(checked, RICH_VALUES):
            self._check_supported(key, checked)
        self._values[key] = checked.detach().clone() if isinstance(checked, torch.Tensor) else checked
        self._sums.pop(key, None)
        self._counts.pop(key, None)

    def _check_supported(self, key: str, value: RichValue) -> None:
        excluded = self._excluded.get(key, ())
        unsupported = [
            output.name
            for output in self.output_formats
            if output.name not in excluded and not output.supports(value)
        ]
        if unsupported:
            self._excluded.pop(key, None)
            raise FormatUnsupportedError(unsupported, describe(value))

    def record_mean(self, key: str, value: LogValue, exclude: str | Sequence[str] | None = None) -> None:
        """Adds ``value`` to a running mean of ``key``, written at the next dump. Tensors stay on device."""
        checked = check_value(key, value)
        if isinstance(checked, (str, *RICH_VALUES)):
            raise TypeError(f"record_mean({key!r}, ...) needs a number, got {checked!r}; use record() for it")
        self._values.pop(key, None)
        if isinstance(checked, torch.Tensor):
            checked = checked.detach()
        if key in self._sums:
            self._sums[key] = self._sums[key] + checked  # a new tensor: later in-place updates cannot leak in
            self._counts[key] += 1
        else:
            self._sums[key] = checked.clone() if isinstance(checked, torch.Tensor) else float(checked)
            self._counts[key] = 1
        self._set_excluded(key, exclude)

    def _set_excluded(self, key: str, exclude: str | Sequence[str] | None) -> None:
        if exclude is None:
            self._excluded.pop(key, None)
        else:
            self._excluded[key] = (exclude,) if isinstance(exclude, str) else tuple(exclude)

    @property
    def name_to_value(self) -> dict[str, Logged]:
        """The values recorded since the last dump, as plain Python values (reading tensors: a sync)."""
        pending: dict[str, Any] = {**self._values, **self._sums}
        keys = [key for key, value in pending.items() if isinstance(value, torch.Tensor)]
        pending.update(zip(keys, _read_tensors([pending[key] for key in keys]), strict=True))
        for key, count in self._counts.items():
            pending[key] = pending[key] / count
        return pending

    def get_value(self, key: str, default: Scalar | None = None) -> Logged | None:
        """The current value of ``key`` (a mean for ``record_mean`` keys), or ``default``."""
        return self.name_to_value.get(key, default)

    def dump(self, step: int = 0) -> None:
        """Reads all tensors at once, writes the values to every output format, then clears them."""
        values = self.name_to_value
        excluded = {key: self._excluded.get(key, ()) for key in values}
        for output in self.output_formats:  # even when empty, as SB3 does; text formats skip empty dumps
            output.write(values, excluded, step)
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
    outputs: list[KVWriter] = []
    try:
        for name in names:
            outputs.append(make_output_format(name, folder or "", console=console, append=append))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return Logger(folder, outputs)


def make_output_format(
    _format: str, log_dir: str, log_suffix: str = "", *, console: Console | None = None, append: bool = False
) -> KVWriter:
    """The output format named ``_format`` writing in ``log_dir`` (SB3's function; ``log_suffix`` goes
    before each file's extension, as there)."""
    if _format == "stdout":
        return HumanOutputFormat(console)
    if _format == "log":
        return HumanOutputFormat(os.path.join(log_dir, f"log{log_suffix}.txt"), append=append)
    if _format == "csv":
        return CSVOutputFormat(os.path.join(log_dir, f"progress{log_suffix}.csv"), append)
    if _format == "json":
        return JSONOutputFormat(os.path.join(log_dir, f"progress{log_suffix}.jsonl"), append)
    if _format == "tensorboard":
        return TensorBoardOutputFormat(log_dir)
    raise ValueError(f"Unknown log format {_format!r}; valid formats are: {', '.join(FORMATS)}")


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
