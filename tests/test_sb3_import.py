"""Importing Stable-Baselines3 zips (``SAC.load_sb3``, ``easyrl.import_sb3``): same actions and Q-values as SB3,
training continues, skipped fields reported, and nothing in the file is ever unpickled."""

from __future__ import annotations

import base64
import io
import json
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import easyrl
from easyrl import DDPG, SAC, TD3
from easyrl.algorithms.sb3_import import SB3ImportWarning
from easyrl.serialization import ModelFileError
from tests.sb3_models import differences, pendulum_observations, train_sb3_model
from tests.test_model_security import assert_clean_error, rewrite
from tests.test_serialization_format import PAYLOADS, TouchPayload

pytest.importorskip("stable_baselines3")  # in the dev extra; CI always has it

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sb3_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sb3")
    return {name: train_sb3_model(name, folder) for name in ("SAC", "TD3", "DDPG")}


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a payload in the file was executed"


def edit_data(source: Path, target: Path, edit: Any) -> Path:
    with zipfile.ZipFile(source) as archive:
        document = json.loads(archive.read("data"))
    edit(document)
    return rewrite(source, target, {"data": json.dumps(document).encode()})


# ---------------------------------------------------------------------------------------------- equivalence
def test_actions_and_q_values_match_sb3(sb3_files: dict[str, Path], estimator: type[Any]) -> None:
    action_gap, q_gap = differences(sb3_files[estimator.__name__], estimator.__name__)
    print(f"{estimator.__name__}: max action difference {action_gap:.3g}, max Q difference {q_gap:.3g}")
    assert action_gap <= TOLERANCE and q_gap <= TOLERANCE


def test_import_reads_the_algorithm_settings_and_state(
    sb3_files: dict[str, Path], estimator: type[Any]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every setting that matters was imported
        model = estimator.load_sb3(sb3_files[estimator.__name__], device="cpu")
    assert type(model) is estimator and type(easyrl.import_sb3(sb3_files[estimator.__name__])) is estimator
    params = model.get_params()
    assert params["batch_size"] == 32 and params["learning_starts"] == 100 and params["buffer_size"] == 1_000
    assert params["policy_kwargs"] == {"net_arch": [32, 32], "n_critics": 1 if estimator is DDPG else 2}
    assert model.num_timesteps == 300 and model._n_updates == 200
    report = model.sb3_import
    assert report.sb3_version.startswith("2.") and "Stable-Baselines3" in report.system_info
    assert (
        "_last_obs" in report.skipped and params["train_freq"] == 1
    )  # read from the pickle's opcodes, not run
    if issubclass(estimator, SAC):
        import stable_baselines3

        sb3_model = stable_baselines3.SAC.load(sb3_files["SAC"], device="cpu")
        assert torch.allclose(model.log_ent_coef.float(), sb3_model.log_ent_coef.detach().reshape(()))
        assert params["ent_coef"] == "auto" and params["target_entropy"] == -1.0
    else:
        assert params["policy_delay"] == (1 if estimator is DDPG else 2)


def test_optimizer_moments_follow_their_parameters(sb3_files: dict[str, Path]) -> None:
    import stable_baselines3

    sb3_model = stable_baselines3.TD3.load(sb3_files["TD3"], device="cpu")
    model = TD3.load_sb3(sb3_files["TD3"], device="cpu")
    first = model.critic.layers[0].weight
    moments = model.critic_optimizer.state[first]["exp_avg"]
    for i in range(2):
        sb3_param = getattr(sb3_model.critic, f"qf{i}")[0].weight
        expected = sb3_model.critic.optimizer.state[sb3_param]["exp_avg"]
        assert torch.equal(moments[i], expected.t())
    actor_head = model.actor.head.weight
    sb3_head = sb3_model.actor.mu[4].weight
    assert torch.equal(
        model.actor_optimizer.state[actor_head]["exp_avg_sq"],
        sb3_model.actor.optimizer.state[sb3_head]["exp_avg_sq"],
    )


def test_training_continues(sb3_files: dict[str, Path], estimator: type[Any]) -> None:
    model = estimator.load_sb3(sb3_files[estimator.__name__], env="Pendulum-v1", device="cpu", train_freq=1)
    before = [p.detach().clone() for p in model.actor.parameters()]
    model.learn(150)
    assert model.num_timesteps == 150 and model._n_updates > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.actor.parameters(), strict=True))
    actions, _ = model.predict(pendulum_observations(10), deterministic=True)
    assert np.all(np.abs(actions) <= 2.0)


def test_a_learning_rate_schedule_is_reported_and_can_be_replaced(tmp_path: Path) -> None:
    path = train_sb3_model(
        "SAC", tmp_path, steps=110, learning_rate=lambda progress: 1e-3 * progress, train_freq=(2, "episode")
    )
    with pytest.warns(SB3ImportWarning, match=r"learning_rate schedule: not imported .* pass learning_rate="):
        model = SAC.load_sb3(path, device="cpu")
    assert model.learning_rate == 3e-4  # easyrl's default, as the warning says
    assert model.train_freq == (2, "episode")
    with pytest.warns(SB3ImportWarning):
        model = SAC.load_sb3(path, device="cpu", learning_rate="lin_1e-3")
    assert model.learning_rate == "lin_1e-3"


def test_spaces_kept_only_pickled_need_the_env(sb3_files: dict[str, Path], tmp_path: Path) -> None:
    def pickled_only(document: dict[str, Any]) -> None:
        document["observation_space"] = {
            key: document["observation_space"][key] for key in (":type:", ":serialized:")
        }

    path = edit_data(sb3_files["TD3"], tmp_path / "no_spaces.zip", pickled_only)
    with pytest.raises(ValueError, match=r"stores its observation space only as a pickle.*env='<env id>'"):
        TD3.load_sb3(path)
    model = TD3.load_sb3(path, env="Pendulum-v1", device="cpu")
    assert model.observation_space.shape == (3,)
    with pytest.raises(ValueError, match="observation space Box"):
        TD3.load_sb3(sb3_files["TD3"], env="MountainCarContinuous-v0")


def test_another_algorithm_s_file_is_refused(sb3_files: dict[str, Path]) -> None:
    with pytest.raises(
        ModelFileError, match=r"holds an SB3 TD3 model, not a SAC: import it with TD3.load_sb3"
    ):
        SAC.load_sb3(sb3_files["TD3"])
    with pytest.raises(ModelFileError, match=r"holds an SB3 SAC model, not a TD3"):
        TD3.load_sb3(sb3_files["SAC"])
    assert type(DDPG.load_sb3(sb3_files["TD3"], device="cpu")) is DDPG  # DDPG is TD3 with settings


def test_other_libraries_models_are_refused(sb3_files: dict[str, Path], tmp_path: Path) -> None:
    def tqc(document: dict[str, Any]) -> None:
        document["policy_class"]["__module__"] = "sb3_contrib.tqc.policies"

    path = edit_data(sb3_files["SAC"], tmp_path / "tqc.zip", tqc)
    with pytest.raises(
        ModelFileError, match=r"holds a model of sb3_contrib.tqc; easyrl imports SB3's SAC, TD3"
    ):
        easyrl.import_sb3(path)


def test_load_points_at_load_sb3(sb3_files: dict[str, Path]) -> None:
    with pytest.raises(
        ModelFileError, match=r"Stable-Baselines3 file: import it with easyrl.import_sb3\(path\)"
    ):
        SAC.load(sb3_files["SAC"])


# ---------------------------------------------------------------------------------------------- damaged files
def test_old_and_damaged_files_raise_model_file_error(sb3_files: dict[str, Path], tmp_path: Path) -> None:
    source = sb3_files["SAC"]
    old = rewrite(source, tmp_path / "old.zip", {"_stable_baselines3_version": b"1.8.0"})
    with pytest.raises(
        ModelFileError, match=r"saved by Stable-Baselines3 1.8.0; easyrl imports files of SB3 2.0"
    ) as caught:
        SAC.load_sb3(old)
    assert_clean_error(caught.value, old)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    not_json = rewrite(source, tmp_path / "not_json.zip", {"data": b"{not json"})
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(tmp_path / "no_policy.zip", "w") as out:
        for name in archive.namelist():
            if name != "policy.pth":
                out.writestr(name, archive.read(name))
    text = tmp_path / "text.zip"
    text.write_text("hello")
    easyrl_file = SAC("Pendulum-v1", device="cpu").save(tmp_path / "easyrl_model.zip")
    cases = {
        truncated: "damaged or truncated",
        not_json: "damaged 'data' member",
        tmp_path / "no_policy.zip": "no policy.pth member",
        text: "not a zip archive",
        easyrl_file: r"is an easyrl model file, not a Stable-Baselines3 one: load it with SAC.load",
    }
    for path, message in cases.items():
        with pytest.raises(ModelFileError, match=message) as caught:
            easyrl.import_sb3(path)
        assert_clean_error(caught.value, Path(str(path)))


def test_an_unsafe_member_name_is_refused(sb3_files: dict[str, Path], tmp_path: Path) -> None:
    path = rewrite(sb3_files["SAC"], tmp_path / "unsafe.zip", add={"../evil.pth": b"x"})
    with pytest.raises(ModelFileError, match="unexpected member '../evil.pth'"):
        SAC.load_sb3(path)


# ---------------------------------------------------------------------------------------------- payloads
def torch_saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_payloads_in_every_serialized_field_never_run(
    sb3_files: dict[str, Path],
    tmp_path: Path,
    marker: Path,
    payload: type[TouchPayload],
    estimator: type[Any],
) -> None:
    planted = []

    def plant(document: dict[str, Any]) -> None:
        for key, value in document.items():
            if isinstance(value, dict) and ":serialized:" in value:
                value[":serialized:"] = base64.b64encode(pickle.dumps(payload(marker))).decode()
                planted.append(key)

    path = edit_data(sb3_files[estimator.__name__], tmp_path / "evil.zip", plant)
    assert len(planted) >= 10  # policy_class, spaces, train_freq, lr_schedule, buffers...
    with pytest.warns(SB3ImportWarning):
        model = estimator.load_sb3(path, device="cpu")
    model.predict(pendulum_observations(5), deterministic=True)
    assert not marker.exists()  # 0 of the planted payloads ran (the fixture checks again)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_payloads_in_every_member_never_run(
    sb3_files: dict[str, Path], tmp_path: Path, marker: Path, payload: type[TouchPayload]
) -> None:
    source = sb3_files["SAC"]
    with zipfile.ZipFile(source) as archive:
        members = archive.namelist()
    ran = 0
    for member in members:
        evil = payload(marker)
        for form, data in (("torch.save", torch_saved(evil)), ("raw pickle", pickle.dumps(evil, protocol=2))):
            path = rewrite(source, tmp_path / f"evil_{member}_{form}.zip", {member: data})
            if member == "system_info.txt":  # text, only ever decoded as text
                assert "Stable-Baselines3" not in easyrl.import_sb3(path, device="cpu").sb3_import.system_info
            else:
                with pytest.raises(ModelFileError) as caught:
                    easyrl.import_sb3(path)
                assert_clean_error(caught.value, path)
            ran += marker.exists()
    assert ran == 0 and len(members) == 8


def test_gsde_and_pickled_policy_kwargs_are_imported(tmp_path: Path) -> None:
    # activation_fn makes SB3 pickle the whole policy_kwargs; its plain entries and the activation's name remain.
    settings = dict(net_arch=[16], log_std_init=-2.0, activation_fn=torch.nn.Tanh, n_critics=3)
    path = train_sb3_model("SAC", tmp_path, steps=150, use_sde=True, policy_kwargs=settings)
    action_gap, q_gap = differences(path, "SAC")
    assert action_gap <= TOLERANCE and q_gap <= TOLERANCE
    model = SAC.load_sb3(path, device="cpu")
    assert model.use_sde and model.get_params()["policy_kwargs"]["activation_fn"] is torch.nn.Tanh
    assert model.critic.n_critics == 3


def test_image_models_need_the_env_and_match(tmp_path: Path) -> None:
    import stable_baselines3

    from easyrl.envs.image import DotImageEnv

    env = DotImageEnv(size=36)  # SB3 transposes it to (3, 36, 36); easyrl reads (36, 36, 3) as it is
    settings = dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=32))
    sb3_model = stable_baselines3.SAC(
        "CnnPolicy", env, learning_starts=20, batch_size=8, buffer_size=200, seed=0, policy_kwargs=settings
    ).learn(40)
    sb3_model.save(tmp_path / "cnn.zip")
    with pytest.raises(ValueError, match=r"stores its observation space only as a pickle.*pass the env"):
        SAC.load_sb3(tmp_path / "cnn.zip")  # 3,888 values: numpy abbreviates the plain description
    model = SAC.load_sb3(tmp_path / "cnn.zip", env=DotImageEnv(size=36), device="cpu")
    images = np.stack([env.observation_space.sample() for _ in range(50)])
    ours, _ = model.predict(images, deterministic=True)
    theirs, _ = sb3_model.predict(images, deterministic=True)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    assert model.actor.features_extractor.features_dim == 32
