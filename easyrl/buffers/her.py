"""Hindsight Experience Replay (Andrychowicz et al. 2017), relabelling goals when a batch is sampled.

For goal-conditioned envs: Dict observations with ``observation``, ``achieved_goal`` and
``desired_goal``, and a vectorised ``compute_reward(achieved_goal, desired_goal, info)``. Of each batch,
a fraction ``n_sampled_goal / (n_sampled_goal + 1)`` of the transitions is replayed with its goal
replaced by a goal the agent did achieve later in the same episode, and the reward recomputed for it:

- ``"future"``: the goal achieved after a transition chosen uniformly from this one to the episode's end;
- ``"final"``: the goal achieved at the end of the episode;
- ``"episode"``: the goal achieved after any transition of the episode, chosen uniformly.

The rest of the batch is replayed as it happened. Nothing is stored twice: the buffer is the plain
:class:`ReplayBuffer` (each env's steps in time order in its own column, the true final observation of
every ended episode in the side ring), plus two small tables -- each slot's step number in its episode
and, once the episode has ended, the episode's length -- from which any transition's episode end is one
addition away. Only transitions of ended episodes are sampled, since the future of an episode in progress
is not known yet. A truncated episode's last goal is the one its true final observation achieved.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import SyncVectorEnv, VectorEnv

from easyrl.buffers.replay import ReplayBatch, ReplayBuffer
from easyrl.observations import Obs

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")

RewardFunction = Callable[[np.ndarray, np.ndarray, Any], Any]


class GoalSelectionStrategy(Enum):
    """Where a relabelled transition's new goal comes from (SB3's names)."""

    FUTURE = "future"
    FINAL = "final"
    EPISODE = "episode"


def check_goal_space(space: gym.Space[Any]) -> gym.spaces.Dict:
    """``space`` if it is a goal-conditioned Dict space, else a ValueError saying what is missing."""
    missing = [key for key in GOAL_KEYS if not isinstance(space, gym.spaces.Dict) or key not in space.spaces]
    if missing:
        raise ValueError(
            f"HerReplayBuffer needs a goal-conditioned env: Dict observations with the keys {list(GOAL_KEYS)}, "
            f"but the observation space is {space} (missing {missing}). Use the plain replay buffer "
            "(leave replay_buffer_class out) for an env that is not goal-conditioned."
        )
    assert isinstance(space, gym.spaces.Dict)
    if space["achieved_goal"].shape != space["desired_goal"].shape:
        raise ValueError(
            f"HerReplayBuffer needs achieved_goal and desired_goal of the same shape, but they are "
            f"{space['achieved_goal'].shape} and {space['desired_goal'].shape}."
        )
    return space


def env_reward_function(env: VectorEnv) -> RewardFunction:
    """The env's ``compute_reward``, or a ValueError when it has none."""
    if isinstance(env, SyncVectorEnv) or isinstance(env.unwrapped, SyncVectorEnv):
        first = env.unwrapped.envs[0]  # type: ignore[attr-defined]
        try:
            function = first.get_wrapper_attr("compute_reward")
        except AttributeError:
            function = None
        if not callable(function):
            raise ValueError(
                f"HerReplayBuffer recomputes rewards with the env's compute_reward(achieved_goal, desired_goal, "
                f"info), but {first} has none. Give the env a vectorised compute_reward method (as "
                "gymnasium-robotics' goal envs have), or use the plain replay buffer."
            )
        return function

    def through_workers(achieved: np.ndarray, desired: np.ndarray, info: Any) -> Any:
        return getattr(env, "call")("compute_reward", achieved, desired, info)[0]  # noqa: B009

    return through_workers


class HerReplayBuffer(ReplayBuffer):
    """A replay buffer that relabels goals in hindsight; select it with ``replay_buffer_class``.

    ``SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
    replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"))``.

    Args (``replay_buffer_kwargs``):
        n_sampled_goal: relabelled transitions per real one (4: 80% of each batch is relabelled).
        goal_selection_strategy: ``"future"``, ``"final"`` or ``"episode"`` (or a GoalSelectionStrategy).
        copy_info_dict: must be False: infos are not stored (files hold no pickles), so
            ``compute_reward`` is given an empty info dict for each relabelled transition.

    Relabelled transitions keep their stored ``terminated`` flag. n-step returns are not supported
    (``n_steps`` must be 1): the model refuses the combination when it is built.
    """

    accepted_kwargs: ClassVar[frozenset[str]] = ReplayBuffer.accepted_kwargs | {
        "n_sampled_goal", "goal_selection_strategy", "copy_info_dict",
    }  # fmt: skip
    supports_n_steps: ClassVar[bool] = False

    def __init__(
        self,
        capacity: int,
        observation_space: gym.Space[Any],
        action_dim: int,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        *,
        n_sampled_goal: int = 4,
        goal_selection_strategy: str | GoalSelectionStrategy = "future",
        copy_info_dict: bool = False,
        **kwargs: Any,
    ) -> None:
        space = check_goal_space(observation_space)
        if not (
            isinstance(n_sampled_goal, int) and not isinstance(n_sampled_goal, bool) and n_sampled_goal >= 0
        ):
            raise ValueError(f"n_sampled_goal={n_sampled_goal!r} is invalid: it must be an integer >= 0.")
        try:
            strategy = GoalSelectionStrategy(
                goal_selection_strategy.value
                if isinstance(goal_selection_strategy, GoalSelectionStrategy)
                else goal_selection_strategy
            )
        except ValueError:
            raise ValueError(
                f"goal_selection_strategy={goal_selection_strategy!r} is invalid: it must be one of "
                f"{[s.value for s in GoalSelectionStrategy]}."
            ) from None
        if copy_info_dict:
            raise ValueError(
                "copy_info_dict=True is not supported: infos are not stored (they would need pickles in the "
                "buffer file), so compute_reward receives an empty info dict. Leave copy_info_dict out."
            )
        super().__init__(capacity, space, action_dim, n_envs, device, **kwargs)
        self.n_sampled_goal = n_sampled_goal
        self.goal_selection_strategy = strategy
        self.her_ratio = 1.0 - 1.0 / (n_sampled_goal + 1)
        self.compute_reward: RewardFunction | None = None
        # Host tables, on any device: the goals' index arithmetic runs in numpy, where each operation on a
        # few hundred numbers costs a fraction of a tensor operation's fixed cost.
        self._step_host = np.zeros((self.rows, n_envs), dtype=np.int64)
        self._length_host = np.zeros((self.rows, n_envs), dtype=np.int64)  # 0: episode still running
        self._open = np.zeros(n_envs, dtype=np.int64)  # steps of each env's episode in progress

    @property
    def nbytes(self) -> int:
        return super().nbytes + self._step_host.nbytes + self._length_host.nbytes

    # ------------------------------------------------------------------ the env's reward
    def attach_env(self, env: VectorEnv) -> None:
        """Take the reward function of the env the model trains on."""
        check_goal_space(env.single_observation_space)
        self.compute_reward = env_reward_function(env)

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: Obs,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Obs,
        terminated: np.ndarray,
        truncated: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> None:
        envs = np.arange(self.n_envs) if valid is None else np.flatnonzero(valid)
        rows = self.pos[envs].copy()
        self._step_host[rows, envs] = self._open[envs]
        self._length_host[rows, envs] = 0
        super().add(obs, actions, rewards, next_obs, terminated, truncated, valid)
        self._open[envs] += 1
        dones = (np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool))[envs]
        self._end_episodes(envs[dones])

    def close_episodes(self, final_obs: Any) -> None:
        open_envs = np.flatnonzero((self._open > 0) & (self.count > 0))
        super().close_episodes(final_obs)
        self._end_episodes(open_envs)

    def _end_episodes(self, envs: np.ndarray) -> None:
        """The episodes in progress in ``envs`` ended at their newest slot: record their lengths."""
        for env in envs:
            steps = int(min(self._open[env], self.count[env]))
            newest = int(self.pos[env] - 1) % self.rows
            rows = (newest - np.arange(steps)) % self.rows  # the episode's slots still in the buffer
            length = int(self._step_host[newest, env]) + 1  # counted from the episode's true start
            self._length_host[rows, env] = length
            self._open[env] = 0
        if envs.size:
            self._sampling_tables = None

    # ------------------------------------------------------------------ sampling
    def _sampleable_counts(self) -> np.ndarray:
        return self.count - np.minimum(self._open, self.count)

    def _empty_message(self) -> str:
        return (
            "HerReplayBuffer samples only from episodes that have ended, and none has yet; set learning_starts "
            "to more than the length of one episode."
        )

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, *, gamma: float, n_steps: int = 1
    ) -> ReplayBatch:
        """A batch of which ``her_ratio`` (the first part) is relabelled with goals achieved in hindsight."""
        if n_steps != 1:
            raise ValueError("HerReplayBuffer does not support n-step returns; use n_steps=1.")
        if self.compute_reward is None:
            raise ValueError(
                "HerReplayBuffer has no reward function yet: it takes compute_reward from the env the model "
                "trains on. Give the model a goal-conditioned env (load(path, env=...) or set_env(env))."
            )
        row, env, _ = self._draw(batch_size, generator)
        slot = row if isinstance(env, int) else row * self.n_envs + env
        observations = self.observations_at(slot)
        next_observations = self.next_observations_at(slot)
        rewards = self._flat(self.rewards).index_select(0, slot)
        n_relabelled = int(self.her_ratio * batch_size)
        if n_relabelled:
            assert isinstance(observations, dict) and isinstance(next_observations, dict)
            goals = self._hindsight_goals(
                row[:n_relabelled], env if isinstance(env, int) else env[:n_relabelled], generator
            )
            observations["desired_goal"][:n_relabelled] = goals
            next_observations["desired_goal"][:n_relabelled] = goals
            rewards[:n_relabelled] = self._recomputed_rewards(
                next_observations["achieved_goal"][:n_relabelled], goals
            )
        return ReplayBatch(
            observations=observations,
            actions=self._flat(self.actions).index_select(0, slot),
            rewards=rewards,
            next_observations=next_observations,
            terminated=self._flat(self.terminated).index_select(0, slot).float(),
            discounts=torch.full((batch_size,), gamma, dtype=torch.float32, device=self.device),
        )

    def _hindsight_goals(
        self, row: torch.Tensor, env: torch.Tensor | int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """For transitions at ``row`` of column ``env``: the goal achieved after a transition of the same
        episode, chosen by the strategy."""
        uniform = torch.rand(row.shape, device=self.device, generator=generator, dtype=torch.float64)
        rows = row.cpu().numpy()
        envs = env if isinstance(env, int) else env.cpu().numpy()
        step, length = self._step_host[rows, envs], self._length_host[rows, envs]
        strategy = self.goal_selection_strategy
        if strategy == GoalSelectionStrategy.FINAL:
            chosen = length - 1
        else:
            if strategy == GoalSelectionStrategy.FUTURE:
                first = step
            else:  # the episode's first slot still in the buffer
                oldest = (self.pos - self.count) % self.rows
                first = step - np.minimum(step, (rows - oldest[envs]) % self.rows)
            span = length - first
            chosen = first + np.minimum((uniform.cpu().numpy() * span).astype(np.int64), span - 1)
        goal_row = (rows + (chosen - step)) % self.rows
        goal_slot = goal_row if isinstance(envs, int) else goal_row * self.n_envs + envs
        goals = self.next_observations_at(torch.as_tensor(goal_slot, device=self.device), key="achieved_goal")
        assert isinstance(goals, torch.Tensor)
        return goals

    def _recomputed_rewards(self, achieved: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        assert self.compute_reward is not None
        infos: list[dict[str, Any]] = [{} for _ in range(goals.shape[0])]
        rewards = self.compute_reward(achieved.cpu().numpy(), goals.cpu().numpy(), infos)
        return torch.as_tensor(np.asarray(rewards, dtype=np.float32).reshape(-1), device=self.device)

    # ------------------------------------------------------------------ files
    def finish_import(self, complete: bool = True) -> None:
        """After loading stored transitions, rebuild the episode tables from where episodes ended."""
        super().finish_import(complete)
        self._step_host[:] = 0
        self._length_host[:] = 0
        self._open[:] = 0
        for env in range(self.n_envs):
            count = int(self.count[env])
            rows = (int(self.pos[env]) - count + np.arange(count)) % self.rows  # oldest first
            ended = self._ended_host[rows, env]
            episode = np.concatenate([[0], np.cumsum(ended)[:-1]]) if count else np.zeros(0, np.int64)
            starts = np.flatnonzero(np.concatenate([[True], ended[:-1]])) if count else np.zeros(0, np.int64)
            step = np.arange(count) - starts[episode]
            self._step_host[rows, env] = step
            ends = np.flatnonzero(ended)
            lengths = np.zeros(count, dtype=np.int64)
            closed = episode < ends.size
            lengths[closed] = (ends - starts[: ends.size] + 1)[episode[closed]]
            self._length_host[rows, env] = lengths
            self._open[env] = int((~closed).sum())
        self._sampling_tables = None
