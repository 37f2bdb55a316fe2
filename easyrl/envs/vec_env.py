"""SB3's ``VecEnv`` interface, over gymnasium's vector envs: ``DummyVecEnv``, ``SubprocVecEnv``, wrappers.

SB3 scripts step their envs as ``obs = env.reset()`` and ``obs, rewards, dones, infos = env.step(a)``,
with ``infos`` a list of per-env dicts, the episode's last observation in
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` where a time limit ended
it. :class:`VecEnv` gives a gymnasium vector env that interface: :class:`DummyVecEnv` is a
``SyncVectorEnv`` (every env in this process) and :class:`SubprocVecEnv` an ``AsyncVectorEnv`` (one
process per env), both resetting a finished env in the step that ended its episode, as SB3's do.

A model given one of these trains on the gymnasium vector env inside (``vector_env``): gymnasium
vector envs stay easyrl's native path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from easyrl.observations import Obs, copy_obs, obs_row

Indices = int | Iterable[int] | None
WrapperT = TypeVar("WrapperT", bound="VecEnv")

STATS_KEY = "easyrl_episode"
"""The info key under which the vector envs easyrl builds report finished episodes (SB3 reads ``episode``)."""


class VecEnv:
    """SB3's vector-env interface over a gymnasium vector env that resets itself (or not at all).

    ``observation_space`` and ``action_space`` are one env's, as in SB3. A vector env whose autoreset
    is disabled (the envs a model builds for training) is reset here, env by env, when its episode ends.
    """

    def __init__(self, vector_env: VectorEnv) -> None:
        mode = AutoresetMode(vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError(
                "SB3's VecEnv interface needs envs that reset in the step that ends an episode; this vector env "
                "uses gymnasium's default NEXT_STEP mode. Create it with autoreset_mode=AutoresetMode.SAME_STEP."
            )
        self.vector_env = vector_env
        self._mode = mode
        self.num_envs = vector_env.num_envs
        self.observation_space = vector_env.single_observation_space
        self.action_space = vector_env.single_action_space
        self.render_mode = vector_env.render_mode
        self.metadata = vector_env.metadata
        self.reset_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._seeds: list[int | None] = [None] * self.num_envs
        self._options: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._actions: np.ndarray | None = None
        self.before_use: Callable[[], None] | None = None
        """Called before each ``reset`` and ``step``: a model whose training envs these are sets it (see
        ``model.get_env()``)."""

    @property
    def unwrapped(self) -> VecEnv:
        return self

    @property
    def spec(self) -> Any:
        """The first env's ``EnvSpec``, or None."""
        return getattr(self.vector_env, "spec", None) or self.get_attr("spec", indices=0)[0]

    # ------------------------------------------------------------------ stepping
    def reset(self) -> Obs:
        """Reset every env (with the seeds and options set since the last reset); the observations."""
        if self.before_use is not None:
            self.before_use()
        seeds: Any = list(self._seeds) if any(s is not None for s in self._seeds) else None
        options = self._options[0] if self._options[0] else None
        obs, infos = self.vector_env.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(infos, i) for i in range(self.num_envs)]
        self._seeds = [None] * self.num_envs
        self._options = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        if self.before_use is not None:
            self.before_use()
        self._actions = np.asarray(actions)
        if isinstance(self.vector_env, AsyncVectorEnv):
            self.vector_env.step_async(self._actions)

    def step_wait(self) -> tuple[Obs, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if isinstance(self.vector_env, AsyncVectorEnv):
            obs, rewards, terminated, truncated, infos = self.vector_env.step_wait()
        else:
            if self._actions is None:
                raise RuntimeError("step_wait() without step_async(actions): call step(actions).")
            obs, rewards, terminated, truncated, infos = self.vector_env.step(self._actions)
        self._actions = None
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        ended = np.flatnonzero(dones).tolist()
        if ended and self._mode == AutoresetMode.SAME_STEP:
            per_env = sb3_infos(infos, terminated, truncated, lambda i: infos["final_obs"][i])
            for i in ended:  # this step's infos of an ended env are those of its reset
                self.reset_infos[i] = unbatch_info(infos, i)
        elif ended:  # autoreset disabled: the terminal observations are this step's, and we reset
            terminal = {i: obs_row(obs, i) for i in ended}
            per_env = sb3_infos(infos, terminated, truncated, terminal.__getitem__)
            obs, reset_infos = self.vector_env.reset(options={"reset_mask": dones.copy()})
            for i in ended:
                self.reset_infos[i] = unbatch_info(reset_infos, i)
        else:
            per_env = sb3_infos(infos, terminated, truncated, lambda i: obs_row(obs, i))
        return obs, np.asarray(rewards, dtype=np.float32), dones, per_env

    def step(self, actions: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        self.vector_env.close()

    def render(self) -> Any:
        return self.vector_env.render()

    # ------------------------------------------------------------------ seeds, options, attributes
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next ``reset``: ``seed + i`` for env i (a random base when None), as in SB3."""
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1 - self.num_envs))
        self._seeds = [seed + i for i in range(self.num_envs)]
        return list(self._seeds)

    def set_options(self, options: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        """Options for the next ``reset`` (one dict for every env)."""
        if isinstance(options, list):
            if any(o != options[0] for o in options):
                raise ValueError(
                    "gymnasium vector envs take one reset-options dict for all envs; pass one dict."
                )
            options = options[0] if options else None
        self._options = [dict(options or {}) for _ in range(self.num_envs)]

    def _indices(self, indices: Indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int | np.integer):
            return [int(indices)]
        return [int(i) for i in indices]

    def env_method(
        self, method_name: str, *method_args: Any, indices: Indices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call ``method_name`` on the envs at ``indices`` (all by default); their results."""
        return self._call(self._indices(indices), method_name, method_args, method_kwargs)

    def get_attr(self, attr_name: str, indices: Indices = None) -> list[Any]:
        return self._call(self._indices(indices), attr_name, (), {})

    def set_attr(self, attr_name: str, value: Any, indices: Indices = None) -> None:
        targets = self._indices(indices)
        if isinstance(self.vector_env, SyncVectorEnv):
            for i in targets:
                self.vector_env.envs[i].set_wrapper_attr(attr_name, value)
        elif isinstance(self.vector_env, AsyncVectorEnv):
            env = self.vector_env
            for i in targets:
                env.parent_pipes[i].send(("_setattr", (attr_name, value)))
            env._raise_if_errors([env.parent_pipes[i].recv()[1] for i in targets])
        else:
            raise TypeError(
                f"set_attr needs a SyncVectorEnv or AsyncVectorEnv, not {type(self.vector_env).__name__}."
            )

    def _call(
        self, targets: list[int], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        env = self.vector_env
        if isinstance(env, SyncVectorEnv):
            results = []
            for i in targets:
                attr = env.envs[i].get_wrapper_attr(name)
                results.append(attr(*args, **kwargs) if callable(attr) else attr)
            return results
        if isinstance(env, AsyncVectorEnv):
            for i in targets:
                env.parent_pipes[i].send(("_call", (name, args, kwargs)))
            replies = [env.parent_pipes[i].recv() for i in targets]
            env._raise_if_errors([success for _, success in replies])
            return [result for result, _ in replies]
        if targets != list(range(self.num_envs)):
            raise TypeError(f"{type(env).__name__} can only be called on all its envs (indices=None).")
        return list(getattr(env, "call")(name, *args, **kwargs))  # noqa: B009 (not on VectorEnv's type)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: Indices = None
    ) -> list[bool]:
        """Whether each env at ``indices`` has a ``wrapper_class`` wrapper."""

        def wrapped(env: gym.Env[Any, Any]) -> bool:
            while isinstance(env, gym.Wrapper):
                if isinstance(env, wrapper_class):
                    return True
                env = env.env
            return False

        if isinstance(self.vector_env, SyncVectorEnv):
            return [wrapped(self.vector_env.envs[i]) for i in self._indices(indices)]
        raise TypeError(
            "env_is_wrapped can inspect DummyVecEnv envs only (SubprocVecEnv's live in other processes)."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs})"


class DummyVecEnv(VecEnv):
    """SB3's ``DummyVecEnv(env_fns)``: every env in this process, stepped one after the other."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env[Any, Any]]]) -> None:
        super().__init__(SyncVectorEnv(list(env_fns), autoreset_mode=AutoresetMode.SAME_STEP))

    @property
    def envs(self) -> list[gym.Env[Any, Any]]:
        return list(self.vector_env.envs)  # type: ignore[attr-defined]


class SubprocVecEnv(VecEnv):
    """SB3's ``SubprocVecEnv(env_fns, start_method=None)``: one process per env (gymnasium's async vector env).

    The env functions are sent to the processes with cloudpickle, so lambdas work. Each process runs a
    PyTorch-free env; keep torch out of the envs, or set its threads to 1 there (2 cores are shared).
    """

    def __init__(
        self, env_fns: Sequence[Callable[[], gym.Env[Any, Any]]], start_method: str | None = None
    ) -> None:
        super().__init__(
            AsyncVectorEnv(list(env_fns), autoreset_mode=AutoresetMode.SAME_STEP, context=start_method)
        )


class VecEnvWrapper(VecEnv):
    """A ``VecEnv`` that wraps another (SB3's ``VecEnvWrapper``): it forwards what it does not change."""

    def __init__(self, venv: VecEnv) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(
                f"{type(self).__name__} wraps an easyrl VecEnv (DummyVecEnv, SubprocVecEnv, make_vec_env's), not "
                f"{type(venv).__name__}; for a gymnasium vector env, pass VecEnv(vector_env)."
            )
        self.venv = venv
        self.__dict__.update({k: getattr(venv, k) for k in ("num_envs", "observation_space", "action_space",
                                                               "render_mode", "metadata")})  # fmt: skip

    vector_env = property(lambda self: self.venv.vector_env)
    reset_infos = property(lambda self: self.venv.reset_infos)

    @property
    def unwrapped(self) -> VecEnv:
        return self.venv.unwrapped

    def reset(self) -> Obs:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> tuple[Obs, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        return self.venv.step_wait()

    def close(self) -> None:
        self.venv.close()

    def render(self) -> Any:
        return self.venv.render()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        return self.venv.seed(seed)

    def set_options(self, options: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        self.venv.set_options(options)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Indices = None, **method_kwargs: Any
    ) -> list[Any]:
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)

    def get_attr(self, attr_name: str, indices: Indices = None) -> list[Any]:
        return self.venv.get_attr(attr_name, indices)

    def set_attr(self, attr_name: str, value: Any, indices: Indices = None) -> None:
        self.venv.set_attr(attr_name, value, indices)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: Indices = None
    ) -> list[bool]:
        return self.venv.env_is_wrapped(wrapper_class, indices)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.venv!r})"


def unwrap_vec_env(env: VecEnv, wrapper_class: type[WrapperT]) -> WrapperT | None:
    """The first ``wrapper_class`` in the chain of VecEnv wrappers from ``env`` inward, or None."""
    while True:
        if isinstance(env, wrapper_class):
            return env
        if not isinstance(env, VecEnvWrapper):
            return None
        env = env.venv


def unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s entries of a gymnasium vector info dict (arrays with ``_key`` masks), as one dict."""
    info: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        info[key] = unbatch_info(value, i) if isinstance(value, dict) else _item(value[i])
    return info


def sb3_infos(
    infos: dict[str, Any], terminated: np.ndarray, truncated: np.ndarray, final_obs: Callable[[int], Any]
) -> list[dict[str, Any]]:
    """A gymnasium vector step's infos as SB3's list of per-env dicts.

    Where env ``i``'s episode ended, its dict is the info of its last step (gymnasium's ``final_info`` in
    ``SAME_STEP`` mode), with SB3's ``terminal_observation`` (``final_obs(i)``, copied) and the episode
    statistics under ``"episode"`` (``{"r", "l", "t"}``); every env's dict has ``TimeLimit.truncated``.
    """
    per_env = [unbatch_info(infos, i) for i in range(len(terminated))]
    final_infos = infos.get("final_info")
    for i in np.flatnonzero(np.asarray(terminated) | np.asarray(truncated)).tolist():
        if isinstance(final_infos, dict) and "_final_obs" in infos:
            episode = {k: v for k, v in per_env[i].items() if k in ("episode", STATS_KEY)}
            per_env[i] = {**unbatch_info(final_infos, i), **episode}
        per_env[i]["terminal_observation"] = copy_obs(final_obs(i))
        if STATS_KEY in per_env[i]:
            per_env[i].setdefault("episode", per_env[i].pop(STATS_KEY))
    for i, info in enumerate(per_env):  # in every step's info, as SB3's vec envs write it
        info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
    return per_env


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = [
    "STATS_KEY",
    "DummyVecEnv",
    "SubprocVecEnv",
    "VecEnv",
    "VecEnvWrapper",
    "sb3_infos",
    "unbatch_info",
    "unwrap_vec_env",
]
