"""``evaluate_policy``: run a model for a number of whole episodes and report their returns
(``evaluate_success_rate``: the fraction that succeeded, for goal-conditioned envs).

Episode returns and lengths come from gymnasium's ``RecordEpisodeStatistics`` (added by
:func:`easyrl.envs.to_vector_env` when the env lacks it), not from a hand-written sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any, Literal, Protocol, overload

import numpy as np
from gymnasium.vector import VectorEnv

from easyrl.envs import (
    STATS_KEY,
    EnvLike,
    builds_new_env,
    episode_statistics_key,
    finished_episodes,
    to_vector_env,
)


class Predictor(Protocol):
    """Anything with SB3's ``predict``: an easyrl model, or a Stable-Baselines3 one."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]: ...


@overload
def evaluate_policy(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = ...,
    deterministic: bool = ...,
    render: bool = ...,
    return_episode_rewards: Literal[False] = ...,
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
    *,
    return_episode_rewards: Literal[True],
    seed: int | None = ...,
) -> tuple[list[float], list[int]]: ...
def evaluate_policy(
    model: Predictor,
    env: EnvLike,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    render: bool = False,
    return_episode_rewards: bool = False,
    *,
    seed: int | None = None,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """Run ``model`` for ``n_eval_episodes`` whole episodes and return the mean and std of their returns.

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
        return_episode_rewards: return the per-episode returns and lengths instead of the mean and std.
        seed: seed of the first reset (env i gets ``seed + i``), for repeatable evaluations.

    Returns:
        ``(mean_return, std_return)`` as floats, or ``(episode_returns, episode_lengths)`` as lists of
        ``n_eval_episodes`` floats and ints when ``return_episode_rewards=True``.
    """
    if not isinstance(n_eval_episodes, int) or isinstance(n_eval_episodes, bool) or n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes={n_eval_episodes!r} is invalid: it must be an integer >= 1.")
    with _vector_env(env) as vec_env:
        returns, lengths, _ = run_episodes(model, vec_env, n_eval_episodes, deterministic, render, seed)
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))


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
    model: Predictor, env: VectorEnv, n_episodes: int, deterministic: bool, render: bool, seed: int | None
) -> tuple[list[float], list[int], list[float]]:
    """The returns and lengths of ``n_episodes`` episodes, and the ``info["is_success"]`` of each episode's
    last step where the env reports one (goal-conditioned envs do)."""
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
        obs, _, _, _, infos = env.step(actions)
        if render:
            env.render()
        for i, episode_return, length in zip(*finished_episodes(infos, stats_key), strict=True):
            if counts[i] < targets[i]:
                returns.append(episode_return)
                lengths.append(length)
                counts[i] += 1
                success = _success(infos, int(i))
                if success is not None:
                    successes.append(success)
    return returns, lengths, successes


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
