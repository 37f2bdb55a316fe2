"""Every error a user can provoke says what was wrong and what to do."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from tests.conftest import FAST


def test_discrete_action_space(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match=r"needs a continuous \(Box\) action space.*Discrete"):
        estimator("CartPole-v1").learn(10)


def test_unknown_env_id_names_it_and_close_matches(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match=r"Unknown environment id 'Pendulum-v9'.*Did you mean 'Pendulum-v1'"):
        estimator("Pendulum-v9").learn(10)


def test_missing_env(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match="needs an env"):
        estimator().learn(10)


def test_unbounded_actions(estimator: type[Any]) -> None:
    class Unbounded(gym.Env):  # type: ignore[type-arg]
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Box(-np.inf, np.inf, (1,))

    with pytest.raises(ValueError, match="needs finite action bounds.*RescaleAction"):
        estimator(Unbounded()).learn(10)


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((2, 4)), np.zeros((3,) * 3)])
def test_predict_wrong_observation_shape(estimator: type[Any], bad: np.ndarray) -> None:
    model = estimator("Pendulum-v1", **FAST)
    with pytest.raises(ValueError, match=r"expects \(3,\) for one observation or \(n, 3\) for a batch"):
        model.predict(bad)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("buffer_size", -1, r"an integer >= 1"),
        ("buffer_size", 1.5, r"an integer >= 1"),
        ("tau", 0.0, r"a number in \(0, 1\]"),
        ("tau", 1.5, r"a number in \(0, 1\]"),
        ("gamma", 1.1, r"a number in \[0, 1\]"),
        ("batch_size", 0, r"an integer >= 1"),
        ("learning_starts", -5, r"an integer >= 0"),
        ("learning_rate", -1e-3, r"a number > 0 or a callable"),
        ("gradient_steps", -2, r"an integer >= 0 or one of -1"),
        ("n_envs", 0, r"an integer >= 1"),
        ("verbose", 3, r"one of 0, 1, 2"),
        ("device", "gpu", r"'auto', 'cpu', 'cuda'"),
    ],
)
def test_invalid_hyperparameter(estimator: type[Any], name: str, value: Any, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}={value!r} is invalid: {name} must be {allowed}"):
        estimator("Pendulum-v1", **{name: value}).learn(10)


@pytest.mark.parametrize("train_freq", [0, (1, "epoch"), "1", (0, "step")])
def test_invalid_train_freq(estimator: type[Any], train_freq: Any) -> None:
    with pytest.raises(ValueError, match=r"train_freq=.* is invalid: train_freq must be a positive integer"):
        estimator("Pendulum-v1", train_freq=train_freq).learn(10)


def test_unknown_policy_kwargs(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match=r"Unknown key\(s\) 'netarch' in policy_kwargs; allowed keys are"):
        estimator("Pendulum-v1", policy_kwargs=dict(netarch=[4])).learn(10)


def test_invalid_net_arch(estimator: type[Any]) -> None:
    with pytest.raises(
        ValueError, match=r"net_arch'\]=\[-4\] is invalid: use a list of positive layer widths"
    ):
        estimator("Pendulum-v1", policy_kwargs=dict(net_arch=[-4])).learn(10)


def test_unsupported_policy(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match="policy='TransformerPolicy' is not supported"):
        estimator("Pendulum-v1", policy="TransformerPolicy").learn(10)


def test_cuda_without_cuda(estimator: type[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available; use device='cpu'"):
        estimator("Pendulum-v1", device="cuda").learn(10)


def test_single_env_instance_cannot_make_several(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match="n_envs=2 needs a way to create new envs"):
        estimator(gym.make("Pendulum-v1"), n_envs=2).learn(10)


def test_negative_total_timesteps(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match=r"total_timesteps=-1 is invalid"):
        estimator("Pendulum-v1", **FAST).learn(-1)


def test_env_already_recording_episode_statistics(estimator: type[Any]) -> None:
    """A user's env wrapped in gymnasium's RecordEpisodeStatistics trains and is counted once."""

    def wrapped() -> gym.Env:  # type: ignore[type-arg]
        return gym.wrappers.RecordEpisodeStatistics(gym.make("Pendulum-v1"))

    model = estimator(wrapped, **FAST).learn(400)
    assert [length for _, length in model.ep_info_buffer] == [200, 200]
    assert model.score(n_episodes=1) < 0
