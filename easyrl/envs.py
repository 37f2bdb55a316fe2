"""From what the user passed as an environment to a vector env with episode statistics.

Every estimator trains on a gymnasium vector env, even with one environment, so the
training loop handles one code path. Environments easyrl builds itself reset in the
same step that ends an episode (``AutoresetMode.SAME_STEP``), which hands the true final
observation over in ``info["final_obs"]``; a vector env passed in by the user may use
gymnasium's default ``NEXT_STEP`` mode instead, and :class:`StepResult` hides the
difference from the training loop.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

EnvLike: TypeAlias = str | gym.Env | VectorEnv | Callable[[], gym.Env]
"""An env id, an env instance, a vector env, or a function returning a new env."""


def check_env_id(env_id: str) -> None:
    """Raise a ValueError naming ``env_id`` (and close matches) if gymnasium does not know it."""
    if env_id in gym.registry:
        return
    matches = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    raise ValueError(
        f"Unknown environment id {env_id!r}: it is not registered with gymnasium.{hint} "
        "Pass a registered id (see gymnasium.pprint_registry()), a gymnasium.Env, or a function returning one."
    )


def env_id_of(env: EnvLike) -> str | None:
    """The registered id of ``env`` when it can be known, else None."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def make_vec_env(env: EnvLike, n_envs: int = 1) -> VectorEnv:
    """Build a vector env of ``n_envs`` copies of ``env`` that records episode statistics.

    A vector env is used as it is (its own number of envs wins); a single ``gymnasium.Env``
    instance can only make one env, since it cannot be copied.
    """
    if isinstance(env, VectorEnv):
        vec_env = env
    elif isinstance(env, str):
        check_env_id(env)
        env_id = env
        vec_env = SyncVectorEnv(
            [lambda: gym.make(env_id) for _ in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP
        )
    elif isinstance(env, gym.Env):
        if n_envs != 1:
            raise ValueError(
                f"n_envs={n_envs} needs a way to create new envs, but a single gymnasium.Env instance was "
                "passed. Pass an env id or a function returning a new env instead."
            )
        instance = env
        vec_env = SyncVectorEnv([lambda: instance], autoreset_mode=AutoresetMode.SAME_STEP)
    elif callable(env):
        factory = env
        vec_env = SyncVectorEnv(
            [lambda: _checked_factory_call(factory) for _ in range(n_envs)],
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
    else:
        raise TypeError(
            f"env must be an env id (str), a gymnasium.Env, a gymnasium VectorEnv or a function returning "
            f"a gymnasium.Env; got {type(env).__name__}."
        )
    if autoreset_mode(vec_env) == AutoresetMode.DISABLED:
        raise ValueError(
            "The vector env has autoreset disabled; easyrl needs envs that reset themselves. "
            "Create it with autoreset_mode=AutoresetMode.SAME_STEP or NEXT_STEP."
        )
    if not _has_episode_statistics(vec_env):
        vec_env = RecordEpisodeStatistics(vec_env)
    return vec_env


def _checked_factory_call(factory: Callable[[], Any]) -> gym.Env:
    made = factory()
    if not isinstance(made, gym.Env):
        raise TypeError(
            f"The env factory must return a gymnasium.Env, but it returned {type(made).__name__}."
        )
    return made


def _has_episode_statistics(env: VectorEnv) -> bool:
    while True:
        if isinstance(env, RecordEpisodeStatistics):
            return True
        inner = getattr(env, "env", None)
        if not isinstance(inner, VectorEnv):
            return False
        env = inner


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """The autoreset mode of a vector env (gymnasium's default, NEXT_STEP, when it does not say)."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return AutoresetMode(mode)


@dataclass
class StepResult:
    """One vector-env step, seen as transitions.

    ``next_obs`` is the observation after each env's action: the true final observation where
    the episode ended, not the first observation of the next one. ``valid`` is False for an env
    whose step was only gymnasium's NEXT_STEP reset of a finished episode (not a transition).
    ``obs`` is the observation to act on next.
    """

    obs: np.ndarray
    next_obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    infos: dict[str, Any]
    episode_returns: list[float]
    episode_lengths: list[int]

    @property
    def dones(self) -> np.ndarray:
        """Episodes that ended in this step (only for valid transitions)."""
        return (self.terminated | self.truncated) & self.valid


class EnvStepper:
    """Steps a vector env and turns each step into transitions, whatever its autoreset mode."""

    def __init__(self, env: VectorEnv) -> None:
        self.env = env
        self.mode = autoreset_mode(env)
        self._resetting = np.zeros(env.num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (seeded when ``seed`` is given) and return the first observations."""
        obs, _ = self.env.reset(seed=seed)
        self._resetting[:] = False
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        """Step every env with ``actions`` (already in the env's action bounds)."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        valid = ~self._resetting
        next_obs = obs
        if self.mode == AutoresetMode.SAME_STEP and "_final_obs" in infos:
            next_obs = np.array(obs, copy=True)
            for i in np.flatnonzero(infos["_final_obs"]):
                next_obs[i] = infos["final_obs"][i]
        if self.mode == AutoresetMode.NEXT_STEP:
            self._resetting = terminated | truncated
        returns: list[float] = []
        lengths: list[int] = []
        if "_episode" in infos:
            ended = np.flatnonzero(infos["_episode"])
            returns = [float(r) for r in infos["episode"]["r"][ended]]
            lengths = [int(n) for n in infos["episode"]["l"][ended]]
        return StepResult(
            obs=obs,
            next_obs=next_obs,
            rewards=np.asarray(rewards, dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            valid=valid,
            infos=infos,
            episode_returns=returns,
            episode_lengths=lengths,
        )
