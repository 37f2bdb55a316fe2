"""Exact resume: a checkpoint taken between episodes, loaded and trained on, matches the uninterrupted run.

That needs every piece of learner state in the files: weights, optimizer states, SAC's entropy coefficient,
counters, the replay buffer, and every random generator (policy sampling, warm-up actions, action noise,
the envs' episode seeds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from easyrl import DDPG, SAC
from easyrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from tests.conftest import FAST
from tests.test_save_load import assert_same_parameters


def settings(estimator: type[Any], **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {**FAST, "seed": 0, **extra}
    if estimator is DDPG:  # stateful noise: its process state must be saved too
        kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1))
    elif not issubclass(estimator, SAC):
        kwargs["action_noise"] = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    return kwargs


def checkpoint_and_resume(
    estimator: type[Any], tmp_path: Path, first: int, then: int, **extra: Any
) -> tuple[Any, Any]:
    """Model A trains ``first`` steps, is saved, and trains ``then`` more; B is loaded and trains ``then``."""
    a = estimator("Pendulum-v1", **settings(estimator, **extra)).learn(first)
    a.save(tmp_path / "model.zip")
    a.save_replay_buffer(tmp_path / "buffer.zip")
    a.learn(then, reset_num_timesteps=False)
    b = estimator.load(tmp_path / "model.zip", device="cpu")
    b.load_replay_buffer(tmp_path / "buffer.zip")
    b.learn(then, reset_num_timesteps=False)
    return a, b


def assert_same_learner(a: Any, b: Any) -> None:
    assert_same_parameters(a, b)  # networks, optimizer states, entropy coefficient
    assert (a.num_timesteps, a._n_updates, a._episode_num) == (b.num_timesteps, b._n_updates, b._episode_num)
    assert list(a.ep_info_buffer) == list(b.ep_info_buffer)
    assert a.training_state.warmup_rng.bit_generator.state == b.training_state.warmup_rng.bit_generator.state
    assert torch.equal(a.training_state.torch_rng.get_state(), b.training_state.torch_rng.get_state())
    np.testing.assert_array_equal(a._last_obs, b._last_obs)
    arrays_a, state_a = a.replay_buffer.export_state()
    arrays_b, state_b = b.replay_buffer.export_state()
    assert state_a == state_b
    for name in ("observations", "actions", "rewards", "terminated", "ended"):
        assert torch.equal(arrays_a[name], arrays_b[name]), name


def test_resume_at_an_episode_boundary_is_exact(estimator: type[Any], tmp_path: Path) -> None:
    # Pendulum's episodes last 200 steps: step 400 is a boundary.
    a, b = checkpoint_and_resume(estimator, tmp_path, 400, 300)
    assert a.num_timesteps == 700
    assert_same_learner(a, b)


def test_resume_with_several_envs_is_exact(tmp_path: Path) -> None:
    a, b = checkpoint_and_resume(SAC, tmp_path, 400, 200, n_envs=2)
    assert_same_learner(a, b)


def test_resume_of_sac_v1_with_variants_is_exact(tmp_path: Path) -> None:
    # The value network V, its target V̄ and V's optimizer are saved too; n-step sampling and REINFORCE
    # draw from the same generators.
    a, b = checkpoint_and_resume(
        SAC, tmp_path, 400, 300, value_network=True, ent_coef=0.2, n_steps=3, actor_gradient="reinforce"
    )
    assert "value_optimizer" in b.get_parameters()
    assert_same_learner(a, b)


def test_resume_during_warm_up_is_exact(tmp_path: Path) -> None:
    # Saved at a boundary before learning starts: the warm-up's uniform actions continue the same stream.
    a, b = checkpoint_and_resume(DDPG, tmp_path, 200, 150, learning_starts=300)
    assert_same_learner(a, b)


def test_a_checkpoint_taken_mid_episode_resumes_with_new_episodes(
    estimator: type[Any], tmp_path: Path
) -> None:
    a = estimator("Pendulum-v1", **settings(estimator)).learn(130)
    a.save(tmp_path / "model.zip")
    a.save_replay_buffer(tmp_path / "buffer.zip")
    b = estimator.load(tmp_path / "model.zip", device="cpu")
    assert not np.array_equal(
        b._last_obs, a._last_obs
    )  # a new episode: the interrupted one cannot be rebuilt
    b.load_replay_buffer(tmp_path / "buffer.zip")
    # The interrupted episode ends at its newest transition, truncated, with its true next observation.
    buffer = b.replay_buffer
    assert buffer._ended_host[129, 0] and not buffer.terminated[129, 0]
    final = buffer.final_observations[buffer.final_id[129, 0] % buffer.final_observations.shape[0], 0]
    np.testing.assert_array_equal(final.numpy(), a._last_obs[0])
    b.learn(100, reset_num_timesteps=False)
    assert b.num_timesteps == 230 and b._episode_num == 0  # its first episode ends at step 330


def test_the_same_model_reloading_its_buffer_keeps_its_episode_open(tmp_path: Path) -> None:
    model = SAC("Pendulum-v1", **FAST).learn(130)
    model.save_replay_buffer(tmp_path / "buffer.zip")
    model.load_replay_buffer(tmp_path / "buffer.zip")
    assert not model.replay_buffer._ended_host[129, 0]  # the env continues exactly where the buffer ends


def test_a_new_learn_ends_the_interrupted_episodes_in_the_buffer() -> None:
    model = SAC("Pendulum-v1", **FAST).learn(130)
    last_obs = model._last_obs.copy()
    model.learn(10)  # reset_num_timesteps=True: new episodes
    buffer = model.replay_buffer
    assert buffer._ended_host[129, 0] and not buffer.terminated[129, 0]
    final = buffer.final_observations[buffer.final_id[129, 0] % buffer.final_observations.shape[0], 0]
    np.testing.assert_array_equal(final.numpy(), last_obs[0])


@pytest.mark.parametrize("n_envs", [1, 2])
def test_episode_statistics_survive_a_resume(n_envs: int, tmp_path: Path) -> None:
    a, b = checkpoint_and_resume(
        SAC, tmp_path, 200 * n_envs, 200 * n_envs, n_envs=n_envs, learning_starts=10_000
    )
    assert len(b.ep_info_buffer) == 2 * n_envs
    assert all(length == 200 for _, length in b.ep_info_buffer)
    assert list(a.ep_info_buffer) == list(b.ep_info_buffer)


def test_a_model_built_from_an_env_object_resumes_exactly_once_given_an_env(tmp_path: Path) -> None:
    import gymnasium as gym

    a = SAC(gym.make("Pendulum-v1"), **settings(SAC)).learn(200)
    a.save(tmp_path / "model.zip")
    a.save_replay_buffer(tmp_path / "buffer.zip")
    a.learn(150, reset_num_timesteps=False)
    b = SAC.load(tmp_path / "model.zip", device="cpu")  # no env: the file only knows the env's id
    b.load_replay_buffer(tmp_path / "buffer.zip")
    b.set_env(gym.make("Pendulum-v1"))  # the checkpoint's episode seeds are applied now
    b.learn(150, reset_num_timesteps=False)
    assert_same_learner(a, b)


def test_envs_reset_by_easyrl_report_staggered_episodes_exactly() -> None:
    """With envs ending at different steps, each env's episode statistics survive the others' resets."""
    import gymnasium as gym

    from easyrl.envs import EnvStepper, to_vector_env

    lengths = iter([3, 5])
    env = to_vector_env(
        lambda: gym.wrappers.TimeLimit(gym.make("Pendulum-v1").unwrapped, next(lengths)), 2, autoreset=False
    )
    stepper = EnvStepper(env)
    stepper.reset(seed=0)
    running, expected, reported = np.zeros(2), [], []
    for _ in range(15):
        result = stepper.step(np.zeros((2, 1), np.float32))
        running += result.rewards
        for i in np.flatnonzero(result.dones):
            expected.append(round(float(running[i]), 3))
            running[i] = 0.0
            # The true final observation is the step's; the observation to act on starts the next episode.
            assert not np.array_equal(result.obs[i], result.next_obs[i])
        reported += [
            (round(r, 3), n) for r, n in zip(result.episode_returns, result.episode_lengths, strict=True)
        ]
    assert [n for _, n in reported] == [3, 5, 3, 3, 5, 3, 3, 5]  # env 0 ends every 3 steps, env 1 every 5
    assert [r for r, _ in reported] == expected
    assert stepper.at_episode_boundary  # step 15: both envs have just started new episodes
