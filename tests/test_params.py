"""The scikit-learn estimator contract: constructor stores, get/set params, repr, clone."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import pytest

from tests.conftest import FAST


def test_constructor_stores_arguments_unchanged(estimator: type[Any]) -> None:
    kwargs = dict(net_arch=[8])
    env = gym.make("Pendulum-v1")
    model = estimator(env, policy_kwargs=kwargs, seed=3)
    params = model.get_params()
    assert params["env"] is env and params["policy_kwargs"] is kwargs and params["seed"] == 3
    assert kwargs == dict(net_arch=[8])  # not mutated


def test_constructor_does_no_work(estimator: type[Any]) -> None:
    # An unknown env id and an invalid value are only reported on first use.
    model = estimator("NoSuchEnv-v0", tau=5.0)
    assert not model._is_setup
    with pytest.raises(ValueError, match="tau=5.0 is invalid"):
        model.learn(10)


def test_signature_is_the_parameter_set(estimator: type[Any]) -> None:
    signature = inspect.signature(estimator)
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())
    assert list(signature.parameters) == list(estimator("Pendulum-v1").get_params())


def test_sb3_hyperparameter_names_are_accepted(estimator: type[Any]) -> None:
    names = set(inspect.signature(estimator).parameters)
    sb3 = {
        "learning_rate",
        "buffer_size",
        "learning_starts",
        "batch_size",
        "tau",
        "gamma",
        "train_freq",
        "gradient_steps",
        "action_noise",
        "policy_kwargs",
        "seed",
        "device",
        "verbose",
        "tensorboard_log",
    }
    assert sb3 <= names


def test_sb3_positional_form_is_accepted(estimator: type[Any]) -> None:
    model = estimator("MlpPolicy", "Pendulum-v1")
    assert model.get_params()["env"] == "Pendulum-v1"
    assert model.get_params()["policy"] == "MlpPolicy"
    assert estimator("Pendulum-v1").get_params()["policy"] is None


def test_set_params_returns_self_and_sets(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1")
    assert model.set_params(batch_size=64, gamma=0.9) is model
    assert model.get_params()["batch_size"] == 64 and model.gamma == 0.9


def test_set_params_rejects_unknown_names(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match="Invalid parameter 'batchsize'.*valid parameters are"):
        estimator("Pendulum-v1").set_params(batchsize=3)


def test_set_params_after_build(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    model.learn(60)
    model.set_params(batch_size=16)  # read at every update: fine
    model.learn(60, reset_num_timesteps=False)
    with pytest.raises(ValueError, match="buffer_size cannot change after the model was built"):
        model.set_params(buffer_size=10)


def test_repr_shows_only_non_default_parameters(estimator: type[Any]) -> None:
    name = estimator.__name__
    assert repr(estimator("Pendulum-v1")) == f"{name}(env='Pendulum-v1')"
    assert (
        repr(estimator("Pendulum-v1", seed=0, batch_size=64))
        == f"{name}(env='Pendulum-v1', batch_size=64, seed=0)"
    )


def test_sklearn_clone(estimator: type[Any]) -> None:
    base = pytest.importorskip("sklearn.base")
    model = estimator("Pendulum-v1", seed=1, **FAST).learn(60)
    copy = base.clone(model)
    assert type(copy) is estimator and copy.get_params() == model.get_params()
    assert not copy._is_setup and copy.num_timesteps == 0


def test_learn_returns_self_and_counts_steps(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    assert model.learn(70) is model
    assert model.num_timesteps == 70
    model.learn(30, reset_num_timesteps=False)
    assert model.num_timesteps == 100
    model.learn(20)
    assert model.num_timesteps == 20


def test_env_and_policy_attributes(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    assert isinstance(model.env, gym.vector.VectorEnv) and model.env.num_envs == 1
    assert isinstance(model.policy, __import__("torch").nn.Module)
    assert model.replay_buffer.capacity == FAST["buffer_size"]


def test_set_params_on_a_built_model_is_checked_and_leaves_nothing_half_set(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST).learn(60)
    with pytest.raises(ValueError, match=r"tau=2.0 is invalid"):
        model.set_params(batch_size=8, tau=2.0)
    assert model.batch_size == FAST["batch_size"] and model.tau == 0.005
    model.set_params(train_freq=(1, "episode"))  # read at every learn: takes effect
    model.learn(200, reset_num_timesteps=False)
    assert model._train_frequency == (1, "episode")
