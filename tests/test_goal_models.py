"""Models on Dict and goal-conditioned envs: training with HER, saving and loading without an env or a
pickle, exact resume, and the errors for what is not supported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import easyrl
from easyrl import HerReplayBuffer
from easyrl.envs import PointGoalEnv
from tests.conftest import FAST

HER = dict(
    replay_buffer_class=HerReplayBuffer,
    replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
)
SMALL = {**FAST, "learning_starts": 60}


def her_model(estimator: type[Any], **kwargs: Any) -> Any:
    return estimator(
        "MultiInputPolicy", PointGoalEnv(max_episode_steps=20), **{**SMALL, **HER, "seed": 3, **kwargs}
    )


def parameters(model: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def test_her_trains_on_several_envs_and_counts_each_envs_episodes(estimator: type[Any]) -> None:
    # Training waits for the first episodes to end (HER samples only ended ones) instead of failing.
    model = estimator("easyrl/PointGoal-v0", n_envs=2, **{**SMALL, **HER, "seed": 3}).learn(200)
    buffer = model.replay_buffer
    assert isinstance(buffer, HerReplayBuffer) and len(buffer) == 200
    assert buffer.n_sampleable == 200  # 50-step episodes: every one of each env's 100 steps has ended
    assert model._n_updates > 0


def test_a_her_model_saves_and_loads_without_an_env_and_without_pickles(
    estimator: type[Any], tmp_path: Path
) -> None:
    model = her_model(estimator).learn(120)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.zip")
    # No env: the model was built from an env object, so the file names none; predict still works.
    loaded = easyrl.load(tmp_path / "model.zip")
    assert (
        loaded.replay_buffer_class is HerReplayBuffer
        and loaded.replay_buffer_kwargs == HER["replay_buffer_kwargs"]
    )
    obs, _ = PointGoalEnv().reset(seed=0)
    np.testing.assert_allclose(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0], rtol=1e-6
    )
    loaded.load_replay_buffer(tmp_path / "buffer.zip")
    assert len(loaded.replay_buffer) == 120
    with pytest.raises(ValueError, match="without an env"):
        loaded.learn(10)
    loaded.set_env(PointGoalEnv(max_episode_steps=20))  # gives the buffer its compute_reward
    loaded.learn(40)
    assert loaded.num_timesteps == 40


def test_resuming_a_her_run_from_files_continues_it_exactly(estimator: type[Any], tmp_path: Path) -> None:
    whole = her_model(estimator).learn(100)
    whole.learn(60, reset_num_timesteps=False)

    first = her_model(estimator).learn(100)  # 5 episodes of 20 steps: saved at an episode boundary
    first.save(tmp_path / "model.zip")
    first.save_replay_buffer(tmp_path / "buffer.zip")
    resumed = type(first).load(tmp_path / "model.zip", env=PointGoalEnv(max_episode_steps=20))
    resumed.load_replay_buffer(tmp_path / "buffer.zip")
    resumed.learn(60, reset_num_timesteps=False)
    for a, b in zip(parameters(whole), parameters(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dict_observations_train_with_the_plain_buffer(estimator: type[Any], tmp_path: Path) -> None:
    model = estimator(PointGoalEnv(max_episode_steps=20), **SMALL, seed=0).learn(100)
    assert type(model.replay_buffer) is easyrl.ReplayBuffer
    obs, _ = PointGoalEnv().reset(seed=1)
    batch = {key: np.stack([value, value]) for key, value in obs.items()}
    assert model.predict(obs)[0].shape == (2,) and model.predict(batch)[0].shape == (2, 2)
    with pytest.raises(ValueError, match="expects a dict observation with keys"):
        model.predict(np.zeros(6))
    model.save_replay_buffer(tmp_path / "buffer.zip")
    other = estimator(PointGoalEnv(max_episode_steps=20), **SMALL, seed=0)
    other.load_replay_buffer(tmp_path / "buffer.zip")
    a = model.replay_buffer.sample(64, torch.Generator().manual_seed(0), gamma=0.9)
    b = other.replay_buffer.sample(64, torch.Generator().manual_seed(0), gamma=0.9)
    for key in obs:
        torch.testing.assert_close(a.next_observations[key], b.next_observations[key])


class _NotGoalConditioned(gym.Env[Any, np.ndarray]):
    observation_space = gym.spaces.Dict(
        {"observation": gym.spaces.Box(-1, 1, (2,)), "other": gym.spaces.Box(-1, 1, (2,))}
    )
    action_space = gym.spaces.Box(-1, 1, (2,))


class _NoComputeReward(gym.Env[Any, np.ndarray]):
    observation_space = PointGoalEnv().observation_space
    action_space = gym.spaces.Box(-1, 1, (2,))

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return self.observation_space.sample(), {}


def test_her_errors_name_the_problem(estimator: type[Any]) -> None:
    with pytest.raises(
        ValueError, match=r"goal-conditioned env.*missing \['achieved_goal', 'desired_goal'\]"
    ):
        estimator(_NotGoalConditioned(), **SMALL, **HER).learn(10)
    with pytest.raises(ValueError, match="compute_reward.*has none"):
        estimator(_NoComputeReward(), **SMALL, **HER).learn(10)
    with pytest.raises(ValueError, match="n_steps=3 cannot be used with HerReplayBuffer.*n_steps=1"):
        her_model(estimator, n_steps=3).learn(10)
    with pytest.raises(ValueError, match="Unknown key.*'n_goals'.*replay_buffer_kwargs"):
        her_model(estimator, replay_buffer_kwargs=dict(n_goals=4)).learn(10)
    with pytest.raises(
        ValueError, match="replay_buffer_class=.*is invalid.*from easyrl import HerReplayBuffer"
    ):
        her_model(estimator, replay_buffer_class=dict).learn(10)


UNSUPPORTED = {
    "Tuple": (
        gym.spaces.Tuple((gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)))),
        "Tuple.*FlattenObservation",
    ),
    "Sequence": (
        gym.spaces.Sequence(gym.spaces.Box(-1, 1, (2,))),
        "Sequence.*no fixed size.*TransformObservation",
    ),
    "Graph": (
        gym.spaces.Graph(node_space=gym.spaces.Box(-1, 1, (2,)), edge_space=None),
        "Graph.*no fixed size.*TransformObservation",
    ),
    "Discrete in Dict": (
        gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (2,)), "room": gym.spaces.Discrete(4)}),
        "key 'room' is Discrete.*FlattenObservation.*one-hot",
    ),
    "Discrete": (gym.spaces.Discrete(5), "Discrete.*FlattenObservation"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_observation_spaces_name_the_wrapper_to_use(estimator: type[Any], name: str) -> None:
    space, message = UNSUPPORTED[name]

    class Env(gym.Env[Any, np.ndarray]):
        observation_space = space
        action_space = gym.spaces.Box(-1, 1, (1,))

    with pytest.raises(ValueError, match=message):
        estimator(Env(), **SMALL).learn(10)


def test_eval_callback_records_the_success_rate(estimator: type[Any], tmp_path: Path) -> None:
    from easyrl.callbacks import EvalCallback

    callback = EvalCallback(
        PointGoalEnv(max_episode_steps=20), eval_freq=100, n_eval_episodes=4, log_path=str(tmp_path)
    )
    her_model(estimator).learn(100, callback=callback)
    assert len(callback.evaluations_successes) == 1 and len(callback.evaluations_successes[0]) == 4
    assert set(callback.evaluations_successes[0]) <= {0.0, 1.0}
    saved = np.load(tmp_path / "evaluations.npz")
    np.testing.assert_array_equal(saved["successes"], callback.evaluations_successes)
    # An env that does not report success gets no success rate.
    plain = EvalCallback("Pendulum-v1", eval_freq=60, n_eval_episodes=1)
    estimator("Pendulum-v1", **SMALL).learn(60, callback=plain)
    assert plain.evaluations_successes == []


class _Heading:
    """Predicts ``gain`` times the way to the goal (1: straight there; 0: standing still)."""

    def __init__(self, gain: float) -> None:
        self.gain = gain

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> Any:
        if not isinstance(obs, dict):  # not a goal env: stand still
            return np.zeros((len(obs), 1), np.float32), state
        way = obs["desired_goal"] - obs["achieved_goal"]
        return np.clip(self.gain * 10 * way, -1, 1), state


def test_evaluate_success_rate_reads_each_episodes_last_step() -> None:
    from easyrl import evaluate_success_rate

    assert evaluate_success_rate(_Heading(1.0), PointGoalEnv(), n_eval_episodes=10, seed=0) == 1.0
    assert evaluate_success_rate(_Heading(0.0), PointGoalEnv(), n_eval_episodes=10, seed=0) == 0.0
    # A vector env of 3 counts each env's finished episodes.
    vector = gym.vector.SyncVectorEnv([PointGoalEnv] * 3, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert evaluate_success_rate(_Heading(1.0), vector, n_eval_episodes=6, seed=0) == 1.0
    with pytest.raises(ValueError, match="does not report info\\['is_success'\\].*evaluate_policy"):
        evaluate_success_rate(_Heading(0.0), "Pendulum-v1", n_eval_episodes=1)


def test_a_same_step_vector_env_gives_dict_final_observations() -> None:
    from easyrl.envs import EnvStepper

    vector = gym.vector.SyncVectorEnv(
        [lambda: PointGoalEnv(max_episode_steps=3)] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    stepper = EnvStepper(vector)
    stepper.reset(seed=0)
    for _ in range(3):
        result = stepper.step(np.zeros((2, 2), np.float32))
    assert result.truncated.all()
    for i in range(2):
        final = result.infos["final_obs"][i]
        for key in final:
            np.testing.assert_array_equal(result.next_obs[key][i], final[key])  # the true final observation
        assert not np.array_equal(result.obs["desired_goal"][i], final["desired_goal"])  # the new episode's
