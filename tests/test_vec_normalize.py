"""Observation and reward normalisation: SB3's VecNormalize, and ``normalize=`` on the model.

The statistics are the model's: saved inside its model file (arrays and JSON, never a pickle), restored bit
for bit, frozen for evaluation, part of exact resume, and a loaded model acts on raw observations.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl import SAC, TD3
from easyrl.callbacks import CheckpointCallback, EvalCallback
from easyrl.envs import DummyVecEnv, VecNormalize, make_vec_env
from easyrl.serialization import ModelFileError
from tests.conftest import FAST
from tests.test_model_security import marker, rewrite, torch_saved  # noqa: F401 (marker is a fixture)
from tests.test_resume import assert_same_learner
from tests.test_serialization_format import PAYLOADS, TouchPayload


def pendulums(n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([lambda: gym.make("Pendulum-v1") for _ in range(n)])


def statistics(normalizer: Any) -> dict[str, np.ndarray]:
    return normalizer.to_file()[1]


def assert_same_statistics(a: Any, b: Any) -> None:
    arrays_a, arrays_b = statistics(a), statistics(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)  # bit for bit
    assert a.settings() == b.settings()


# ---------------------------------------------------------------------------------------------- the wrapper
def test_vec_normalize_computes_what_sb3s_does() -> None:
    sb3 = pytest.importorskip("stable_baselines3.common.vec_env")
    ours = VecNormalize(pendulums(), gamma=0.9)
    theirs = sb3.VecNormalize(sb3.DummyVecEnv([lambda: gym.make("Pendulum-v1") for _ in range(2)]), gamma=0.9)
    ours.seed(3)
    theirs.seed(3)
    np.testing.assert_allclose(ours.reset(), theirs.reset(), rtol=1e-5, atol=1e-6)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(250, 2, 1)).astype(np.float32)
    for action in actions:  # crosses an episode end (200 steps), where the running returns restart
        obs_ours, rew_ours, done_ours, infos_ours = ours.step(action)
        obs_theirs, rew_theirs, done_theirs, infos_theirs = theirs.step(action)
        np.testing.assert_allclose(obs_ours, obs_theirs, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rew_ours, rew_theirs, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(done_ours, done_theirs)
    np.testing.assert_allclose(ours.obs_rms.mean, theirs.obs_rms.mean, rtol=1e-6)
    np.testing.assert_allclose(ours.obs_rms.var, theirs.obs_rms.var, rtol=1e-6)
    np.testing.assert_allclose(ours.ret_rms.var, theirs.ret_rms.var, rtol=1e-6)
    np.testing.assert_allclose(
        infos_ours[0].get("terminal_observation", 0),
        infos_theirs[0].get("terminal_observation", 0),
        rtol=1e-4,
    )
    np.testing.assert_allclose(ours.get_original_obs(), theirs.get_original_obs(), rtol=1e-6)
    np.testing.assert_allclose(ours.get_original_reward(), theirs.get_original_reward(), rtol=1e-6)


def test_training_false_freezes_the_statistics() -> None:
    env = VecNormalize(pendulums(1))
    env.reset()
    env.step(np.zeros((1, 1)))
    before = statistics(env.normalizer)
    env.training = False
    for _ in range(5):
        env.step(np.ones((1, 1)))
    after = statistics(env.normalizer)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    assert env.normalizer.training is False


def test_the_statistics_file_round_trips_and_refuses_strangers(tmp_path: Path) -> None:
    env = VecNormalize(pendulums(), norm_reward=False, clip_obs=5.0)
    env.reset()
    for _ in range(30):
        env.step(np.full((2, 1), 0.5))
    path = env.save(tmp_path / "vecnormalize.zip")
    loaded = VecNormalize.load(path, pendulums())
    assert_same_statistics(env.normalizer, loaded.normalizer)
    assert loaded.clip_obs == 5.0 and loaded.norm_reward is False
    with pytest.raises(ModelFileError, match="statistics of 2 env\\(s\\); this vector env has 1"):
        VecNormalize.load(path, pendulums(1))
    other = DummyVecEnv([lambda: gym.make("MountainCarContinuous-v0")] * 2)
    with pytest.raises(ModelFileError, match="other observations than this env's"):
        VecNormalize.load(path, other)
    sb3_style = tmp_path / "vec_normalize.pkl"
    sb3_style.write_bytes(pickle.dumps({"obs_rms": 1}))
    with pytest.raises(ModelFileError, match="SB3's pickled vec_normalize.pkl cannot be read"):
        VecNormalize.load(sb3_style, pendulums())


def test_invalid_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"clip_obs=-1 is invalid: it must be a number > 0"):
        VecNormalize(pendulums(), clip_obs=-1)
    with pytest.raises(ValueError, match="norm_obs_keys is for Dict observation spaces"):
        VecNormalize(pendulums(), norm_obs_keys=["observation"])
    goal = DummyVecEnv([lambda: gym.make("easyrl/PointGoal-v0")])
    with pytest.raises(ValueError, match=r"norm_obs_keys names 'nope', which is not a key"):
        VecNormalize(goal, norm_obs_keys=["nope"])
    assert VecNormalize(goal).norm_obs_keys == ["achieved_goal", "desired_goal", "observation"]


# ---------------------------------------------------------------------------------------------- with a model
def trained_on_vec_normalize(steps: int = 300) -> tuple[Any, VecNormalize]:
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    return SAC("MlpPolicy", env, seed=0, **FAST).learn(steps), env


def test_a_loaded_model_acts_on_raw_observations(tmp_path: Path) -> None:
    model, env = trained_on_vec_normalize()
    normalized = env.reset()  # (a reset adds its observations to the statistics)
    raw = env.get_original_obs()
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip")  # no env: the statistics come from the file
    assert loaded.env_id == "Pendulum-v1"
    assert_same_statistics(model._normalizer, loaded._normalizer)
    expected, _ = model.predict(normalized, deterministic=True)  # SB3's way: the wrapper's observations
    actual, _ = loaded.predict(raw, deterministic=True)
    np.testing.assert_array_equal(expected, actual)
    np.testing.assert_array_equal(model.predict(raw, deterministic=True, normalized=False)[0], actual)


def test_statistics_are_refreshed_only_by_training() -> None:
    model, env = trained_on_vec_normalize(200)
    assert model._normalizer is env.normalizer  # one set of statistics, shared
    before = statistics(model._normalizer)
    assert before["obs.count"] > 200  # every step's observations went in
    EvalCallback  # noqa: B018 (evaluation below goes through the same run_episodes)
    model.score(n_episodes=2)
    for name, value in statistics(model._normalizer).items():
        np.testing.assert_array_equal(before[name], value, err_msg=name)  # frozen while evaluating


def test_eval_callback_evaluates_with_the_training_statistics(tmp_path: Path) -> None:
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    callback = EvalCallback("Pendulum-v1", eval_freq=150, n_eval_episodes=1, log_path=str(tmp_path))
    model = SAC("MlpPolicy", env, seed=0, **FAST).learn(300, callback=callback)
    results = np.load(tmp_path / "evaluations.npz")
    assert results["results"].shape == (2, 1)
    # The same evaluation by hand, on raw observations scaled by the (frozen) training statistics.
    assert callback.last_mean_reward == pytest.approx(
        model.score("Pendulum-v1", n_episodes=1), abs=1e3
    )  # loose: a different seed; the exact check is test_a_loaded_model_acts_on_raw_observations


@pytest.mark.parametrize(
    "normalize",
    [True, dict(norm_obs=True, norm_reward=False), "{'norm_obs': True, 'norm_reward': False}"],
    ids=["True", "dict", "rl-zoo string"],
)
def test_normalize_setting_builds_the_models_own_statistics(normalize: Any, tmp_path: Path) -> None:
    model = TD3("Pendulum-v1", normalize=normalize, seed=0, **FAST).learn(120)
    assert model.get_params()["normalize"] == normalize  # stored as given
    normalizer = model._normalizer
    assert normalizer is not None and normalizer.gamma == model.gamma
    assert normalizer.norm_reward is (normalize is True)
    assert not model._env_normalizes  # predict takes raw observations
    model.save(tmp_path / "model.zip")
    assert_same_statistics(normalizer, TD3.load(tmp_path / "model.zip")._normalizer)


def test_invalid_normalize_values_are_named() -> None:
    with pytest.raises(ValueError, match=r"normalize=3 is invalid"):
        SAC("Pendulum-v1", normalize=3, **FAST).learn(1)
    with pytest.raises(
        ValueError, match=r"normalize='dict\(oops' cannot be read: it is not valid Python syntax"
    ):
        SAC("Pendulum-v1", normalize="dict(oops", **FAST).learn(1)
    with pytest.raises(ValueError, match="norm_obsx"):
        SAC("Pendulum-v1", normalize=dict(norm_obsx=True), **FAST).learn(1)
    env = VecNormalize(make_vec_env("Pendulum-v1"))
    with pytest.raises(ValueError, match="normalise once"):
        SAC("MlpPolicy", env, normalize=True, **FAST).learn(1)


def test_exact_resume_includes_the_statistics(tmp_path: Path) -> None:
    settings = dict(FAST, seed=0, normalize=True)
    a = SAC("Pendulum-v1", **settings).learn(200)  # an episode boundary
    a.save(tmp_path / "model.zip")
    a.save_replay_buffer(tmp_path / "buffer.zip")
    a.learn(150, reset_num_timesteps=False)
    b = SAC.load(tmp_path / "model.zip", device="cpu")
    b.load_replay_buffer(tmp_path / "buffer.zip")
    b.learn(150, reset_num_timesteps=False)
    assert_same_learner(a, b)
    assert_same_statistics(a._normalizer, b._normalizer)


def test_checkpoint_callback_saves_the_statistics_too(tmp_path: Path) -> None:
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    callback = CheckpointCallback(save_freq=100, save_path=str(tmp_path), save_vecnormalize=True)
    model = SAC("MlpPolicy", env, seed=0, **FAST).learn(200, callback=callback)
    assert (tmp_path / "rl_model_vecnormalize_200_steps.zip").exists()
    restored = VecNormalize.load(
        tmp_path / "rl_model_vecnormalize_200_steps.zip", make_vec_env("Pendulum-v1")
    )
    assert_same_statistics(model._normalizer, restored.normalizer)
    from_model = SAC.load(tmp_path / "rl_model_200_steps.zip")._normalizer
    assert_same_statistics(model._normalizer, from_model)


# ---------------------------------------------------------------------------------------------- hostile files
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_a_crafted_statistics_member_cannot_run_code(
    tmp_path: Path,
    marker: Path,  # noqa: F811 (the fixture imported above)
    payload: type[TouchPayload],
) -> None:
    model, _ = trained_on_vec_normalize(60)
    path = model.save(tmp_path / "model.zip")
    assert path is not None and "normalization.pt" in zipfile.ZipFile(path).namelist()
    for data in (torch_saved(payload(marker)), pickle.dumps(payload(marker))):
        evil = rewrite(path, tmp_path / "evil.zip", {"normalization.pt": data})
        with pytest.raises(ModelFileError, match="normalization.pt"):
            SAC.load(evil)
    statistics_file = VecNormalize(pendulums()).save(tmp_path / "stats.zip")
    evil = rewrite(
        statistics_file, tmp_path / "evil-stats.zip", {"obs.mean.npy": pickle.dumps(payload(marker))}
    )
    with pytest.raises(ModelFileError):
        VecNormalize.load(evil, pendulums())


def test_damaged_statistics_are_one_clear_error(tmp_path: Path) -> None:
    model, _ = trained_on_vec_normalize(60)
    path = model.save(tmp_path / "model.zip")
    assert path is not None
    bad = {"obs.var": -torch.ones(3, dtype=torch.float64)}
    with zipfile.ZipFile(path) as archive:
        state = torch.load(archive.open("normalization.pt"), weights_only=True)
    evil = rewrite(path, tmp_path / "bad.zip", {"normalization.pt": torch_saved({**state, **bad})})
    with pytest.raises(
        ModelFileError, match="damaged normalisation statistics.*'obs.var' must not be negative"
    ):
        SAC.load(evil)


def test_her_on_dict_observations_normalises_per_key(tmp_path: Path) -> None:
    from easyrl import HerReplayBuffer

    model = SAC(
        "MultiInputPolicy",
        "easyrl/PointGoal-v0",
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2),
        normalize=dict(norm_reward=False),
        seed=0,
        **FAST,
    ).learn(200)
    normalizer = model._normalizer
    assert sorted(normalizer.obs_rms) == ["achieved_goal", "desired_goal", "observation"]
    # Relabelled rewards come from raw goals (the env's compute_reward), observations are scaled after.
    batch = model.replay_buffer.sample(64, torch.Generator().manual_seed(0), gamma=0.99)
    scaled = normalizer.normalize_batch(batch)
    torch.testing.assert_close(scaled.rewards, batch.rewards)
    expected = (
        batch.observations["observation"] - torch.as_tensor(normalizer.obs_rms["observation"].mean)
    ) / (torch.as_tensor(normalizer.obs_rms["observation"].var + normalizer.epsilon).sqrt())
    torch.testing.assert_close(scaled.observations["observation"], expected.float().clamp(-10, 10))
    model.save(tmp_path / "her.zip")
    loaded = SAC.load(tmp_path / "her.zip")
    obs, _ = gym.make("easyrl/PointGoal-v0").reset(seed=1)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )


def test_a_model_trains_on_subprocess_envs_with_vec_normalize() -> None:
    from easyrl.envs import SubprocVecEnv

    env = VecNormalize(
        make_vec_env("Pendulum-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv), norm_reward=False
    )
    try:
        model = SAC("MlpPolicy", env, seed=0, **FAST).learn(120)
        assert model.num_timesteps == 120 and len(model.replay_buffer) == 120
        assert env.obs_rms.count > 120  # type: ignore[union-attr]
    finally:
        env.close()


def test_get_vec_normalize_env_is_sb3s() -> None:
    model, env = trained_on_vec_normalize(60)
    assert model.get_vec_normalize_env() is env
    assert SAC("Pendulum-v1", normalize=True, **FAST).get_vec_normalize_env() is None
