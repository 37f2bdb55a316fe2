"""Constructor parameters <-> JSON, for the model file.

JSON holds None, booleans, numbers, strings, lists and dicts with string keys; a tuple is written as
``{"__tuple__": [...]}`` so that it comes back a tuple (``train_freq=(1, "episode")``). Three values get a
description instead of their Python form:

- ``env``: the env id when the model was built from one, else null (an env object is never saved);
- ``policy``: one of easyrl's policy classes (``easyrl.sac.policies.CnnPolicy``) by its SB3 name
  (``"CnnPolicy"``), which loads back as that name;
- ``action_noise``: its class and arguments, rebuilt on load from easyrl's own noise classes only;
- ``policy_kwargs["activation_fn"]``: the name of a ``torch.nn`` activation from an allow-list;
- ``policy_kwargs["features_extractor_class"]``: the name of one of easyrl's features extractors;
- ``replay_buffer_class``: the name of one of easyrl's replay buffers (``"HerReplayBuffer"``), and a
  goal-selection strategy in ``replay_buffer_kwargs`` by its value (``"future"``).

Anything else JSON cannot hold (a callable learning-rate schedule, a custom activation, extractor or
noise class) is written as ``{"__pickled__": "<name>"}`` and its value goes to the pickled member
``<name>``, which loading unpickles only when the user trusts it by name, or replaces with a value the
user supplies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import numpy as np
from torch import nn

from easyrl import extractors
from easyrl.buffers import HerReplayBuffer, ReplayBuffer
from easyrl.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from easyrl.validation import policy_name

ACTIVATIONS: tuple[str, ...] = (
    "ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Mish", "SELU", "CELU", "Softplus", "Sigmoid",
    "Hardtanh", "Hardswish", "Identity",
)  # fmt: skip
"""``torch.nn`` activations that a file may name in ``policy_kwargs["activation_fn"]``."""

EXTRACTORS: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in extractors.BUILT_IN}
"""Features extractor classes a file may name in ``policy_kwargs["features_extractor_class"]``."""

BUFFERS: dict[str, type[ReplayBuffer]] = {"ReplayBuffer": ReplayBuffer, "HerReplayBuffer": HerReplayBuffer}
"""Replay buffer classes a file may name in ``replay_buffer_class``."""

NOISES: dict[str, type[ActionNoise]] = {
    "NormalActionNoise": NormalActionNoise,
    "OrnsteinUhlenbeckActionNoise": OrnsteinUhlenbeckActionNoise,
}
"""Noise classes a file may name in ``action_noise``."""

ACTIVATION_KEY = "policy_kwargs.activation_fn"
TUPLE_KEY = "__tuple__"
PICKLED_KEY = "__pickled__"
_UNSET = object()

Resolver = Callable[[str], Any]
"""Returns the value of a pickled parameter by name (or raises the error explaining how to supply it)."""


# ---------------------------------------------------------------------------------------------- encoding
def encode_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``get_params()`` as JSON, and the values JSON cannot hold, by name (for pickled members)."""
    encoded: dict[str, Any] = {}
    pickled: dict[str, Any] = {}
    for name, value in params.items():
        if name == "env":
            encoded[name] = value if isinstance(value, str) else None
        elif name == "policy" and isinstance(value, type):
            encoded[name] = policy_name(value) or _pickle(name, value, pickled)
        elif name == "device":
            encoded[name] = str(value)
        elif name == "replay_buffer_class" and value is not None:
            encoded[name] = buffer_name(value) or _pickle(name, value, pickled)
        elif name == "replay_buffer_kwargs" and type(value) is dict:
            plain = {key: item.value if isinstance(item, Enum) else item for key, item in value.items()}
            json_value = _to_json(plain)
            encoded[name] = json_value if json_value is not _UNSET else _pickle(name, value, pickled)
        elif name == "action_noise" and value is not None:
            description = noise_to_json(value)
            encoded[name] = description if description is not None else _pickle(name, value, pickled)
        elif name == "policy_kwargs" and type(value) is dict and set(value) & set(CLASS_ENTRIES):
            rest = _to_json({k: v for k, v in value.items() if k not in CLASS_ENTRIES})
            if rest is _UNSET:
                encoded[name] = _pickle(name, value, pickled)
            else:
                classes = {
                    key: None if value[key] is None else _class_name(f"{name}.{key}", value[key], pickled)
                    for key in CLASS_ENTRIES
                    if key in value
                }
                encoded[name] = {**rest, **classes}
        else:
            json_value = _to_json(value)
            encoded[name] = json_value if json_value is not _UNSET else _pickle(name, value, pickled)
    return encoded, pickled


def _class_name(name: str, value: Any, pickled: dict[str, Any]) -> str | dict[str, str]:
    """The allow-listed name of the class in the entry ``name`` ("policy_kwargs.<key>"), else a pickle."""
    return CLASS_ENTRIES[name.partition(".")[2]][0](value) or _pickle(name, value, pickled)


def _pickle(name: str, value: Any, pickled: dict[str, Any]) -> dict[str, str]:
    pickled[name] = value
    return {PICKLED_KEY: name}


def _to_json(value: Any) -> Any:
    """``value`` in JSON form, or ``_UNSET`` when JSON cannot hold it."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else _UNSET  # keep the file standard JSON
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _to_json(value.item())
    if type(value) in (list, tuple):
        items = [_to_json(item) for item in value]
        if any(item is _UNSET for item in items):
            return _UNSET
        return {TUPLE_KEY: items} if type(value) is tuple else items
    if type(value) is dict and all(isinstance(k, str) and k not in (TUPLE_KEY, PICKLED_KEY) for k in value):
        entries = {key: _to_json(item) for key, item in value.items()}
        return _UNSET if any(item is _UNSET for item in entries.values()) else entries
    return _UNSET


def noise_to_json(noise: Any) -> dict[str, Any] | None:
    """The description of one of easyrl's noise objects, or None for anything else."""
    if type(noise) is NormalActionNoise:
        return {"class": "NormalActionNoise", "mean": noise.mean.tolist(), "sigma": noise.sigma.tolist()}
    if type(noise) is OrnsteinUhlenbeckActionNoise:
        initial = noise.initial_noise
        return {
            "class": "OrnsteinUhlenbeckActionNoise",
            "mean": noise.mean.tolist(),
            "sigma": noise.sigma.tolist(),
            "theta": float(noise.theta),
            "dt": float(noise.dt),
            "initial_noise": None if initial is None else initial.tolist(),
        }
    return None


def activation_name(activation: Any) -> str | None:
    """The allow-listed ``torch.nn`` name of ``activation`` (a class), or None."""
    for name in ACTIVATIONS:
        if activation is getattr(nn, name, None):
            return name
    return None


# ---------------------------------------------------------------------------------------------- decoding
def pickled_names(encoded: Any) -> list[str]:
    """Names of the pickled values that ``encoded`` refers to, in order."""
    if isinstance(encoded, dict):
        if set(encoded) == {PICKLED_KEY}:
            return [str(encoded[PICKLED_KEY])]
        return [name for item in encoded.values() for name in pickled_names(item)]
    if isinstance(encoded, list):
        return [name for item in encoded for name in pickled_names(item)]
    return []


def decode_params(encoded: Any, resolve: Resolver) -> dict[str, Any]:
    """Rebuild the parameters ``encode_params`` wrote; raise ValueError on a malformed description."""
    if not isinstance(encoded, dict):
        raise ValueError("its parameters are not a JSON object")
    params: dict[str, Any] = {}
    for name, value in encoded.items():
        if name == "action_noise" and isinstance(value, dict) and "class" in value:
            params[name] = noise_from_json(value)
        elif name == "replay_buffer_class" and isinstance(value, str):
            params[name] = buffer_from_name(value)
        elif name == "policy_kwargs" and isinstance(value, dict) and set(value) & set(CLASS_ENTRIES):
            kwargs = _from_json(value, resolve)
            for key, (_, from_name) in CLASS_ENTRIES.items():
                if isinstance(value.get(key), str):
                    kwargs[key] = from_name(value[key])
            params[name] = kwargs
        else:
            params[name] = _from_json(value, resolve)
    return params


def _from_json(value: Any, resolve: Resolver) -> Any:
    if isinstance(value, list):
        return [_from_json(item, resolve) for item in value]
    if isinstance(value, dict):
        if set(value) == {TUPLE_KEY} and isinstance(value[TUPLE_KEY], list):
            return tuple(_from_json(item, resolve) for item in value[TUPLE_KEY])
        if set(value) == {PICKLED_KEY} and isinstance(value[PICKLED_KEY], str):
            return resolve(value[PICKLED_KEY])
        return {key: _from_json(item, resolve) for key, item in value.items()}
    return value


def activation_from_name(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"names the activation {name!r}, which is not one of the allowed torch.nn activations "
            f"({', '.join(ACTIVATIONS)})"
        )
    activation: type[nn.Module] = getattr(nn, name)
    return activation


def buffer_name(buffer_class: Any) -> str | None:
    """The allow-listed name of ``buffer_class`` (one of easyrl's replay buffers), or None."""
    return next((name for name, cls in BUFFERS.items() if buffer_class is cls), None)


def buffer_from_name(name: str) -> type[ReplayBuffer]:
    if name not in BUFFERS:
        raise ValueError(
            f"names the replay buffer {name!r}, which is not one of easyrl's ({', '.join(BUFFERS)})"
        )
    return BUFFERS[name]


def extractor_name(extractor_class: Any) -> str | None:
    """The allow-listed name of ``extractor_class`` (one of easyrl's extractors), or None."""
    return next((name for name, cls in EXTRACTORS.items() if extractor_class is cls), None)


def extractor_from_name(name: str) -> type[nn.Module]:
    if name not in EXTRACTORS:
        raise ValueError(
            f"names the features extractor {name!r}, which is not one of easyrl's ({', '.join(EXTRACTORS)})"
        )
    return EXTRACTORS[name]


CLASS_ENTRIES: dict[str, tuple[Callable[[Any], str | None], Callable[[str], type[nn.Module]]]] = {
    "activation_fn": (activation_name, activation_from_name),
    "features_extractor_class": (extractor_name, extractor_from_name),
}
"""The ``policy_kwargs`` entries that hold a class, saved by name from an allow-list: (to name, from name)."""


def noise_from_json(description: dict[str, Any]) -> ActionNoise:
    """Rebuild an allow-listed noise object from ``noise_to_json``'s description."""
    name = description.get("class")
    if name not in NOISES:
        raise ValueError(f"names the action noise class {name!r}, which is not one of {', '.join(NOISES)}")
    arguments = {key: value for key, value in description.items() if key != "class"}
    allowed = {"mean", "sigma"} | (
        {"theta", "dt", "initial_noise"} if name == "OrnsteinUhlenbeckActionNoise" else set()
    )
    if not {"mean", "sigma"} <= set(arguments) <= allowed:
        raise ValueError(f"has an action noise description with the wrong fields ({sorted(arguments)})")
    for key, value in arguments.items():
        if not _numbers(value) and not (key == "initial_noise" and value is None):
            raise ValueError(f"has an action noise whose {key!r} is not a number or a list of numbers")
    try:
        return NOISES[name](**arguments)
    except (ValueError, TypeError) as error:
        raise ValueError(f"has an invalid action noise ({error})") from None


def _numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_numbers(item) for item in value)
    return isinstance(value, int | float) and not isinstance(value, bool)
