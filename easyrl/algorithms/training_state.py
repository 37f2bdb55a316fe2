"""A model's training state: everything it counts and draws while training, apart from weights and replay.

One object, created in one place (:meth:`TrainingState.create`) and saved and restored as a whole
(:meth:`to_file`, :meth:`restore`), so that an exact resume needs no code that reaches into the
model, and adding a piece of state is one edit here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from easyrl.envs import EpisodeSeeds, StepResult
from easyrl.evaluation import episode_successes
from easyrl.noise import ActionNoise, VectorizedActionNoise
from easyrl.observations import Obs, ObsSpace, space_shapes


@dataclass(eq=False)
class TrainingState:
    """Counters, random generators, exploration noise, episode statistics and the envs' positions.

    Generators: ``warmup_rng`` draws the uniform actions before ``learning_starts``; ``torch_rng``
    draws replay batches and the policy's samples in training; ``predict_rng`` serves ``predict``
    alone, so predicting never changes a training run; ``episode_seeds`` holds each env's episode
    seed and its generator; ``noise`` is the exploration noise of each env.
    """

    seed_used: int
    warmup_rng: np.random.Generator
    torch_rng: torch.Generator
    predict_rng: torch.Generator
    episode_seeds: EpisodeSeeds
    noise: VectorizedActionNoise | None
    episode_stats: deque[tuple[float, int]]
    env_seed: int | None
    """Seeds ``episode_seeds``' generator at the first reset; None once it has."""
    num_timesteps: int = 0
    n_updates: int = 0
    episode_num: int = 0
    total_timesteps: int = 0
    """Where the current ``learn`` call stops, in env steps."""
    last_obs: Obs | None = None
    """The observations to act on next; None before the envs were reset."""
    resume_obs: Obs | None = field(default=None, repr=False)
    """A checkpoint's observations, kept while the model has no env to put back there (see ``set_env``)."""
    success_stats: deque[float] = field(default_factory=deque)
    """``info["is_success"]`` of the last ``stats_window_size`` finished episodes that reported one."""
    rollout_steps: int = 0
    """Env steps (over all envs) of the rollout in progress: non-zero only while a callback runs."""
    rollout_episodes: int = 0
    """Episodes ended in the rollout in progress (for ``train_freq`` in episodes)."""
    skipped_updates: int = 0
    """Updates skipped because a loss or gradient was not finite (``easyrl.updates.NonFiniteGuard``)."""

    @classmethod
    def create(
        cls,
        seed: int | None,
        device: torch.device,
        num_envs: int,
        action_noise: ActionNoise | None,
        stats_window_size: int,
    ) -> tuple[TrainingState, int]:
        """The state of a new model, and the seed to initialise its networks from.

        Five seeds are drawn from ``seed`` (with ``seed`` None, from fresh entropy, and the first
        is kept as ``seed_used``): the first is the networks' (the model initialises them under a
        forked global generator), the others seed the generators here.
        """
        seeds = np.random.SeedSequence(seed).generate_state(5)
        state = cls(
            seed_used=seed if seed is not None else int(seeds[0]),
            warmup_rng=np.random.default_rng(seeds[1]),
            torch_rng=torch.Generator(device=device).manual_seed(int(seeds[2])),
            predict_rng=torch.Generator(device=device).manual_seed(int(seeds[3])),
            episode_seeds=EpisodeSeeds(num_envs),
            noise=None
            if action_noise is None
            else VectorizedActionNoise(action_noise, num_envs, int(seeds[4])),
            episode_stats=deque(maxlen=stats_window_size),
            env_seed=int(seeds[4]),
            success_stats=deque(maxlen=stats_window_size),
        )
        return state, int(seeds[0])

    # ------------------------------------------------------------------ episodes
    def add_episodes(self, result: StepResult) -> None:
        """Keep the returns, lengths and ``is_success`` of the episodes that ended in a step."""
        self.episode_stats.extend(zip(result.episode_returns, result.episode_lengths, strict=True))
        if result.dones.any():
            self.success_stats.extend(episode_successes(result.infos, np.flatnonzero(result.dones)))

    def clear_episodes(self) -> None:
        """Forget the episode statistics (a new run, ``learn(reset_num_timesteps=True)``)."""
        self.episode_stats.clear()
        self.success_stats.clear()

    # ------------------------------------------------------------------ files
    def observations_to_save(self) -> Obs | None:
        return self.last_obs if self.last_obs is not None else self.resume_obs

    def to_file(self, device: torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The metadata entries (JSON) and the tensors that describe this state in a model file."""
        last_obs = self.observations_to_save()
        env_state = self.episode_seeds.get_state()
        metadata = {
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "episodes": self.episode_num,
            "training_state": {
                "np_rng": self.warmup_rng.bit_generator.state,
                "noise": self.noise.get_state() if self.noise is not None else None,
                "env": env_state,
                "at_episode_boundary": last_obs is not None and self.episode_seeds.at_episode_boundary,
                "env_seed": self.env_seed,
                "seed_used": self.seed_used,
                "episode_stats": [[float(r), int(n)] for r, n in self.episode_stats],
                "success_stats": [float(s) for s in self.success_stats],
                "generator_device": device.type,
                "rollout": [self.rollout_steps, self.rollout_episodes],
                "skipped_updates": self.skipped_updates,
            },
        }
        tensors = {"torch_rng": self.torch_rng.get_state(), "predict_rng": self.predict_rng.get_state()}
        if isinstance(last_obs, dict):  # a Dict space's: one tensor per key, in the space's key order
            tensors.update({f"last_obs.{key}": torch.as_tensor(np.asarray(a)) for key, a in last_obs.items()})
        elif last_obs is not None:
            tensors["last_obs"] = torch.as_tensor(np.asarray(last_obs))
        return metadata, tensors

    def restore(
        self,
        metadata: dict[str, Any],
        tensors: dict[str, Any],
        num_envs: int,
        observation_space: ObsSpace,
        device: torch.device,
    ) -> None:
        """Take the state a file describes (written by :meth:`to_file` for ``num_envs`` envs).

        The file may come from a stranger: every value is checked, and a bad one raises KeyError,
        TypeError or ValueError. The observations the envs were at become ``resume_obs``; putting
        the envs back there is the model's job, once it has envs.
        """
        state = metadata.get("training_state")
        self.num_timesteps = read_count(metadata, "num_timesteps")
        self.n_updates = read_count(metadata, "n_updates")
        self.episode_num = read_count(metadata, "episodes")
        if not isinstance(state, dict):
            raise TypeError("training_state is not a JSON object")
        self.warmup_rng.bit_generator.state = state["np_rng"]
        self.seed_used = int(state["seed_used"])
        self.env_seed = None if state["env_seed"] is None else int(state["env_seed"])
        self.episode_stats.clear()
        self.episode_stats.extend((float(r), int(n)) for r, n in state["episode_stats"])
        self.success_stats.clear()
        self.success_stats.extend(float(s) for s in state.get("success_stats", ()))  # absent from older files
        rollout = state.get("rollout", [0, 0])  # absent from older files: a checkpoint between rollouts
        if not isinstance(rollout, list) or len(rollout) != 2:
            raise ValueError(f"invalid rollout {rollout!r}")
        self.rollout_steps = read_count({"rollout steps": rollout[0]}, "rollout steps")
        self.rollout_episodes = read_count({"rollout episodes": rollout[1]}, "rollout episodes")
        self.skipped_updates = read_count(state, "skipped_updates")
        # A CUDA generator's state means nothing to a CPU generator (and the other way round).
        if state["generator_device"] == device.type:
            self.torch_rng.set_state(tensors["torch_rng"])
            self.predict_rng.set_state(tensors["predict_rng"])
        same_envs = num_envs == self.episode_seeds.seeds.size
        if self.noise is not None and state["noise"] is not None and same_envs:
            self.noise.set_state(state["noise"])
        if same_envs:
            self.episode_seeds.set_state(state["env"])
        else:  # the episodes cannot continue; the seeds' generator does
            saved = EpisodeSeeds(num_envs)
            saved.set_state(state["env"])
            self.episode_seeds.rng = saved.rng
        last_obs = _saved_observations(tensors, num_envs, space_shapes(observation_space))
        self.last_obs = None
        self.resume_obs = None if last_obs is None or not same_envs else last_obs


def _saved_observations(
    tensors: dict[str, Any], num_envs: int, shapes: tuple[int, ...] | dict[str, tuple[int, ...]]
) -> Obs | None:
    """The ``last_obs`` tensors of :meth:`TrainingState.to_file` as arrays (None if absent), shapes checked."""
    if isinstance(shapes, dict):
        present = [key for key in shapes if f"last_obs.{key}" in tensors]
        if not present:
            return None
        if len(present) != len(shapes):
            raise ValueError(f"last_obs has the keys {present}, not {list(shapes)}")
        arrays = {key: tensors[f"last_obs.{key}"] for key in shapes}
    else:
        if "last_obs" not in tensors:
            return None
        arrays = {"": tensors["last_obs"]}
    for key, tensor in arrays.items():
        expected = (num_envs, *(shapes[key] if isinstance(shapes, dict) else shapes))
        if tuple(tensor.shape) != expected:
            raise ValueError(f"last_obs{'.' + key if key else ''} has shape {tuple(tensor.shape)}")
    numpy = {key: np.asarray(tensor.numpy()) for key, tensor in arrays.items()}
    return numpy if isinstance(shapes, dict) else numpy[""]


def read_count(metadata: dict[str, Any], key: str) -> int:
    """A counter from a file's metadata (0 when absent); ValueError unless it is an integer >= 0."""
    value = metadata.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"invalid {key} {value!r}")
    return value


class FromTrainingState:
    """SB3's attribute name for a field of the training state (SB3 users' callbacks read these)."""

    def __init__(self, field: str, default: Any = None) -> None:
        self.field, self.default = field, default

    def __get__(self, model: Any, owner: type) -> Any:
        if model is None:
            return self
        return getattr(model.training_state, self.field) if model._is_setup else self.default

    def __set__(self, model: Any, value: Any) -> None:
        model._setup()
        setattr(model.training_state, self.field, value)
