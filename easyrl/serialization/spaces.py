"""Gymnasium spaces as plain JSON, so a saved model describes its inputs and outputs without pickles.

Supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of those. `space_from_json` raises a
`ValueError` that says what is wrong with a description; callers reading a file wrap it in a
`ModelFileError` naming the file.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

# A description cannot make us allocate more than this many elements per bound (a 16M-element Box
# already means 64 MiB per bound); real observation spaces are far smaller.
_MAX_ELEMENTS = 1 << 24
_MAX_DEPTH = 32


def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """Describe `space` as a JSON-compatible dict; `space_from_json` rebuilds an equal space.

    Non-finite Box bounds are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"``, so the result is
    standard JSON. A bound whose elements are all equal is written once, as a scalar.
    """
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _encode_bound(space.low),
            "high": _encode_bound(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": space.dtype.name}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": space.dtype.name,
        }
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n
        return {
            "type": "MultiBinary",
            "n": int(n) if isinstance(n, int | np.integer) else [int(k) for k in n],
        }
    if isinstance(space, gym.spaces.Dict):
        for key in space.spaces:
            if not isinstance(key, str):
                raise ValueError(f"Dict space key {key!r} is not a string, so it cannot be saved as JSON.")
        # A list of pairs keeps the key order, which `Dict` otherwise re-sorts.
        return {"type": "Dict", "spaces": [[key, space_to_json(sub)] for key, sub in space.spaces.items()]}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    raise ValueError(
        f"{type(space).__name__} spaces cannot be saved; supported: Box, Discrete, MultiDiscrete, "
        "MultiBinary, Dict, Tuple."
    )


def space_from_json(description: Any) -> gym.Space[Any]:
    """Rebuild the space described by `space_to_json`; raise ValueError on an unknown or malformed one."""
    return _decode(description, depth=0)


def _encode_bound(values: np.ndarray) -> Any:
    flat = values.reshape(-1)
    if flat.size > 0 and bool(np.all(flat == flat[0])):
        return _encode_number(flat[0].item())
    return _map_nested(values.tolist(), _encode_number)


def _encode_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _map_nested(value: Any, function: Any) -> Any:
    if isinstance(value, list):
        return [_map_nested(item, function) for item in value]
    return function(value)


def _decode_number(value: Any) -> float | int:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ValueError(f"bad bound value {value!r}")


def _field(description: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in description:
        raise ValueError(f"{description.get('type')} description lacks {key!r}")
    value = description[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(
            f"{description.get('type')} field {key!r} has the wrong type ({type(value).__name__})"
        )
    return value


def _dtype(name: Any, kinds: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in kinds:
        raise ValueError(f"unsupported dtype {name!r}")
    return dtype


def _int_list(value: Any, key: str) -> list[Any]:
    def check(item: Any) -> int:
        if not isinstance(item, int) or isinstance(item, bool):
            raise ValueError(f"{key!r} must hold integers, not {item!r}")
        return item

    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list")
    result: list[Any] = _map_nested(value, check)
    return result


def _decode(description: Any, depth: int) -> gym.Space[Any]:
    if depth > _MAX_DEPTH:
        raise ValueError(f"space description nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(description, dict):
        raise ValueError(f"a space description must be a JSON object, not {type(description).__name__}")
    kind = description.get("type")
    try:
        if kind == "Box":
            return _decode_box(description)
        if kind == "Discrete":
            dtype = _dtype(description.get("dtype", "int64"), "iu")
            # Older gymnasium has no `dtype` argument; pass it only when it matters.
            extra: dict[str, Any] = {} if dtype == np.int64 else {"dtype": dtype}
            n, start = _field(description, "n", int), _field(description, "start", int)
            return gym.spaces.Discrete(n, start=start, **extra)
        if kind == "MultiDiscrete":
            nvec = np.array(_int_list(_field(description, "nvec", list), "nvec"))
            start = np.array(_int_list(_field(description, "start", list), "start"))
            dtype = _dtype(description.get("dtype", "int64"), "iu")
            return gym.spaces.MultiDiscrete(nvec, dtype=dtype, start=start)
        if kind == "MultiBinary":
            n = _field(description, "n", (int, list))
            return gym.spaces.MultiBinary(n if isinstance(n, int) else _int_list(n, "n"))
        if kind == "Dict":
            pairs = _field(description, "spaces", list)
            if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
                raise ValueError("Dict 'spaces' must be a list of [name, space] pairs")
            return gym.spaces.Dict([(key, _decode(sub, depth + 1)) for key, sub in pairs])
        if kind == "Tuple":
            return gym.spaces.Tuple([_decode(sub, depth + 1) for sub in _field(description, "spaces", list)])
    except (TypeError, AssertionError, OverflowError) as error:
        # gymnasium validates with asserts and numpy raises TypeError on nonsense; report them uniformly.
        raise ValueError(f"invalid {kind} description: {error}") from None
    raise ValueError(f"unknown space type {kind!r}")


def _decode_box(description: dict[str, Any]) -> gym.spaces.Box:
    shape = tuple(_int_list(_field(description, "shape", list), "shape"))
    if any(not isinstance(size, int) or size < 0 for size in shape) or math.prod(shape) > _MAX_ELEMENTS:
        raise ValueError(f"invalid Box shape {list(shape)}")
    dtype = _dtype(description.get("dtype"), "biuf")
    bounds = []
    for key in ("low", "high"):
        if key not in description:
            raise ValueError(f"Box description lacks {key!r}")
        value = _map_nested(description[key], _decode_number)
        array = np.array(value, dtype=np.float64 if dtype.kind == "f" else None)
        if dtype.kind != "f" and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"Box {key!r} of an integer dtype must be finite")
        if array.shape not in ((), shape):
            raise ValueError(f"Box {key!r} has shape {array.shape}, expected {shape}")
        bounds.append(np.broadcast_to(array, shape).astype(dtype))
    return gym.spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)
