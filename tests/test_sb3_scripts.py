"""SB3 scripts, written in SB3's idiom, run unchanged on easyrl; where SB3 is installed, on SB3 too.

Each script takes a namespace of library names (``lib.SAC``, ``lib.make_vec_env``, ``lib.VecNormalize``, ...)
bound either to easyrl's or to SB3's, and returns what a user would look at: shapes, dtypes, keys. The
two libraries must agree on all of it. Numbers differ (different random streams), so they are not compared,
except where both compute the same statistic of the same data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

LIBRARIES = ["easyrl", "sb3"]


def small() -> dict[str, Any]:
    """Small settings, new each time: SB3's constructors write into the policy_kwargs dict they are given."""
    return dict(
        learning_starts=50, batch_size=32, buffer_size=2_000, policy_kwargs=dict(net_arch=[32, 32]), seed=0
    )


def library(name: str) -> SimpleNamespace:
    if name == "sb3":
        if importlib.util.find_spec("stable_baselines3") is None:
            pytest.skip("stable-baselines3 is not installed")
        import stable_baselines3 as sb3
        from stable_baselines3.common import (
            callbacks,
            env_checker,
            env_util,
            evaluation,
            logger,
            monitor,
            results_plotter,
            utils,
            vec_env,
        )

        return SimpleNamespace(
            SAC=sb3.SAC, TD3=sb3.TD3, DDPG=sb3.DDPG, make_vec_env=env_util.make_vec_env,
            DummyVecEnv=vec_env.DummyVecEnv, VecNormalize=vec_env.VecNormalize, Monitor=monitor.Monitor,
            load_results=monitor.load_results, ts2xy=results_plotter.ts2xy, BaseCallback=callbacks.BaseCallback,
            CheckpointCallback=callbacks.CheckpointCallback, LogEveryNTimesteps=callbacks.LogEveryNTimesteps,
            evaluate_policy=evaluation.evaluate_policy, check_env=env_checker.check_env,
            set_random_seed=utils.set_random_seed, configure=logger.configure, name="sb3",
        )  # fmt: skip
    import easyrl
    from easyrl import callbacks, envs, logger, monitor
    from easyrl.env_checker import check_env
    from easyrl.utils import set_random_seed

    return SimpleNamespace(
        SAC=easyrl.SAC, TD3=easyrl.TD3, DDPG=easyrl.DDPG, make_vec_env=envs.make_vec_env,
        DummyVecEnv=envs.DummyVecEnv, VecNormalize=envs.VecNormalize, Monitor=monitor.Monitor,
        load_results=monitor.load_results, ts2xy=monitor.ts2xy, BaseCallback=callbacks.BaseCallback,
        CheckpointCallback=callbacks.CheckpointCallback, LogEveryNTimesteps=callbacks.LogEveryNTimesteps,
        evaluate_policy=easyrl.evaluate_policy, check_env=check_env, set_random_seed=set_random_seed,
        configure=logger.configure, name="easyrl",
    )  # fmt: skip


def shape_of(value: Any) -> Any:
    """What a user sees of a value: shapes and dtypes of arrays, keys of dicts, lengths of lists."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape, str(value.dtype))
    if isinstance(value, dict):
        return {key: shape_of(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [shape_of(item) for item in value]
    if isinstance(value, np.generic):
        return type(value.item()).__name__
    return type(value).__name__


def run_on_both(script: Any, *args: Any) -> Any:
    results = {name: script(library(name), *args) for name in LIBRARIES}
    assert results["easyrl"] == results["sb3"]
    return results["easyrl"]


# ---------------------------------------------------------------------------------------------- the scripts
def predict_loop_on_get_env(lib: SimpleNamespace) -> Any:
    model = lib.SAC("MlpPolicy", "Pendulum-v1", **small())
    model.learn(total_timesteps=100)
    vec_env = model.get_env()
    obs = vec_env.reset()
    seen = []
    for _ in range(5):
        action, _states = model.predict(obs, deterministic=True)
        obs, rewards, dones, infos = vec_env.step(action)
        seen.append(shape_of((obs, rewards, dones, infos)))
    return seen, shape_of(action), str(model.device)


def vec_normalize_save_and_load(lib: SimpleNamespace, folder: Path) -> Any:
    env = lib.make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    env = lib.VecNormalize(env, norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = lib.SAC("MlpPolicy", env, **small())
    model.learn(total_timesteps=100)
    stats_path = str(folder / f"{lib.name}_vec_normalize.pkl")
    model.save(folder / f"{lib.name}_model")
    env.save(stats_path)
    del model, env
    env = lib.VecNormalize.load(stats_path, lib.make_vec_env("Pendulum-v1", n_envs=2))
    env.training = False
    env.norm_reward = False
    model = lib.SAC.load(folder / f"{lib.name}_model", env=env)
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    return shape_of(action), shape_of(env.obs_rms.mean), shape_of(env.get_original_obs()), env.training


def callback_reading_infos(lib: SimpleNamespace) -> Any:
    class EpisodeReturns(lib.BaseCallback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            return len(self.returns) < 2

    def short() -> gym.Env[Any, Any]:
        return gym.make("Pendulum-v1", max_episode_steps=50)

    callback = EpisodeReturns()
    model = lib.SAC("MlpPolicy", lib.make_vec_env(short, n_envs=2, seed=0), **small())
    model.learn(1_000, callback=callback)
    return len(callback.returns), model.num_timesteps, type(callback.returns[0]).__name__


def monitor_files(lib: SimpleNamespace, folder: Path) -> Any:
    log_dir = folder / lib.name
    log_dir.mkdir()
    env = lib.Monitor(gym.make("Pendulum-v1", max_episode_steps=40), str(log_dir), info_keywords=())
    model = lib.TD3("MlpPolicy", env, **small())
    model.learn(total_timesteps=120)
    env.close()
    results = lib.load_results(str(log_dir))
    x, y = lib.ts2xy(results, "timesteps")
    return list(results.columns), len(results), shape_of(x), shape_of(y), x.tolist()


def gsde_from_a_zoo_entry(lib: SimpleNamespace) -> Any:
    # rl-zoo's sac.yml entry for MountainCarContinuous-v0, with a tiny budget.
    model = lib.SAC(
        "MlpPolicy",
        "MountainCarContinuous-v0",
        learning_rate=3e-4,
        buffer_size=50_000,
        batch_size=64,
        ent_coef=0.1,
        train_freq=32,
        gradient_steps=32,
        gamma=0.9999,
        tau=0.01,
        learning_starts=0,
        use_sde=True,
        policy_kwargs=dict(log_std_init=-3.67, net_arch=[64, 64]),
        seed=0,
    )
    model.learn(64)
    obs, _ = gym.make("MountainCarContinuous-v0").reset(seed=0)
    action, _ = model.predict(obs)
    return shape_of(action), tuple(model.actor.log_std.shape), model.use_sde


def evaluation_and_checks(lib: SimpleNamespace) -> Any:
    lib.check_env(gym.make("Pendulum-v1").unwrapped)
    lib.set_random_seed(0)
    model = lib.DDPG("MlpPolicy", "Pendulum-v1", **small())
    seen: list[str] = []
    rewards, lengths = lib.evaluate_policy(
        model,
        model.get_env(),
        n_eval_episodes=2,
        return_episode_rewards=True,
        callback=lambda local_vars, global_vars: seen.append("step"),
        warn=False,
    )
    mean, std = lib.evaluate_policy(model, model.get_env(), n_eval_episodes=1, warn=False)
    # SB3 returns numpy float64s, easyrl Python floats: both are floats.
    return shape_of(rewards), lengths, len(seen) >= 400, isinstance(mean, float), isinstance(std, float)


def log_every_n_timesteps(lib: SimpleNamespace, folder: Path) -> Any:
    model = lib.SAC("MlpPolicy", "Pendulum-v1", **small())
    model.set_logger(lib.configure(str(folder / lib.name), ["csv"]))
    model.learn(120, callback=lib.LogEveryNTimesteps(n_steps=40), log_interval=None)
    rows = (folder / lib.name / "progress.csv").read_text().splitlines()
    return len(rows) - 1, "time/total_timesteps" in rows[0]


# ---------------------------------------------------------------------------------------------- the tests
def test_predict_loop_on_get_env() -> None:
    run_on_both(predict_loop_on_get_env)


def test_vec_normalize_save_and_load(tmp_path: Path) -> None:
    run_on_both(vec_normalize_save_and_load, tmp_path)


def test_callback_reading_infos() -> None:
    assert run_on_both(callback_reading_infos)[0] == 2


def test_monitor_files(tmp_path: Path) -> None:
    columns, episodes, *_ = run_on_both(monitor_files, tmp_path)
    assert columns == ["index", "r", "l", "t"] and episodes == 3


def test_gsde_from_a_zoo_entry() -> None:
    run_on_both(gsde_from_a_zoo_entry)


def test_evaluation_and_checks() -> None:
    run_on_both(evaluation_and_checks)


def test_log_every_n_timesteps(tmp_path: Path) -> None:
    assert run_on_both(log_every_n_timesteps, tmp_path)[0] == 3
