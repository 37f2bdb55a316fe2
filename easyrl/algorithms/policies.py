"""SB3's policy surface: ``policy.predict``, ``policy.save`` / ``Policy.load`` as a safe file, and ``model.actor``.

:class:`BasePolicy` is what SAC's and TD3's policies (the ``nn.Module`` holding actor, critics and
targets) share: a model describes its policy when it builds it (the spaces, and the parameters that
rebuild the networks), so the policy acts on its own, in the env's action bounds, and saves itself.
A policy file is a model file (``easyrl.serialization``) with the description as JSON and one
weights member, ``policy.pt``, read with ``torch.load(weights_only=True)``; it never holds a pickle.
Loading rebuilds the networks with the algorithm's own builder, found by name in the registry, so
this module names no algorithm. :class:`PolicyAttributes` gives the estimators SB3's
``model.actor``, ``model.critic`` and ``model.critic_target``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from easyrl import validation as v
from easyrl.algorithms.export import export_policy
from easyrl.algorithms.registry import algorithm_class, algorithm_names
from easyrl.critics import CriticEnsemble
from easyrl.networks import Policy
from easyrl.observations import ObsSpace, as_batch, check_observation_space, to_tensor
from easyrl.serialization import (
    ModelFileError,
    PathOrFile,
    decode_params,
    encode_params,
    pickled_names,
    read_model_zip,
    space_from_json,
    space_to_json,
    write_model_zip,
)

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm

PolicyT = TypeVar("PolicyT", bound=Policy)

POLICY_FILE = "policy"
"""The value of ``metadata["contents"]`` in a policy file (a model file has no such entry)."""
WEIGHTS = "policy"
"""The weights member of a policy file, and of a model file: ``policy.pt``."""
_BUILT_FROM = ("policy", "policy_kwargs")
"""The parameters a policy file cannot do without (the others that shape networks have defaults)."""


class BasePolicy(Policy):
    """A policy that knows its spaces: it predicts in the env's action bounds, and saves and loads itself.

    The networks (``actor``, ``critic``, ``critic_target``, and TD3's ``actor_target``) are set by
    the algorithm's policy class. Actions inside the networks are scaled to [-1, 1].
    """

    policy_name: ClassVar[str] = "MlpPolicy"
    """The SB3 policy name this class stands for as a ``policy`` argument (SB3: ``MlpPolicy = SACPolicy``)."""

    observation_space: ObsSpace
    action_space: gym.spaces.Box
    predict_rng: torch.Generator | None = None
    """The generator of stochastic ``predict`` calls: a model's own (``model.predict`` shares it); for a
    policy loaded on its own, None, which is torch's global generator, as in SB3."""
    _description: dict[str, Any] | None = None

    def describe(self, model: OffPolicyAlgorithm[Any]) -> Self:
        """Record what rebuilds this policy: ``model``'s algorithm, parameters and spaces; returns ``self``.

        Called by the algorithm's ``_build_policy``. A policy class given as ``policy`` (SB3's
        ``SAC(CnnPolicy, env)``) must be one of this algorithm's, and the policy becomes an instance of it.
        """
        argument = model._param("policy")
        if isinstance(argument, type):
            if not issubclass(argument, type(self)):
                name = v.policy_name(argument)
                raise ValueError(
                    f"policy={argument.__module__}.{argument.__qualname__} is another algorithm's policy; "
                    f"{model.algorithm_name} builds a {type(self).__name__}: pass "
                    f"easyrl.{model.algorithm_name.lower()}.policies.{name} or the name {name!r}."
                )
            self.__class__ = argument  # adds no state: only its name differs (SB3's CnnPolicy is a class)
        encoded, _ = encode_params(model.get_params())
        self._description = {
            "algorithm": model.algorithm_name,
            # A pickled value (a callable learning rate, say) never shapes the networks: it is left out.
            "params": {k: p for k, p in encoded.items() if k != "env" and not pickled_names(p)},
            "unsaveable": [k for k in _BUILT_FROM if pickled_names(encoded.get(k))],
        }
        self.observation_space, self.action_space = model.observation_space, model.action_space
        state = vars(model).get("training_state")
        self.predict_rng = None if state is None else state.predict_rng
        return self

    # ------------------------------------------------------------------ acting
    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1], shape (B, action_dim), for an observation batch as tensors (SB3's ``forward``)."""
        return self.act(obs, deterministic, self.predict_rng)

    def set_training_mode(self, mode: bool) -> None:
        """``train(mode)``, SB3's name; easyrl's networks behave the same in both modes."""
        self.train(mode)

    def scale_action(self, action: np.ndarray) -> np.ndarray:
        """Actions in the env's bounds -> [-1, 1]."""
        low, high = self.action_space.low, self.action_space.high
        return 2.0 * ((action - low) / (high - low)) - 1.0

    def unscale_action(self, scaled_action: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] -> the env's bounds (not clipped)."""
        low, high = self.action_space.low, self.action_space.high
        return low + (0.5 * (scaled_action + 1.0) * (high - low))

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation or a batch, in the env's action bounds; returns ``(actions, state)``.

        The same as ``model.predict`` for the observations the networks read: a model that normalises
        its observations (``normalize=...``) gives its policy normalised ones, as SB3's ``VecNormalize``
        does. ``state`` is passed through (no recurrent state).
        """
        obs, single = as_batch(observation, self.observation_space)
        device = next(self.parameters()).device
        with torch.inference_mode():
            scaled = self.act(to_tensor(obs, device), deterministic, self.predict_rng)
        actions = self.unscale_action(scaled.cpu().numpy().reshape(-1, *self.action_space.shape))
        actions = np.clip(actions, self.action_space.low, self.action_space.high)
        actions = actions.astype(self.action_space.dtype, copy=False)
        return (actions[0] if single else actions), state

    # ------------------------------------------------------------------ files
    def save(self, path: PathOrFile) -> Path | None:
        """Write the policy to a zip file (``.zip`` added if missing), atomically; returns its path.

        The file holds the spaces and the parameters that rebuild the networks as JSON, and the weights
        as ``policy.pt``; no pickles, so loading it runs no code. Policies whose ``policy_kwargs`` hold
        a class outside easyrl's allow-lists cannot be saved this way: use ``model.save``.
        """
        description = self._described()
        if description["unsaveable"]:
            raise TypeError(
                f"this policy's {' and '.join(description['unsaveable'])} hold a class that a policy file "
                "cannot name (policy files hold no pickles); save the model with model.save(...) instead, "
                "or use easyrl's activations and features extractors."
            )
        metadata = {
            "contents": POLICY_FILE,
            "algorithm": description["algorithm"],
            "params": description["params"],
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
        }
        return write_model_zip(path, metadata, {WEIGHTS: self.state_dict()})

    @classmethod
    def load(cls, path: PathOrFile, device: str | torch.device = "auto") -> Self:
        """The policy in a file of ``policy.save`` (or the policy of a model file), on ``device``.

        Runs no code from the file. Called on an algorithm's class (``easyrl.sac.policies.MlpPolicy``),
        the file must hold that algorithm's policy.

        Raises:
            ModelFileError: the file is damaged or foreign, or holds another kind of policy.
        """
        loaded = read_model_zip(path, map_location="cpu")  # pickled members are listed, never loaded

        def fail(problem: str) -> ModelFileError:
            return ModelFileError(loaded.path, problem)

        metadata = loaded.metadata
        if metadata.get("contents") == POLICY_FILE and loaded.untrusted_pickles:
            raise fail("has pickled members, which a policy file never has; it was not written by easyrl.")
        if WEIGHTS not in loaded.state_dicts:
            raise fail(f"has no {WEIGHTS}.pt member: it holds no policy.")
        model = _stand_in_model(metadata, fail)
        try:
            policy = build_policy(model, *_spaces(metadata))
        except ValueError as error:
            raise fail(f"describes a policy that easyrl cannot build ({error}).") from None
        try:
            policy.load_state_dict(loaded.state_dicts[WEIGHTS])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as error:
            detail = " ".join(str(error).split())[:300]
            raise fail(f"has weights that do not fit the policy it describes ({detail}).") from None
        if not isinstance(policy, cls):
            if not issubclass(cls, type(policy)):
                raise fail(
                    f"holds a {model.algorithm_name} policy ({type(policy).__name__}), not a {cls.__name__}: "
                    f"load it with easyrl.{model.algorithm_name.lower()}.policies.MlpPolicy.load."
                )
            policy.__class__ = cls  # the class it was loaded as, as in SB3 (it adds no state)
        assert isinstance(policy, cls)
        return policy.to(v.resolve_device(device))

    def _described(self) -> dict[str, Any]:
        if self._description is None:
            raise RuntimeError("this policy was built outside a model: it does not know its spaces.")
        return self._description


def describe(policy: PolicyT, model: OffPolicyAlgorithm[Any]) -> PolicyT:
    """``policy``, described by ``model`` when it is a :class:`BasePolicy` (what a model does with the policy it builds)."""
    if isinstance(policy, BasePolicy):
        policy.describe(model)
    return policy


def build_policy(
    model: OffPolicyAlgorithm[Any], observation_space: ObsSpace, action_space: gym.spaces.Box
) -> BasePolicy:
    """``model``'s policy networks for these spaces (freshly initialised), without building the rest.

    Raises ValueError for parameters that do not describe a policy (unknown ``policy_kwargs``, say).
    """
    model.observation_space, model.action_space = observation_space, action_space
    kwargs = v.policy_kwargs(model.policy_kwargs)
    v.check_keys(kwargs.keys(), model.policy_kwargs_keys, "policy_kwargs")
    with torch.random.fork_rng(devices=[]):  # the weights are loaded next; the global RNG stays the user's
        policy = model._build_policy(observation_space, int(np.prod(action_space.shape)), kwargs)
    if not isinstance(policy, BasePolicy):
        raise ValueError(f"{model.algorithm_name} builds a {type(policy).__name__}, which cannot be saved")
    return policy.describe(model)


def _stand_in_model(metadata: dict[str, Any], fail: Any) -> OffPolicyAlgorithm[Any]:
    """An unbuilt estimator of the file's algorithm, with the file's parameters (none of them pickled)."""
    name = metadata.get("algorithm")
    algorithm = algorithm_class(name)
    if algorithm is None:
        raise fail(f"names the algorithm {name!r}, which is not one of {', '.join(algorithm_names())}.")
    encoded = metadata.get("params")
    if not isinstance(encoded, dict):
        raise fail("has no parameters (its metadata.json has no 'params' object).")
    fields = {field.name for field in dataclasses.fields(algorithm)}
    unknown = sorted(set(encoded) - fields)
    if unknown:
        raise fail(
            f"has parameter(s) {', '.join(unknown)} that this {name} does not know; it was probably saved by "
            "a newer easyrl (pip install --upgrade easyrl)."
        )
    pickled = [key for key in _BUILT_FROM if pickled_names(encoded.get(key))]
    if pickled:
        raise fail(
            f"holds its {' and '.join(pickled)} as a pickle, which a policy is never loaded from; load the "
            f"model with {name}.load(path, trusted_pickles=...) if you trust the file."
        )

    def no_pickles(pickled_name: str) -> Any:
        raise ValueError(f"refers to the pickled value {pickled_name!r}")

    kept = {key: value for key, value in encoded.items() if key != "env" and not pickled_names(value)}
    try:
        params = decode_params(kept, no_pickles)
    except ValueError as error:
        raise fail(f"has invalid parameters ({error}).") from None
    model: OffPolicyAlgorithm[Any] = algorithm(**params)
    return model


def _spaces(metadata: dict[str, Any]) -> tuple[ObsSpace, gym.spaces.Box]:
    observation_space = check_observation_space(space_from_json(metadata.get("observation_space")), "easyrl")
    action_space = space_from_json(metadata.get("action_space"))
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"its action space is a {type(action_space).__name__}, not a Box")
    return observation_space, action_space


# ---------------------------------------------------------------------------------------------- estimators
class _Networks(Protocol):
    @property
    def actor(self) -> nn.Module: ...
    @property
    def critic(self) -> CriticEnsemble: ...
    @property
    def critic_target(self) -> nn.Module: ...


class _HasPolicy(Protocol):
    @property
    def policy(self) -> _Networks: ...


class PolicyAttributes:
    """SB3's ``model.actor``, ``model.critic`` and ``model.critic_target``: the policy's networks.

    Read-only; reading one builds the model on first use, as ``model.policy`` does.
    """

    @property
    def actor(self: _HasPolicy) -> nn.Module:
        """The actor network (``model.policy.actor``)."""
        return self.policy.actor

    @property
    def critic(self: _HasPolicy) -> CriticEnsemble:
        """The critics, one batched ensemble (``model.policy.critic``)."""
        return self.policy.critic

    @property
    def critic_target(self: _HasPolicy) -> nn.Module:
        """The target critics (``model.policy.critic_target``)."""
        return self.policy.critic_target

    def export(self, path: str | Path) -> Path:
        """Write the deterministic policy to ``path`` for use without easyrl; returns the path.

        ``.onnx`` writes ONNX (run it with onnxruntime; needs the ``onnx`` extra), ``.pt`` TorchScript
        (``torch.jit.load``). The file maps raw observations, as the env gives them, to actions in the
        env's bounds: the model's observation normalisation, image preprocessing and action scaling are
        inside it, so it takes raw observations (``predict(obs, normalized=False)``'s). Its input is named
        ``observation`` (or the ``Dict`` space's keys), its output ``action``.
        """
        return export_policy(self, path)  # type: ignore[arg-type]  # mixed into OffPolicyAlgorithm only


class _TargetActorPolicy(Protocol):
    @property
    def actor_target(self) -> nn.Module: ...


class _HasTargetActor(Protocol):
    @property
    def policy(self) -> _TargetActorPolicy: ...


class TargetActorAttributes(PolicyAttributes):
    """TD3's and DDPG's attributes, with ``model.actor_target``."""

    @property
    def actor_target(self: _HasTargetActor) -> nn.Module:
        """The target actor (``model.policy.actor_target``)."""
        return self.policy.actor_target
