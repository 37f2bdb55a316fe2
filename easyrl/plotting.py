"""Learning curves of runs: ``easyrl plot`` as a function.

    from easyrl.plotting import plot_runs
    figure = plot_runs(["runs/sac/Pendulum-v1/seed0", "runs/sac/Pendulum-v1/seed1"], "curve.png")

Each run's curve comes from its ``evaluations.npz`` (else ``progress.csv``, see
:func:`easyrl.runs.load_results`). Runs whose ``config.yml`` differ only by the seed are one
configuration, drawn as the mean over seeds with a shaded band (±1 standard deviation, or min to max);
each configuration is one line in the legend. Needs matplotlib (the ``plot`` extra); figures are drawn
with the Agg backend, without a display.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from easyrl.extras import require
from easyrl.runs import RunResults, load_results

BANDS = ("std", "minmax")
X_AXES = ("steps", "time")
_IGNORED = ("seed", "run", "easyrl_version", "tuned")
"""config.yml entries that do not make a different configuration (the seed, where and how it ran)."""


class PlotError(ValueError):
    """Runs that cannot be plotted as asked; the message names the fix."""


@dataclass(frozen=True)
class Curve:
    """One configuration's curve: x values, the mean over its runs, and the band's lower and upper edges."""

    label: str
    runs: list[RunResults]
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def group_runs(results: Sequence[RunResults]) -> dict[str, list[RunResults]]:
    """The runs by configuration, each under its legend label (``SAC Pendulum-v1``, plus the settings
    that tell configurations of one algorithm and env apart)."""
    groups: dict[str, list[RunResults]] = {}
    for result in results:
        groups.setdefault(_key(result), []).append(result)
    labels = _labels(groups)
    return {labels[key]: members for key, members in groups.items()}


def _key(result: RunResults) -> str:
    if result.config is None:  # not a run of easyrl train: its seeds are the folders beside it
        return json.dumps({"folder": str(result.folder.parent)})
    return json.dumps(
        {k: v for k, v in result.config.items() if k not in _IGNORED}, sort_keys=True, default=str
    )


def _labels(groups: dict[str, list[RunResults]]) -> dict[str, str]:
    configs = {key: json.loads(key) for key in groups}
    base = {
        key: (f"{c['algorithm'].upper()} {c['env']}" if "algorithm" in c else c["folder"])
        for key, c in configs.items()
    }
    labels = {}
    for key, config in configs.items():
        same = [other for other in configs if base[other] == base[key]]
        settings = config.get("hyperparams", {})
        differing = sorted(
            name
            for name in {n for other in same for n in configs[other].get("hyperparams", {})}
            if len({json.dumps(configs[other].get("hyperparams", {}).get(name)) for other in same}) > 1
        )
        detail = ", ".join(f"{name}={settings.get(name)}" for name in differing)
        labels[key] = f"{base[key]} ({detail})" if detail else base[key]
    return labels


def curves(results: Sequence[RunResults], band: str = "std", x: str = "steps") -> list[Curve]:
    """Each configuration's mean curve and band, over the x range all its runs cover."""
    if band not in BANDS:
        raise PlotError(f"--band {band!r} is invalid: use {' or '.join(BANDS)}.")
    if x not in X_AXES:
        raise PlotError(f"--x {x!r} is invalid: use {' or '.join(X_AXES)}.")
    found = []
    for label, members in group_runs(results).items():
        xs = [_x_values(run, x) for run in members]
        ys = [run.mean_returns for run in members]
        grid, table = _aligned(xs, ys)
        mean = table.mean(axis=0)
        if band == "std":
            spread = table.std(axis=0)
            low, high = mean - spread, mean + spread
        else:
            low, high = table.min(axis=0), table.max(axis=0)
        found.append(Curve(label, list(members), grid, mean, low, high))
    return found


def _x_values(run: RunResults, x: str) -> np.ndarray:
    if x == "steps":
        return np.asarray(run.timesteps, dtype=np.float64)
    if run.walltime is None:
        raise PlotError(f"{run.folder} has no wall times ({run.source}): plot it with --x steps.")
    return np.asarray(run.walltime, dtype=np.float64)


def _aligned(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The runs' values on one x grid: their own when they share it, else interpolated on the range all cover."""
    if all(len(x) == len(xs[0]) and np.array_equal(x, xs[0]) for x in xs):
        return xs[0], np.vstack(ys)
    low, high = max(x[0] for x in xs), min(x[-1] for x in xs)
    grid = np.unique(np.concatenate([x[(x >= low) & (x <= high)] for x in xs]))
    if grid.size == 0:
        lengths = ", ".join(f"{x[0]:g}-{x[-1]:g}" for x in xs)
        raise PlotError(f"The runs of one configuration cover x ranges that do not overlap ({lengths}).")
    return grid, np.vstack([np.interp(grid, x, y) for x, y in zip(xs, ys, strict=True)])


def plot_runs(
    folders: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    band: str = "std",
    x: str = "steps",
    title: str | None = None,
    size: tuple[float, float] = (8.0, 5.0),
    dpi: int = 100,
) -> Any:
    """Draw the learning curves of the run ``folders`` and save them to ``output`` (PNG, SVG or PDF, by its
    suffix) when given; returns the matplotlib ``Figure`` (``size`` in inches at ``dpi``).

    ``band`` is ``"std"`` (mean ± 1 standard deviation over a configuration's seeds) or ``"minmax"``;
    ``x`` is ``"steps"`` (env steps) or ``"time"`` (wall-clock seconds of training).
    """
    if not folders:
        raise PlotError("Give one or more run folders, e.g. easyrl plot runs/sac/Pendulum-v1/seed*.")
    require("matplotlib", "plot", "easyrl plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    found = curves(load_all(folders), band, x)
    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for curve in found:
        n = len(curve.runs)
        label = f"{curve.label} ({n} seeds)" if n > 1 else curve.label
        (line,) = axes.plot(curve.x, curve.mean, label=label, linewidth=1.8)
        if n > 1:
            axes.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("env steps" if x == "steps" else "wall-clock time (s)")
    axes.set_ylabel(
        "evaluation return" if all(r.source == "evaluations.npz" for c in found for r in c.runs) else "return"
    )
    band_text = "mean ± 1 std over seeds" if band == "std" else "mean, min to max over seeds"
    axes.set_title(title or (band_text if any(len(c.runs) > 1 for c in found) else "learning curve"))
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output)
    return figure


def load_all(folders: Sequence[str | os.PathLike[str]]) -> list[RunResults]:
    """Each folder's results (a PlotError naming the folder where one cannot be read)."""
    results = []
    for folder in folders:
        try:
            results.append(load_results(folder))
        except ValueError as error:
            raise PlotError(str(error)) from None
    return results


def summary(results: Sequence[RunResults]) -> str:
    """A table of each run's final and best mean evaluation return, and its configuration's mean over seeds."""
    rows = [("run", "steps", "evals", "final return", "best return")]
    for label, members in group_runs(results).items():
        for run in members:
            means = run.mean_returns
            rows.append(
                (
                    str(run.folder),
                    f"{int(run.timesteps[-1]):,}",
                    str(len(means)),
                    f"{means[-1]:.1f}",
                    f"{means.max():.1f}",
                )
            )
        if len(members) > 1:
            finals = np.array([run.mean_returns[-1] for run in members])
            bests = np.array([run.mean_returns.max() for run in members])
            rows.append(
                (
                    f"{label}: mean of {len(members)}",
                    "",
                    "",
                    f"{finals.mean():.1f} ± {finals.std():.1f}",
                    f"{bests.mean():.1f} ± {bests.std():.1f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)
