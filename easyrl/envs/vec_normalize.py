"""SB3's ``VecNormalize``: running normalisation of observations and rewards, with a safe statistics file.

The statistics are a :class:`~easyrl.normalization.Normalizer`. A model trained on a ``VecNormalize``
takes that normaliser as its own: the model stores raw observations and rewards, normalises each
drawn batch, saves the statistics inside its model file, and a loaded model normalises raw
observations by itself. ``save``/``load`` write and read the statistics as a file of their own (a zip
of float64 ``.npy`` arrays and JSON, whatever the file's name: never a pickle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.vector import VectorEnv

from easyrl.envs.vec_env import VecEnv, VecEnvWrapper
from easyrl.normalization import Normalizer, RunningMeanStd
from easyrl.observations import Obs, check_observation_space, copy_obs
from easyrl.serialization import ModelFileError, PathOrFile, read_arrays_zip, space_to_json, write_arrays_zip

if TYPE_CHECKING:
    from pathlib import Path

KIND = "easyrl.vec_normalize"
"""``metadata["kind"]`` of a statistics file."""


class VecNormalize(VecEnvWrapper):
    """Normalises the observations and rewards of ``venv`` (SB3's parameters and defaults).

    ``step`` and ``reset`` return normalised observations and rewards, as SB3's do, and update the
    statistics while ``training``; ``get_original_obs()`` and ``get_original_reward()`` give the raw ones.
    ``venv`` is an easyrl ``VecEnv`` (``DummyVecEnv``, ``make_vec_env``'s) or a gymnasium vector env.
    """

    def __init__(
        self,
        venv: VecEnv | VectorEnv,
        training: bool = True,
        norm_obs: bool = True,
        norm_reward: bool = True,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        gamma: float = 0.99,
        epsilon: float = 1e-8,
        norm_obs_keys: list[str] | None = None,
    ) -> None:
        super().__init__(VecEnv(venv) if isinstance(venv, VectorEnv) else venv)
        self.normalizer = Normalizer(
            check_observation_space(self.observation_space, "VecNormalize"), self.num_envs, norm_obs, norm_reward, clip_obs, clip_reward, gamma, epsilon,
            norm_obs_keys, training,
        )  # fmt: skip
        self.old_obs: Obs | None = None
        self.old_reward: np.ndarray | None = None

    # SB3's attributes, read from (and written to) the normaliser the model shares.
    def _setting(name: str) -> Any:  # type: ignore[misc]
        return property(
            lambda self: getattr(self.normalizer, name), lambda self, v: setattr(self.normalizer, name, v)
        )

    training = _setting("training")
    norm_obs = _setting("norm_obs")
    norm_reward = _setting("norm_reward")
    clip_obs = _setting("clip_obs")
    clip_reward = _setting("clip_reward")
    gamma = _setting("gamma")
    epsilon = _setting("epsilon")
    norm_obs_keys = _setting("norm_obs_keys")
    returns = _setting("returns")
    del _setting

    @property
    def obs_rms(self) -> RunningMeanStd | dict[str, RunningMeanStd]:
        return self.normalizer.obs_rms

    @property
    def ret_rms(self) -> RunningMeanStd:
        return self.normalizer.ret_rms

    # ------------------------------------------------------------------ stepping
    def reset(self) -> Obs:
        obs = self.venv.reset()
        self.old_obs = obs
        self.normalizer.reset_returns()
        self.normalizer.update(obs)
        return self.normalizer.normalize_obs(obs)

    def step_wait(self) -> tuple[Obs, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.old_obs, self.old_reward = obs, rewards
        self.normalizer.update(obs, rewards, dones)
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = self.normalizer.normalize_obs(
                    copy_obs(info["terminal_observation"])
                )
        return self.normalizer.normalize_obs(obs), self.normalizer.normalize_reward(rewards), dones, infos

    def normalize_obs(self, obs: Obs) -> Obs:
        return self.normalizer.normalize_obs(obs)

    def unnormalize_obs(self, obs: Obs) -> Obs:
        return self.normalizer.unnormalize_obs(obs)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        return self.normalizer.normalize_reward(reward)

    def unnormalize_reward(self, reward: np.ndarray) -> np.ndarray:
        return self.normalizer.unnormalize_reward(reward)

    def get_original_obs(self) -> Obs | None:
        """The raw observations of the latest ``reset`` or ``step``."""
        return None if self.old_obs is None else copy_obs(self.old_obs)

    def get_original_reward(self) -> np.ndarray | None:
        """The raw rewards of the latest ``step``."""
        return None if self.old_reward is None else self.old_reward.copy()

    def set_venv(self, venv: VecEnv) -> None:
        """Wrap ``venv`` instead (same spaces and number of envs); the statistics stay."""
        if venv.num_envs != self.num_envs or venv.observation_space != self.observation_space:
            raise ValueError(
                f"set_venv() needs {self.num_envs} env(s) with the observation space {self.observation_space}; "
                f"got {venv.num_envs} with {venv.observation_space}."
            )
        self.venv = venv

    # ------------------------------------------------------------------ files
    def save(self, save_path: PathOrFile) -> Path | None:
        """Write the statistics and settings to ``save_path``, atomically (a zip of arrays and JSON, no pickle)."""
        return save_statistics(self.normalizer, save_path)

    @staticmethod
    def load(load_path: PathOrFile, venv: VecEnv | VectorEnv) -> VecNormalize:
        """A ``VecNormalize`` around ``venv`` with the statistics and settings of a file from :meth:`save`
        (or from a model's ``save``)."""
        wrapper = VecNormalize(venv)
        wrapper.normalizer = load_statistics(load_path, wrapper.observation_space, wrapper.num_envs)
        return wrapper


def save_statistics(normalizer: Normalizer, path: PathOrFile) -> Path | None:
    """Write ``normalizer``'s statistics file (the format of :meth:`VecNormalize.save`)."""
    description, arrays = normalizer.to_file()
    metadata = {
        "kind": KIND,
        "normalization": description,
        "observation_space": space_to_json(normalizer.observation_space),
        "num_envs": normalizer.num_envs,
    }
    return write_arrays_zip(path, arrays, metadata)


def load_statistics(path: PathOrFile, observation_space: Any, num_envs: int) -> Normalizer:
    """The normaliser of a statistics file, checked against the envs it will normalise."""
    try:
        arrays, metadata = read_arrays_zip(path)
    except ModelFileError as error:
        raise ModelFileError(
            error.path,
            f"{error.problem} A VecNormalize statistics file is written by easyrl's VecNormalize.save(); SB3's "
            "pickled vec_normalize.pkl cannot be read, since unpickling can run code: retrain, or copy its "
            "obs_rms and ret_rms arrays into a VecNormalize yourself.",
        ) from None
    name = str(getattr(path, "name", path))
    if metadata.get("kind") != KIND:
        raise ModelFileError(
            name, f"is a {metadata.get('kind') or 'non-statistics'} file, not VecNormalize statistics."
        )
    if metadata.get("observation_space") != space_to_json(observation_space):
        raise ModelFileError(
            name, f"holds statistics of other observations than this env's {observation_space}."
        )
    if metadata.get("num_envs") != num_envs:
        raise ModelFileError(
            name, f"holds statistics of {metadata.get('num_envs')} env(s); this vector env has {num_envs}."
        )
    try:
        return Normalizer.from_file(metadata.get("normalization"), arrays, observation_space, num_envs)
    except (TypeError, ValueError) as error:
        raise ModelFileError(name, f"has damaged statistics ({error}).") from None
