"""A model <-> its model file: what ``save`` writes and ``load`` reads back (see docs/model-format.md).

The file holds the constructor parameters as JSON (``easyrl.serialization.params``), the spaces, one
weights member per state dict (``policy``, each optimizer, and ``variables`` such as SAC's entropy
coefficient), and the model's :class:`~easyrl.algorithms.training_state.TrainingState` for an exact
resume. Nothing in it is unpickled unless the caller trusts a pickled parameter by name. This module
uses only the format package's public functions, and finds the algorithm a file names in the registry.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium as gym
import torch

from easyrl.algorithms import replay_file
from easyrl.algorithms.model_envs import check_same_spaces, placeholder_env, restore_normalizer
from easyrl.algorithms.policies import POLICY_FILE
from easyrl.algorithms.registry import algorithm_class, algorithm_names
from easyrl.algorithms.training_state import read_count
from easyrl.envs import EnvLike
from easyrl.normalization import Normalizer
from easyrl.observations import ObsSpace, check_observation_space
from easyrl.serialization import (
    ACTIVATION_KEY,
    LoadedZip,
    ModelFileError,
    PathOrFile,
    decode_params,
    encode_params,
    pickled_member,
    pickled_names,
    read_metadata,
    read_model_zip,
    space_from_json,
    space_to_json,
    untrusted_pickle_error,
    write_model_zip,
)

if TYPE_CHECKING:
    from pathlib import Path

    from easyrl.algorithms.base import OffPolicyAlgorithm

ModelT = TypeVar("ModelT", bound="OffPolicyAlgorithm[Any]")
Fail = Callable[[str], Exception]

POLICY = "policy"
VARIABLES = "variables"
TRAINING_STATE = "training_state"
NORMALIZATION = "normalization"
"""The state-dict member of a normalising model's statistics (float64 tensors; its settings are in the metadata)."""
NOT_PARAMETERS = (TRAINING_STATE, NORMALIZATION)


# ---------------------------------------------------------------------------------------------- saving
def save_model(model: OffPolicyAlgorithm[Any], path: PathOrFile) -> Path | None:
    model._setup()
    params, pickled = encode_params(model.get_params())
    state, tensors = model.training_state.to_file(model._device)
    metadata = {
        "algorithm": model.algorithm_name,
        "params": params,
        "pickled_params": sorted(pickled),
        "env_id": model.env_id,
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "num_envs": model.num_envs,
        "device": str(model._device),
        **state,
    }
    groups = {**get_parameters(model), TRAINING_STATE: tensors}
    if model._normalizer is not None:
        metadata[NORMALIZATION], arrays = model._normalizer.to_file()
        groups[NORMALIZATION] = {name: torch.from_numpy(array) for name, array in arrays.items()}
    return write_model_zip(path, metadata, groups, pickled)


# ---------------------------------------------------------------------------------------------- parameters
def _optimizers(model: OffPolicyAlgorithm[Any]) -> dict[str, torch.optim.Optimizer]:
    found = {
        k: v for k, v in vars(model).items() if isinstance(v, torch.optim.Optimizer) and not k.startswith("_")
    }
    return dict(sorted(found.items()))


def _variables(model: OffPolicyAlgorithm[Any]) -> dict[str, torch.Tensor]:
    found = {k: v for k, v in vars(model).items() if isinstance(v, torch.Tensor) and not k.startswith("_")}
    return dict(sorted(found.items()))


def get_parameters(model: OffPolicyAlgorithm[Any]) -> dict[str, dict[str, Any]]:
    model._setup()
    parameters: dict[str, dict[str, Any]] = {POLICY: model.policy.state_dict()}
    parameters.update({name: optimizer.state_dict() for name, optimizer in _optimizers(model).items()})
    variables = _variables(model)
    if variables:
        parameters[VARIABLES] = {name: tensor.detach() for name, tensor in variables.items()}
    return parameters


def set_parameters(
    model: OffPolicyAlgorithm[Any], source: PathOrFile | Mapping[str, Mapping[str, Any]], exact_match: bool
) -> None:
    model._setup()
    if isinstance(source, Mapping):
        _apply_parameters(
            model, source, exact_match, lambda problem: ValueError(f"set_parameters: {problem}")
        )
        return
    loaded = read_model_zip(source, map_location="cpu")
    groups = {name: sd for name, sd in loaded.state_dicts.items() if name not in NOT_PARAMETERS}
    _apply_parameters(model, groups, exact_match, _failure(loaded.path))


def _apply_parameters(
    model: OffPolicyAlgorithm[Any], groups: Mapping[str, Mapping[str, Any]], exact_match: bool, fail: Fail
) -> None:
    optimizers, variables = _optimizers(model), _variables(model)
    known = {POLICY, *optimizers, *([VARIABLES] if variables else [])}
    unknown, missing = sorted(set(groups) - known), sorted(known - set(groups))
    if unknown or (exact_match and missing):
        problem = (
            f"has the parameter group(s) {unknown}" if unknown else f"lacks the parameter group(s) {missing}"
        )
        raise fail(f"{problem}, but a {model.algorithm_name} has {sorted(known)}.")
    for name, state in groups.items():
        try:
            if name == POLICY:
                model.policy.load_state_dict(state, strict=exact_match)
            elif name == VARIABLES:
                _load_variables(variables, state, exact_match)
            else:
                _load_optimizer(optimizers[name], state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            detail = " ".join(str(error).split())[:300]
            raise fail(
                f"has {name!r} weights that do not fit this {model.algorithm_name} ({detail}); were the networks "
                "built with other policy_kwargs?"
            ) from None


def _load_variables(variables: dict[str, torch.Tensor], state: Mapping[str, Any], exact_match: bool) -> None:
    if exact_match and set(state) != set(variables):
        raise ValueError(f"expected the variables {sorted(variables)}, got {sorted(state)}")
    for key, value in state.items():
        target = variables[key]
        if not isinstance(value, torch.Tensor) or value.shape != target.shape:
            raise ValueError(f"variable {key!r} must be a tensor of shape {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(value)


def _load_optimizer(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    optimizer.load_state_dict(dict(state))
    # load_state_dict checks the groups, not the tensors: a wrong shape would only fail at the next step.
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != parameter.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {tuple(value.shape)}")


# ---------------------------------------------------------------------------------------------- loading
def load_model(
    cls: type[ModelT],
    path: PathOrFile,
    env: EnvLike | None,
    device: str | torch.device,
    custom_objects: Mapping[str, Any] | None,
    trusted_pickles: Iterable[str] | bool,
    overrides: Mapping[str, Any],
) -> ModelT:
    custom = dict(custom_objects or {})
    try:
        loaded = read_model_zip(path, trusted_pickles, map_location="cpu")
    except ModelFileError as error:
        if isinstance(path, str | os.PathLike) and _is_replay_buffer_file(path):
            raise ModelFileError(
                error.path,
                "is a replay buffer file, not a model: load it into a model with model.load_replay_buffer().",
            ) from None
        raise
    fail = _failure(loaded.path)
    if loaded.metadata.get("contents") == POLICY_FILE:
        raise fail(
            "is a policy file (policy.save), not a model: load it with Policy.load, e.g. MlpPolicy.load(path)."
        )
    metadata = loaded.metadata
    algorithm = _algorithm(cls, metadata.get("algorithm"), fail)
    params = _params(algorithm, loaded, custom, fail)
    observation_space, action_space = _spaces(metadata, fail)
    num_envs = _num_envs(metadata, params, loaded.state_dicts.get(TRAINING_STATE, {}), fail)
    try:
        # Anything the file's settings (or the overrides) make go wrong while the model is built is the
        # file's error: an invalid value, a value of the wrong type, too large a buffer.
        model = algorithm(**{**params, "device": device})
        model.set_params(**overrides)
        no_env = env is None and model._param("env") is None
        if env is not None:
            model.env = env
        stand_in = (
            placeholder_env(loaded.path, model.algorithm_name, observation_space, action_space, num_envs)
            if no_env
            else None
        )
        model._setup(stand_in)
    except Exception as error:
        kind = "" if isinstance(error, ValueError) else f"{type(error).__name__}: "
        raise fail(f"could not be loaded: {kind}{error}") from None
    if no_env:
        env_id = metadata.get("env_id")
        model.env_id = env_id if isinstance(env_id, str) else None
    actual = (model.observation_space, model.action_space)
    if env is None:  # the env the file names does not match the file's spaces: the file is damaged
        try:
            check_same_spaces(
                (observation_space, action_space), actual, "The env the file names", loaded.path
            )
        except ValueError as error:
            raise fail(f"could not be loaded: {error}") from None
    check_same_spaces((observation_space, action_space), actual, "The env passed to load()", loaded.path)
    groups = {name: sd for name, sd in loaded.state_dicts.items() if name not in NOT_PARAMETERS}
    _apply_parameters(model, groups, True, fail)
    _restore_normalizer(model, metadata, loaded.state_dicts.get(NORMALIZATION), fail)
    _restore_training_state(
        model, metadata, loaded.state_dicts.get(TRAINING_STATE, {}), num_envs, fail, no_env
    )
    return model


MAX_ENVS_WITHOUT_STATE = 1024
"""The most envs a file with no training state to count them may ask a model to create on loading."""


def _num_envs(metadata: dict[str, Any], params: dict[str, Any], state: Mapping[str, Any], fail: Fail) -> int:
    """The number of envs the file's model ran, checked against what the file holds, before any is made."""
    try:
        num_envs = read_count(metadata, "num_envs") or 1
    except ValueError as error:
        raise fail(f"has an {error}; the file is damaged.") from None
    saved = [t for name, t in state.items() if name == "last_obs" or name.startswith("last_obs.")]
    counted = None
    if saved and isinstance(saved[0], torch.Tensor) and saved[0].dim() >= 1:
        counted = int(saved[0].shape[0])
    if counted is not None and counted != num_envs:
        raise fail(
            f"says it ran {num_envs} env(s) but holds the last observations of {counted}; it is damaged."
        )
    if counted is None and num_envs > MAX_ENVS_WITHOUT_STATE:
        raise fail(f"asks for {num_envs} envs without a training state that holds them; it is damaged.")
    n_envs = params.get("n_envs", 1)
    if isinstance(params.get("env"), str) and n_envs != num_envs:
        raise fail(f"has n_envs={n_envs!r} but says its model ran {num_envs} env(s); it is damaged.")
    return num_envs


def _is_replay_buffer_file(path: str | os.PathLike[str]) -> bool:
    try:
        return read_metadata(path).get("kind") == replay_file.KIND
    except (OSError, ValueError):
        return False


def _failure(path: str) -> Fail:
    return lambda problem: ModelFileError(path, problem)


def _algorithm(cls: type[ModelT], name: Any, fail: Fail) -> type[ModelT]:
    known = algorithm_class(name)
    if known is None:
        raise fail(
            f"holds an unknown algorithm {name!r}; easyrl reads models of {', '.join(algorithm_names())}."
        )
    if cls.algorithm_name == name:
        return cls
    if cls.algorithm_name == "OffPolicyAlgorithm" and issubclass(known, cls):
        found: type[ModelT] = known
        return found
    raise fail(
        f"holds a {name} model, not a {cls.algorithm_name} one: load it with {name}.load(...) or easyrl.load(...)."
    )


def _params(algorithm: type[ModelT], loaded: LoadedZip, custom: dict[str, Any], fail: Fail) -> dict[str, Any]:
    encoded = loaded.metadata.get("params")
    if not isinstance(encoded, dict):
        raise fail("has no parameters in its metadata.json; the file is damaged.")
    fields = [field.name for field in dataclasses.fields(algorithm)]
    unknown = sorted(set(encoded) - set(fields))
    if unknown:
        raise fail(
            f"has parameter(s) {', '.join(unknown)} that this {algorithm.__name__} does not know; it was probably "
            "saved by a newer easyrl (pip install --upgrade easyrl)."
        )
    valid_custom = set(fields) | set(pickled_names(encoded))
    for name in sorted(set(custom) - valid_custom):
        raise ValueError(
            f"custom_objects[{name!r}] replaces nothing: {loaded.path} has no parameter or pickled value of that name."
        )

    def resolve(name: str) -> Any:
        if name in custom:
            return custom[name]
        if name in loaded.pickled:
            return loaded.pickled[name]
        if name in loaded.untrusted_pickles:
            raise untrusted_pickle_error(loaded.path, pickled_member(name), name)
        raise fail(f"refers to a pickled value {name!r} that it does not contain; the file is damaged.")

    top_level = {name: value for name, value in encoded.items() if name not in custom}
    if "policy_kwargs" in custom:
        custom.pop(ACTIVATION_KEY, None)
    try:
        params = decode_params(top_level, resolve)
    except ModelFileError:
        raise
    except ValueError as error:
        raise fail(f"{error}.") from None
    return {**params, **{name: value for name, value in custom.items() if name in fields}}


def _spaces(metadata: dict[str, Any], fail: Fail) -> tuple[ObsSpace, gym.spaces.Box]:
    spaces = []
    for key in ("observation_space", "action_space"):
        try:
            space = space_from_json(metadata.get(key))
            if key == "observation_space":
                space = check_observation_space(space, "easyrl")
        except ValueError as error:
            raise fail(f"has an invalid {key} ({error}).") from None
        if key == "action_space" and not isinstance(space, gym.spaces.Box):
            raise fail(f"has a {type(space).__name__} {key}; easyrl models have Box action spaces.")
        spaces.append(space)
    return spaces[0], spaces[1]  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- learner state
def _restore_normalizer(
    model: OffPolicyAlgorithm[Any], metadata: dict[str, Any], tensors: Mapping[str, Any] | None, fail: Fail
) -> None:
    if NORMALIZATION not in metadata and tensors is None:
        return
    if tensors is None or NORMALIZATION not in metadata:
        raise fail(
            "has normalisation settings without statistics, or statistics without settings; the file is damaged."
        )
    arrays = {
        name: value.numpy() if isinstance(value, torch.Tensor) else value for name, value in tensors.items()
    }
    try:
        normalizer = Normalizer.from_file(
            metadata[NORMALIZATION], arrays, model.observation_space, model.num_envs
        )
    except (TypeError, ValueError) as error:
        raise fail(f"has damaged normalisation statistics ({error}).") from None
    restore_normalizer(model, normalizer)


def _restore_training_state(
    model: OffPolicyAlgorithm[Any],
    metadata: dict[str, Any],
    tensors: Mapping[str, Any],
    num_envs: int,
    fail: Fail,
    no_env: bool,
) -> None:
    state = model.training_state
    try:
        state.restore(metadata, dict(tensors), num_envs, model.observation_space, model._device)
        if not no_env:
            model._resume_envs()
    except (
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        IndexError,
        AttributeError,
        OverflowError,
    ) as error:
        raise fail(f"has a damaged training state ({type(error).__name__}: {error}).") from None
