"""Stable-Baselines3's SAC, TD3 and DDPG models, imported without running their pickles (``SAC.load_sb3``).

``easyrl.serialization.sb3`` reads the file (plain JSON, weights-only tensors); this module turns it into
an easyrl model of the same algorithm: the hyperparameters SB3 stores as plain JSON become constructor
parameters, the networks' weights are mapped onto easyrl's (SB3's separate critics ``qf0``, ``qf1`` are
stacked into the one batched :class:`~easyrl.critics.CriticEnsemble`), the optimizers' Adam moments
follow their parameters the same way, and SAC's ``log_ent_coef`` and the counters are carried over.
Fields SB3 holds only as pickles are never decoded; those that change what the model does are named
in an :class:`SB3ImportWarning` and in ``model.sb3_import`` with what to pass instead.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium as gym
import numpy as np
import torch

from easyrl.algorithms import sb3_weights
from easyrl.algorithms.model_envs import placeholder_env
from easyrl.algorithms.registry import algorithm_class
from easyrl.envs import EnvLike
from easyrl.serialization import ModelFileError, PathOrFile
from easyrl.serialization.params import ACTIVATIONS, activation_from_name
from easyrl.serialization.sb3 import SB3File, plain_box, read_sb3_zip

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm

ModelT = TypeVar("ModelT", bound="OffPolicyAlgorithm[Any]")

_COMMON = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "gradient_steps",
           "n_steps", "seed", "n_envs")  # fmt: skip
_OWN = {
    "SAC": ("ent_coef", "target_update_interval", "target_entropy", "use_sde", "sde_sample_freq", "use_sde_at_warmup"),
    "TD3": ("policy_delay", "target_policy_noise", "target_noise_clip"),
}  # fmt: skip
_POLICY_KWARGS = ("net_arch", "n_critics", "share_features_extractor", "normalize_images", "features_extractor_kwargs",
                  "log_std_init", "use_expln", "clip_mean", "full_std")  # fmt: skip
_SB3_EXTRACTORS = (
    "FlattenExtractor",
    "NatureCNN",
    "CombinedExtractor",
)  # easyrl picks the same from the space
_ADVICE = {
    "learning_rate": "learning_rate schedule: not imported (SB3 stores it pickled), pass learning_rate=...",
    "train_freq": "train_freq: not imported (SB3 stores it pickled); easyrl's default 1 is used, pass train_freq=...",
    "action_noise": "action_noise: not imported (SB3 stores it pickled), pass action_noise=...",
}


class SB3ImportWarning(UserWarning):
    """Some settings of an imported SB3 model could not be carried over; the message says what to pass."""


@dataclass
class SB3Import:
    """What ``load_sb3`` took from an SB3 file (``model.sb3_import``)."""

    path: str
    sb3_version: str
    algorithm: str
    params: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    """Every field not imported, with why; those that matter carry the argument to pass instead."""
    warnings: list[str] = field(default_factory=list)
    """The skipped fields that change what the model does (also raised as an :class:`SB3ImportWarning`)."""
    system_info: str = ""


class LoadSB3:
    """``SAC.load_sb3``: :func:`load_sb3` bound to the class it is read from (typed as that class)."""

    def __get__(self, instance: object, owner: type[ModelT]) -> Callable[..., ModelT]:
        bound = functools.partial(load_sb3, owner)
        bound.__doc__ = load_sb3.__doc__
        return bound


def load_sb3(
    cls: type[ModelT],
    path: PathOrFile,
    env: EnvLike | None = None,
    device: str | torch.device = "auto",
    **overrides: Any,
) -> ModelT:
    """A Stable-Baselines3 SAC, TD3 or DDPG model file (SB3 >= 2.0), as an easyrl model; nothing is unpickled.

    The weights (actor, critics, targets), optimizer states, SAC's entropy coefficient, the plain
    hyperparameters and the step counters are imported; the model predicts as SB3's does and can
    continue training. ``easyrl.import_sb3`` reads any of the three (the file says which).

    Args:
        env: the env to train on, as an id or a gymnasium env. Needed when the file's spaces cannot be
            read without unpickling (SB3 keeps them pickled; easyrl reads a ``Box``'s plain description).
        device: where to put the networks.
        overrides: constructor parameters to set, e.g. ``learning_rate=...`` for one SB3 kept pickled.

    Warns:
        SB3ImportWarning: naming settings SB3 stored only pickled that change training, with what to pass.

    Raises:
        ModelFileError: a damaged or foreign file, or one of another algorithm.
    """
    sb3 = read_sb3_zip(path)

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(sb3.path, problem)

    algorithm = _algorithm(cls, sb3, fail)
    report = SB3Import(sb3.path, sb3.version, algorithm.algorithm_name, {}, system_info=sb3.system_info)
    params = _params(algorithm, sb3, report, fail)
    report.params = dict(params)
    spaces = plain_box(sb3.serialized.get("observation_space")), plain_box(sb3.serialized.get("action_space"))
    if env is None and overrides.get("env") is None and (spaces[0] is None or spaces[1] is None):
        missing = " and ".join(k for k, s in zip(("observation", "action"), spaces, strict=True) if s is None)
        raise ValueError(
            f"{sb3.path} stores its {missing} space only as a pickle, which easyrl never loads: pass the env it "
            f"was trained on, {algorithm.__name__}.load_sb3(path, env='<env id>') or env=<gymnasium.Env>."
        )
    model = algorithm(**{**params, **overrides, "device": device})
    if env is not None:
        model.env = env
    stand_in = None
    if model._param("env") is None:
        stand_in = placeholder_env(sb3.path, algorithm.algorithm_name, spaces[0], spaces[1], model.n_envs)  # type: ignore[arg-type]
    try:
        model._setup(stand_in)
    except ValueError as error:
        raise fail(f"could not be imported: {error}") from None
    _check_spaces(spaces, (model.observation_space, model.action_space), sb3.path)
    sb3_weights.load_weights(model, sb3, fail)
    share = bool(params["policy_kwargs"].get("share_features_extractor", False))
    sb3_weights.load_optimizers(model, sb3, report.skipped, share)
    state = model.training_state
    for name, key in (("num_timesteps", "num_timesteps"), ("n_updates", "_n_updates"),
                      ("episode_num", "_episode_num"), ("total_timesteps", "_total_timesteps")):  # fmt: skip
        if isinstance(sb3.data.get(key), int):
            setattr(state, name, sb3.data[key])
    if report.warnings:
        warnings.warn(
            f"{sb3.path}: " + "; ".join(report.warnings) + " (to load_sb3).", SB3ImportWarning, stacklevel=2
        )
    model.sb3_import = report  # type: ignore[attr-defined]
    return model


def _check_spaces(saved: tuple[Any, Any], actual: tuple[Any, Any], path: str) -> None:
    """The env's spaces against the file's plain descriptions: shapes, and the action bounds (as printed by
    numpy, so compared to float32 precision)."""
    for name, expected, got in zip(("observation", "action"), saved, actual, strict=True):
        if expected is None:
            continue
        same = isinstance(got, gym.spaces.Box) and got.shape == expected.shape
        if same and name == "action":
            same = np.allclose(got.low, expected.low, rtol=1e-6) and np.allclose(
                got.high, expected.high, rtol=1e-6
            )
        if not same:
            raise ValueError(f"The env has the {name} space {got}, but {path} was trained on {expected}.")


# ---------------------------------------------------------------------------------------------- settings
def _sb3_algorithm(sb3: SB3File, fail: Callable[[str], ModelFileError]) -> str:
    module = str(sb3.serialized.get("policy_class", {}).get("__module__", ""))
    policy = sb3.state_dicts.get("policy", {})
    if module and not module.startswith(("stable_baselines3.sac", "stable_baselines3.td3")):
        raise fail(
            f"holds a model of {module.rsplit('.policies', 1)[0]}; easyrl imports SB3's SAC, TD3 and DDPG."
        )
    if module.startswith("stable_baselines3.sac") or any(k.startswith("actor.latent_pi.") for k in policy):
        return "SAC"
    if not any(k.startswith("actor_target.") for k in policy):
        raise fail("has no policy weights of SB3's SAC, TD3 or DDPG (policy.pth is missing or foreign).")
    no_smoothing = sb3.data.get("target_policy_noise") == 0 or sb3.data.get("target_noise_clip") == 0
    ddpg = sb3.data.get("policy_delay") == 1 and no_smoothing
    return "DDPG" if ddpg and _n_critics(policy) == 1 else "TD3"


def _algorithm(cls: type[ModelT], sb3: SB3File, fail: Callable[[str], ModelFileError]) -> type[ModelT]:
    name = _sb3_algorithm(sb3, fail)
    if cls.algorithm_name == "OffPolicyAlgorithm":
        found: type[ModelT] = algorithm_class(name)  # type: ignore[assignment]
        return found
    same_family = {cls.algorithm_name, name} <= {"TD3", "DDPG"}  # DDPG is TD3 with settings, all imported
    if cls.algorithm_name != name and not same_family:
        raise fail(
            f"holds an SB3 {name} model, not a {cls.algorithm_name}: import it with {name}.load_sb3(path)."
        )
    return cls


def _params(
    algorithm: type[Any], sb3: SB3File, report: SB3Import, fail: Callable[[str], ModelFileError]
) -> dict[str, Any]:
    family = "SAC" if algorithm.algorithm_name == "SAC" else "TD3"
    params: dict[str, Any] = {}
    for key in (*_COMMON, *_OWN[family], "_stats_window_size"):
        if key in sb3.data and sb3.data[key] is not None:
            params[key.lstrip("_")] = sb3.data[key]
    if sb3.train_freq is not None:
        params["train_freq"] = sb3.train_freq if sb3.train_freq[1] == "episode" else sb3.train_freq[0]
    for key, description in sb3.serialized.items():
        if key == "train_freq" and sb3.train_freq is not None:
            continue
        if key in _ADVICE:
            report.skipped[key] = _ADVICE[key]
            report.warnings.append(_ADVICE[key])
        elif key not in ("policy_kwargs", "replay_buffer_class"):
            report.skipped[key] = (
                f"stored pickled by SB3 ({description.get(':type:', '?')}); not needed by easyrl"
            )
    if ".her." in str(sb3.serialized.get("replay_buffer_class", {}).get("__module__", "")):
        _skip(
            report,
            "replay_buffer_class",
            "HerReplayBuffer: not imported, pass replay_buffer_class=HerReplayBuffer",
        )
    if sb3.data.get("replay_buffer_kwargs"):
        _skip(
            report,
            "replay_buffer_kwargs",
            "replay_buffer_kwargs: not imported, pass replay_buffer_kwargs=...",
        )
    params["policy_kwargs"] = _policy_kwargs(sb3, family, report, fail)
    return params


def _skip(report: SB3Import, key: str, advice: str) -> None:
    report.skipped[key] = advice
    report.warnings.append(advice)


def _policy_kwargs(
    sb3: SB3File, family: str, report: SB3Import, fail: Callable[[str], ModelFileError]
) -> dict[str, Any]:
    given = sb3.data.get("policy_kwargs") or sb3.serialized.get("policy_kwargs") or {}
    kwargs: dict[str, Any] = {key: given[key] for key in _POLICY_KWARGS if key in given}
    activation = given.get("activation_fn")
    if activation is not None:
        match = re.fullmatch(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>", str(activation))
        if match and match.group(1) in ACTIVATIONS:
            kwargs["activation_fn"] = activation_from_name(match.group(1))
        else:
            _skip(report, "policy_kwargs.activation_fn", f"activation_fn {activation}: not imported, "
                  "pass policy_kwargs=dict(activation_fn=...)")  # fmt: skip
    extractor = str(given.get("features_extractor_class", ""))
    if extractor and not any(f".{name}'>" in extractor for name in _SB3_EXTRACTORS):
        raise fail(f"uses the features extractor {extractor}, which easyrl cannot rebuild without its code.")
    for key in sorted(
        set(given) - set(kwargs) - {"activation_fn", "features_extractor_class", "use_sde", ":type:"}
    ):
        _skip(report, f"policy_kwargs.{key}", f"policy_kwargs[{key!r}]: not imported")
    policy = sb3.state_dicts.get("policy")
    if policy is None:
        raise fail("has no policy.pth member: it holds no networks.")
    kwargs["n_critics"] = _n_critics(policy)
    # The widths come from the weights themselves (SB3 may not store net_arch when it is the default).
    pi = _hidden(policy, "actor.latent_pi.") if family == "SAC" else _hidden(policy, "actor.mu.")[:-1]
    qf = _hidden(policy, "critic.qf0.")[:-1]  # the critics' and TD3's mu's last Linear is the output layer
    kwargs["net_arch"] = pi if pi == qf else {"pi": pi, "qf": qf}
    return kwargs


def _n_critics(policy: dict[str, Any]) -> int:
    return len({k.split(".")[1] for k in policy if re.match(r"critic\.qf\d+\.", k)})


def _hidden(policy: dict[str, Any], prefix: str) -> list[int]:
    """The output widths of the Linear layers ``prefix<index>.weight``, in order."""
    layers = sorted(
        int(k[len(prefix) :].split(".")[0])
        for k in policy
        if re.fullmatch(re.escape(prefix) + r"\d+\.weight", k)
    )
    return [int(policy[f"{prefix}{i}.weight"].shape[0]) for i in layers]
