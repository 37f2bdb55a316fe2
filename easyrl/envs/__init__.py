"""Environments: turning what the user passed into vector envs (``vector``), SB3's vector-env interface,
and small envs of our own.

``easyrl.envs.vector`` builds and steps the vector envs every estimator trains on. SB3 scripts find
their names here too: ``make_vec_env``, ``DummyVecEnv``, ``SubprocVecEnv``, ``VecEnvWrapper`` and
``VecNormalize`` (``vec_env``, ``make``, ``vec_normalize``), thin layers over gymnasium's vector envs.
The small envs
beside it are for tests, examples and quick experiments (numpy and gymnasium only, no torch);
importing this package, which ``import easyrl`` does, registers them with gymnasium:

* ``"easyrl/PointGoal-v0"``: :class:`PointGoalEnv` (``easyrl.envs.goal``), a goal-conditioned
  ``Dict``-observation env with a sparse reward, for HER; 50 steps an episode.
* ``"easyrl/DotImage-v0"``: :class:`DotImageEnv` (``easyrl.envs.image``), a numpy-drawn 84×84 RGB
  image env with a dense reward, for CNN policies; 20 steps an episode. Pass ``size=36`` and
  ``channel_first=True`` to ``gymnasium.make`` for smaller or CHW images.

Both envs truncate their episodes themselves, so they need no ``TimeLimit``; the registrations
give the same ``max_episode_steps`` for ``env.spec``. ``gymnasium.make(id, max_episode_steps=n)``
only shortens them: build the class with ``max_episode_steps=n`` for longer episodes.
"""

import gymnasium as _gym

from easyrl.envs.goal import PointGoalEnv
from easyrl.envs.image import DotImageEnv
from easyrl.envs.make import make_vec_env
from easyrl.envs.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper
from easyrl.envs.vec_normalize import VecNormalize
from easyrl.envs.vector import (
    STATS_KEY,
    EnvLike,
    EnvStepper,
    EpisodeSeeds,
    StepResult,
    autoreset_mode,
    builds_new_env,
    check_env_id,
    env_id_of,
    episode_statistics_key,
    finished_episodes,
    to_vector_env,
)

for _id, _entry_point, _steps in (
    ("easyrl/PointGoal-v0", "easyrl.envs.goal:PointGoalEnv", 50),
    ("easyrl/DotImage-v0", "easyrl.envs.image:DotImageEnv", 20),
):
    if _id not in _gym.registry:  # a reload must not register twice (gymnasium warns)
        _gym.register(id=_id, entry_point=_entry_point, max_episode_steps=_steps)

__all__ = [
    "STATS_KEY",
    "DotImageEnv",
    "DummyVecEnv",
    "EnvLike",
    "EnvStepper",
    "EpisodeSeeds",
    "PointGoalEnv",
    "StepResult",
    "SubprocVecEnv",
    "VecEnv",
    "VecEnvWrapper",
    "VecNormalize",
    "autoreset_mode",
    "builds_new_env",
    "check_env_id",
    "env_id_of",
    "episode_statistics_key",
    "finished_episodes",
    "make_vec_env",
    "to_vector_env",
]
