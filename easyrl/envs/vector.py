"""From what the user passed as an environment to a vector env with episode statistics.

Every estimator trains on a gymnasium vector env, even with one environment, so the
training loop handles one code path. For training, the envs easyrl builds itself do not
reset themselves (``AutoresetMode.DISABLED``): :class:`EnvStepper` resets each finished env
with a seed of its own, drawn from a generator the model owns. The true final observation is
then simply what the step returned, and every episode can be replayed from its seed, which
is what lets a checkpoint taken between episodes resume exactly. Envs built for evaluation
reset in the same step (``SAME_STEP``, final observation in ``info["final_obs"]``); a vector
env passed in by the user may also use gymnasium's default ``NEXT_STEP`` mode, and
:class:`StepResult` hides the difference from the training loop.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from easyrl.envs.vec_env import STATS_KEY, VecEnv
from easyrl.observations import Obs, as_numpy, copy_obs, obs_row, set_rows

EnvLike: TypeAlias = str | gym.Env | VectorEnv | VecEnv | Callable[[], gym.Env]
"""An env id, an env instance, a vector env (gymnasium's, or SB3's interface: ``DummyVecEnv`` and the
like), or a function returning a new env."""


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


def builds_new_env(env: EnvLike | None) -> bool:
    """True when :func:`to_vector_env` builds new envs from ``env`` (an id or a factory): the caller owns them."""
    return isinstance(env, str) or (callable(env) and not isinstance(env, gym.Env | VectorEnv | VecEnv))


def to_vector_env(env: EnvLike, n_envs: int = 1, *, autoreset: bool = True) -> VectorEnv:
    """Build a vector env of ``n_envs`` copies of ``env`` that records episode statistics.

    A vector env is used as it is (its own number of envs wins; an SB3-style ``VecEnv`` gives the
    gymnasium vector env inside, a ``VecNormalize``'s statistics being the model's business); a single ``gymnasium.Env``
    instance can only make one env, since it cannot be copied. Envs built here reset
    themselves in the step that ends an episode, or, with ``autoreset=False`` (training, see
    :class:`EnvStepper`), not at all.
    """
    mode = AutoresetMode.SAME_STEP if autoreset else AutoresetMode.DISABLED
    if isinstance(env, VecEnv):  # SB3's interface (VecNormalize too): the gymnasium vector env inside
        if env.unwrapped.before_use is not None:  # a model's training envs: its episodes end here
            env.unwrapped.before_use()
        env = env.vector_env
        if autoreset and autoreset_mode(env) == AutoresetMode.DISABLED:  # e.g. evaluating on get_env()
            return _SameStepReset(env)
    if isinstance(env, VectorEnv):
        vec_env = env
    elif isinstance(env, str):
        check_env_id(env)
        env_id = env
        vec_env = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)], autoreset_mode=mode)
    elif isinstance(env, gym.Env):
        if n_envs != 1:
            raise ValueError(
                f"n_envs={n_envs} needs a way to create new envs, but a single gymnasium.Env instance was "
                "passed. Pass an env id or a function returning a new env instead."
            )
        instance = env
        vec_env = SyncVectorEnv([lambda: instance], autoreset_mode=mode)
    elif callable(env):
        factory = env
        vec_env = SyncVectorEnv(
            [lambda: _checked_factory_call(factory) for _ in range(n_envs)], autoreset_mode=mode
        )
    else:
        raise TypeError(
            f"env must be an env id (str), a gymnasium.Env, a gymnasium VectorEnv or a function returning "
            f"a gymnasium.Env; got {type(env).__name__}."
        )
    if isinstance(env, VectorEnv) and autoreset_mode(vec_env) == AutoresetMode.DISABLED:
        raise ValueError(
            "The vector env has autoreset disabled; easyrl needs envs that reset themselves. "
            "Create it with autoreset_mode=AutoresetMode.SAME_STEP or NEXT_STEP."
        )
    if mode == AutoresetMode.DISABLED and not isinstance(env, VectorEnv):
        vec_env = _OwnResetOptions(vec_env)
    if episode_statistics_key(vec_env) is None:
        # A key of our own: a user's env wrapped in the single-env RecordEpisodeStatistics already
        # reports under "episode", and the vector wrapper refuses to overwrite it.
        vec_env = RecordEpisodeStatistics(vec_env, stats_key=STATS_KEY)
    return vec_env


class _OwnResetOptions(VectorWrapper):
    """Hands the wrapped env a copy of the reset options.

    ``SyncVectorEnv.reset`` pops ``reset_mask`` from the options dict it is given, so the
    ``RecordEpisodeStatistics`` wrapper above it no longer sees the mask and clears the
    statistics of every env, not only of those reset (gymnasium 1.4; Gymnasium PR #1696).
    """

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seeds: Any = seed  # gymnasium's annotation says int, but vector envs take one seed per env
        return self.env.reset(seed=seeds, options=None if options is None else dict(options))


class _SameStepReset(VectorWrapper):
    """Resets each env whose episode ended in the same step (gymnasium's ``SAME_STEP`` mode), over envs whose
    autoreset is disabled: the training envs a model built, when the user evaluates on ``model.get_env()``."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        self.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        dones = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        if dones.any():
            final_obs = [obs_row(obs, i) if done else None for i, done in enumerate(dones)]
            final_info = dict(infos)
            key = episode_statistics_key(self.env)
            # Copies: the statistics wrapper hands out its own arrays, which the masked reset clears.
            statistics = {k: copy.deepcopy(v) for k, v in infos.items() if key and k in (key, f"_{key}")}
            obs, reset_infos = self.env.reset(options={"reset_mask": dones.copy()})
            infos = {**reset_infos, **statistics}
            infos.update(final_obs=np.array(final_obs, dtype=object), _final_obs=dones, final_info=final_info)
            infos["_final_info"] = dones
        return obs, rewards, terminated, truncated, infos


def _checked_factory_call(factory: Callable[[], Any]) -> gym.Env:
    made = factory()
    if not isinstance(made, gym.Env):
        raise TypeError(
            f"The env factory must return a gymnasium.Env, but it returned {type(made).__name__}."
        )
    return made


def episode_statistics_key(env: VectorEnv) -> str | None:
    """The info key of the env's ``RecordEpisodeStatistics`` wrapper, or None if it has none."""
    while True:
        if isinstance(env, RecordEpisodeStatistics):
            key: str = env._stats_key
            return key
        inner = getattr(env, "env", None)
        if not isinstance(inner, VectorEnv):
            return None
        env = inner


def finished_episodes(infos: dict[str, Any], key: str) -> tuple[np.ndarray, list[float], list[int]]:
    """The envs whose episode ended in this step, with those episodes' returns and lengths."""
    if f"_{key}" not in infos:
        return np.zeros(0, dtype=np.int64), [], []
    # A copy: RecordEpisodeStatistics hands out its own array, which a masked reset clears.
    infos[f"_{key}"] = np.array(infos[f"_{key}"], dtype=bool)
    ended = np.flatnonzero(infos[f"_{key}"])
    stats = infos[key]
    return ended, [float(r) for r in stats["r"][ended]], [int(n) for n in stats["l"][ended]]


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

    obs: Obs
    next_obs: Obs
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


class EpisodeSeeds:
    """Each env's current-episode seed and its steps since that reset, and the generator seeds come from.

    Between episodes these alone describe the envs easyrl builds for training: reset with the same
    seeds, a deterministic env is back where it was. A model's training state owns this object and
    saves it; the :class:`EnvStepper` of whichever env the model trains on updates it.
    """

    def __init__(self, n_envs: int, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.seeds = np.full(n_envs, -1, dtype=np.int64)  # -1: unknown (the env reset itself)
        self.steps_since_reset = np.zeros(n_envs, dtype=np.int64)

    def draw(self, n: int) -> np.ndarray:
        return self.rng.integers(0, 2**31, size=n, dtype=np.int64)

    @property
    def at_episode_boundary(self) -> bool:
        """True when every env is at the start of an episode whose seed is known."""
        return bool((self.steps_since_reset == 0).all() and (self.seeds >= 0).all())

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable: the generator's state, each env's episode seed and steps since its reset."""
        return {
            "seed_rng": self.rng.bit_generator.state,
            "episode_seeds": self.seeds.tolist(),
            "steps_since_reset": self.steps_since_reset.tolist(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s description, checked first (it may come from a stranger's file)."""
        n_envs = self.seeds.size
        if not isinstance(state, dict) or not isinstance(state.get("seed_rng"), dict):
            raise TypeError("the envs' state is not a JSON object with a seed_rng")
        for key in ("episode_seeds", "steps_since_reset"):
            values = state.get(key)
            if not (
                isinstance(values, list) and len(values) == n_envs and all(type(v) is int for v in values)
            ):
                raise ValueError(f"the envs' {key} are not {n_envs} integers")
            if not all(-1 <= v < 2**63 for v in values):
                raise ValueError(f"the envs' {key} are out of range")
        self.rng.bit_generator.state = state["seed_rng"]
        self.seeds[:] = state["episode_seeds"]
        self.steps_since_reset[:] = state["steps_since_reset"]


class EnvStepper:
    """Steps a vector env and turns each step into transitions, whatever its autoreset mode.

    With autoreset disabled (the envs easyrl builds for training), the stepper resets each
    finished env itself, from a seed drawn from ``seeds``, and records each env's
    current-episode seed and how many steps it has taken since (:class:`EpisodeSeeds`): between
    episodes, those seeds alone reproduce the envs' state (see :meth:`restore`). A vector env
    that resets itself (``SAME_STEP`` or ``NEXT_STEP``) is seeded at the first reset only.
    """

    def __init__(self, env: VectorEnv, seeds: EpisodeSeeds | None = None) -> None:
        self.env = env
        self.mode = autoreset_mode(env)
        self.stats_key = episode_statistics_key(env) or STATS_KEY
        self.seeds = seeds if seeds is not None else EpisodeSeeds(env.num_envs)
        self._resetting = np.zeros(env.num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env and return the first observations.

        ``seed`` reseeds the generator each episode's seed is drawn from; without it, the
        generator continues.
        """
        if seed is not None:
            self.seeds.rng = np.random.default_rng(seed)
        return self._reset_all(self.seeds.draw(self.env.num_envs))

    def _reset_all(self, seeds: np.ndarray) -> Obs:
        per_env: Any = [int(s) for s in seeds]  # gymnasium's annotation says int; vector envs take a list
        obs, _ = self.env.reset(seed=per_env)
        self.seeds.seeds[:] = seeds
        self.seeds.steps_since_reset[:] = 0
        self._resetting[:] = False
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        """Step every env with ``actions`` (already in the env's action bounds)."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        valid = ~self._resetting
        self.seeds.steps_since_reset[valid] += 1
        _, returns, lengths = finished_episodes(infos, self.stats_key)
        next_obs = obs
        if self.mode == AutoresetMode.DISABLED and dones.any():
            obs = self._reset_finished(dones)
        elif self.mode == AutoresetMode.SAME_STEP and "_final_obs" in infos:
            ended = np.flatnonzero(infos["_final_obs"])
            next_obs = copy_obs(as_numpy(obs))
            set_rows(next_obs, ended, [infos["final_obs"][i] for i in ended])
        if self.mode != AutoresetMode.DISABLED:
            self._forget_seeds(dones & valid)
        if self.mode == AutoresetMode.NEXT_STEP:
            self._resetting = dones
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

    def _reset_finished(self, dones: np.ndarray) -> Obs:
        """Start a new episode, from a new seed, in each env that finished; the observations to act on."""
        ended = np.flatnonzero(dones)
        seeds = self.seeds.draw(ended.size)
        per_env: Any = [None] * self.env.num_envs  # only the masked envs' seeds are used
        for i, seed in zip(ended, seeds, strict=True):
            per_env[i] = int(seed)
        obs, _ = self.env.reset(seed=per_env, options={"reset_mask": dones.copy()})
        self.seeds.seeds[ended] = seeds
        self.seeds.steps_since_reset[ended] = 0
        return obs

    def _forget_seeds(self, ended: np.ndarray) -> None:
        """An env that reset itself starts an episode whose seed is unknown."""
        self.seeds.seeds[ended] = -1
        self.seeds.steps_since_reset[ended] = 0

    @property
    def at_episode_boundary(self) -> bool:
        return self.seeds.at_episode_boundary

    def restore(self) -> tuple[Obs, bool]:
        """Reset the envs to where :attr:`seeds` says they were; returns (observations, exact).

        At an episode boundary each env is reset with the seed of its episode, which puts a
        deterministic env back exactly where it was (``exact`` True). Otherwise the envs start
        fresh episodes from new seeds, and the interrupted ones are lost (``exact`` False).
        """
        if self.seeds.at_episode_boundary:
            return self._reset_all(self.seeds.seeds.copy()), True
        return self._reset_all(self.seeds.draw(self.env.num_envs)), False
