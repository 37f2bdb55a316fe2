"""Running the ``easyrl`` command as a user does: a subprocess, one thread, its output and exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m easyrl ARGS`` with OMP_NUM_THREADS=1; ``env`` adds environment variables."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [environment.get("PYTHONPATH"), str(ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "easyrl", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=environment,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2 and one line on standard error holding every fragment, without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip() and "DeprecationWarning" not in line
             and "logger.deprecation" not in line]  # fmt: skip
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def block_module(folder: Path, name: str) -> dict[str, str]:
    """Environment variables under which ``import name`` fails, as where the package is not installed."""
    (folder / f"{name}.py").write_text(f"raise ImportError('blocked by the test: no module named {name}')\n")
    return {"PYTHONPATH": str(folder)}
