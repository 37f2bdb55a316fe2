"""The logger's output formats, under SB3's class names: a rich console table (``HumanOutputFormat``),
``progress.csv`` (``CSVOutputFormat``) and ``progress.jsonl`` (``JSONOutputFormat``); TensorBoard is in
:mod:`easyrl.logger.tensorboard`.

Every format is a :class:`KVWriter` and is written with SB3's call, ``write(key_values, key_excluded,
step)``, so a writer made for SB3 works as an easyrl output too. The text formats write numbers and
strings; given a ``Figure``, ``Image``, ``Video`` or ``HParam`` they raise ``FormatUnsupportedError``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from easyrl.logger.values import RICH_VALUES, Scalar, refuse_rich_values, shown_values


def format_value(value: Scalar) -> str:
    """Formats a value for the console table: ints as ints, floats to about 4 significant digits."""
    if isinstance(value, bool | str | int) or not math.isfinite(value):
        return str(value)
    if 1e4 <= abs(value) < 1e15:
        return f"{value:.0f}"  # large rewards and counts read better whole than as 1.235e+04
    return f"{value:.4g}"


class KVWriter:
    """One destination for dumped values (SB3's base class); ``name`` is what ``exclude=`` refers to."""

    name: str = ""

    def write(
        self, key_values: Mapping[str, Any], key_excluded: Mapping[str, Sequence[str] | None], step: int = 0
    ) -> None:
        """Writes one dump. ``key_values`` holds plain Python values (tensors already read) and richer
        values; ``key_excluded`` maps every key to the format names that should skip it."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases files; the default has nothing to release."""

    def supports(self, value: Any) -> bool:
        """Whether this format can write ``value`` (checked when it is recorded, for a clear error there)."""
        return True


class _TextFormat(KVWriter):
    """A format that writes numbers and strings only."""

    def supports(self, value: Any) -> bool:
        return not isinstance(value, RICH_VALUES)

    def write(
        self, key_values: Mapping[str, Any], key_excluded: Mapping[str, Sequence[str] | None], step: int = 0
    ) -> None:
        values = shown_values(key_values, key_excluded, self.name)
        refuse_rich_values(values, self.name)
        if values:
            self.write_values(values, step)

    def write_values(self, values: Mapping[str, Scalar], step: int) -> None:
        """Writes the values this format shows (not empty, nothing excluded)."""
        raise NotImplementedError


class HumanOutputFormat(_TextFormat):
    """A table of keys and values grouped by prefix (``rollout/``, ``train/``...), printed with rich.

    Args:
        filename_or_file: where to print: None or a rich ``Console`` (the console, format name
            ``"stdout"``), a path (a text file, format name ``"log"``, opened for writing, or appending
            with ``append=True``), or an open text file (``sys.stdout``: ``"stdout"``; others ``"log"``).
        max_length: keys and values longer than this are cut, ending in ``...`` (SB3's default, 36).
        name: the format name ``exclude=`` refers to, if not the one above.
    """

    def __init__(
        self,
        filename_or_file: str | TextIO | Console | None = None,
        max_length: int = 36,
        *,
        name: str | None = None,
        append: bool = False,
    ) -> None:
        self.max_length = max_length
        self._file: TextIO | None = None  # a file this output opened, and closes
        if filename_or_file is None or isinstance(filename_or_file, Console):
            self.console = filename_or_file if filename_or_file is not None else Console()
            default_name = "stdout"
        elif isinstance(filename_or_file, str):
            self._file = open(filename_or_file, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
            self.console = Console(file=self._file, width=120, no_color=True)
            default_name = "log"
        elif hasattr(filename_or_file, "write"):
            to_stdout = filename_or_file is sys.stdout
            self.console = Console(
                file=filename_or_file, width=None if to_stdout else 120, no_color=not to_stdout
            )
            default_name = "stdout" if to_stdout else "log"
        else:
            raise ValueError(f"Expected a file, a path or a rich Console, got {filename_or_file!r}")
        self.name = name if name is not None else default_name

    def _truncate(self, text: str) -> str:
        return text if len(text) <= self.max_length else text[: self.max_length - 3] + "..."

    def write_values(self, values: Mapping[str, Scalar], step: int) -> None:
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
                table.add_row(Text(self._truncate(f"{group}/"), style="bold"), "")
            indent = "  " if group else ""
            for name, value in items:
                table.add_row(Text(indent + self._truncate(name)), Text(self._truncate(format_value(value))))
        self.console.print(table)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class CSVOutputFormat(_TextFormat):
    """``progress.csv``; when new keys appear the file is rewritten with the widened header.

    With ``append=True`` an existing file is continued: its header gives the columns.
    """

    name = "csv"

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self.keys: list[str] = []
        if append and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as file:
                self.keys = next(csv.reader(file), [])
        mode = "a" if self.keys else "w"
        self._file = open(path, mode, newline="", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write_values(self, values: Mapping[str, Scalar], step: int) -> None:
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


class JSONOutputFormat(_TextFormat):
    """``progress.jsonl``: one JSON object per dump."""

    name = "json"

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self._file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write_values(self, values: Mapping[str, Scalar], step: int) -> None:
        self._file.write(json.dumps(dict(values)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
