"""SB3's ``make_vec_env``: ``n_envs`` copies of an env, each in a ``Monitor``, as a ``DummyVecEnv`` or
``SubprocVecEnv``.

Only SB3 scripts need it: a model takes an env id and ``n_envs`` directly (``SAC("Pendulum-v1",
n_envs=4)``) and builds gymnasium vector envs itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from easyrl.envs.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from easyrl.envs.vector import check_env_id
from easyrl.monitor import Monitor


def make_vec_env(
    env_id: str | Callable[..., gym.Env[Any, Any]],
    n_envs: int = 1,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | None = None,
    wrapper_class: Callable[..., gym.Env[Any, Any]] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] | None = None,
    vec_env_kwargs: Mapping[str, Any] | None = None,
    monitor_kwargs: Mapping[str, Any] | None = None,
    wrapper_kwargs: Mapping[str, Any] | None = None,
) -> VecEnv:
    """``n_envs`` envs behind SB3's ``VecEnv`` interface, with SB3's parameters.

    Args:
        env_id: an env id, or a function that takes ``env_kwargs`` and returns an env.
        n_envs: how many envs.
        seed: env ``i`` is seeded with ``seed + i`` at the first ``reset`` (and its action space too).
        start_index: the rank of the first env (its monitor file is ``<monitor_dir>/<rank>.monitor.csv``).
        monitor_dir: where each env's ``Monitor`` writes its episodes (None: not written).
        wrapper_class: a wrapper applied to each env, after the ``Monitor``.
        env_kwargs: keyword arguments of ``gym.make`` (or of ``env_id`` when it is a function).
        vec_env_cls: :class:`DummyVecEnv` (the default: every env in this process) or
            :class:`SubprocVecEnv` (one process per env).
        vec_env_kwargs: keyword arguments of ``vec_env_cls``.
        monitor_kwargs: keyword arguments of each :class:`~easyrl.monitor.Monitor`.
        wrapper_kwargs: keyword arguments of ``wrapper_class``.
    """
    if isinstance(env_id, str):
        check_env_id(env_id)
    elif not callable(env_id):
        raise TypeError(
            f"env_id must be an env id or a function returning an env, not {type(env_id).__name__}."
        )
    if not (isinstance(n_envs, int) and n_envs >= 1):
        raise ValueError(f"n_envs={n_envs!r} is invalid: it must be an integer >= 1.")
    vec_env_cls = vec_env_cls or DummyVecEnv
    if vec_env_cls not in (DummyVecEnv, SubprocVecEnv):
        raise ValueError(
            f"vec_env_cls={vec_env_cls!r} is invalid: pass easyrl.envs.DummyVecEnv or easyrl.envs.SubprocVecEnv."
        )
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)

    def make_env(rank: int) -> Callable[[], gym.Env[Any, Any]]:
        def build() -> gym.Env[Any, Any]:
            if isinstance(env_id, str):
                # SB3 asks for rgb_array frames, so that the envs can be rendered to video.
                try:
                    env = gym.make(env_id, **{"render_mode": "rgb_array", **(env_kwargs or {})})
                except TypeError:
                    env = gym.make(env_id, **(env_kwargs or {}))
            else:
                env = env_id(**(env_kwargs or {}))
            if seed is not None:
                env.action_space.seed(seed + rank)
            filename = None if monitor_dir is None else os.path.join(monitor_dir, str(rank))
            env = Monitor(env, filename=filename, **(monitor_kwargs or {}))
            if wrapper_class is not None:
                env = wrapper_class(env, **(wrapper_kwargs or {}))
            return env

        return build

    vec_env = vec_env_cls([make_env(start_index + i) for i in range(n_envs)], **(vec_env_kwargs or {}))
    vec_env.seed(seed)
    return vec_env
