"""``evaluate_policy``: run a model for a number of whole episodes and report their returns
(``evaluate_success_rate``: the fraction that succeeded, for goal-conditioned envs).

Episode returns and lengths come from gymnasium's ``RecordEpisodeStatistics`` (added by
:func:`easyrl.envs.to_vector_env` when the env lacks it), not from a hand-written sum.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any, Literal, Protocol, TypeAlias, overload

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.wrappers import RecordEpisodeStatistics

from easyrl.envs import (
    STATS_KEY,
    EnvLike,
    builds_new_env,
    episode_statistics_key,
    finished_episodes,
    to_vector_env,
)
from easyrl.envs.vec_env import sb3_infos
from easyrl.monitor import Monitor
from easyrl.observations import obs_row


class Predictor(Protocol):
    """Anything with SB3's ``predict``: an easyrl model, or a Stable-Baselines3 one."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]: ...


EvalCallbackFn: TypeAlias = Callable[[dict[str, Any], dict[str, Any]], object]
"""SB3's ``callback(locals, globals)`` of ``evaluate_policy``, called for every env at every step."""


@overload
def evaluate_policy(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = ...,
    deterministic: bool = ...,
    render: bool = ...,
    callback: EvalCallbackFn | None = ...,
    reward_threshold: float | None = ...,
    return_episode_rewards: Literal[False] = ...,
    warn: bool = ...,
    *,
    seed: int | None = ...,
) -> tuple[float, float]: ...
@overload
def evaluate_policy(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = ...,
    deterministic: bool = ...,
    render: bool = ...,
    callback: EvalCallbackFn | None = ...,
    reward_threshold: float | None = ...,
    *,
    return_episode_rewards: Literal[True],
    warn: bool = ...,
    seed: int | None = ...,
) -> tuple[list[float], list[int]]: ...
def evaluate_policy(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    render: bool = False,
    callback: EvalCallbackFn | None = None,
    reward_threshold: float | None = None,
    return_episode_rewards: bool = False,
    warn: bool = True,
    *,
    seed: int | None = None,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """Run ``model`` for ``n_eval_episodes`` whole episodes and return the mean and std of their returns.

    The arguments are SB3's, in SB3's order, with ``seed`` added.

    Args:
        model: the policy; ``model.predict(obs, deterministic=...)`` picks the actions.
        env: an env id, a ``gymnasium.Env``, a vector env, or a function returning an env. The env is
            reset first, so an episode in progress is abandoned. Envs built here (from an id or a
            function) are closed afterwards; an env passed in stays open.
        n_eval_episodes: number of finished episodes to average over. With a vector env of n envs,
            env i contributes ``(n_eval_episodes + i) // n`` episodes (as in SB3), so short episodes
            are not over-represented.
        deterministic: use the policy's deterministic actions (the mean of SAC's Gaussian) rather
            than sampled ones.
        render: call ``env.render()`` after every step (create the env with a ``render_mode``).
        callback: called as ``callback(locals, globals)`` for every env still counting, at every
            step, as in SB3: ``locals`` holds ``i`` (the env), ``reward``, ``done`` and ``info`` (its
            SB3-style info dict) and the whole step's ``observations``, ``actions``, ``rewards``,
            ``dones``, ``infos``, ``new_observations``, and ``episode_counts``,
            ``episode_rewards``, ``episode_lengths``, ``model`` and ``env``.
        reward_threshold: raise AssertionError (as SB3's assert does) unless the mean return is above it.
        return_episode_rewards: return the per-episode returns and lengths instead of the mean and std.
        warn: warn when the env has wrappers that may change its rewards or episode ends and no
            ``Monitor`` records the episodes beneath them (see :func:`run_episodes`).
        seed: seed of the first reset (env i gets ``seed + i``), for repeatable evaluations.

    Returns:
        ``(mean_return, std_return)`` as floats, or ``(episode_returns, episode_lengths)`` as lists of
        ``n_eval_episodes`` floats and ints when ``return_episode_rewards=True``.
    """
    if not isinstance(n_eval_episodes, int) or isinstance(n_eval_episodes, bool) or n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes={n_eval_episodes!r} is invalid: it must be an integer >= 1.")
    with _vector_env(env) as vec_env:
        if warn:
            _warn_if_unmonitored(vec_env)
        returns, lengths, _ = run_episodes(
            model, vec_env, n_eval_episodes, deterministic, render, seed, callback=callback
        )
    mean_return = float(np.mean(returns))
    if reward_threshold is not None and not mean_return > reward_threshold:
        raise AssertionError(
            f"Mean reward below threshold: {mean_return:.2f} < {reward_threshold:.2f} (the mean return over "
            f"{n_eval_episodes} episodes must be above reward_threshold={reward_threshold!r})"
        )
    if return_episode_rewards:
        return returns, lengths
    return mean_return, float(np.std(returns))


def evaluate_success_rate(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = 20,
    deterministic: bool = True,
    *,
    seed: int | None = None,
) -> float:
    """The fraction of ``n_eval_episodes`` episodes that end in success (``info["is_success"]`` of their
    last step, as goal-conditioned envs such as gymnasium-robotics' report it).

    The env and the episodes are as for :func:`evaluate_policy`. Raises ValueError when the env does
    not report ``is_success``.
    """
    if not isinstance(n_eval_episodes, int) or isinstance(n_eval_episodes, bool) or n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes={n_eval_episodes!r} is invalid: it must be an integer >= 1.")
    with _vector_env(env) as vec_env:
        _, _, successes = run_episodes(model, vec_env, n_eval_episodes, deterministic, False, seed)
    if len(successes) != n_eval_episodes:
        raise ValueError(
            "The env does not report info['is_success'] at the end of its episodes, so there is no success "
            "rate to measure; use evaluate_policy for the returns."
        )
    return float(np.mean(successes))


def _vector_env(env: EnvLike) -> AbstractContextManager[VectorEnv]:
    """``env`` as a vector env with episode statistics; closed on exit only if it was built here."""
    vec_env = to_vector_env(env, 1)
    if builds_new_env(env):
        return closing(vec_env)
    return nullcontext(vec_env)


def run_episodes(
    model: Predictor,
    env: VectorEnv,
    n_episodes: int,
    deterministic: bool,
    render: bool,
    seed: int | None,
    *,
    callback: EvalCallbackFn | None = None,
) -> tuple[list[float], list[int], list[float]]:
    """The returns and lengths of ``n_episodes`` episodes, and the ``info["is_success"]`` of each episode's
    last step where the env reports one (goal-conditioned envs do).

    Returns and lengths come from the env's own ``Monitor`` (or gymnasium's ``RecordEpisodeStatistics``)
    where it has one, as SB3 reads them: that sees the rewards beneath any wrapper above it. Otherwise
    they come from the statistics wrapper :func:`easyrl.envs.to_vector_env` puts around the vector env.
    ``callback`` is SB3's ``callback(locals, globals)`` (see :func:`evaluate_policy`).
    """
    n_envs = env.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    counts = np.zeros(n_envs, dtype=int)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[float] = []
    stats_key = episode_statistics_key(env) or STATS_KEY
    # The env gives raw observations (a VecNormalize is unwrapped): a normalising easyrl model scales
    # them with its training statistics, frozen, as SB3's sync_envs_normalization does for its envs.
    raw: dict[str, Any] = {"normalized": False} if getattr(model, "_normalizer", None) is not None else {}
    obs, _ = env.reset(seed=seed)
    while (counts < targets).any():
        actions, _ = model.predict(obs, deterministic=deterministic, **raw)
        new_obs, rewards, terminated, truncated, infos = env.step(actions)
        if callback is not None:
            _call_back(callback, locals())
        obs = new_obs
        if render:
            env.render()
        for i, episode_return, length in zip(*finished_episodes(infos, stats_key), strict=True):
            if counts[i] < targets[i]:
                episode_return, length = _inner_episode(infos, int(i)) or (episode_return, length)
                returns.append(episode_return)
                lengths.append(length)
                counts[i] += 1
                success = _success(infos, int(i))
                if success is not None:
                    successes.append(success)
    return returns, lengths, successes


def _call_back(callback: EvalCallbackFn, scope: dict[str, Any]) -> None:
    """SB3's per-env ``callback(locals(), globals())`` with SB3's names for this step's values."""
    infos, obs = scope["infos"], scope["obs"]
    terminated, truncated = np.asarray(scope["terminated"]), np.asarray(scope["truncated"])

    def final_obs(i: int) -> Any:
        if "_final_obs" in infos and infos["_final_obs"][i]:
            return infos["final_obs"][i]
        return obs_row(scope["new_obs"], i)

    sb3_step = {
        "model": scope["model"],
        "env": scope["env"],
        "n_envs": scope["n_envs"],
        "observations": obs,
        "actions": scope["actions"],
        "new_observations": scope["new_obs"],
        "rewards": scope["rewards"],
        "dones": terminated | truncated,
        "infos": sb3_infos(infos, terminated, truncated, final_obs),
        "episode_counts": scope["counts"],
        "episode_count_targets": scope["targets"],
        "episode_rewards": scope["returns"],
        "episode_lengths": scope["lengths"],
        "states": None,
    }
    for i in np.flatnonzero(scope["counts"] < scope["targets"]).tolist():
        step = {**sb3_step, "i": i, "reward": sb3_step["rewards"][i], "done": bool(sb3_step["dones"][i])}
        step["info"] = step["infos"][i]
        callback(step, globals())


def _inner_episode(infos: dict[str, Any], i: int) -> tuple[float, int] | None:
    """The return and length that env ``i``'s own ``Monitor`` (or single-env ``RecordEpisodeStatistics``)
    reported for the episode that just ended, or None when it has none."""
    for info in (infos.get("final_info"), infos):
        episode = info.get("episode") if isinstance(info, dict) else None
        if not isinstance(episode, dict) or "r" not in episode or "l" not in episode:
            continue
        mask = info.get("_episode") if isinstance(info, dict) else None
        if mask is None or mask[i]:
            return float(episode["r"][i]), int(episode["l"][i])
    return None


STANDARD_WRAPPERS = frozenset({"TimeLimit", "OrderEnforcing", "PassiveEnvChecker", "Monitor"})
"""Wrappers that change neither rewards nor episode ends (``gymnasium.make``'s own, and Monitor)."""


def _warn_if_unmonitored(env: VectorEnv) -> None:
    """SB3's warning, kept to where it matters: the env has wrappers that may change rewards or episode
    ends, and no Monitor beneath them records the true episodes."""
    sub_envs = getattr(env.unwrapped, "envs", None)  # a SyncVectorEnv's; other vector envs are opaque
    if not sub_envs:
        return
    wrappers: list[str] = []
    inner: Any = sub_envs[0]
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, Monitor | RecordEpisodeStatistics):
            return
        wrappers.append(type(inner).__name__)
        inner = inner.env
    others = [name for name in wrappers if name not in STANDARD_WRAPPERS]
    if others:
        warnings.warn(
            f"Evaluation environment is not wrapped with a ``Monitor`` wrapper, and has the wrappers {others}: "
            "the returns and lengths are measured above them, so a wrapper that changes rewards or ends "
            "episodes changes what is reported. Wrap the env in easyrl.monitor.Monitor beneath those "
            "wrappers (evaluate_policy then reads its episodes, as SB3 does), or pass warn=False.",
            UserWarning,
            stacklevel=3,
        )


def episode_successes(infos: dict[str, Any], ended: Iterable[int]) -> list[float]:
    """``info["is_success"]`` of the finished episode of each env in ``ended`` that reports one (what
    SB3 keeps in ``ep_success_buffer`` for ``rollout/success_rate``)."""
    return [success for i in ended if (success := _success(infos, int(i))) is not None]


def _success(infos: dict[str, Any], i: int) -> float | None:
    """``is_success`` of env ``i``'s finished episode: in the final info of an env that reset in the same
    step, else in the step's info; None when the env does not report it."""
    for info in (infos.get("final_info"), infos):
        if not isinstance(info, dict) or "is_success" not in info:
            continue
        mask = info.get("_is_success")  # which envs' entries are set
        if mask is None or mask[i]:
            return float(info["is_success"][i])
    return None
