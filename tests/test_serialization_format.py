"""The zip format layer: round trips, atomic saving, and every way a damaged or hostile file is refused.

Hostile files carry pickle payloads that would create a marker file if anything unpickled them; each
security test asserts the marker never appears.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from easyrl.serialization import (
    FORMAT_VERSION,
    ModelFileError,
    ZipLimits,
    read_arrays_zip,
    read_metadata,
    read_model_zip,
    space_from_json,
    space_to_json,
    untrusted_pickle_error,
    versions,
    write_arrays_zip,
    write_model_zip,
)
from easyrl.serialization import arrays as serialization_arrays

# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


class TouchPayload:
    """Unpickling this creates `marker` (no shell needed): the classic malicious-pickle shape."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (self.marker,))


class ExecPayload(TouchPayload):
    def __reduce__(self) -> Any:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


PAYLOADS = [TouchPayload, ExecPayload]


def test_payloads_are_live(tmp_path: Path) -> None:
    """The security tests mean something only if unpickling these payloads really does run code."""
    for number, payload in enumerate(PAYLOADS):
        marker = tmp_path / f"ran{number}"
        pickle.loads(pickle.dumps(payload(marker)))
        assert marker.exists()


def schedule(progress: float) -> float:
    """A legitimate callable of the kind users pickle (a learning-rate schedule)."""
    return 3e-4 * progress


def model_state() -> dict[str, dict[str, Any]]:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3)).pow(2).sum().backward()
    optimizer.step()
    log_alpha = {"log_ent_coef": torch.tensor([0.1]), "extra": [torch.ones(2), (1, 2.5, "x", None, True)]}
    return {"policy": net.state_dict(), "policy.optimizer": optimizer.state_dict(), "ent_coef": log_alpha}


METADATA = {"algorithm": "SAC", "params": {"gamma": 0.99, "net_arch": [64, 64]}, "num_timesteps": 1000}


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def metadata_bytes(**fields: Any) -> bytes:
    return json.dumps({"format_version": FORMAT_VERSION, **fields}).encode()


def tensor_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def patch_sizes(data: bytes, member: str, uncompressed: int) -> bytes:
    """Make both zip headers of `member` declare `uncompressed` bytes (a lying header)."""
    out = bytearray(data)
    name = member.encode()
    local = out.index(b"PK\x03\x04")
    while out[local + 30 : local + 30 + len(name)] != name:
        local = out.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", out, local + 22, uncompressed)
    central = out.index(b"PK\x01\x02")
    while out[central + 46 : central + 46 + len(name)] != name:
        central = out.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", out, central + 24, uncompressed)
    return bytes(out)


def assert_equal_nested(left: Any, right: Any) -> None:
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor)
        assert torch.equal(left, right)
    elif isinstance(left, dict):
        assert isinstance(right, dict)
        assert list(left) == list(right)
        for key in left:
            assert_equal_nested(left[key], right[key])
    elif isinstance(left, list | tuple):
        assert type(left) is type(right)
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            assert_equal_nested(a, b)
    else:
        assert left == right


# --------------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------------


def test_model_round_trip(tmp_path: Path) -> None:
    state = model_state()
    path = write_model_zip(tmp_path / "model.zip", METADATA, state)
    loaded = read_model_zip(path)
    assert loaded.path == str(path)
    assert loaded.pickled == {}
    assert loaded.untrusted_pickles == []
    assert {k: v for k, v in loaded.metadata.items() if k not in ("format_version", "versions")} == METADATA
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.metadata["versions"] == versions()
    assert list(loaded.state_dicts) == list(state)
    for name in state:
        assert_equal_nested(state[name], loaded.state_dicts[name])
    optimizer = torch.optim.Adam(
        torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).parameters()
    )
    optimizer.load_state_dict(loaded.state_dicts["policy.optimizer"])


def test_layout_and_metadata_json(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", {"b": 1, "a": (1, 2), "f": np.float32(0.5)}, {"policy": {}})
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["metadata.json", "policy.pt"]
        text = archive.read("metadata.json").decode("utf-8")
    document = json.loads(text)
    assert list(document) == sorted(document)
    assert document["a"] == [1, 2]
    assert document["f"] == 0.5
    assert set(document["versions"]) == {"easyrl", "torch", "gymnasium", "numpy", "python"}
    assert read_metadata(path) == document


def test_caller_metadata_is_not_mutated(tmp_path: Path) -> None:
    metadata = {"algorithm": "TD3"}
    write_model_zip(tmp_path / "m.zip", metadata, {})
    assert metadata == {"algorithm": "TD3"}


def test_saving_twice_gives_identical_bytes(tmp_path: Path) -> None:
    state = model_state()
    first = write_model_zip(tmp_path / "a.zip", METADATA, state).read_bytes()
    second = write_model_zip(tmp_path / "b.zip", METADATA, state).read_bytes()
    assert first == second


def test_versions_reports_each_library() -> None:
    found = versions()
    assert found["torch"] == str(torch.__version__)
    assert found["numpy"] == np.__version__
    assert found["gymnasium"] == gym.__version__
    assert all(isinstance(value, str) and value for value in found.values())


def test_map_location_moves_tensors(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", {}, model_state())
    loaded = read_model_zip(path, map_location="meta")
    assert loaded.state_dicts["policy"]["0.weight"].device.type == "meta"
    assert loaded.state_dicts["policy.optimizer"]["state"][0]["exp_avg"].device.type == "meta"
    with pytest.raises(ValueError, match=r"map_location='nowhere' is not a device"):
        read_model_zip(path, map_location="nowhere")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_map_location_cuda(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", {}, model_state())
    loaded = read_model_zip(path, map_location="cuda")
    assert loaded.state_dicts["policy"]["0.weight"].is_cuda


# --------------------------------------------------------------------------------------------------------
# Paths, file objects and atomic saving
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("model", "model.zip"),
        ("model.zip", "model.zip"),
        ("model.ckpt", "model.ckpt"),
        ("sub/dir/m", "sub/dir/m.zip"),
    ],
)
def test_suffix_handling(tmp_path: Path, given: str, expected: str) -> None:
    returned = write_model_zip(tmp_path / given, METADATA, {})
    assert returned == tmp_path / expected
    assert returned.is_file()
    assert read_metadata(str(tmp_path / given))["algorithm"] == "SAC"  # `model` finds `model.zip`


def test_str_path_accepted(tmp_path: Path) -> None:
    returned = write_model_zip(str(tmp_path / "m"), METADATA, {})
    assert returned == tmp_path / "m.zip"


def test_file_object_target(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    assert write_model_zip(buffer, METADATA, model_state()) is None
    assert list(tmp_path.iterdir()) == []
    buffer.seek(0)
    loaded = read_model_zip(buffer)
    assert loaded.metadata["algorithm"] == "SAC"
    assert_equal_nested(model_state()["ent_coef"], loaded.state_dicts["ent_coef"])


def test_directory_target_refused(tmp_path: Path) -> None:
    (tmp_path / "d.zip").mkdir()
    with pytest.raises(IsADirectoryError, match=r"it is a directory"):
        write_model_zip(tmp_path / "d.zip", METADATA, {})


def test_crash_mid_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_model_zip(tmp_path / "model.zip", METADATA, model_state())
    before = path.read_bytes()

    def failing_save(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"half a tensor")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"disk full"):
        write_model_zip(path, {"algorithm": "new"}, model_state())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]


def test_interrupt_mid_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_model_zip(tmp_path / "model.zip", METADATA, {})
    before = path.read_bytes()

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_model_zip(path, METADATA, {"policy": {}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_gets_usual_permissions(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, {})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------------------
# What save refuses before touching the disk
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"schedule": schedule}, r"metadata\['schedule'\] is a builtins.function, which JSON cannot hold"),
        ({"params": {1: "x"}}, r"metadata\['params'\] has the key 1, but JSON keys must be strings"),
        ({"a": [np.zeros(2)]}, r"metadata\['a'\]\[0\] is a numpy.ndarray"),
    ],
)
def test_save_refuses_metadata_json_cannot_hold(
    tmp_path: Path, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        write_model_zip(tmp_path / "m.zip", metadata, {})
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_oversized_metadata(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"more than the 1048576 a reader accepts"):
        write_model_zip(tmp_path / "m.zip", {"blob": "x" * (1 << 20)}, {})


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "..", "white space"])
def test_save_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"cannot name a member of a saved file: names may only use"):
        write_model_zip(tmp_path / "m.zip", {}, {name: {}})
    with pytest.raises(ValueError, match=r"cannot name a member of a saved file: names may only use"):
        write_model_zip(tmp_path / "m.zip", {}, {}, pickled={name: 1})


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"w": np.zeros(3)}, r"state_dicts\['policy'\]\['w'\] is a numpy.ndarray, which weights-only"),
        ({"w": np.float64(1.0)}, r"\['w'\] is a numpy.float64"),
        ({"w": {1, 2}}, r"\['w'\] is a builtins.set"),
        ({"w": schedule}, r"\['w'\] is a builtins.function"),
    ],
)
def test_save_refuses_state_dicts_weights_only_cannot_load(
    tmp_path: Path, state: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        write_model_zip(tmp_path / "m.zip", {}, {"policy": state})
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_unpicklable_value(tmp_path: Path) -> None:
    import threading

    with pytest.raises(TypeError, match=r"pickled\['lock'\] cannot be pickled"):
        write_model_zip(tmp_path / "m.zip", {}, {}, pickled={"lock": threading.Lock()})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------------
# Damaged and foreign files
# --------------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No such file"):
        read_model_zip(tmp_path / "nope.zip")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"is a directory"):
        read_model_zip(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"m\.zip is empty \(0 bytes\)"):
        read_model_zip(tmp_path / "m.zip")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text\n", "is not a zip archive"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "is a Git LFS pointer"),
        (b"<!DOCTYPE html><html>Sign in</html>", "looks like an HTML/XML page"),
    ],
)
def test_not_a_zip(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "m.zip").write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        read_model_zip(tmp_path / "m.zip")


def test_truncated_zip(tmp_path: Path) -> None:
    data = write_model_zip(tmp_path / "full.zip", METADATA, model_state()).read_bytes()
    (tmp_path / "half.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"damaged or truncated"):
        read_model_zip(tmp_path / "half.zip")


def test_corrupted_member_data(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, model_state())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("policy.pt")
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    offset = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    data[offset : offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"has a damaged member 'policy.pt' \(Bad CRC-32"):
        read_model_zip(path)


@pytest.mark.parametrize(
    "name", ["../evil.pt", "/abs.pt", "a\\b.pt", "C:evil.pt", "pickled/../../evil.pkl", "\\evil.pt"]
)
def test_path_traversal_names(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes(), name: tensor_bytes({})})
    with pytest.raises(ModelFileError, match=r"contains a member with an unsafe name"):
        read_model_zip(path)


@pytest.mark.parametrize("name", ["evil.exe", "pickled/x.py", "data/policy.pt", "policy.pth", "pickled/"])
def test_unexpected_member_names(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes(), name: b"x"})
    with pytest.raises(ModelFileError, match=f"contains an unexpected member '{name}'"):
        read_model_zip(path)


def test_duplicate_members(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        path = write_zip(
            tmp_path / "m.zip", {"metadata.json": metadata_bytes()} | {"policy.pt": tensor_bytes({})}
        )
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("policy.pt", tensor_bytes({"w": torch.ones(1)}))
    with pytest.raises(ModelFileError, match=r"contains the member 'policy.pt' twice"):
        read_model_zip(path)


def test_no_metadata(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "weights.pt")
    with pytest.raises(
        ModelFileError, match=r"is not an easyrl file: it has no metadata.json\. .*torch\.save"
    ):
        read_model_zip(tmp_path / "weights.pt")
    sb3 = write_zip(tmp_path / "sb3.zip", {"data": b"{}", "_stable_baselines3_version": b"2.3.0"})
    with pytest.raises(ModelFileError, match=r"no metadata.json. It looks like a Stable-Baselines3 file"):
        read_model_zip(sb3)


def test_arrays_file_is_not_a_model(tmp_path: Path) -> None:
    path = write_arrays_zip(tmp_path / "buffer.zip", {"obs": np.zeros(3)}, {})
    with pytest.raises(ModelFileError, match=r"contains an unexpected member 'obs.npy'"):
        read_model_zip(path)
    assert read_metadata(path)["format_version"] == FORMAT_VERSION


def test_oversized_metadata_member(tmp_path: Path) -> None:
    padded = metadata_bytes(padding=" " * (1 << 20))
    path = write_zip(tmp_path / "m.zip", {"metadata.json": padded}, zipfile.ZIP_DEFLATED)
    with pytest.raises(
        ModelFileError, match=r"declares a member 'metadata.json' of \d+ bytes, more than the 1048576"
    ):
        read_model_zip(path)


def test_oversized_weights_member_and_raised_limit(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, {"big": {"w": torch.zeros(1000)}})
    small = ZipLimits(max_member_bytes=1000)
    with pytest.raises(
        ModelFileError, match=r"declares a member 'big.pt' of \d+ bytes, more than the 1000 allowed"
    ):
        read_model_zip(path, limits=small)
    with pytest.raises(ModelFileError, match=r"would unpack to .* more than the 100 allowed"):
        read_model_zip(path, limits=ZipLimits(max_total_bytes=100))
    assert read_model_zip(path, limits=ZipLimits(max_member_bytes=10_000)).state_dicts["big"]["w"].shape == (
        1000,
    )


def test_too_many_members(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, model_state())
    with pytest.raises(ModelFileError, match=r"has 4 members, more than the 3 allowed"):
        read_model_zip(path, limits=ZipLimits(max_members=3))


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "m.zip",
        {"metadata.json": metadata_bytes(), "bomb.pt": bytes(16 << 20)},
        zipfile.ZIP_DEFLATED,
    )
    with pytest.raises(ModelFileError, match=r"has a member 'bomb.pt' compressed \d+:1, a likely zip bomb"):
        read_model_zip(path)


def test_lying_size_header_is_caught_without_reading_past_it(tmp_path: Path) -> None:
    # metadata.json truly inflates to 2 MiB but both headers claim 100 bytes.
    padded = metadata_bytes(padding=" " * (2 << 20))
    data = write_zip(tmp_path / "honest.zip", {"metadata.json": padded}, zipfile.ZIP_DEFLATED).read_bytes()
    (tmp_path / "liar.zip").write_bytes(patch_sizes(data, "metadata.json", 100))
    with pytest.raises(ModelFileError, match=r"has a damaged member 'metadata.json'"):
        read_model_zip(tmp_path / "liar.zip")


def test_unsupported_compression(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes()}, zipfile.ZIP_BZIP2)
    with pytest.raises(ModelFileError, match=r"uses an unsupported compression method for 'metadata.json'"):
        read_model_zip(path)


def test_encrypted_member(tmp_path: Path) -> None:
    data = bytearray(write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes()}).read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1
    (tmp_path / "m.zip").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"has an encrypted member 'metadata.json'"):
        read_model_zip(tmp_path / "m.zip")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (b"{not json", "has a metadata.json that is not valid JSON"),
        (b"\xff\xfe{}", "has a metadata.json that is not UTF-8 text"),
        (b"[1, 2]", "has a metadata.json that does not hold a JSON object"),
        (b'{"algorithm": "SAC"}', "is not an easyrl model file: its metadata.json has no format_version"),
        (b'{"format_version": "1"}', "has an invalid format_version '1'"),
        (b'{"format_version": true}', "has an invalid format_version True"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
    ],
)
def test_bad_metadata(tmp_path: Path, metadata: bytes, message: str) -> None:
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata})
    with pytest.raises(ModelFileError, match=message):
        read_model_zip(path)


def test_newer_format_version(tmp_path: Path) -> None:
    newer = metadata_bytes(versions={"easyrl": "9.0.0"}).replace(
        b'"format_version": 1', b'"format_version": 7'
    )
    path = write_zip(tmp_path / "m.zip", {"metadata.json": newer})
    with pytest.raises(
        ModelFileError,
        match=r"was written by a newer easyrl 9\.0\.0 \(file format version 7\).*reads format version 1 and "
        r"older\. Upgrade easyrl: pip install --upgrade easyrl",
    ):
        read_model_zip(path)
    assert read_metadata(path, check_version=False)["format_version"] == 7


def test_member_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "m.zip", {"metadata.json": metadata_bytes(), "w.pt": tensor_bytes(torch.ones(2))}
    )
    with pytest.raises(ModelFileError, match=r"has a member 'w.pt' that holds a Tensor, not a state dict"):
        read_model_zip(path)


def test_weights_member_with_garbage(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes(), "w.pt": pickle.dumps(5)})
    with pytest.raises(
        ModelFileError, match=r"has a damaged member 'w.pt' \(RuntimeError: Invalid magic number"
    ):
        read_model_zip(path)


def test_errors_from_a_stream_name_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"^<binary stream> is empty"):
        read_model_zip(io.BytesIO())


def test_model_file_error_is_a_value_error_and_pickles() -> None:
    error = ModelFileError("m.zip", "is empty.")
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.path, again.problem) == ("m.zip is empty.", "m.zip", "is empty.")


# --------------------------------------------------------------------------------------------------------
# Security: nothing in a file runs
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pickle_payload_in_weights_member_raw(tmp_path: Path, payload: type[TouchPayload]) -> None:
    marker = tmp_path / "pwned"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        evil = pickle.dumps(payload(marker), protocol=protocol)
        path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes(), "policy.pt": evil})
        with pytest.raises(
            ModelFileError, match=r"has a member 'policy.pt' that contains something other than tensors \(\w"
        ):
            read_model_zip(path, trusted_pickles=True)
        assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pickle_payload_in_torch_saved_weights(tmp_path: Path, payload: type[TouchPayload]) -> None:
    marker = tmp_path / "pwned"
    evil = tensor_bytes({"weight": torch.ones(2), "bias": payload(marker)})
    path = write_zip(tmp_path / "m.zip", {"metadata.json": metadata_bytes(), "policy.pt": evil})
    with pytest.raises(
        ModelFileError,
        match=r"contains something other than tensors \(Unsupported global: GLOBAL .*\); it was refused and "
        "nothing in it was run",
    ):
        read_model_zip(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pickle_payload_in_pickled_member_is_not_loaded(tmp_path: Path, payload: type[TouchPayload]) -> None:
    marker = tmp_path / "pwned"
    path = write_zip(
        tmp_path / "m.zip",
        {
            "metadata.json": metadata_bytes(),
            "policy.pt": tensor_bytes({"w": torch.ones(1)}),
            "pickled/learning_rate.pkl": pickle.dumps(payload(marker)),
        },
    )
    loaded = read_model_zip(path)
    assert loaded.untrusted_pickles == ["learning_rate"]
    assert loaded.pickled == {}
    assert loaded.state_dicts["policy"]["w"].tolist() == [1.0]
    loaded = read_model_zip(path, trusted_pickles=["something_else"])
    assert loaded.untrusted_pickles == ["learning_rate"]
    assert read_metadata(path)["format_version"] == FORMAT_VERSION
    assert not marker.exists()


def test_untrusted_pickle_error_message(tmp_path: Path) -> None:
    error = untrusted_pickle_error(tmp_path / "m.zip", "pickled/learning_rate.pkl", "learning_rate")
    assert isinstance(error, ModelFileError)
    expected = (
        f"{tmp_path / 'm.zip'} stores `learning_rate` as pickled code (member pickled/learning_rate.pkl), "
        "which is not loaded by default because unpickling can run arbitrary code. Pass "
        "`custom_objects={'learning_rate': ...}` to supply a replacement, or "
        "`trusted_pickles=['learning_rate']` if you trust this file."
    )
    assert str(error) == expected
    with pytest.raises(ModelFileError, match=r"stores `learning_rate` as pickled code"):
        raise error


@pytest.mark.parametrize("trusted", [["learning_rate"], True])
def test_trusted_pickle_loads_legitimate_callable(tmp_path: Path, trusted: Any) -> None:
    path = write_model_zip(
        tmp_path / "m.zip", METADATA, {}, pickled={"learning_rate": schedule, "noise": lambda: 0.5}
    )
    with zipfile.ZipFile(path) as archive:
        assert "pickled/learning_rate.pkl" in archive.namelist()
    assert sorted(read_model_zip(path).untrusted_pickles) == ["learning_rate", "noise"]
    loaded = read_model_zip(path, trusted_pickles=trusted)
    assert loaded.pickled["learning_rate"](0.5) == pytest.approx(1.5e-4)
    assert loaded.untrusted_pickles == ([] if trusted is True else ["noise"])


def test_trusted_pickles_must_not_be_a_bare_string(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, {})
    with pytest.raises(TypeError, match=r"trusted_pickles must be a list of names, e.g. \['learning_rate'\]"):
        read_model_zip(path, trusted_pickles="learning_rate")


def test_broken_trusted_pickle(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "m.zip", {"metadata.json": metadata_bytes(), "pickled/lr.pkl": b"\x80\x05junk"}
    )
    with pytest.raises(
        ModelFileError, match=r"has a pickled `lr` \(member pickled/lr.pkl\) that could not be unpickled"
    ):
        read_model_zip(path, trusted_pickles=["lr"])


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_pickle_payload_as_metadata(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(TouchPayload(marker), protocol=protocol)
    path = write_zip(tmp_path / "m.zip", {"metadata.json": evil})
    with pytest.raises(ModelFileError, match=r"has a metadata.json that is not (valid JSON|UTF-8 text)"):
        read_model_zip(path)
    assert not marker.exists()


def test_pickle_bytes_inside_a_metadata_string_stay_a_string(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(TouchPayload(marker), protocol=0).decode("latin-1")
    path = write_model_zip(tmp_path / "m.zip", {"params": {"learning_rate": evil}}, {})
    assert read_model_zip(path).metadata["params"]["learning_rate"] == evil
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_object_npy_in_arrays_file(tmp_path: Path, payload: type[TouchPayload]) -> None:
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    np.save(buffer, np.array([payload(marker)], dtype=object), allow_pickle=True)
    path = write_zip(tmp_path / "b.zip", {"metadata.json": metadata_bytes(), "obs.npy": buffer.getvalue()})
    with pytest.raises(
        ModelFileError, match=r"has a member 'obs.npy' of dtype object, which is not a plain numeric"
    ):
        read_arrays_zip(path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------------
# Arrays files
# --------------------------------------------------------------------------------------------------------


def test_arrays_round_trip(tmp_path: Path) -> None:
    arrays: dict[str, Any] = {
        "observations": np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32),
        "actions": torch.randn(7, 2),
        "dones": torch.tensor([True, False] * 3 + [True]),
        "transposed": np.arange(12, dtype=np.int16).reshape(3, 4).T,
        "sliced": torch.arange(20.0).reshape(4, 5)[:, ::2],
        "pixels": np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4), dtype=np.float64),
    }
    path = write_arrays_zip(tmp_path / "buffer", arrays, {"pos": 7, "full": False})
    assert path == tmp_path / "buffer.zip"
    loaded, metadata = read_arrays_zip(path)
    assert metadata["pos"] == 7
    assert metadata["full"] is False
    assert metadata["format_version"] == FORMAT_VERSION
    assert list(loaded) == list(arrays)
    for name, original in arrays.items():
        expected = original.numpy() if isinstance(original, torch.Tensor) else original
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name], expected)
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist()[1:])


def test_device_tensor_path_streams_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serialization_arrays, "_DEVICE_CHUNK_BYTES", 12)
    tensor = torch.arange(30, dtype=torch.float32).reshape(5, 6)
    out = io.BytesIO()
    serialization_arrays._write_device_tensor(out, tensor, np.dtype(np.float32))
    out.seek(0)
    np.testing.assert_array_equal(np.load(out, allow_pickle=False), tensor.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_arrays_from_cuda_tensor(tmp_path: Path) -> None:
    tensor = torch.randn(1000, 17, device="cuda")
    loaded, _ = read_arrays_zip(write_arrays_zip(tmp_path / "b.zip", {"obs": tensor}, {}))
    np.testing.assert_array_equal(loaded["obs"], tensor.cpu().numpy())


def test_arrays_file_object_target() -> None:
    buffer = io.BytesIO()
    assert write_arrays_zip(buffer, {"x": np.ones(3)}, {"n": 1}) is None
    buffer.seek(0)
    arrays, metadata = read_arrays_zip(buffer)
    np.testing.assert_array_equal(arrays["x"], np.ones(3))
    assert metadata["n"] == 1


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([object()], dtype=object), "has dtype object; only numeric and bool arrays"),
        (np.array(["a"]), "has dtype <U1; only numeric and bool arrays"),
        (np.zeros(2, dtype=[("a", np.float32)]), r"has dtype \[\('a', '<f4'\)\]; only numeric"),
        (torch.zeros(2, dtype=torch.bfloat16), "has dtype torch.bfloat16, which .npy cannot hold"),
        ([1.0, 2.0], "is a list, not a numpy array or torch tensor"),
    ],
)
def test_arrays_refused_on_write(tmp_path: Path, array: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        write_arrays_zip(tmp_path / "b.zip", {"x": array}, {})
    assert list(tmp_path.iterdir()) == []


def test_arrays_crash_mid_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_arrays_zip(tmp_path / "b.zip", {"x": np.ones(3)}, {})
    before = path.read_bytes()

    def failing_write(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match=r"disk full"):
        write_arrays_zip(path, {"x": np.zeros(3)}, {})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.zip"]


def test_npy_header_lying_about_shape(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}  # would be 4 TB
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(bytes(16))
    path = write_zip(tmp_path / "b.zip", {"metadata.json": metadata_bytes(), "x.npy": buffer.getvalue()})
    with pytest.raises(ModelFileError, match=r"has a damaged member 'x.npy' \(its size does not match"):
        read_arrays_zip(path)


def test_npy_with_wrong_size(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(4, dtype=np.float32))
    path = write_zip(tmp_path / "b.zip", {"metadata.json": metadata_bytes(), "x.npy": buffer.getvalue()[:-4]})
    with pytest.raises(ModelFileError, match=r"has a damaged member 'x.npy' \(its size does not match"):
        read_arrays_zip(path)


def test_npy_that_is_not_npy(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {"metadata.json": metadata_bytes(), "x.npy": b"hello"})
    with pytest.raises(ModelFileError, match=r"has a member 'x.npy' that is not a valid .npy array"):
        read_arrays_zip(path)


def test_model_file_is_not_an_arrays_file(tmp_path: Path) -> None:
    path = write_model_zip(tmp_path / "m.zip", METADATA, {"policy": {}})
    with pytest.raises(ModelFileError, match=r"contains an unexpected member 'policy.pt'"):
        read_arrays_zip(path)


# --------------------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------------------

SPACES: dict[str, gym.Space[Any]] = {
    "box": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
    "box_infinite": gym.spaces.Box(-np.inf, np.inf, (2, 3), np.float64),
    "box_mixed": gym.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.array([np.inf, 2.5], np.float32)),
    "box_image": gym.spaces.Box(0, 255, (3, 16, 16), np.uint8),
    "box_int": gym.spaces.Box(np.array([-5, 0]), np.array([5, 9]), dtype=np.int64),
    "discrete": gym.spaces.Discrete(5),
    "discrete_start": gym.spaces.Discrete(3, start=-1),
    "multi_discrete": gym.spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
    "multi_discrete_start": gym.spaces.MultiDiscrete([2, 3], start=[1, -1]),
    "multi_binary": gym.spaces.MultiBinary(4),
    "multi_binary_shape": gym.spaces.MultiBinary([2, 3]),
    "dict": gym.spaces.Dict(
        [("z", gym.spaces.Box(-np.inf, 0.0, (2,))), ("a", gym.spaces.Dict({"n": gym.spaces.Discrete(2)}))]
    ),
    "tuple": gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Tuple([gym.spaces.MultiBinary(2)])]),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_space_round_trip(name: str) -> None:
    space = SPACES[name]
    text = json.dumps(space_to_json(space), allow_nan=False)  # standard JSON: no Infinity/NaN literals
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rebuilt = space_from_json(json.loads(text))
    assert rebuilt == space
    assert type(rebuilt) is type(space)
    assert rebuilt.dtype == space.dtype
    if isinstance(space, gym.spaces.Dict):
        assert isinstance(rebuilt, gym.spaces.Dict)
        assert list(rebuilt.spaces) == list(space.spaces)


def test_box_bounds_are_compact_and_infinite_bounds_are_strings() -> None:
    description = space_to_json(SPACES["box_mixed"])
    assert description == {
        "type": "Box",
        "shape": [2],
        "dtype": "float32",
        "low": [-1.0, "-inf"],
        "high": ["inf", 2.5],
    }
    assert space_to_json(SPACES["box_image"])["low"] == 0


def test_unsupported_space() -> None:
    with pytest.raises(ValueError, match=r"Text spaces cannot be saved; supported: Box"):
        space_to_json(gym.spaces.Text(5))
    with pytest.raises(ValueError, match=r"Dict space key 1 is not a string"):
        space_to_json(gym.spaces.Dict({1: gym.spaces.Discrete(2)}))  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ([1, 2], "a space description must be a JSON object, not list"),
        ({"type": "Graph"}, "unknown space type 'Graph'"),
        ({"type": "Discrete", "start": 0}, "Discrete description lacks 'n'"),
        ({"type": "Discrete", "n": "5", "start": 0}, "Discrete field 'n' has the wrong type"),
        ({"type": "Box", "shape": [2], "dtype": "object", "low": 0, "high": 1}, "unsupported dtype 'object'"),
        ({"type": "Box", "shape": [2], "dtype": "float32", "low": 0}, "Box description lacks 'high'"),
        ({"type": "Box", "shape": [2], "dtype": "float32", "low": [0, 1, 2], "high": 1}, "has shape"),
        (
            {"type": "Box", "shape": [2], "dtype": "float32", "low": "lots", "high": 1},
            "bad bound value 'lots'",
        ),
        (
            {"type": "Box", "shape": [1 << 20, 1 << 20], "dtype": "float32", "low": 0, "high": 1},
            "invalid Box shape",
        ),
        ({"type": "Box", "shape": [2], "dtype": "int64", "low": "-inf", "high": 1}, "must be finite"),
        ({"type": "MultiDiscrete", "nvec": [2, "x"], "start": [0, 0]}, "'nvec' must hold integers"),
        ({"type": "Dict", "spaces": {"a": {"type": "Discrete"}}}, "Dict field 'spaces' has the wrong type"),
        ({"type": "Dict", "spaces": [["a"]]}, r"must be a list of \[name, space\] pairs"),
        ({"type": "Tuple", "spaces": [{"type": "Nope"}]}, "unknown space type 'Nope'"),
    ],
)
def test_malformed_space_descriptions(description: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        space_from_json(description)


def test_deeply_nested_space_description() -> None:
    description: dict[str, Any] = {"type": "Discrete", "n": 2, "start": 0}
    for _ in range(40):
        description = {"type": "Tuple", "spaces": [description]}
    with pytest.raises(ValueError, match=r"nested deeper than 32 levels"):
        space_from_json(description)
