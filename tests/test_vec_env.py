"""SB3's vector-env interface: make_vec_env, DummyVecEnv, SubprocVecEnv, model.get_env(), callbacks' infos.

Each behaviour is checked against what SB3 scripts rely on, and where SB3 is installed, the same calls on
SB3's classes give the same shapes and keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv

from easyrl import SAC
from easyrl.callbacks import BaseCallback
from easyrl.envs import DummyVecEnv, SubprocVecEnv, VecEnv, make_vec_env
from tests.conftest import FAST


def short_pendulum(max_episode_steps: int = 5) -> gym.Env[Any, Any]:
    return gym.make("Pendulum-v1", max_episode_steps=max_episode_steps)


# ---------------------------------------------------------------------------------------------- make_vec_env
def test_make_vec_env_builds_seeded_monitored_envs(tmp_path: Path) -> None:
    first = make_vec_env("Pendulum-v1", n_envs=3, seed=7, monitor_dir=str(tmp_path))
    second = make_vec_env("Pendulum-v1", n_envs=3, seed=7)
    assert isinstance(first, DummyVecEnv) and first.num_envs == 3
    assert first.observation_space == gym.make("Pendulum-v1").observation_space  # one env's space, as in SB3
    obs = first.reset()
    assert obs.shape == (3, 3)
    np.testing.assert_array_equal(obs, second.reset())
    assert not np.array_equal(obs[0], obs[1])  # env i is seeded with seed + i
    for _ in range(200):  # one whole episode each
        first.step(np.zeros((3, 1), dtype=np.float32))
    first.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.monitor.csv" for i in range(3)]
    assert (tmp_path / "0.monitor.csv").read_text().splitlines()[1] == "r,l,t"


def test_make_vec_env_passes_env_kwargs_wrappers_and_start_index(tmp_path: Path) -> None:
    env = make_vec_env(
        "Pendulum-v1",
        n_envs=2,
        start_index=4,
        monitor_dir=str(tmp_path),
        env_kwargs=dict(g=3.0),
        wrapper_class=gym.wrappers.TimeLimit,
        wrapper_kwargs=dict(max_episode_steps=3),
    )
    assert env.get_attr("g") == [3.0, 3.0]
    assert env.env_is_wrapped(gym.wrappers.TimeLimit) == [True, True]
    env.reset()
    for _ in range(3):
        _, _, dones, _ = env.step(np.zeros((2, 1)))
    assert dones.all()  # the wrapper's 3-step limit
    env.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4.monitor.csv", "5.monitor.csv"]


def test_make_vec_env_takes_a_function_and_refuses_bad_arguments() -> None:
    env = make_vec_env(short_pendulum, n_envs=1, env_kwargs=dict(max_episode_steps=2))
    env.reset()
    env.step(np.zeros((1, 1)))
    assert env.step(np.zeros((1, 1)))[2].all()
    with pytest.raises(ValueError, match="Unknown env id 'Pendulum-v9'|'Pendulum-v9'"):
        make_vec_env("Pendulum-v9")
    with pytest.raises(ValueError, match=r"n_envs=0 is invalid: it must be an integer >= 1"):
        make_vec_env("Pendulum-v1", n_envs=0)
    with pytest.raises(
        ValueError, match="vec_env_cls=.*pass easyrl.envs.DummyVecEnv or easyrl.envs.SubprocVecEnv"
    ):
        make_vec_env("Pendulum-v1", vec_env_cls=SyncVectorEnv)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- stepping
@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_step_returns_sb3_tuples_with_terminal_observations(vec_env_cls: type[VecEnv]) -> None:
    env = vec_env_cls([lambda: short_pendulum(3), lambda: short_pendulum(4)])  # type: ignore[call-arg]
    env.seed(0)
    obs = env.reset()
    assert isinstance(obs, np.ndarray) and obs.shape == (2, 3)
    for _ in range(3):
        previous = obs
        obs, rewards, dones, infos = env.step(np.zeros((2, 1), dtype=np.float32))
        assert rewards.shape == (2,) and dones.dtype == bool and isinstance(infos, list) and len(infos) == 2
    assert dones.tolist() == [True, False]
    info = infos[0]
    assert info["TimeLimit.truncated"] is True
    assert "episode" not in info  # as in SB3, a bare vec env has no Monitor to report episodes
    # The terminal observation is the one the last action reached; obs[0] already starts the next episode.
    assert info["terminal_observation"].shape == (3,)
    assert not np.allclose(info["terminal_observation"], obs[0])
    assert np.abs(info["terminal_observation"] - previous[0]).max() < 2.0  # one small step from the last obs
    assert "terminal_observation" not in infos[1]
    env.close()


def test_env_method_get_attr_set_attr_and_seed() -> None:
    env = DummyVecEnv([short_pendulum, short_pendulum])
    assert env.get_attr("max_speed") == [8.0, 8.0]
    env.set_attr("max_speed", 4.0, indices=1)
    assert env.get_attr("max_speed") == [8.0, 4.0]
    assert env.get_attr("max_speed", indices=[1]) == [4.0]
    results = env.env_method("reset", seed=5)
    assert len(results) == 2 and np.array_equal(results[0][0], results[1][0])  # each env's (obs, info)
    assert len(env.env_method("reset", indices=[0], seed=5)) == 1
    assert env.seed(3) == [3, 4]
    first = env.reset()
    env.seed(3)
    np.testing.assert_array_equal(first, env.reset())


def test_a_next_step_vector_env_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="autoreset_mode=AutoresetMode.SAME_STEP"):
        VecEnv(SyncVectorEnv([short_pendulum]))


def test_sb3_vec_env_gives_the_same_shapes_and_keys() -> None:
    sb3_vec_env = pytest.importorskip("stable_baselines3.common.env_util")
    ours = make_vec_env(lambda: short_pendulum(3), n_envs=2, seed=0)
    theirs = sb3_vec_env.make_vec_env(lambda: short_pendulum(3), n_envs=2, seed=0)
    obs_ours, obs_theirs = ours.reset(), theirs.reset()
    assert obs_ours.shape == obs_theirs.shape and obs_ours.dtype == obs_theirs.dtype
    for _ in range(3):
        step_ours = ours.step(np.zeros((2, 1), dtype=np.float32))
        step_theirs = theirs.step(np.zeros((2, 1), dtype=np.float32))
    for a, b in zip(step_ours[:3], step_theirs[:3], strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert [sorted(i) for i in step_ours[3]] == [sorted(i) for i in step_theirs[3]]
    assert sorted(step_ours[3][0]["episode"]) == sorted(step_theirs[3][0]["episode"])
    assert ours.get_attr("max_speed") == theirs.get_attr("max_speed")


# ---------------------------------------------------------------------------------------------- with a model
def test_a_model_trains_on_a_vec_env_and_get_env_returns_it() -> None:
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = SAC("MlpPolicy", env, seed=0, **FAST).learn(100)
    assert model.get_env() is env
    assert model.num_timesteps == 100 and len(model.replay_buffer) == 100
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2, 1)


def test_get_env_of_a_model_built_from_an_id_steps_its_training_envs() -> None:
    model = SAC("Pendulum-v1", seed=0, **FAST).learn(60)
    vec_env = model.get_env()
    assert isinstance(vec_env, VecEnv) and vec_env.num_envs == 1 and model.get_env() is vec_env
    obs = vec_env.reset()  # SB3's loop: obs = env.reset(); obs, r, d, i = env.step(model.predict(obs)[0])
    for _ in range(5):
        obs, rewards, _, infos = vec_env.step(model.predict(obs)[0])
    assert obs.shape == (1, 3) and rewards.shape == (1,) and infos[0] == {"TimeLimit.truncated": False}
    # The model's episode in progress ended where the user took the envs over; training goes on.
    buffer = model.replay_buffer
    assert buffer._ended_host[(buffer.pos[0] - 1) % buffer.rows, 0]
    model.learn(40, reset_num_timesteps=False)
    assert model.num_timesteps == 100


def test_model_device_is_the_resolved_device_and_get_params_keeps_the_argument() -> None:
    model = SAC("Pendulum-v1", **{**FAST, "device": "auto"})
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert model.device == expected and isinstance(model.device, torch.device)
    assert model.get_params()["device"] == "auto" and "device" not in repr(model)


def test_predict_on_gymnasiums_reset_tuple_says_to_pass_the_observation() -> None:
    model = SAC("Pendulum-v1", **FAST)
    with pytest.raises(ValueError, match=r"tuple \(observation, info\).*obs, info = env.reset\(\)"):
        model.predict(gym.make("Pendulum-v1").reset(seed=0))


# ---------------------------------------------------------------------------------------------- callbacks
class RecordsLocals(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        self.seen.append({k: self.locals[k] for k in ("infos", "dones", "new_obs", "rewards", "actions")})
        return True


@pytest.mark.parametrize("n_envs", [1, 2])
def test_callbacks_read_sb3s_infos_list(n_envs: int) -> None:
    callback = RecordsLocals()
    model = SAC(lambda: short_pendulum(4), n_envs=n_envs, seed=0, **FAST)
    model.learn(8 * n_envs, callback=callback)
    assert len(callback.seen) == 8
    for step, seen in enumerate(callback.seen, start=1):
        assert isinstance(seen["infos"], list) and len(seen["infos"]) == n_envs
        assert seen["dones"].shape == (n_envs,) and seen["rewards"].shape == (n_envs,)
        assert seen["new_obs"].shape == (n_envs, 3) and seen["actions"].shape == (n_envs, 1)
        assert seen["dones"].all() == (step % 4 == 0)
        for info in seen["infos"]:
            if step % 4 == 0:
                assert info["episode"]["l"] == 4 and info["TimeLimit.truncated"] is True
                assert info["terminal_observation"].shape == (3,)
            else:
                assert "terminal_observation" not in info and "episode" not in info
                assert info["TimeLimit.truncated"] is False
    assert callback.step is not None and isinstance(callback.step.infos, dict)  # the typed data is kept


def test_evaluate_policy_on_get_env_runs_whole_episodes_and_training_goes_on() -> None:
    from easyrl import evaluate_policy

    model = SAC("Pendulum-v1", seed=0, **FAST).learn(60)
    returns, lengths = evaluate_policy(model, model.get_env(), n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [200, 200] and len(returns) == 2
    assert model._last_obs is None  # the episode in progress ended where evaluation took the envs
    model.learn(40, reset_num_timesteps=False)
    assert model.num_timesteps == 100
