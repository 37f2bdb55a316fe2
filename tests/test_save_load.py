"""Saving and loading models: predictions, parameters, counters, envs, devices, pickled values, errors."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import easyrl
from easyrl import DDPG, SAC, TD3
from easyrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from easyrl.serialization import ModelFileError, read_metadata
from tests.conftest import FAST

OBS = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)


def noise() -> NormalActionNoise:
    return NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))


def trained(estimator: type[Any], steps: int = 120, **kwargs: Any) -> Any:
    return estimator("Pendulum-v1", seed=0, **{**FAST, **kwargs}).learn(steps)


def assert_same_parameters(a: Any, b: Any) -> None:
    pa, pb = a.get_parameters(), b.get_parameters()
    assert pa.keys() == pb.keys()
    for group in pa:
        flat_a, flat_b = _flatten(pa[group]), _flatten(pb[group])
        assert flat_a.keys() == flat_b.keys(), group
        for key, value in flat_a.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(value, flat_b[key], rtol=0, atol=0, msg=f"{group}/{key}")
            else:
                assert value == flat_b[key], f"{group}/{key}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}/{i}").items()}
    return {prefix: value}


# ---------------------------------------------------------------------------------------------- round trips
def test_loaded_model_predicts_exactly_as_before(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator)
    model.save(tmp_path / "model.zip")
    loaded = estimator.load(tmp_path / "model.zip", device="cpu")
    for deterministic in (True, False):  # stochastic too: the prediction generator is saved
        expected, _ = model.predict(OBS, deterministic=deterministic)
        actual, _ = loaded.predict(OBS, deterministic=deterministic)
        np.testing.assert_array_equal(actual, expected)
    assert_same_parameters(model, loaded)


def test_counters_and_parameters_are_kept(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator, train_freq=(1, "episode"), action_noise=noise())
    model.save(tmp_path / "model.zip")
    loaded = estimator.load(tmp_path / "model.zip", device="cpu")
    assert (loaded.num_timesteps, loaded._n_updates, loaded._episode_num) == (
        model.num_timesteps,
        model._n_updates,
        model._episode_num,
    )
    assert loaded.get_params() == model.get_params()
    assert loaded.get_params()["train_freq"] == (1, "episode")  # a tuple again, not a list
    assert list(loaded.ep_info_buffer) == list(model.ep_info_buffer)


def test_loaded_model_continues_training(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator)
    assert model.save(tmp_path / "model") == tmp_path / "model.zip"  # SB3's convention: .zip is added
    loaded = estimator.load(tmp_path / "model", device="cpu")
    before = {k: v.clone() for k, v in loaded.policy.state_dict().items()}
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 60
    assert any(not torch.equal(before[k], v) for k, v in loaded.policy.state_dict().items())
    assert loaded.get_params()["env"] == "Pendulum-v1"


def test_easyrl_load_reads_the_algorithm_from_the_file(estimator: type[Any], tmp_path: Path) -> None:
    trained(estimator, steps=10).save(tmp_path / "model.zip")
    loaded = easyrl.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded) is estimator
    assert read_metadata(tmp_path / "model.zip")["algorithm"] == estimator.__name__


@pytest.mark.parametrize(("saved", "loader"), [(SAC, TD3), (TD3, SAC), (DDPG, TD3), (TD3, DDPG)])
def test_loading_with_the_wrong_class_names_both(saved: type[Any], loader: type[Any], tmp_path: Path) -> None:
    trained(saved, steps=10).save(tmp_path / "model.zip")
    name, other = saved.__name__, loader.__name__
    with pytest.raises(
        ModelFileError, match=rf"model.zip holds a {name} model, not a {other} one: load it with {name}.load"
    ):
        loader.load(tmp_path / "model.zip")


def test_overrides_change_parameters_before_building(estimator: type[Any], tmp_path: Path) -> None:
    trained(estimator, steps=10).save(tmp_path / "model.zip")
    loaded = estimator.load(tmp_path / "model.zip", device="cpu", learning_starts=0, batch_size=8)
    assert loaded.learning_starts == 0 and loaded.batch_size == 8
    with pytest.raises(ValueError, match="Invalid parameter 'batchsize'"):
        estimator.load(tmp_path / "model.zip", batchsize=8)


def test_a_model_saved_before_training_loads(estimator: type[Any], tmp_path: Path) -> None:
    model = estimator("Pendulum-v1", seed=3, **FAST)
    model.save(tmp_path / "model.zip")
    loaded = estimator.load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_array_equal(
        loaded.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0]
    )
    # Both runs start from the same generators, so they train identically.
    model.learn(80)
    loaded.learn(80)
    assert_same_parameters(model, loaded)


def test_parameters_json_cannot_hold_are_described(tmp_path: Path) -> None:
    ou = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1), theta=0.3, dt=0.05, initial_noise=[0.1])
    kwargs = dict(net_arch=dict(pi=[16], qf=[32, 32]), activation_fn=nn.Tanh)
    model = DDPG("Pendulum-v1", action_noise=ou, **{**FAST, "policy_kwargs": kwargs})
    model.save(tmp_path / "model.zip")
    metadata = read_metadata(tmp_path / "model.zip")
    assert metadata["params"]["policy_kwargs"]["activation_fn"] == "Tanh"
    assert metadata["params"]["action_noise"]["class"] == "OrnsteinUhlenbeckActionNoise"
    assert metadata["pickled_params"] == []
    assert not any(n.startswith("pickled/") for n in zipfile.ZipFile(tmp_path / "model.zip").namelist())
    loaded = DDPG.load(tmp_path / "model.zip", device="cpu")
    assert loaded.get_params() == model.get_params()
    assert loaded.policy_kwargs["activation_fn"] is nn.Tanh


def test_metadata_describes_the_model(tmp_path: Path) -> None:
    trained(SAC, steps=10).save(tmp_path / "model.zip")
    metadata = read_metadata(tmp_path / "model.zip")
    assert metadata["algorithm"] == "SAC" and metadata["env_id"] == "Pendulum-v1"
    assert metadata["observation_space"]["type"] == "Box" and metadata["action_space"]["shape"] == [1]
    assert metadata["num_timesteps"] == 10 and metadata["format_version"] == 1
    assert {"easyrl", "torch", "gymnasium", "numpy", "python"} <= set(metadata["versions"])
    members = set(zipfile.ZipFile(tmp_path / "model.zip").namelist())
    assert members == {
        "metadata.json",
        "policy.pt",
        "actor_optimizer.pt",
        "critic_optimizer.pt",
        "ent_coef_optimizer.pt",
        "variables.pt",
        "training_state.pt",
    }


# ---------------------------------------------------------------------------------------------- pickled values
def schedule(progress: float) -> float:
    return 1e-3 * progress


def test_a_callable_schedule_needs_an_explicit_opt_in(estimator: type[Any], tmp_path: Path) -> None:
    trained(estimator, steps=10, learning_rate=schedule).save(tmp_path / "model.zip")
    assert read_metadata(tmp_path / "model.zip")["pickled_params"] == ["learning_rate"]
    with pytest.raises(
        ModelFileError,
        match=r"stores `learning_rate` as pickled code \(member pickled/learning_rate.pkl\).*"
        r"custom_objects=\{'learning_rate': \.\.\.\}.*trusted_pickles=\['learning_rate'\]",
    ):
        estimator.load(tmp_path / "model.zip")
    replaced = estimator.load(tmp_path / "model.zip", device="cpu", custom_objects={"learning_rate": 5e-4})
    assert replaced.learning_rate == 5e-4
    trusted = estimator.load(tmp_path / "model.zip", device="cpu", trusted_pickles=["learning_rate"])
    assert trusted.learning_rate(0.5) == schedule(0.5)


def test_a_custom_activation_is_pickled_separately(tmp_path: Path) -> None:
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    model = TD3("Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[8], activation_fn=Square)})
    model.save(tmp_path / "model.zip")
    assert read_metadata(tmp_path / "model.zip")["params"]["policy_kwargs"]["net_arch"] == [8]
    with pytest.raises(
        ModelFileError, match=r"`policy_kwargs.activation_fn`.*custom_objects=\{'policy_kwargs.activation_fn'"
    ):
        TD3.load(tmp_path / "model.zip")
    loaded = TD3.load(
        tmp_path / "model.zip", device="cpu", custom_objects={"policy_kwargs.activation_fn": Square}
    )
    np.testing.assert_array_equal(loaded.predict(OBS)[0], model.predict(OBS)[0])


def test_unknown_custom_objects_are_refused(tmp_path: Path) -> None:
    trained(SAC, steps=10).save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"custom_objects\['lr'\] replaces nothing"):
        SAC.load(tmp_path / "model.zip", custom_objects={"lr": 1e-3})


# ---------------------------------------------------------------------------------------------- parameters
def test_get_and_set_parameters(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator)
    other = estimator("Pendulum-v1", seed=1, **FAST)
    other.set_parameters(model.get_parameters())
    assert_same_parameters(model, other)
    np.testing.assert_array_equal(
        other.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0]
    )
    model.save(tmp_path / "model.zip")
    third = estimator("Pendulum-v1", seed=2, **FAST)
    third.set_parameters(tmp_path / "model.zip")
    assert_same_parameters(model, third)


def test_set_parameters_errors(tmp_path: Path) -> None:
    model = trained(SAC, steps=10)
    with pytest.raises(ValueError, match=r"set_parameters: has the parameter group\(s\) \['critics'\]"):
        model.set_parameters({"critics": {}})
    with pytest.raises(ValueError, match=r"lacks the parameter group\(s\) \['actor_optimizer'"):
        model.set_parameters({"policy": model.get_parameters()["policy"]})
    model.set_parameters({"policy": model.get_parameters()["policy"]}, exact_match=False)
    wide = SAC("Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[64])})
    with pytest.raises(ValueError, match="'policy' weights that do not fit this SAC.*policy_kwargs"):
        wide.set_parameters(model.get_parameters())


# ---------------------------------------------------------------------------------------------- envs
def test_a_model_built_from_an_env_object_needs_an_env_to_train(tmp_path: Path) -> None:
    model = SAC(gym.make("Pendulum-v1"), seed=0, **FAST).learn(60)
    model.save(tmp_path / "model.zip")
    metadata = read_metadata(tmp_path / "model.zip")
    assert metadata["params"]["env"] is None and metadata["env_id"] == "Pendulum-v1"
    loaded = SAC.load(tmp_path / "model.zip", device="cpu")
    assert loaded.get_params()["env"] is None and loaded.env_id == "Pendulum-v1"
    np.testing.assert_array_equal(loaded.predict(OBS)[0], model.predict(OBS)[0])
    with pytest.raises(ValueError, match=r"loaded from .*model.zip without an env .*model.set_env\(env\)"):
        loaded.learn(10, reset_num_timesteps=False)
    loaded.set_env(gym.make("Pendulum-v1"))
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 70
    with_env = SAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), device="cpu").learn(10)
    assert with_env.num_timesteps == 10


def test_an_env_with_other_spaces_is_refused(tmp_path: Path) -> None:
    trained(TD3, steps=10).save(tmp_path / "model.zip")
    with pytest.raises(
        ValueError, match=r"The env passed to load\(\) has the observation space .*model.zip was trained on"
    ):
        TD3.load(tmp_path / "model.zip", env="MountainCarContinuous-v0")
    rescaled = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), np.float32(-1), np.float32(1))
    model = TD3.load(tmp_path / "model.zip", device="cpu")
    with pytest.raises(ValueError, match=r"set_env\(\) has the action space"):
        model.set_env(rescaled)
    with pytest.raises(ValueError, match=r"set_env\(\) got 2 env\(s\), but this model steps 1"):
        model.set_env(gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync"))


def test_set_env_continues_training_on_the_new_env(estimator: type[Any]) -> None:
    model = trained(estimator, steps=70)
    model.set_env(lambda: gym.make("Pendulum-v1"))
    model.learn(30, reset_num_timesteps=False)
    assert model.num_timesteps == 100
    # The episode that set_env interrupted ends at step 70: its last transition keeps its true next obs.
    assert model.replay_buffer._ended_host[69, 0]


# ---------------------------------------------------------------------------------------------- devices
def test_a_file_saved_on_a_gpu_loads_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensors tagged as CUDA storage (what a GPU-trained model writes) load where CUDA is absent."""
    model = trained(SAC, steps=60)
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive, archive.open("policy.pt") as member:
        if not torch.cuda.is_available():
            with pytest.raises(RuntimeError, match="CUDA"):  # the file really claims CUDA storage
                torch.load(member, weights_only=True)
    loaded = SAC.load(tmp_path / "model.zip", device="cpu")
    assert all(t.device.type == "cpu" for t in loaded.policy.state_dict().values())
    np.testing.assert_array_equal(
        loaded.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_model_round_trips_through_the_cpu(estimator: type[Any], tmp_path: Path) -> None:
    model = estimator("Pendulum-v1", seed=0, **{**FAST, "device": "cuda"}).learn(80)
    model.save(tmp_path / "model.zip")
    on_cpu = estimator.load(tmp_path / "model.zip", device="cpu")
    assert on_cpu._device.type == "cpu"
    expected = model.predict(OBS, deterministic=True)[0]
    np.testing.assert_allclose(on_cpu.predict(OBS, deterministic=True)[0], expected, rtol=1e-5, atol=1e-5)
    on_cpu.learn(20, reset_num_timesteps=False)
    back = estimator.load(tmp_path / "model.zip", device="cuda")
    np.testing.assert_array_equal(back.predict(OBS, deterministic=True)[0], expected)


# ---------------------------------------------------------------------------------------------- safe writes
def test_a_failed_save_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    class Unpicklable:
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __call__(self, progress: float) -> float:
            return 1e-3

    target = tmp_path / "model.zip"
    trained(SAC, steps=10).save(target)
    before = target.read_bytes()
    model = SAC("Pendulum-v1", learning_rate=Unpicklable(), **FAST)
    with pytest.raises(TypeError, match="cannot be pickled"):
        model.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # no temporary file left behind


def test_saving_twice_gives_identical_files(tmp_path: Path) -> None:
    model = trained(TD3, steps=60)
    model.save(tmp_path / "a.zip")
    model.save(tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


# ---------------------------------------------------------------------------------------------- replay buffers
def fill(model: Any, steps: int, end_every: int = 0, valid: np.ndarray | None = None) -> None:
    """Add ``steps`` synthetic steps to every env of ``model``'s buffer; obs encode (env, step)."""
    model._setup()
    buffer = model.replay_buffer
    n = buffer.n_envs
    for t in range(steps):
        obs = np.stack([np.full(3, 1000 * env + t, np.float32) for env in range(n)])
        done = np.full(n, end_every > 0 and t % end_every == end_every - 1)
        buffer.add(obs, np.full((n, 1), 0.5), np.full(n, float(t)), obs + 0.5, done, np.zeros(n, bool), valid)


def same_samples(a: Any, b: Any) -> None:
    batch_a = a.replay_buffer.sample(512, torch.Generator().manual_seed(0), gamma=0.99)
    batch_b = b.replay_buffer.sample(512, torch.Generator().manual_seed(0), gamma=0.99)
    for x, y in zip(batch_a, batch_b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    ("buffer_size", "n_envs", "steps", "end_every"),
    [
        (2_000, 1, 0, 0),  # empty
        (2_000, 1, 150, 0),  # partly filled, one open episode
        (300, 1, 1_000, 7),  # wrapped around several times
        (400, 1, 500, 1),  # every step ends an episode: the side store of final observations has grown
        (600, 3, 250, 40),  # several envs, wrapped
    ],
)
def test_replay_buffer_round_trips(
    buffer_size: int, n_envs: int, steps: int, end_every: int, tmp_path: Path
) -> None:
    kwargs = {**FAST, "buffer_size": buffer_size, "n_envs": n_envs}
    model = SAC("Pendulum-v1", **kwargs)
    fill(model, steps, end_every)
    model.save_replay_buffer(tmp_path / "buffer")  # .zip is added
    other = SAC("Pendulum-v1", **kwargs)
    other.load_replay_buffer(tmp_path / "buffer.zip")
    arrays_a, state_a = model.replay_buffer.export_state()
    arrays_b, state_b = other.replay_buffer.export_state()
    assert state_a == state_b and len(other.replay_buffer) == len(model.replay_buffer)
    for name in ("observations", "actions", "rewards", "terminated", "ended", "final_id"):
        assert torch.equal(arrays_a[name], arrays_b[name]), name
    if steps:
        same_samples(model, other)
    np.testing.assert_array_equal(other.replay_buffer._ended_host, model.replay_buffer._ended_host)


def test_replay_buffer_with_unequal_columns_round_trips(tmp_path: Path) -> None:
    model = SAC("Pendulum-v1", **{**FAST, "n_envs": 2})
    fill(model, 30)
    fill(model, 5, valid=np.array([True, False]))  # NEXT_STEP autoreset steps of env 1 are skipped
    model.save_replay_buffer(tmp_path / "buffer.zip")
    other = SAC("Pendulum-v1", **{**FAST, "n_envs": 2})
    other.load_replay_buffer(tmp_path / "buffer.zip")
    assert other.replay_buffer.count.tolist() == [35, 30]
    same_samples(model, other)


def test_a_buffer_of_another_layout_is_refused(tmp_path: Path) -> None:
    model = SAC("Pendulum-v1", **FAST)
    fill(model, 10)
    model.save_replay_buffer(tmp_path / "buffer.zip")
    other = SAC("Pendulum-v1", **{**FAST, "buffer_size": 3_000})
    fill(other, 4)
    with pytest.raises(
        ModelFileError,
        match=r"buffer.zip holds a replay buffer of capacity 2000 for 1 env\(s\), observations of shape \(3,\) "
        r"\(float32\) and actions of size 1, but this model's buffer has capacity 3000",
    ):
        other.load_replay_buffer(tmp_path / "buffer.zip")
    assert len(other.replay_buffer) == 4  # unchanged
    with pytest.raises(ModelFileError, match=r"holds a replay buffer .*observations of shape \(3,\).*\(2,\)"):
        TD3("MountainCarContinuous-v0", **FAST).load_replay_buffer(tmp_path / "buffer.zip")


def test_a_model_file_is_not_a_replay_buffer(tmp_path: Path) -> None:
    model = trained(SAC, steps=10)
    model.save(tmp_path / "model.zip")
    with pytest.raises(
        ModelFileError, match="model.zip is a model file, not a replay buffer saved by save_replay_buffer"
    ):
        model.load_replay_buffer(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.zip")
    with pytest.raises(
        ModelFileError, match=r"buffer.zip is a replay buffer file, not a model: .*load_replay_buffer"
    ):
        SAC.load(tmp_path / "buffer.zip")


MEMORY_SCRIPT = """
import json, sys
import gymnasium as gym, numpy as np, torch
from easyrl import SAC

class Wide(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (32,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

def peak_growth(action):
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
    before = rss("VmRSS")
    action()
    return rss("VmHWM") - before

kwargs = dict(buffer_size=1_000_000, learning_starts=0, device="cpu")
model = SAC(Wide, **kwargs)
model._setup()
buffer = model.replay_buffer
for tensor in (buffer.observations, buffer.actions, buffer.rewards, buffer.terminated, buffer.ended, buffer.final_id):
    tensor.fill_(1)
buffer.count[:] = buffer.rows
nbytes = buffer.nbytes
saved = peak_growth(lambda: model.save_replay_buffer(sys.argv[1]))
other = SAC(Wide, **kwargs)
other._setup()
loaded = peak_growth(lambda: other.load_replay_buffer(sys.argv[1]))
assert len(other.replay_buffer) == 1_000_000
print(json.dumps(dict(nbytes=nbytes, saved=saved, loaded=loaded)))
"""


def test_saving_and_loading_a_million_transitions_does_not_double_memory(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "buffer.zip")],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    nbytes = figures["nbytes"]  # about 150 MB
    assert figures["saved"] < 0.5 * nbytes, figures  # chunks only, no copy of the buffer
    assert figures["loaded"] < 1.5 * nbytes, figures  # the storage's pages filled once, no second copy
