"""Hostile model and replay buffer files: loading refuses them (or ignores the hostile part) and runs nothing.

Each file starts as a real saved model and gets a payload in one member: every weights member, the values
of metadata fields, extra members, the replay buffer's arrays. A payload that ran would create a marker
file; every test asserts that it never appears, whether loading failed or succeeded. Damaged files give one
`ValueError` naming the file, without a deep traceback from zipfile or torch.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import easyrl
from easyrl import SAC, TD3
from easyrl.cli import main as cli_main
from easyrl.noise import NormalActionNoise
from easyrl.serialization import ModelFileError
from tests.conftest import FAST
from tests.test_serialization_format import PAYLOADS, TouchPayload, patch_sizes

MODEL_MEMBERS = [
    "policy.pt",
    "actor_optimizer.pt",
    "critic_optimizer.pt",
    "ent_coef_optimizer.pt",
    "variables.pt",
    "training_state.pt",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SAC model file (with a replay buffer file next to it), built once for the module."""
    folder = tmp_path_factory.mktemp("saved")
    model = SAC("Pendulum-v1", seed=0, **FAST).learn(60)
    model.save(folder / "model.zip")
    model.save_replay_buffer(folder / "buffer.zip")
    return folder


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a payload in the file was executed"


def rewrite(
    source: Path, target: Path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None
) -> Path:
    """Copy the zip ``source`` to ``target``, replacing and adding members (names taken as they are)."""
    replace = replace or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, replace.get(info.filename, old.read(info)))
        for name, data in (add or {}).items():
            new.writestr(zipfile.ZipInfo(name), data)
    return target


def metadata_of(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        document: dict[str, Any] = json.loads(archive.read("metadata.json"))
    return document


def with_metadata(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    document = metadata_of(source)
    edit(document)
    return rewrite(source, target, {"metadata.json": json.dumps(document).encode()})


def torch_saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def assert_clean_error(error: BaseException, path: Path) -> None:
    """A ValueError naming the file, raised from easyrl's code, not from deep inside zipfile or torch."""
    assert isinstance(error, ValueError)
    assert str(path) in str(error) or path.name in str(error)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    raised_in = traceback.extract_tb(error.__traceback__)[-1].filename
    assert f"{Path('easyrl')}" in raised_in and "zipfile" not in raised_in, raised_in


def assert_info_is_harmless(path: Path) -> None:
    """`easyrl info` reads the metadata only, so the payloads never run (status 0 or 2, never a crash)."""
    assert cli_main(["info", str(path)]) in (0, 2)


# ---------------------------------------------------------------------------------------------- weights members
@pytest.mark.parametrize("member", MODEL_MEMBERS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("form", ["torch.save", "raw pickle", "inside a state dict"])
def test_payload_in_a_weights_member_is_refused(
    saved: Path, tmp_path: Path, marker: Path, member: str, payload: type[TouchPayload], form: str
) -> None:
    evil = payload(marker)
    data = {
        "torch.save": lambda: torch_saved(evil),
        "raw pickle": lambda: pickle.dumps(evil, protocol=2),
        "inside a state dict": lambda: torch_saved({"weight": torch.zeros(2), "extra": [evil]}),
    }[form]()
    path = rewrite(saved / "model.zip", tmp_path / "evil.zip", {member: data})
    with pytest.raises(
        ModelFileError, match=rf"has a member '{member}' that contains something other than tensors"
    ) as caught:
        SAC.load(path)
    assert_clean_error(caught.value, path)
    with pytest.raises(ModelFileError, match="something other than tensors"):
        easyrl.load(path)
    with pytest.raises(ModelFileError, match="something other than tensors"):
        SAC("Pendulum-v1", **FAST).set_parameters(path)
    assert_info_is_harmless(path)


def test_an_extra_weights_member_with_a_payload_is_refused(saved: Path, tmp_path: Path, marker: Path) -> None:
    path = rewrite(
        saved / "model.zip", tmp_path / "evil.zip", add={"evil.pt": torch_saved(TouchPayload(marker))}
    )
    with pytest.raises(ModelFileError, match="member 'evil.pt' that contains something other than tensors"):
        SAC.load(path)


# ---------------------------------------------------------------------------------------------- pickled members
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_a_pickled_parameter_is_never_unpickled_without_opt_in(
    saved: Path, tmp_path: Path, marker: Path, payload: type[TouchPayload]
) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["params"]["learning_rate"] = {"__pickled__": "learning_rate"}
        document["pickled_params"] = ["learning_rate"]

    path = with_metadata(saved / "model.zip", tmp_path / "edited.zip", edit)
    path = rewrite(
        path, tmp_path / "evil.zip", add={"pickled/learning_rate.pkl": pickle.dumps(payload(marker))}
    )
    with pytest.raises(
        ModelFileError, match=r"stores `learning_rate` as pickled code \(member pickled/learning_rate.pkl\)"
    ):
        SAC.load(path)
    model = SAC.load(path, device="cpu", custom_objects={"learning_rate": 1e-3})  # replaced, never unpickled
    assert model.learning_rate == 1e-3
    assert_info_is_harmless(path)


def test_an_unreferenced_pickled_member_is_ignored(saved: Path, tmp_path: Path, marker: Path) -> None:
    evil = {"pickled/evil.pkl": pickle.dumps(TouchPayload(marker))}
    model = SAC.load(rewrite(saved / "model.zip", tmp_path / "evil.zip", add=evil), device="cpu")
    assert model.num_timesteps == 60


@pytest.mark.parametrize(
    "name", ["evil.pkl", "../evil.pkl", "/tmp/evil.pt", "pickled/../../evil.pkl", "a\\b.pt"]
)
def test_members_outside_the_format_are_refused(saved: Path, tmp_path: Path, marker: Path, name: str) -> None:
    rewrite(saved / "model.zip", tmp_path / "evil.zip", add={name: pickle.dumps(TouchPayload(marker))})
    with pytest.raises(ModelFileError, match="unsafe name|unexpected member") as caught:
        SAC.load(tmp_path / "evil.zip")
    assert_clean_error(caught.value, tmp_path / "evil.zip")
    assert not (tmp_path.parent / "evil.pkl").exists()


# ---------------------------------------------------------------------------------------------- metadata values
def set_param(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["params"].__setitem__(name, value)


def set_field(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        for key in path[:-1]:
            document = document[key]
        document[path[-1]] = value

    return edit


PICKLE_TEXT = pickle.dumps(TouchPayload(Path("/nonexistent/never"))).hex()

HOSTILE_METADATA: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "pickle bytes as a learning rate": (
        set_param("learning_rate", PICKLE_TEXT),
        "learning_rate=.* is invalid",
    ),
    "a reference to a missing pickle": (
        set_param("learning_rate", {"__pickled__": "learning_rate"}),
        "refers to a pickled value 'learning_rate' that it does not contain",
    ),
    "a noise class outside the allow-list": (
        set_param("action_noise", {"class": "os.system", "mean": [0.0], "sigma": [0.1]}),
        "action noise class 'os.system', which is not one of",
    ),
    "noise arguments that are not numbers": (
        set_param("action_noise", {"class": "NormalActionNoise", "mean": "rm -rf", "sigma": [0.1]}),
        "action noise whose 'mean' is not a number",
    ),
    "an activation outside the allow-list": (
        set_param("policy_kwargs", {"net_arch": [32, 32], "activation_fn": "builtins.eval"}),
        "activation 'builtins.eval', which is not one of the allowed",
    ),
    "a features extractor outside the allow-list": (
        set_param("policy_kwargs", {"net_arch": [32, 32], "features_extractor_class": "os.system"}),
        "features extractor 'os.system', which is not one of easyrl's",
    ),
    "an algorithm that is a function": (
        set_field(("algorithm",), "builtins.exec"),
        "unknown algorithm 'builtins.exec'",
    ),
    "an unknown parameter": (
        set_param("__reduce__", "os.system"),
        "parameter.* __reduce__ that this SAC does not know",
    ),
    "a space of an unknown type": (
        set_field(("observation_space",), {"type": "builtins.eval"}),
        "invalid observation_space",
    ),
    "a foreign random generator": (
        set_field(("training_state", "np_rng", "bit_generator"), "os.system"),
        "damaged training state",
    ),
    "a non-numeric counter": (set_field(("num_timesteps",), "exec('1')"), "invalid num_timesteps"),
    "parameters that are not an object": (set_field(("params",), "os.system"), "has no parameters"),
}


@pytest.mark.parametrize("case", list(HOSTILE_METADATA))
def test_hostile_metadata_values_are_refused(saved: Path, tmp_path: Path, marker: Path, case: str) -> None:
    edit, message = HOSTILE_METADATA[case]
    path = with_metadata(saved / "model.zip", tmp_path / "evil.zip", edit)
    with pytest.raises(ModelFileError, match=message) as caught:
        SAC.load(path, device="cpu")
    assert_clean_error(caught.value, path)
    assert_info_is_harmless(path)


@pytest.fixture
def evil_module(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module whose import creates the marker: what a `module:EnvId` env id would import."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "easyrl_test_evil_env.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "easyrl_test_evil_env", raising=False)
    return "easyrl_test_evil_env:Evil-v0"


def test_an_env_id_that_names_a_module_is_never_imported(
    saved: Path, tmp_path: Path, evil_module: str
) -> None:
    path = with_metadata(saved / "model.zip", tmp_path / "evil.zip", set_param("env", evil_module))
    with pytest.raises(
        ModelFileError, match="could not be loaded: Unknown environment id 'easyrl_test_evil_env:Evil-v0'"
    ):
        SAC.load(path, device="cpu")
    # As a plain description (a model built from an env object), the id is only shown, never made.
    path = with_metadata(saved / "model.zip", tmp_path / "evil2.zip", set_field(("env_id",), evil_module))
    path = with_metadata(path, tmp_path / "evil3.zip", set_param("env", None))
    model = SAC.load(path, device="cpu")
    assert model.env_id == evil_module
    assert_info_is_harmless(path)


def test_a_tensorboard_path_is_just_a_setting(saved: Path, tmp_path: Path, marker: Path) -> None:
    """Nothing but the parameters' own validation applies to a value like this: it is data, not code."""
    path = with_metadata(
        saved / "model.zip", tmp_path / "odd.zip", set_param("tensorboard_log", "$(touch x)")
    )
    assert SAC.load(path, device="cpu").tensorboard_log == "$(touch x)"


# ---------------------------------------------------------------------------------------------- replay buffer
def object_npy(value: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([value, 1], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["observations.npy", "final_observations.npy", "last_observations.npy"])
def test_payload_in_a_replay_buffer_array_is_refused(
    saved: Path, tmp_path: Path, marker: Path, member: str
) -> None:
    path = rewrite(saved / "buffer.zip", tmp_path / "evil.zip", {member: object_npy(TouchPayload(marker))})
    model = SAC("Pendulum-v1", **FAST).learn(10)
    with pytest.raises(ModelFileError, match=rf"member '{member}' of dtype object.*refused") as caught:
        model.load_replay_buffer(path)
    assert_clean_error(caught.value, path)
    assert len(model.replay_buffer) == 10  # untouched
    assert_info_is_harmless(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_field(("kind",), "os.system"), "not a replay buffer file"),
        (set_field(("buffer", "count"), [10**12]), "inconsistent bookkeeping"),
        (set_field(("buffer", "count"), [10**30]), "invalid 'count' entry"),
        (set_field(("buffer", "pos"), [-1]), "invalid 'pos' entry"),
        (set_field(("buffer", "side_capacity"), 10**15), "invalid rows_used/side_capacity"),
        (set_field(("buffer", "observation_shape"), "os.system"), "holds a replay buffer of"),
    ],
)
def test_hostile_replay_buffer_metadata_is_refused(
    saved: Path, tmp_path: Path, marker: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = with_metadata(saved / "buffer.zip", tmp_path / "evil.zip", edit)
    model = SAC("Pendulum-v1", **FAST)
    with pytest.raises(ModelFileError, match=message):
        model.load_replay_buffer(path)


def test_extra_members_in_a_replay_buffer_are_refused(saved: Path, tmp_path: Path, marker: Path) -> None:
    evil = {"pickled/evil.pkl": pickle.dumps(TouchPayload(marker))}
    path = rewrite(saved / "buffer.zip", tmp_path / "evil.zip", add=evil)
    with pytest.raises(ModelFileError, match="members other than .npy arrays"):
        SAC("Pendulum-v1", **FAST).load_replay_buffer(path)


def test_a_truncated_replay_buffer_array_is_refused(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved / "buffer.zip") as archive:
        data = archive.read("observations.npy")
    path = rewrite(saved / "buffer.zip", tmp_path / "short.zip", {"observations.npy": data[:-12]})
    with pytest.raises(ModelFileError, match="size does not match its .npy header"):
        SAC("Pendulum-v1", **FAST).load_replay_buffer(path)


# ---------------------------------------------------------------------------------------------- damaged files
def damaged_files(saved: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    data = (saved / "model.zip").read_bytes()
    document = metadata_of(saved / "model.zip")
    with zipfile.ZipFile(saved / "model.zip") as archive:
        policy_size = archive.getinfo("policy.pt").file_size
    files = {
        "empty": (b"", "is empty"),
        "not a zip": (b"just some text\n" * 10, "is not a zip archive"),
        "truncated": (data[: len(data) // 2], "damaged or truncated"),
        "cut at the end": (data[:-30], "damaged or truncated"),
        "a lying size header": (patch_sizes(data, "policy.pt", policy_size + 100), "damaged member"),
    }
    out = {name: (folder / f"{name}.zip", message) for name, (_, message) in files.items()}
    for name, (content, _) in files.items():
        out[name][0].write_bytes(content)
    document["format_version"] = 99
    out["newer format"] = (
        rewrite(saved / "model.zip", folder / "newer.zip", {"metadata.json": json.dumps(document).encode()}),
        "was written by a newer easyrl .*format version 99.*pip install --upgrade easyrl",
    )
    padded = metadata_of(saved / "model.zip") | {"padding": " " * (1 << 20)}
    out["oversized metadata"] = (
        rewrite(saved / "model.zip", folder / "big.zip", {"metadata.json": json.dumps(padded).encode()}),
        r"declares a member 'metadata.json' of \d+ bytes, more than the 1048576 allowed",
    )
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(saved / "model.zip") as old, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info, old.read(info))
        new.writestr("zeros.pt", bytes(64 << 20))
    out["zip bomb"] = (bomb, "a likely zip bomb")
    out["traversal"] = (
        rewrite(saved / "model.zip", folder / "traversal.zip", add={"../../etc/passwd": b"x"}),
        "unsafe name",
    )
    return out


@pytest.mark.parametrize(
    "case",
    ["empty", "not a zip", "truncated", "cut at the end", "a lying size header", "newer format",
     "oversized metadata", "zip bomb", "traversal"],
)  # fmt: skip
def test_damaged_files_give_one_clear_error(saved: Path, tmp_path: Path, case: str) -> None:
    path, message = damaged_files(saved, tmp_path)[case]
    for load in (SAC.load, easyrl.load, TD3.load):
        with pytest.raises(ModelFileError, match=message) as caught:
            load(path)
        assert_clean_error(caught.value, path)


def test_a_noise_payload_does_not_survive_a_save(tmp_path: Path, marker: Path) -> None:
    """Saving a model with easyrl's own noise writes a description, so the file holds no pickle at all."""
    model = TD3("Pendulum-v1", action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), **FAST)
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        assert not [name for name in archive.namelist() if name.endswith(".pkl")]


# ---------------------------------------------------------------------------------------------- sizes and settings
BUILDS = {
    "n_envs that disagrees with the file": (
        lambda d: d["params"].update(n_envs=10**6),
        r"has n_envs=1000000 but says its model ran 1 env\(s\)",
    ),
    "num_envs that disagrees with the training state": (
        lambda d: d.update(num_envs=10**6),
        r"says it ran 1000000 env\(s\) but holds the last observations of 1",
    ),
    "a buffer larger than the memory": (
        lambda d: d["params"].update(buffer_size=10**12),
        r"buffer_size=1000000000000 .*lower buffer_size",
    ),
    "a setting of the wrong type": (
        lambda d: d["params"].update(action_noise=[1, 2]),
        "could not be loaded: ",
    ),
    "a space that is not its env's": (
        lambda d: d["action_space"].update(shape=[]),
        "could not be loaded: The env the file names",
    ),
}


@pytest.mark.parametrize("case", list(BUILDS))
def test_settings_that_cannot_build_the_model_are_refused_before_allocating(
    saved: Path, tmp_path: Path, case: str
) -> None:
    """A file whose settings would make loading create a million envs or a terabyte buffer, or fail deep in
    the model's constructor, gives one ModelFileError, before anything large is made."""
    edit, message = BUILDS[case]
    path = with_metadata(saved / "model.zip", tmp_path / "edited.zip", edit)
    with pytest.raises(ModelFileError, match=message) as caught:
        SAC.load(path, device="cpu")
    assert_clean_error(caught.value, path)
