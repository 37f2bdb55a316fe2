"""SB3's policy surface: model.actor/critic/critic_target, policy.predict, policy.save / Policy.load, and
the policy classes at SB3's import paths (easyrl.sac.policies, easyrl.td3.policies, easyrl.ddpg.policies)."""

from __future__ import annotations

import importlib
import io
import json
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import easyrl.ddpg.policies
import easyrl.sac.policies
import easyrl.td3.policies
from easyrl import DDPG, SAC, TD3
from easyrl.algorithms.policies import BasePolicy
from easyrl.envs.goal import PointGoalEnv
from easyrl.serialization import ModelFileError
from tests.conftest import FAST
from tests.test_serialization_format import PAYLOADS, TouchPayload

POLICIES_MODULE = {SAC: "easyrl.sac.policies", TD3: "easyrl.td3.policies", DDPG: "easyrl.ddpg.policies"}
OBSERVATIONS = np.random.default_rng(0).uniform(-1, 1, size=(5, 3)).astype(np.float32)


def policies_of(estimator: type[Any]) -> Any:
    return importlib.import_module(POLICIES_MODULE[estimator])


def trained(estimator: type[Any], **kwargs: Any) -> Any:
    return estimator("Pendulum-v1", seed=0, **{**FAST, **kwargs}).learn(60)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a payload in the file was executed"


def rewrite(source: Path, target: Path, replace: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, (replace or {}).get(info.filename, old.read(info)))
    return target


def edited_metadata(source: Path, target: Path, **changes: Any) -> Path:
    with zipfile.ZipFile(source) as archive:
        document = json.loads(archive.read("metadata.json"))
    document.update(changes)
    return rewrite(source, target, {"metadata.json": json.dumps(document).encode()})


# ---------------------------------------------------------------------------------------------- attributes
def test_model_attributes_are_the_policy_networks(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **FAST)
    assert not model._is_setup
    assert model.actor is model.policy.actor  # reading one builds the model, as model.policy does
    assert model._is_setup
    assert model.critic is model.policy.critic
    assert model.critic_target is model.policy.critic_target
    if issubclass(estimator, SAC):
        assert not hasattr(model, "actor_target")  # as in SB3: SAC's targets are the critics' only
    else:
        assert model.actor_target is model.policy.actor_target
    with pytest.raises(AttributeError):
        model.actor = nn.Linear(1, 1)


def test_attributes_have_sb3_names(estimator: type[Any]) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    theirs = getattr(sb3, estimator.__name__)("MlpPolicy", "Pendulum-v1", learning_starts=0, buffer_size=100)
    ours = estimator("Pendulum-v1", **FAST)
    for name in ("actor", "critic", "critic_target", "actor_target"):
        assert hasattr(ours, name) == hasattr(theirs, name), name
        if hasattr(theirs, name):
            assert isinstance(getattr(ours, name), nn.Module)


# ---------------------------------------------------------------------------------------------- predict
def test_policy_predict_equals_model_predict(estimator: type[Any]) -> None:
    model = trained(estimator)
    for observations in (OBSERVATIONS, OBSERVATIONS[0]):
        expected, _ = model.predict(observations, deterministic=True)
        actions, state = model.policy.predict(observations, deterministic=True)
        assert state is None
        assert actions.shape == expected.shape and actions.dtype == expected.dtype
        np.testing.assert_array_equal(actions, expected)


def test_stochastic_policy_predict_draws_from_the_models_generator() -> None:
    model = trained(SAC)
    generator = model.training_state.predict_rng
    start = generator.get_state()
    expected, _ = model.predict(OBSERVATIONS)
    generator.set_state(start)
    actions, _ = model.policy.predict(OBSERVATIONS)
    np.testing.assert_array_equal(actions, expected)
    assert not np.array_equal(model.policy.predict(OBSERVATIONS)[0], actions)


def test_actions_stay_in_the_env_bounds(estimator: type[Any]) -> None:
    model = trained(estimator)
    actions, _ = model.policy.predict(100 * OBSERVATIONS)
    assert np.all(actions >= -2.0) and np.all(actions <= 2.0)
    scaled = model.policy.scale_action(actions)
    np.testing.assert_allclose(model.policy.unscale_action(scaled), actions, rtol=1e-6)
    assert model.policy(torch.as_tensor(OBSERVATIONS), deterministic=True).shape == (5, 1)


def test_policy_predict_has_sb3s_shapes_and_types(estimator: type[Any]) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    theirs = getattr(sb3, estimator.__name__)("MlpPolicy", "Pendulum-v1", learning_starts=0, buffer_size=100)
    ours = estimator("Pendulum-v1", **FAST)
    for observations in (OBSERVATIONS, OBSERVATIONS[0]):
        (mine, my_state), (sb3_actions, sb3_state) = (
            model.policy.predict(observations, deterministic=True) for model in (ours, theirs)
        )
        assert type(mine) is type(sb3_actions)
        assert mine.shape == sb3_actions.shape and mine.dtype == sb3_actions.dtype
        assert my_state is sb3_state is None


# ---------------------------------------------------------------------------------------------- files
def test_saved_policy_loads_and_predicts_the_same(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator)
    path = model.policy.save(tmp_path / "policy")
    assert path == tmp_path / "policy.zip"
    global_state = torch.get_rng_state()
    for loader in (policies_of(estimator).MlpPolicy, BasePolicy, type(model.policy)):
        policy = loader.load(path, device="cpu")
        assert type(policy) is type(model.policy)
        for key, tensor in model.policy.state_dict().items():
            assert torch.equal(policy.state_dict()[key], tensor), key
        np.testing.assert_array_equal(
            policy.predict(OBSERVATIONS, deterministic=True)[0],
            model.predict(OBSERVATIONS, deterministic=True)[0],
        )
    assert torch.equal(torch.get_rng_state(), global_state)  # building the networks used a forked RNG


def test_a_policy_loads_from_a_model_file_too(estimator: type[Any], tmp_path: Path) -> None:
    model = trained(estimator)
    policy = policies_of(estimator).MlpPolicy.load(model.save(tmp_path / "model.zip"))
    np.testing.assert_array_equal(
        policy.predict(OBSERVATIONS, deterministic=True)[0],
        model.predict(OBSERVATIONS, deterministic=True)[0],
    )


def test_a_policy_file_is_not_a_model(tmp_path: Path) -> None:
    path = trained(TD3).policy.save(tmp_path / "policy.zip")
    with pytest.raises(ModelFileError, match="is a policy file"):
        TD3.load(path)


def test_a_policy_file_holds_json_and_weights_only(tmp_path: Path) -> None:
    model = trained(SAC, value_network=True, ent_coef=0.2)  # SAC v1: V and V̄ are part of the policy
    path = model.policy.save(tmp_path / "policy.zip")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "policy.pt"]
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["contents"] == "policy" and metadata["algorithm"] == "SAC"
    assert metadata["params"]["value_network"] is True and "env" not in metadata["params"]
    loaded = BasePolicy.load(path)
    assert {"value", "value_target"} <= {name for name, _ in loaded.named_children()}


def test_the_other_algorithms_policy_is_refused(tmp_path: Path) -> None:
    path = trained(TD3).policy.save(tmp_path / "policy.zip")
    with pytest.raises(ModelFileError, match=r"holds a TD3 policy \(TD3Policy\), not a SACPolicy"):
        easyrl.sac.policies.MlpPolicy.load(path)
    assert type(easyrl.ddpg.policies.MlpPolicy.load(path)).__name__ == "TD3Policy"  # DDPG's are TD3's


def test_a_class_outside_the_allow_lists_cannot_go_into_a_policy_file(tmp_path: Path) -> None:
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    model = TD3("Pendulum-v1", **{**FAST, "policy_kwargs": dict(net_arch=[8], activation_fn=Square)})
    with pytest.raises(TypeError, match="policy_kwargs hold a class that a policy file cannot name"):
        model.policy.save(tmp_path / "policy.zip")
    assert not (tmp_path / "policy.zip").exists()


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_a_payload_in_the_weights_is_refused_and_never_run(
    tmp_path: Path, marker: Path, payload: type[TouchPayload]
) -> None:
    path = trained(SAC).policy.save(tmp_path / "policy.zip")
    buffer = io.BytesIO()
    torch.save({"actor.mean.weight": payload(marker)}, buffer)
    evil = rewrite(path, tmp_path / "evil.zip", {"policy.pt": buffer.getvalue()})
    with pytest.raises(ModelFileError, match="refused and nothing in it was run"):
        BasePolicy.load(evil)


def test_a_pickled_member_is_refused_and_never_run(tmp_path: Path, marker: Path) -> None:
    path = trained(SAC).policy.save(tmp_path / "policy.zip")
    evil = tmp_path / "evil.zip"
    rewrite(path, evil)
    with zipfile.ZipFile(evil, "a") as archive:
        archive.writestr("pickled/policy_kwargs.pkl", pickle.dumps(TouchPayload(marker)))
    with pytest.raises(ModelFileError, match="has pickled members, which a policy file never has"):
        BasePolicy.load(evil)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithm": "Evil"}, "names the algorithm 'Evil'"),
        ({"params": ["not", "a", "dict"]}, "has no parameters"),
        ({"params": {"surprise": 1}}, "parameter\\(s\\) surprise that this SAC does not know"),
        ({"params": {"policy_kwargs": "__import__('os').system('x')"}}, "cannot build .*calls `__import__"),
        (
            {"params": {"policy_kwargs": {"__pickled__": "policy_kwargs"}}},
            "holds its policy_kwargs as a pickle",
        ),
        ({"params": {"policy_kwargs": {"net_arch": [7]}}}, "weights that do not fit"),
        (
            {"action_space": {"type": "Discrete", "n": 3, "start": 0, "dtype": "int64"}},
            "action space is a Discrete",
        ),
        ({"observation_space": "nonsense"}, "cannot build"),
    ],
)
def test_damaged_metadata_gives_one_clear_error(
    tmp_path: Path, marker: Path, changes: dict[str, Any], message: str
) -> None:
    path = trained(SAC).policy.save(tmp_path / "policy.zip")
    with pytest.raises(ModelFileError, match=message):
        BasePolicy.load(edited_metadata(path, tmp_path / "bad.zip", **changes))


def test_foreign_and_damaged_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("data", b"{}")
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(trained(TD3).policy.save(tmp_path / "policy.zip").read_bytes()[:300])  # type: ignore[union-attr]
    for path in (foreign, damaged):
        with pytest.raises(ModelFileError):
            BasePolicy.load(path)


# ---------------------------------------------------------------------------------------------- import paths
def test_sb3_import_paths_name_the_policy_classes(estimator: type[Any]) -> None:
    module = policies_of(estimator)
    package = importlib.import_module(POLICIES_MODULE[estimator].rpartition(".")[0])
    assert getattr(package, estimator.__name__) is estimator
    assert module.MlpPolicy is type(estimator("Pendulum-v1", **FAST).policy)
    assert issubclass(module.CnnPolicy, module.MlpPolicy) and issubclass(
        module.MultiInputPolicy, module.MlpPolicy
    )
    sb3 = pytest.importorskip(f"stable_baselines3.{estimator.__name__.lower()}.policies")
    assert {"MlpPolicy", "CnnPolicy", "MultiInputPolicy"} <= set(dir(sb3)) & set(dir(module))


def test_a_policy_class_is_the_policy_argument_and_is_saved_by_name(
    estimator: type[Any], tmp_path: Path
) -> None:
    policies = policies_of(estimator)
    model = estimator(policies.MlpPolicy, "Pendulum-v1", **FAST)  # SB3's positional form
    assert model.get_params()["env"] == "Pendulum-v1" and model.get_params()["policy"] is policies.MlpPolicy
    path = model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("metadata.json"))["params"]["policy"] == "MlpPolicy"
    assert not any(name.startswith("pickled/") for name in zipfile.ZipFile(path).namelist())
    assert estimator.load(path).get_params()["policy"] == "MlpPolicy"


def test_multi_input_policy_class(tmp_path: Path) -> None:
    policies = easyrl.sac.policies
    model = SAC(policies.MultiInputPolicy, PointGoalEnv(), **FAST)
    assert type(model.policy) is policies.MultiInputPolicy  # as in SB3, the policy is of the class given
    observation, _ = PointGoalEnv().reset(seed=0)
    path = model.policy.save(tmp_path / "policy.zip")
    loaded = policies.MultiInputPolicy.load(path)
    assert type(loaded) is policies.MultiInputPolicy
    np.testing.assert_array_equal(
        loaded.predict(observation, deterministic=True)[0], model.predict(observation, deterministic=True)[0]
    )
    assert json.loads(zipfile.ZipFile(path).read("metadata.json"))["params"]["policy"] == "MultiInputPolicy"


def test_another_algorithms_or_a_users_policy_class_is_refused() -> None:
    with pytest.raises(ValueError, match="another algorithm's policy; SAC builds a SACPolicy"):
        _ = SAC(easyrl.td3.policies.MlpPolicy, "Pendulum-v1", **FAST).policy

    class MyPolicy(easyrl.sac.policies.MlpPolicy):
        pass

    with pytest.raises(ValueError, match="is not supported"):
        _ = SAC(MyPolicy, "Pendulum-v1", **FAST).policy
