"""The report of ``easyrl info``: what a saved model or replay-buffer file holds, from its metadata alone.

Nothing else in the file is read (no weights, no pickles), so it is safe on a file from anyone.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from easyrl.algorithms.replay_file import KIND as _REPLAY_KIND
from easyrl.serialization import FORMAT_VERSION, read_metadata, space_from_json
from easyrl.serialization.params import PICKLED_KEY as _PICKLED
from easyrl.serialization.params import TUPLE_KEY as _TUPLE


def info(path: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the description of the file at ``path`` (its metadata as JSON with ``as_json``); returns the
    exit status: 0, or 2 for a file that cannot be read."""
    try:
        metadata = read_metadata(path, check_version=False)
    except (OSError, ValueError) as error:
        text = (
            f"{error.filename}: {error.strerror}"
            if isinstance(error, OSError) and error.filename
            else str(error)
        )
        print(f"easyrl info: {' '.join(text.split())}", file=err)
        return 2
    if as_json:
        json.dump(metadata, out, indent=1, sort_keys=True)
        out.write("\n")
    elif metadata.get("kind") == _REPLAY_KIND:
        _print_rows(out, path, _replay_rows(metadata))
    else:
        _print_rows(out, path, _model_rows(metadata))
        params = metadata.get("params")
        if isinstance(params, dict) and params:
            out.write("parameters:\n")
            width = max(len(name) for name in params)
            for name, value in sorted(params.items()):
                out.write(f"  {name:<{width}}  {_show(value)}\n")
    return 0


def _print_rows(out: TextIO, path: str, rows: list[tuple[str, str]]) -> None:
    out.write(f"{path}\n")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        out.write(f"  {label:<{width}}  {value}\n")


def _model_rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    params = metadata.get("params") if isinstance(metadata.get("params"), dict) else {}
    state = metadata.get("training_state") if isinstance(metadata.get("training_state"), dict) else {}
    env = params.get("env") if isinstance(params, dict) else None
    env_id = metadata.get("env_id")
    if isinstance(env, str):
        env_text = env
    elif isinstance(env_id, str):
        env_text = f"{env_id} (an env object; pass env=... to load() to train)"
    else:
        env_text = "unknown (an env object; pass env=... to load() to train)"
    pickled = metadata.get("pickled_params") or []
    if isinstance(state, dict) and state.get("at_episode_boundary"):
        resume = "exact (saved between episodes)"
    else:
        resume = "from new episodes (saved mid-episode or before training)"
    return [
        ("algorithm", _text(metadata.get("algorithm"))),
        ("env", env_text),
        ("observation space", _space(metadata.get("observation_space"))),
        ("action space", _space(metadata.get("action_space"))),
        ("timesteps", _text(metadata.get("num_timesteps"))),
        ("gradient updates", _text(metadata.get("n_updates"))),
        ("episodes", _text(metadata.get("episodes"))),
        ("envs", _text(metadata.get("num_envs"))),
        ("saved on", _text(metadata.get("device"))),
        ("resume", resume),
        ("pickled values", _pickled(pickled)),
        ("format", _format(metadata)),
        ("versions", _versions(metadata)),
    ]


def _replay_rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    buffer = metadata.get("buffer") if isinstance(metadata.get("buffer"), dict) else {}
    assert isinstance(buffer, dict)
    count = buffer.get("count")
    stored = sum(count) if isinstance(count, list) and all(isinstance(c, int) for c in count) else "?"
    shape = buffer.get("observation_shape")
    return [
        ("kind", "replay buffer"),
        ("algorithm", _text(metadata.get("algorithm"))),
        ("transitions", f"{stored} of {_text(buffer.get('capacity'))}"),
        ("envs", _text(buffer.get("n_envs"))),
        (
            "observations",
            f"{tuple(shape) if isinstance(shape, list) else shape} {_text(buffer.get('observation_dtype'))}",
        ),
        ("action size", _text(buffer.get("action_dim"))),
        ("timesteps", _text(metadata.get("num_timesteps"))),
        ("format", _format(metadata)),
        ("versions", _versions(metadata)),
    ]


def _text(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _space(description: Any) -> str:
    try:
        return repr(space_from_json(description))
    except ValueError:
        return f"{json.dumps(description)[:200]} (not a valid space description)"


def _pickled(names: Any) -> str:
    if not names:
        return "none (the file holds no code)"
    if not isinstance(names, list):
        return _text(names)
    members = ", ".join(f"{name} (pickled/{name}.pkl)" for name in map(str, names))
    return f"{members}; loaded only with custom_objects=... or trusted_pickles=[...]"


def _format(metadata: dict[str, Any]) -> str:
    version = metadata.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        return f"{version} (newer than this easyrl reads, {FORMAT_VERSION}: pip install --upgrade easyrl)"
    return _text(version)


def _versions(metadata: dict[str, Any]) -> str:
    versions = metadata.get("versions")
    if not isinstance(versions, dict):
        return "unknown"
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def _show(value: Any) -> str:
    """A parameter as Python-like text: tuples as tuples, pickled values and noise described."""
    if isinstance(value, dict):
        if set(value) == {_PICKLED}:
            return f"<pickled: pickled/{value[_PICKLED]}.pkl>"
        if set(value) == {_TUPLE} and isinstance(value[_TUPLE], list):
            items = [_show(item) for item in value[_TUPLE]]
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if isinstance(value.get("class"), str):
            arguments = ", ".join(f"{key}={_show(item)}" for key, item in value.items() if key != "class")
            return f"{value['class']}({arguments})"
        return "{" + ", ".join(f"{key!r}: {_show(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)
