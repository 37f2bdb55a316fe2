"""Action noise: the two processes, their errors and state, and how every estimator uses them."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from easyrl.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise, VectorizedActionNoise
from tests.conftest import FAST


def draws(noise: Any, n: int) -> np.ndarray:
    return np.stack([noise() for _ in range(n)])


# The processes


def test_normal_noise_has_its_mean_and_sigma() -> None:
    noise = NormalActionNoise(np.array([0.5, -1.0]), np.array([0.1, 0.3]))
    noise.seed(0)
    samples = draws(noise, 20_000)
    assert samples.shape == (20_000, 2)
    np.testing.assert_allclose(samples.mean(axis=0), [0.5, -1.0], atol=0.01)
    np.testing.assert_allclose(samples.std(axis=0), [0.1, 0.3], rtol=0.03)
    assert abs(np.corrcoef(samples[:-1, 0], samples[1:, 0])[0, 1]) < 0.03  # independent steps


def test_ou_noise_follows_its_recurrence() -> None:
    mean, sigma, theta, dt = np.array([0.2]), np.array([0.3]), 0.15, 0.5
    noise = OrnsteinUhlenbeckActionNoise(mean, sigma, theta=theta, dt=dt, initial_noise=np.array([1.0]))
    noise.seed(7)
    rng = np.random.default_rng(7)
    x = np.array([1.0])
    for _ in range(5):
        x = x + theta * (mean - x) * dt + sigma * np.sqrt(dt) * rng.normal(size=1)
        np.testing.assert_allclose(noise(), x)


def test_ou_noise_is_correlated_and_reverts_to_its_mean() -> None:
    noise = OrnsteinUhlenbeckActionNoise(np.array([0.3]), np.array([0.2]), theta=0.15, dt=1.0)
    noise.seed(0)
    samples = draws(noise, 50_000)[1_000:, 0]
    assert abs(samples.mean() - 0.3) < 0.03
    # Stationary law of x_{t+1} = (1 − θ dt) x_t + σ √dt ε: variance σ² dt / (1 − (1 − θ dt)²).
    assert samples.std() == pytest.approx(0.2 / np.sqrt(1 - 0.85**2), rel=0.05)
    assert np.corrcoef(samples[:-1], samples[1:])[0, 1] == pytest.approx(0.85, abs=0.02)


def test_ou_reset_returns_to_the_initial_noise() -> None:
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(2), 0.2 * np.ones(2))
    assert noise.state.tolist() == [0.0, 0.0]
    draws(noise, 10)
    assert np.all(noise.state != 0)
    noise.reset()
    assert noise.state.tolist() == [0.0, 0.0]
    started = OrnsteinUhlenbeckActionNoise(np.zeros(2), 0.2 * np.ones(2), initial_noise=[0.5, -0.5])
    draws(started, 3)
    started.reset()
    assert started.state.tolist() == [0.5, -0.5]


def test_ou_defaults_are_sb3s() -> None:
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1))
    assert (noise.theta, noise.dt, noise.initial_noise) == (0.15, 1e-2, None)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: NormalActionNoise(np.zeros(2), np.ones(3)),
            "mean and sigma must have the same shape, got (2,) and (3,).",
        ),
        (lambda: NormalActionNoise(np.zeros(1), -np.ones(1)), "sigma must be >= 0, got [-1.]."),
        (
            lambda: OrnsteinUhlenbeckActionNoise(np.zeros(2), np.ones(2), initial_noise=np.zeros(3)),
            "initial_noise must have the shape of mean, (2,); got (3,).",
        ),
    ],
)
def test_inconsistent_noise_is_a_clear_error(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make()


@pytest.mark.parametrize("kind", [NormalActionNoise, OrnsteinUhlenbeckActionNoise])
def test_state_round_trips_through_json(kind: type[ActionNoise]) -> None:
    noise = kind(np.zeros(2), 0.3 * np.ones(2))
    noise.seed(1)
    draws(noise, 5)
    state = json.loads(json.dumps(noise.get_state()))
    expected = draws(noise, 5)
    restored = kind(np.zeros(2), 0.3 * np.ones(2))
    restored.set_state(state)
    np.testing.assert_array_equal(draws(restored, 5), expected)


@pytest.mark.parametrize("kind", [NormalActionNoise, OrnsteinUhlenbeckActionNoise])
def test_seeded_noise_ignores_global_random_state(kind: type[ActionNoise]) -> None:
    def run(global_seed: int) -> np.ndarray:
        np.random.seed(global_seed)
        noise = kind(np.zeros(1), np.ones(1))
        noise.seed(3)
        return draws(noise, 10)

    np.testing.assert_array_equal(run(0), run(1))


def test_repr_shows_the_settings() -> None:
    assert repr(NormalActionNoise([0.0], [0.1])) == "NormalActionNoise(mean=[0.0], sigma=[0.1])"
    assert repr(OrnsteinUhlenbeckActionNoise([0.0], [0.2])) == (
        "OrnsteinUhlenbeckActionNoise(mean=[0.0], sigma=[0.2], theta=0.15, dt=0.01)"
    )


def test_vectorized_noise_is_one_independent_copy_per_env() -> None:
    base = OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), dt=1.0)
    vectorized = VectorizedActionNoise(base, 3, seed=0)
    samples = draws(vectorized, 4)
    assert samples.shape == (4, 3, 1)
    assert len({float(x) for x in samples[-1, :, 0]}) == 3
    vectorized.reset([1])
    assert vectorized.noises[1].state.tolist() == [0.0]
    assert vectorized.noises[0].state.tolist() != [0.0] and vectorized.noises[2].state.tolist() != [0.0]
    assert base.state.tolist() == [0.0]  # the template is never advanced
    np.testing.assert_array_equal(draws(VectorizedActionNoise(base, 3, seed=0), 4), samples)
    assert not np.array_equal(draws(VectorizedActionNoise(base, 3, seed=1), 4), samples)


# Every estimator takes `action_noise=`


def make_noise(kind: str, shape: tuple[int, ...] = (1,), sigma: float = 0.3) -> ActionNoise:
    if kind == "normal":
        return NormalActionNoise(np.zeros(shape), sigma * np.ones(shape))
    return OrnsteinUhlenbeckActionNoise(np.zeros(shape), sigma * np.ones(shape), dt=1.0)


@pytest.mark.parametrize("kind", ["normal", "ou"])
def test_exploration_adds_the_noise(estimator: type[Any], kind: str) -> None:
    def exploration_step(sigma: float) -> tuple[np.ndarray, np.ndarray]:
        model = estimator("Pendulum-v1", seed=4, action_noise=make_noise(kind, sigma=sigma), **FAST)
        model.learn(0).set_params(learning_starts=0)  # built and reset, and the policy (not uniform) acts
        expected = copy.deepcopy(model.training_state.noise)()
        return model._exploration_actions(), expected

    plain, _ = exploration_step(0.0)
    noisy, noise = exploration_step(0.3)
    assert np.all(noise != 0)
    np.testing.assert_allclose(noisy, np.clip(plain + noise, -1, 1), atol=1e-6)


def test_wrong_noise_shape_names_the_expected_shape(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", action_noise=make_noise("normal", shape=(2,)), **FAST)  # stores only
    message = "action_noise has shape (2,), but the action space needs noise of shape (1,)"
    with pytest.raises(ValueError, match=re.escape(message)):
        model.learn(10)


def test_noise_is_seeded_from_the_model_seed(estimator: type[Any]) -> None:
    def noise_of(seed: int, global_seed: int) -> np.ndarray:
        np.random.seed(global_seed)
        model = estimator("Pendulum-v1", seed=seed, action_noise=make_noise("ou"), **FAST)
        model._setup()
        assert model.training_state.noise is not None
        return draws(model.training_state.noise, 5)

    np.testing.assert_array_equal(noise_of(5, global_seed=0), noise_of(5, global_seed=1))
    assert not np.array_equal(noise_of(5, global_seed=0), noise_of(6, global_seed=0))


class RecordingNoise(OrnsteinUhlenbeckActionNoise):
    """OU noise that logs how many samples had been drawn whenever it is reset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.drawn = 0
        self.resets_at: list[int] = []
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.resets_at.append(self.drawn)

    def noise(self) -> np.ndarray:
        self.drawn += 1
        return super().noise()


def test_ou_noise_resets_at_episode_ends(estimator: type[Any]) -> None:
    env = gym.make("Pendulum-v1", max_episode_steps=10)
    model = estimator(env, seed=0, action_noise=RecordingNoise(np.zeros(1), 0.2 * np.ones(1)), **FAST)
    model.learn(35)
    assert model.training_state.noise is not None
    noise = model.training_state.noise.noises[0]
    assert noise.drawn == 35
    assert [at for at in noise.resets_at if at > 0] == [10, 20, 30]
