"""The envs of a loaded model: put back where a checkpoint left them, stood in for, or replaced.

Between episodes, the envs easyrl builds are fully described by each env's episode seed (see
``easyrl.envs.EnvStepper``), so a checkpoint resets them with those seeds. A model loaded without an env
gets a stand-in with the right spaces that refuses to run, and keeps the checkpoint's env state until
``set_env`` gives it a real env.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from easyrl.envs import EnvLike, EnvStepper, env_id_of, make_vec_env

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm


@dataclasses.dataclass
class PendingEnvState:
    """A checkpoint's env state, kept until the model gets an env (a model loaded without one)."""

    num_timesteps: int
    env: dict[str, Any]
    last_obs: np.ndarray | None


def check_spaces(
    saved: tuple[gym.spaces.Box, gym.spaces.Box],
    actual: tuple[gym.Space[Any], gym.Space[Any]],
    what: str,
    source: str,
) -> None:
    """Refuse an env whose observations or actions differ from those the model was trained on."""
    for name, expected, got in zip(("observation", "action"), saved, actual, strict=True):
        same = isinstance(got, gym.spaces.Box) and expected.shape == got.shape and expected.dtype == got.dtype
        if same and name == "action":
            assert isinstance(got, gym.spaces.Box)
            same = np.array_equal(expected.low, got.low) and np.array_equal(expected.high, got.high)
        if not same:
            raise ValueError(f"{what} has the {name} space {got}, but {source} was trained on {expected}.")


class _NoEnv(gym.Env[np.ndarray, np.ndarray]):
    """Stands in for the env of a model loaded without one: it has the spaces, and refuses to run."""

    def __init__(self, message: str, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        self.message = message
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        raise ValueError(self.message)

    def step(self, action: np.ndarray) -> Any:
        raise ValueError(self.message)


def placeholder_env(
    path: str, algorithm: str, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, num_envs: int
) -> VectorEnv:
    message = (
        f"This {algorithm} was loaded from {path} without an env (it was not built from an env id), so it can "
        f"predict but not train; pass one: {algorithm}.load(path, env=...) or model.set_env(env)."
    )
    return SyncVectorEnv(
        [lambda: _NoEnv(message, observation_space, action_space) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


def checked_env_state(env_state: Any, num_envs: int) -> dict[str, Any]:
    """The envs' state from a file, checked before any env is reset with it."""
    if not isinstance(env_state, dict) or not isinstance(env_state.get("seed_rng"), dict):
        raise TypeError("the envs' state is not a JSON object with a seed_rng")
    for key in ("episode_seeds", "steps_since_reset"):
        values = env_state.get(key)
        if not (isinstance(values, list) and len(values) == num_envs and all(type(v) is int for v in values)):
            raise ValueError(f"the envs' {key} are not {num_envs} integers")
        if not all(-1 <= v < 2**63 for v in values):
            raise ValueError(f"the envs' {key} are out of range")
    return env_state


def restore_env(model: OffPolicyAlgorithm, env_state: dict[str, Any], last_obs: np.ndarray | None) -> None:
    """Put the model's envs where the checkpoint left them (exactly, at an episode boundary)."""
    if last_obs is None:  # saved before the first step: learn() resets the envs as usual
        model._last_obs = None
        return
    obs, exact = model._stepper.restore(env_state)
    if exact and not np.array_equal(obs, last_obs):
        warnings.warn(
            "The env, reset with the saved episode seeds, does not reproduce the saved observations (is it "
            "deterministic given a seed?); training continues from new episodes.",
            stacklevel=4,
        )
        exact = False
    if not exact and model._noise is not None:
        model._noise.reset(np.arange(model.num_envs))
    model._last_obs = obs


def set_env(model: OffPolicyAlgorithm, env: EnvLike) -> None:
    model._setup()
    vec_env = make_vec_env(env, model.n_envs, autoreset=False)
    try:
        if vec_env.num_envs != model.num_envs:
            raise ValueError(
                f"set_env() got {vec_env.num_envs} env(s), but this model steps {model.num_envs} (its replay buffer "
                f"and exploration noise are laid out for that many); pass a vector env of {model.num_envs}."
            )
        actual = (vec_env.single_observation_space, vec_env.single_action_space)
        saved = (model.observation_space, model.action_space)
        check_spaces(saved, actual, "The env passed to set_env()", "this model")
    except BaseException:
        if _built_by_easyrl(env):
            vec_env.close()
        raise
    if model._last_obs is not None:
        model.replay_buffer.close_episodes(model._last_obs)
    if _built_by_easyrl(model._param("env")):
        model.env.close()
    stepper = EnvStepper(vec_env)
    stepper.seed_rng = model._stepper.seed_rng
    model._stepper = stepper
    model.__dict__["_built_env"] = vec_env
    model.__dict__["_env_argument"] = env
    model.env_id = env_id_of(env)
    model._last_obs = None
    pending: PendingEnvState | None = model.__dict__.pop("_pending_env_state", None)
    if pending is not None and pending.num_timesteps == model.num_timesteps:
        restore_env(model, pending.env, pending.last_obs)


def _built_by_easyrl(env: Any) -> bool:
    """Whether the vector env made from ``env`` holds only envs easyrl created (None: a placeholder)."""
    return not isinstance(env, VectorEnv | gym.Env)
