"""The shipped tuned settings (rl-zoo's values and format) and how files and overrides are read."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from easyrl import DDPG, SAC, TD3, TQC, CrossQ
from easyrl.hyperparams import (
    ALGORITHMS,
    HyperparameterError,
    model_arguments,
    parse_override,
    resolve,
    shipped_table,
)
from easyrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

ESTIMATORS = {"sac": SAC, "td3": TD3, "ddpg": DDPG, "tqc": TQC, "crossq": CrossQ}
MUJOCO = ("HalfCheetah-v4", "Ant-v4", "Hopper-v4", "Walker2d-v4", "Humanoid-v4", "Swimmer-v4")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_shipped_entry_is_a_registered_env_with_valid_settings(algorithm: str) -> None:
    table = shipped_table(algorithm)
    assert {"Pendulum-v1", "MountainCarContinuous-v0", *MUJOCO} <= set(table)
    for env_id, settings in table.items():
        assert env_id in gym.registry, env_id
        shape = gym.spec(env_id).kwargs.get("action_shape", None) or (1,)
        arguments = model_arguments(ESTIMATORS[algorithm], settings, shape)
        assert "n_timesteps" not in arguments and settings["n_timesteps"] >= 20_000


def test_the_values_are_rl_zoos() -> None:
    sac, td3, ddpg, tqc, crossq = (shipped_table(name) for name in ALGORITHMS)
    assert (
        tqc["Hopper-v4"]["top_quantiles_to_drop_per_net"] == 5 and tqc["Ant-v4"]["learning_starts"] == 10000
    )
    assert crossq["Walker2d-v4"]["policy_kwargs"] == "dict(net_arch=dict(pi=[256, 256], qf=[2048, 2048]))"
    assert crossq["Pendulum-v1"]["policy_delay"] == 2 and crossq["HalfCheetah-v4"]["learning_starts"] == 5000
    assert sac["Pendulum-v1"] == {"n_timesteps": 20000, "policy": "MlpPolicy", "learning_rate": 1e-3}
    assert sac["Humanoid-v4"] == {"n_timesteps": 2e6, "policy": "MlpPolicy", "learning_starts": 10000}
    assert sac["Swimmer-v4"]["gamma"] == 0.9999 and sac["MountainCarContinuous-v0"]["use_sde"] is True
    for table in (td3, ddpg):
        assert table["HalfCheetah-v4"] == {
            "n_timesteps": 1e6, "policy": "MlpPolicy", "learning_starts": 10000, "noise_type": "normal",
            "noise_std": 0.1, "train_freq": 1, "gradient_steps": 1, "learning_rate": 1e-3, "batch_size": 256,
            "policy_kwargs": "dict(net_arch=[400, 300])",
        }  # fmt: skip
        assert table["Pendulum-v1"]["train_freq"] == [1, "episode"] and table["Pendulum-v1"]["gamma"] == 0.98


def test_rl_zoo_forms_become_constructor_arguments() -> None:
    settings, shipped = resolve("td3", "MountainCarContinuous-v0", overrides=["train_freq=[1, 'episode']"])
    arguments = model_arguments(TD3, settings, (1,))
    assert shipped and arguments["train_freq"] == (1, "episode") and arguments["policy"] == "MlpPolicy"
    noise = arguments["action_noise"]
    assert isinstance(noise, OrnsteinUhlenbeckActionNoise) and noise.sigma.tolist() == [0.5]
    per_action = model_arguments(TD3, {"noise_type": "normal", "noise_std": [0.1, 0.2]}, (2,))["action_noise"]
    assert isinstance(per_action, NormalActionNoise) and np.allclose(per_action.sigma, [0.1, 0.2])
    kwargs = model_arguments(
        SAC,
        {"replay_buffer_class": "HerReplayBuffer", "replay_buffer_kwargs": "dict(n_sampled_goal=4)"},
        (2,),
    )
    assert kwargs["replay_buffer_class"].__name__ == "HerReplayBuffer" and kwargs["replay_buffer_kwargs"] == {
        "n_sampled_goal": 4
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("learning_rate=3e-4", ("learning_rate", 3e-4)),
        ("learning_rate=lin_7.3e-4", ("learning_rate", "lin_7.3e-4")),
        ("policy_kwargs=dict(net_arch=[64, 64])", ("policy_kwargs", "dict(net_arch=[64, 64])")),
        ("train_freq=(1, 'episode')", ("train_freq", (1, "episode"))),
        ("use_sde=True", ("use_sde", True)),
        ("ent_coef=auto_0.1", ("ent_coef", "auto_0.1")),
        (" gamma = 0.95 ", ("gamma", 0.95)),
    ],
)
def test_overrides_are_literals_or_words(text: str, expected: tuple[str, object]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text", ["=1", "gamma", "gamma=", "net arch=[1]", "x=[1,", "x=__import__('os')", "x=1+1"]
)
def test_overrides_that_do_not_parse_are_refused(text: str) -> None:
    with pytest.raises(HyperparameterError, match="Cannot read the override"):
        parse_override(text)
