"""``check_env``: is an env one that easyrl can train on? (SB3's ``stable_baselines3.common.env_checker``.)

Runs gymnasium's own API checker (``gymnasium.utils.env_checker.check_env``: reset and step
signatures, the spaces the observations come in, seeding) and then what easyrl itself needs: a
continuous action space with finite bounds, observations it has features extractors for, finite
observations and rewards, and, for a goal-conditioned env, a ``compute_reward`` that HER can call
on batches. Each problem is an error that names it and the fix; things that work but may surprise
are warnings (``warn=False`` silences every warning, gymnasium's included).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from easyrl.extractors import MIN_IMAGE_SIZE, image_space_problem, is_image_space_channels_first
from easyrl.validation import check_spaces

ALGORITHMS = "easyrl (SAC, TD3, DDPG)"
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
"""The observation keys of a goal-conditioned env (gymnasium-robotics' convention, which HER reads)."""


def check_env(env: gym.Env, warn: bool = True, skip_render_check: bool = True) -> None:
    """Checks that ``env`` follows gymnasium's API and that easyrl can train on it.

    Args:
        env: the env to check (a ``gymnasium.Env``; it is reset and stepped with random actions).
        warn: emit warnings about what works but may surprise (an observation that looks like an
            image but will be flattened, say). False: errors only.
        skip_render_check: skip gymnasium's check of ``render()`` (True by default, as in SB3, so it
            can run where there is no display).

    Raises:
        TypeError: ``env`` is not a ``gymnasium.Env``.
        ValueError: a space easyrl cannot train on, non-finite observations or rewards, or a
            goal-conditioned env whose observations or ``compute_reward`` HER cannot use.
        AssertionError: gymnasium's checker found the env breaking gymnasium's API.
    """
    if not isinstance(env, gym.Env):
        raise TypeError(
            f"check_env needs a gymnasium.Env, got {type(env).__name__}; check one env, not a vector env "
            "(e.g. check_env(gym.make('Pendulum-v1')))."
        )
    check_spaces(env.observation_space, env.action_space, ALGORITHMS)
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore")
        gymnasium_check_env(env, skip_render_check=skip_render_check)
        if warn:
            _warn_about_images(env.observation_space)
    _check_finite_steps(env)
    if _is_goal_env(env):
        _check_goal_env(env)


def _boxes(space: gym.Space[Any]) -> dict[str, gym.Space[Any]]:
    return dict(space.spaces) if isinstance(space, gym.spaces.Dict) else {"": space}


def _warn_about_images(space: gym.Space[Any]) -> None:
    """3-D observations that are not images as easyrl reads them, or are too small for its CNN."""
    for key, box in _boxes(space).items():
        where = f"observation {key!r}" if key else "observation"
        problem = image_space_problem(box)
        if isinstance(box, gym.spaces.Box) and len(box.shape) == 3 and problem is not None:
            warnings.warn(
                f"The {where} looks like an image (a 3-D Box), but {problem}, so easyrl flattens it into a "
                "vector instead of giving it a CNN. Images are uint8 Boxes in [0, 255]; float images in "
                "[0, 1] need policy_kwargs=dict(normalize_images=False) and policy='CnnPolicy'.",
                stacklevel=3,
            )
        elif problem is None and isinstance(box, gym.spaces.Box):
            shape = box.shape
            height, width = shape[1:] if is_image_space_channels_first(box) else shape[:2]
            if min(height, width) < MIN_IMAGE_SIZE:
                warnings.warn(
                    f"The {where} is a {height}x{width} image, smaller than the {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} "
                    "that easyrl's default CNN (NatureCNN) needs: resize it (gymnasium.wrappers."
                    "ResizeObservation), use policy='MlpPolicy', or pass policy_kwargs['features_extractor_class'].",
                    stacklevel=3,
                )


def _check_finite_steps(env: gym.Env, n_steps: int = 10) -> None:
    """A few random steps: NaN or infinite observations or rewards would poison the networks."""
    obs, _ = env.reset(seed=0)
    _check_finite(obs, "reset()")
    env.action_space.seed(0)
    for _ in range(n_steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        _check_finite(obs, "step()")
        if not np.isfinite(float(reward)):
            raise ValueError(
                f"step() returned the reward {reward}: rewards must be finite numbers (a NaN or infinite "
                "reward makes every critic loss NaN). Clip or fix the reward in the env."
            )
        if terminated or truncated:
            obs, _ = env.reset()
            _check_finite(obs, "reset()")


def _check_finite(obs: Any, method: str) -> None:
    arrays = obs.items() if isinstance(obs, dict) else [("", obs)]
    for key, array in arrays:
        values = np.asarray(array)
        if np.issubdtype(values.dtype, np.number) and not np.all(np.isfinite(values)):
            where = f"observation {key!r}" if key else "observation"
            raise ValueError(
                f"{method} returned an {where} with NaN or infinite values: {values}. The networks cannot "
                "learn from them; fix the env, or clip its observations (gymnasium.wrappers.ClipObservation)."
            )


def _is_goal_env(env: gym.Env) -> bool:
    """Goal-conditioned: the unwrapped env has ``compute_reward`` (every wrapper forwards the name)."""
    return callable(getattr(env.unwrapped, "compute_reward", None))


def _check_goal_env(env: gym.Env) -> None:
    """The observations HER relabels, and a ``compute_reward`` that agrees with ``step()`` on a batch."""
    space = env.observation_space
    keys = list(space.spaces) if isinstance(space, gym.spaces.Dict) else None
    if keys is None or any(key not in keys for key in GOAL_KEYS):
        raise ValueError(
            f"The env has compute_reward, so it looks goal-conditioned, but its observations are {space}: "
            f"HerReplayBuffer needs a Dict observation space with the keys {list(GOAL_KEYS)}. Add the missing "
            "keys, or remove compute_reward if the env is not meant for HER."
        )
    compute_reward = env.unwrapped.compute_reward  # type: ignore[attr-defined]
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(env.action_space.sample())
    achieved, desired = np.asarray(obs["achieved_goal"]), np.asarray(obs["desired_goal"])
    single = compute_reward(achieved, desired, info)
    if not np.isclose(float(np.asarray(single).reshape(-1)[0]), float(reward)):
        raise ValueError(
            f"step() returned the reward {reward}, but compute_reward(achieved_goal, desired_goal, info) gives "
            f"{single}: HER recomputes rewards with compute_reward, so step() must compute its reward with it."
        )
    # HER calls it on a batch of goals with one empty info dict per row (infos are not stored).
    batch = compute_reward(np.stack([achieved, achieved]), np.stack([desired, desired]), [{}, {}])
    batch = np.asarray(batch)
    if batch.shape != (2,):
        raise ValueError(
            f"compute_reward on a batch of 2 goals (arrays of shape {(2, *achieved.shape)}) returned shape "
            f"{batch.shape}, not (2,): HerReplayBuffer calls it on whole batches, so it must be vectorised."
        )
    if not np.allclose(batch, float(reward)):
        raise ValueError(
            f"compute_reward on a batch gives {batch.tolist()}, not the step's reward {reward} for each row. "
            "HerReplayBuffer calls it with one empty info dict per row (infos are not stored), so the reward "
            "must not depend on info."
        )
