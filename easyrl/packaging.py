"""A shareable model folder: ``easyrl package MODEL.zip OUT_DIR``.

The folder holds what someone needs to judge and use a model without asking: the model file itself
(``model.zip``), its evaluation (``results.json``: every episode's return and length, seeded), a model card
(``README.md``: algorithm, env, hyperparameters, the evaluation as mean ± std, library versions, and the
commands that load and play it), and, when the ``video`` extra is installed and the env renders, a replay
(``replay.mp4``). The card's facts are read from the model file's metadata, the same ones ``easyrl info``
prints (the card includes that report verbatim). Uploading is left to the user's tools (``hf upload``,
``git``): the folder is a plain directory. Everything is read with the safe loader; nothing is unpickled.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from easyrl.cli_info import info
from easyrl.extras import MissingExtraError
from easyrl.playback import PlaybackError, evaluate_file, record_video
from easyrl.serialization import read_metadata

MODEL_NAME = "model.zip"
CARD_NAME = "README.md"
RESULTS_NAME = "results.json"
VIDEO_NAME = "replay.mp4"


@dataclass
class PackageReport:
    """What :func:`package_model` wrote into ``folder``."""

    folder: Path
    files: list[str]
    mean_return: float
    std_return: float
    episodes: int
    video_skipped: str | None = None
    """Why there is no replay video (None when there is one)."""
    results: dict[str, Any] = field(default_factory=dict)


def package_model(
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    episodes: int = 10,
    seed: int = 0,
    env: str | None = None,
    video: bool = True,
    force: bool = False,
) -> PackageReport:
    """Write the shareable folder of the model in ``model_path`` to ``out_dir`` (see the module's docstring).

    Args:
        episodes: deterministic evaluation episodes, seeded ``seed``, ``seed + 1``, ...
        env: the env id to evaluate on; by default the one the model file names.
        video: record a one-episode replay when the ``video`` extra is installed.
        force: write into an ``out_dir`` that already holds files (they may be replaced).

    Raises:
        PlaybackError: an unreadable model, an env that cannot be played, or a folder that is not empty.
    """
    folder = Path(out_dir)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not force)):
        raise PlaybackError(
            f"{folder} is not an empty folder: choose a new one, or pass --force to write into it."
        )
    report = evaluate_file(model_path, episodes, True, env, seed)  # checks the file and the env first
    metadata = read_metadata(model_path)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, folder / MODEL_NAME)
    returns = np.asarray(report.returns)
    results: dict[str, Any] = {
        "env_id": report.env_id,
        "episodes": len(report.returns),
        "deterministic": True,
        "seed": seed,
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "returns": [float(r) for r in report.returns],
        "lengths": [int(n) for n in report.lengths],
    }
    if report.successes:
        results["success_rate"] = float(np.mean(report.successes))
    (folder / RESULTS_NAME).write_text(json.dumps(results, indent=1) + "\n")
    skipped = (
        _video(folder / MODEL_NAME, folder / VIDEO_NAME, env, seed) if video else "not asked for (--no-video)"
    )
    (folder / CARD_NAME).write_text(model_card(folder / MODEL_NAME, metadata, results, skipped))
    files = sorted(
        p.name for p in folder.iterdir() if p.name in (MODEL_NAME, CARD_NAME, RESULTS_NAME, VIDEO_NAME)
    )
    return PackageReport(
        folder, files, results["mean_return"], results["std_return"], episodes, skipped, results
    )


def _video(model: Path, output: Path, env: str | None, seed: int) -> str | None:
    """Record the replay; returns why there is none, or None."""
    try:
        record_video(model, output, 1, True, env, seed)
    except MissingExtraError as error:
        return f"the video extra is not installed ({error})"
    except PlaybackError as error:
        return f"the env could not be rendered ({error})"
    return None


def model_card(
    model: Path, metadata: dict[str, Any], results: dict[str, Any], video_skipped: str | None
) -> str:
    """The folder's README.md: front matter for model hubs, then the facts and the commands."""
    algorithm = str(metadata.get("algorithm", "?"))
    env_id = results["env_id"]
    mean, std, n = results["mean_return"], results["std_return"], results["episodes"]
    versions: dict[str, Any] = metadata["versions"] if isinstance(metadata.get("versions"), dict) else {}
    described = io.StringIO()
    info(str(model), False, described, io.StringIO())
    report = described.getvalue().replace(str(model), MODEL_NAME, 1)
    params: dict[str, Any] = metadata["params"] if isinstance(metadata.get("params"), dict) else {}
    rows = "\n".join(f"| `{name}` | `{json.dumps(value)}` |" for name, value in sorted(params.items()))
    version_rows = "\n".join(f"| {name} | {value} |" for name, value in sorted(versions.items()))
    replay = (
        f"![replay]({VIDEO_NAME})\n\n[{VIDEO_NAME}]({VIDEO_NAME}): one deterministic episode."
        if video_skipped is None
        else f"No replay video: {video_skipped}."
    )
    return f"""---
library_name: easyrl
tags:
- reinforcement-learning
- {env_id}
- {algorithm}
model-index:
- name: {algorithm}
  results:
  - task:
      type: reinforcement-learning
    dataset:
      name: {env_id}
      type: {env_id}
    metrics:
    - type: mean_reward
      value: {mean:.2f} +/- {std:.2f}
---

# {algorithm} on {env_id}

A {algorithm} model trained with [easyrl](https://pypi.org/project/easyrl/) for
{metadata.get("num_timesteps", "?")} steps.

## Evaluation

Mean return **{mean:.2f} ± {std:.2f}** over {n} deterministic episodes of `{env_id}`
(seeds {results["seed"]} to {results["seed"] + n - 1}; each episode in [{RESULTS_NAME}]({RESULTS_NAME})).

{replay}

## Use it

```bash
pip install easyrl
easyrl eval {MODEL_NAME} --episodes {n}
```

```python
from easyrl import {algorithm}

model = {algorithm}.load("{MODEL_NAME}")  # reads weights only: loading runs no code from the file
action, _ = model.predict(observation, deterministic=True)
model.export("policy.onnx")  # to run without easyrl (pip install "easyrl[onnx]")
```

## Hyperparameters

| parameter | value |
|---|---|
{rows}

## Versions

| library | version |
|---|---|
{version_rows}

## `easyrl info {MODEL_NAME}`

```text
{report.rstrip()}
```
"""
