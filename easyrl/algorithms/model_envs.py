"""The envs of a model: replacing them (``set_env``), putting them back where a checkpoint left them, a
stand-in for a model loaded without one, the check of a replacement's spaces, SB3's view of them
(``get_env``), and the model's observation and reward normaliser (``normalize``, or a ``VecNormalize``).

Between episodes, the envs easyrl builds are fully described by each env's episode seed (see
``easyrl.envs.EpisodeSeeds``), so a checkpoint resets them with those seeds. A model loaded without an
env gets a stand-in with the right spaces that refuses to run, and keeps the checkpoint's observations
until ``set_env`` gives it a real env.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from easyrl.envs import EnvLike, EnvStepper, builds_new_env, env_id_of, to_vector_env
from easyrl.envs.vec_env import VecEnv, unwrap_vec_env
from easyrl.envs.vec_normalize import VecNormalize
from easyrl.normalization import SETTINGS, Normalizer
from easyrl.observations import obs_equal
from easyrl.validation import check_keys
from easyrl.zoo import parse_expression

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm


def replace_env(model: OffPolicyAlgorithm[Any], env: EnvLike) -> None:
    """``model.set_env(env)``: check the new env fits, end the episodes in progress, and switch."""
    model._setup()
    vec_env = to_vector_env(env, model.n_envs, autoreset=False)
    try:
        if vec_env.num_envs != model.num_envs:
            raise ValueError(
                f"set_env() got {vec_env.num_envs} env(s), but this model steps {model.num_envs} (its replay "
                f"buffer and exploration noise are laid out for that many); pass a vector env of {model.num_envs}."
            )
        actual = (vec_env.single_observation_space, vec_env.single_action_space)
        saved = (model.observation_space, model.action_space)
        check_same_spaces(saved, actual, "The env passed to set_env()", "this model")
        model.replay_buffer.attach_env(vec_env)
    except BaseException:
        if built_by_easyrl(env):
            vec_env.close()
        raise
    state = model.training_state
    if state.last_obs is not None:
        model.replay_buffer.close_episodes(state.last_obs)
    if built_by_easyrl(model._param("env")):
        model.env.close()
    model._stepper = EnvStepper(vec_env, state.episode_seeds)
    model.__dict__["_built_env"] = vec_env
    model.__dict__["_env_argument"] = env
    model.env_id = env_id_of(env)
    attach_env(model, env)
    state.last_obs = None
    resume_envs(model)


def resume_envs(model: OffPolicyAlgorithm[Any]) -> None:
    """Put the envs where a checkpoint left them (``resume_obs``): exactly, at an episode boundary."""
    state = model.training_state
    if state.resume_obs is None:  # saved before the first step: learn() resets the envs as usual
        return
    obs, exact = model._stepper.restore()
    if exact and not obs_equal(obs, state.resume_obs):
        warnings.warn(
            "The env, reset with the saved episode seeds, does not reproduce the saved observations (is it "
            "deterministic given a seed?); training continues from new episodes.",
            stacklevel=5,
        )
        exact = False
    if not exact and state.noise is not None:
        state.noise.reset(np.arange(model.num_envs))
    state.last_obs, state.resume_obs = obs, None


def check_same_spaces(
    saved: tuple[gym.Space[Any], gym.spaces.Box],
    actual: tuple[gym.Space[Any], gym.Space[Any]],
    what: str,
    source: str,
) -> None:
    """Refuse an env whose observations or actions differ from those the model was trained on."""
    for name, expected, got in zip(("observation", "action"), saved, actual, strict=True):
        if not _same_space(expected, got, bounds=name == "action"):
            raise ValueError(f"{what} has the {name} space {got}, but {source} was trained on {expected}.")


def _same_space(expected: gym.Space[Any], got: gym.Space[Any], bounds: bool) -> bool:
    """Same Box shape and dtype (and, with ``bounds``, bounds), or a Dict of such under the same keys."""
    if isinstance(expected, gym.spaces.Dict):
        return (
            isinstance(got, gym.spaces.Dict)
            and list(expected.spaces) == list(got.spaces)
            and all(_same_space(expected[key], got[key], bounds) for key in expected.spaces)
        )
    same = isinstance(got, gym.spaces.Box) and expected.shape == got.shape and expected.dtype == got.dtype
    if same and bounds:
        assert isinstance(got, gym.spaces.Box) and isinstance(expected, gym.spaces.Box)
        same = np.array_equal(expected.low, got.low) and np.array_equal(expected.high, got.high)
    return same


class _NoEnv(gym.Env[Any, np.ndarray]):
    """Stands in for the env of a model loaded without one: it has the spaces, and refuses to run."""

    def __init__(self, message: str, observation_space: gym.Space[Any], action_space: gym.spaces.Box) -> None:
        self.message = message
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        raise ValueError(self.message)

    def step(self, action: np.ndarray) -> Any:
        raise ValueError(self.message)


def placeholder_env(
    path: str, algorithm: str, observation_space: gym.Space[Any], action_space: gym.spaces.Box, num_envs: int
) -> VectorEnv:
    message = (
        f"This {algorithm} was loaded from {path} without an env (it was not built from an env id), so it can "
        f"predict but not train; pass one: {algorithm}.load(path, env=...) or model.set_env(env)."
    )
    return SyncVectorEnv(
        [lambda: _NoEnv(message, observation_space, action_space) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


def built_by_easyrl(env: Any) -> bool:
    """Whether the vector env made from ``env`` holds only envs easyrl created (None: a placeholder)."""
    return env is None or builds_new_env(env)


# ---------------------------------------------------------------------------------------------- normalisation
def normalize_settings(normalize: Any, gamma: float) -> dict[str, Any] | None:
    """The ``Normalizer`` settings that ``normalize`` asks for (rl-zoo's forms), or None for none.

    ``True`` is SB3's ``VecNormalize`` defaults, a dict (or rl-zoo's string of one, read by
    :func:`easyrl.zoo.parse_expression`, never evaluated) sets some of them; the running return's ``gamma`` is the model's unless set.
    """
    if normalize is False or normalize is None:
        return None
    settings: Any = {} if normalize is True else normalize
    if isinstance(settings, str):  # rl-zoo's string, read from its syntax tree (never evaluated)
        settings = parse_expression(settings, "normalize")
    if not isinstance(settings, dict):
        raise ValueError(
            f"normalize={normalize!r} is invalid: pass True, False, or a dict of VecNormalize settings such as "
            "dict(norm_obs=True, norm_reward=False) (or rl-zoo's string of one)."
        )
    check_keys(settings.keys(), SETTINGS, "normalize")
    return {"gamma": gamma, **settings}


def attach_env(model: OffPolicyAlgorithm[Any], env: Any) -> None:
    """Connect ``model`` to the env it was given: an SB3-style ``VecEnv`` tells the model when the user steps
    it (see :func:`model_vec_env`). And give ``model`` its normaliser: that of a ``VecNormalize`` env (SB3's
    way; it shares the wrapper's statistics, and ``predict`` then takes normalised observations, as the
    wrapper returns them), or its own from ``normalize`` (``predict`` takes raw observations), or none."""
    if isinstance(env, VecEnv):
        env.unwrapped.before_use = lambda: _release_envs(model)
    wrapper = unwrap_vec_env(env, VecNormalize) if isinstance(env, VecEnv) else None
    settings = normalize_settings(model.normalize, model.gamma)
    if wrapper is not None:
        if settings is not None:
            raise ValueError(
                "The env is a VecNormalize and normalize is set too: normalise once, either with VecNormalize "
                "(SB3's way) or with normalize=..., not both."
            )
        previous = model.__dict__.get("_normalizer")
        if (
            previous is not None and wrapper.normalizer.fresh
        ):  # a new wrapper continues the model's statistics
            wrapper.normalizer = previous
        model._normalizer, model._env_normalizes = wrapper.normalizer, True
    elif settings is not None:
        model._normalizer = Normalizer(model.observation_space, model.num_envs, **settings)
        model._env_normalizes = False
    else:
        model._normalizer = model.__dict__.get("_normalizer")
        model._env_normalizes = False


def restore_normalizer(model: OffPolicyAlgorithm[Any], normalizer: Normalizer) -> None:
    """The statistics of a model file: the model's from now on, unless its ``VecNormalize`` env has its own."""
    env = model._param("env")
    wrapper = unwrap_vec_env(env, VecNormalize) if isinstance(env, VecEnv) else None
    if wrapper is not None:
        if wrapper.normalizer.fresh:
            wrapper.normalizer = normalizer
        model._normalizer = wrapper.normalizer
    else:
        model._normalizer = normalizer


def model_vec_env(model: OffPolicyAlgorithm[Any]) -> VecEnv:
    """``model.get_env()``: the SB3-style env the user gave, else SB3's interface over the training envs.

    Either way it steps the envs the model trains on: its first ``reset`` or ``step`` ends the episodes in
    progress in the replay buffer (as a new ``learn`` would), and the next ``learn`` starts new ones.
    """
    env = model._param("env")
    if isinstance(env, VecEnv):
        return env
    view: VecEnv | None = model.__dict__.get("_vec_env_view")
    if view is None or view.vector_env is not model.env:
        view = VecEnv(model.env)
        model.__dict__["_vec_env_view"] = view
        view.before_use = lambda: _release_envs(model)
    return view


def _release_envs(model: OffPolicyAlgorithm[Any]) -> None:
    """The user steps the training envs: the model's episodes in progress end where they are."""
    state = model.training_state
    if state.last_obs is not None:
        model.replay_buffer.close_episodes(state.last_obs)
        state.last_obs = None
