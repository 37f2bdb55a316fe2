"""Tests for easyrl.logger: recording, lazy tensor reads, every output format and their errors."""

import csv
import io
import json
import math
import os
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch
from rich.console import Console

from easyrl.logger import FORMATS, TENSORBOARD_MISSING, Logger, configure, format_value, next_run_dir

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def captured_logger(*formats: str, folder: str | None = None) -> tuple[Logger, io.StringIO]:
    buffer = io.StringIO()
    return configure(folder, ("stdout", *formats), console=Console(file=buffer, width=100)), buffer


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


# Recording and reading values


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_values_are_converted_at_dump(device: str) -> None:
    logger = configure(None, ())
    logger.record("train/actor_loss", torch.tensor(-1.25, device=device))
    logger.record("train/n_updates", torch.tensor(7, device=device))
    logger.record("train/half", torch.tensor(0.5, dtype=torch.float16, device=device))
    logger.record("train/flag", torch.tensor(True, device=device))
    logger.record("time/fps", np.float32(250.0))
    logger.record("time/episodes", np.int64(3))
    logger.record("rollout/ep_rew_mean", 12.5)
    logger.record("env", "Pendulum-v1")
    logger.dump(step=10)
    assert logger.last_dumped == {
        "train/actor_loss": -1.25,
        "train/n_updates": 7,
        "train/half": 0.5,
        "train/flag": 1,
        "time/fps": 250.0,
        "time/episodes": 3,
        "rollout/ep_rew_mean": 12.5,
        "env": "Pendulum-v1",
    }
    assert type(logger.last_dumped["train/n_updates"]) is int
    assert type(logger.last_dumped["train/actor_loss"]) is float
    assert type(logger.last_dumped["time/fps"]) is float


def test_record_never_reads_tensors() -> None:
    # Meta tensors have no data: any read (.item(), .cpu(), .tolist()) would raise.
    logger = configure(None, ())
    logger.record("train/critic_loss", torch.tensor(1.0, device="meta"))
    logger.record_mean("train/actor_loss", torch.tensor(2.0, device="meta"))
    logger.record_mean("train/actor_loss", torch.tensor(3.0, device="meta"))
    logger.record_mean("train/actor_loss", 4.0)
    with pytest.raises(NotImplementedError):
        logger.dump()


def test_dump_reads_all_tensors_with_one_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"tolist": 0, "item": 0}
    original_tolist = torch.Tensor.tolist

    def counting_tolist(self: torch.Tensor) -> Any:
        calls["tolist"] += 1
        return original_tolist(self)

    def forbidden_item(self: torch.Tensor) -> Any:
        calls["item"] += 1
        raise AssertionError("the logger must not call .item()")

    monkeypatch.setattr(torch.Tensor, "tolist", counting_tolist)
    monkeypatch.setattr(torch.Tensor, "item", forbidden_item)
    logger = configure(None, ())
    for index in range(5):
        logger.record(f"train/loss_{index}", torch.tensor(float(index)))
        logger.record_mean("train/mean", torch.tensor(float(index)))
    logger.dump()
    assert calls == {"tolist": 1, "item": 0}
    assert logger.last_dumped["train/loss_4"] == 4.0
    assert logger.last_dumped["train/mean"] == 2.0


def test_record_keeps_the_last_value_and_copies_tensors() -> None:
    logger = configure(None, ())
    stats = torch.tensor(1.0)
    logger.record("train/loss", 5.0)
    logger.record("train/loss", stats)
    stats.add_(100.0)  # e.g. a reused statistics buffer overwritten by the next update
    assert logger.name_to_value == {"train/loss": 1.0}
    assert logger.get_value("train/loss") == 1.0
    assert logger.get_value("missing", default=-1) == -1


@pytest.mark.parametrize("device", DEVICES)
def test_record_mean_averages_numbers_and_tensors(device: str) -> None:
    logger = configure(None, ())
    for value in (1, 2.0, np.float32(6.0)):
        logger.record_mean("rollout/ep_len_mean", value)
    shared = torch.tensor(1.0, device=device)
    for value in (1.0, 2.0, 6.0):
        shared.fill_(value)  # the same buffer each time: the running sum must not alias it
        logger.record_mean("train/critic_loss", shared)
    logger.record_mean("train/mixed", 1.0)
    logger.record_mean("train/mixed", torch.tensor(3, device=device))
    assert logger.get_value("train/critic_loss") == pytest.approx(3.0)
    logger.dump()
    assert logger.last_dumped == pytest.approx(
        {"rollout/ep_len_mean": 3.0, "train/critic_loss": 3.0, "train/mixed": 2.0}
    )
    logger.record_mean("train/critic_loss", torch.tensor(10.0, device=device))
    logger.dump()
    assert logger.last_dumped == {"train/critic_loss": 10.0}  # the mean restarts after a dump


def test_dump_clears_values_and_skips_empty_dumps() -> None:
    logger, buffer = captured_logger()
    logger.record("train/loss", 1.0)
    logger.record_mean("train/mean", 1.0)
    logger.dump()
    assert logger.name_to_value == {}
    written = buffer.getvalue()
    logger.dump()
    assert buffer.getvalue() == written
    assert logger.last_dumped == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(3), "one-element tensor"),
        (np.zeros(2), "one-element array"),
        ([1.0], "got list"),
    ],
)
def test_record_rejects_values_it_cannot_log(value: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        configure(None, ()).record("bad", value)


def test_record_mean_rejects_strings() -> None:
    with pytest.raises(TypeError, match="needs a number"):
        configure(None, ()).record_mean("env", "Pendulum-v1")


# Output formats


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (True, "True"),
        ("auto", "auto"),
        (1000.0, "1000"),
        (0.123456, "0.1235"),
        (3e-5, "3e-05"),
        (123456.7, "123457"),
        (math.nan, "nan"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_stdout_table_groups_keys_and_formats_values() -> None:
    logger, buffer = captured_logger()
    logger.record("rollout/ep_rew_mean", torch.tensor(-123.456789))
    logger.record("time/total_timesteps", 5000)
    logger.record("train/learning_rate", 0.0003)
    logger.record("train/ent_coef", 1.234e-7)
    logger.dump(step=5000)
    table = buffer.getvalue()
    for text in (
        "rollout/",
        "ep_rew_mean",
        "-123.5",
        "time/",
        "total_timesteps",
        "5000",
        "0.0003",
        "1.234e-07",
    ):
        assert text in table
    assert table.index("rollout/") < table.index("ep_rew_mean") < table.index("time/")


def test_csv_header_widens_and_columns_stay_aligned(tmp_path: Any) -> None:
    logger = configure(str(tmp_path), ("csv",))
    logger.record("time/total_timesteps", 100)
    logger.record("rollout/ep_rew_mean", 1.5)
    logger.dump(100)
    logger.record("time/total_timesteps", 200)
    logger.record("train/actor_loss", torch.tensor(-0.25))
    logger.dump(200)
    logger.record("time/total_timesteps", 300)
    logger.record("rollout/ep_rew_mean", 2.5)
    logger.dump(300)
    logger.close()
    rows = read_csv(os.path.join(tmp_path, "progress.csv"))
    assert rows == [
        {"rollout/ep_rew_mean": "1.5", "time/total_timesteps": "100", "train/actor_loss": ""},
        {"rollout/ep_rew_mean": "", "time/total_timesteps": "200", "train/actor_loss": "-0.25"},
        {"rollout/ep_rew_mean": "2.5", "time/total_timesteps": "300", "train/actor_loss": ""},
    ]
    assert not os.path.exists(os.path.join(tmp_path, "progress.csv.tmp"))


def test_jsonl_holds_one_object_per_dump(tmp_path: Any) -> None:
    logger = configure(str(tmp_path), "json")
    logger.record("train/n_updates", torch.tensor(4))
    logger.record_mean("eval/mean_reward", torch.tensor(2.0))
    logger.record_mean("eval/mean_reward", torch.tensor(4.0))
    logger.dump(1)
    logger.record("train/n_updates", 8)
    logger.dump(2)
    logger.close()
    with open(os.path.join(tmp_path, "progress.jsonl"), encoding="utf-8") as file:
        lines = [json.loads(line) for line in file]
    assert lines == [{"train/n_updates": 4, "eval/mean_reward": 3.0}, {"train/n_updates": 8}]


def test_log_format_writes_the_table_to_log_txt(tmp_path: Any) -> None:
    logger = configure(str(tmp_path), ["log", ""])
    logger.record("time/fps", 321)
    logger.dump()
    logger.close()
    with open(os.path.join(tmp_path, "log.txt"), encoding="utf-8") as file:
        text = file.read()
    assert "fps" in text
    assert "321" in text
    assert "\x1b[" not in text  # no colour codes in the file


def test_exclude_skips_the_named_formats(tmp_path: Any) -> None:
    logger, buffer = captured_logger("csv", "json", folder=str(tmp_path))
    logger.record("train/secret", 1.0, exclude=("stdout", "json"))
    logger.record_mean("train/quiet", 2.0, exclude="csv")
    logger.record("train/shown", 3.0)
    logger.dump()
    logger.record("train/secret", 4.0)  # exclusions last until the dump
    logger.dump()
    logger.close()
    first_table = buffer.getvalue().split("shown")[0]
    assert "secret" not in first_table
    assert "quiet" in buffer.getvalue()
    assert [row["train/secret"] for row in read_csv(os.path.join(tmp_path, "progress.csv"))] == ["1.0", "4.0"]
    assert "train/quiet" not in read_csv(os.path.join(tmp_path, "progress.csv"))[0]
    with open(os.path.join(tmp_path, "progress.jsonl"), encoding="utf-8") as file:
        lines = [json.loads(line) for line in file]
    assert lines == [{"train/quiet": 2.0, "train/shown": 3.0}, {"train/secret": 4.0}]


def test_unknown_format_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown log format") as error:
        configure(None, ("stdout", "wandb"))
    assert "'wandb'" in str(error.value)
    for name in FORMATS:
        assert name in str(error.value)


def test_file_formats_need_a_folder() -> None:
    with pytest.raises(ValueError, match="pass a folder"):
        configure(None, ("csv",))


def test_no_formats_gives_a_silent_logger(capsys: pytest.CaptureFixture[str]) -> None:
    logger = configure(None, None)
    logger.record("train/loss", 1.0)
    logger.dump()
    assert logger.output_formats == []
    assert logger.get_dir() is None
    assert capsys.readouterr().out == ""


# TensorBoard


def test_tensorboard_missing_gives_an_install_hint(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError) as error:
        configure(str(tmp_path), ("csv", "tensorboard"))
    assert str(error.value) == TENSORBOARD_MISSING
    assert 'pip install "easyrl[tensorboard]"' in str(error.value)
    assert "tensorboard_log" in str(error.value)


def test_tensorboard_writes_scalars_and_skips_strings(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scalars: list[tuple[str, Any, int]] = []

    class FakeSummaryWriter:
        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir
            self.closed = False

        def add_scalar(self, tag: str, value: Any, global_step: int) -> None:
            scalars.append((tag, value, global_step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeSummaryWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    logger = configure(str(tmp_path), ("tensorboard",))
    logger.record("train/actor_loss", torch.tensor(0.5))
    logger.record("env", "Pendulum-v1")
    logger.dump(step=42)
    logger.close()
    assert scalars == [("train/actor_loss", 0.5, 42)]


def test_tensorboard_creates_an_events_file(tmp_path: Any) -> None:
    pytest.importorskip("tensorboard")
    logger = configure(str(tmp_path), ("tensorboard",))
    logger.record("train/actor_loss", torch.tensor(0.5))
    logger.dump(step=1)
    logger.close()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))


# Run folders


def test_next_run_dir_counts_past_the_highest_run(tmp_path: Any) -> None:
    root = str(tmp_path)
    assert next_run_dir(os.path.join(root, "missing"), "SAC") == os.path.join(root, "missing", "SAC_1")
    assert next_run_dir(root, "SAC") == os.path.join(root, "SAC_1")
    assert next_run_dir(root, "SAC", reuse_latest=True) == os.path.join(root, "SAC_1")
    for name in ("SAC_1", "SAC_3", "SAC_x", "TD3_9", "SAC_extra_5"):
        os.makedirs(os.path.join(root, name))
    assert next_run_dir(root, "SAC") == os.path.join(root, "SAC_4")
    assert next_run_dir(root, "SAC", reuse_latest=True) == os.path.join(root, "SAC_3")
    assert next_run_dir(root, "SAC_extra") == os.path.join(root, "SAC_extra_6")


# SB3's output-format classes and richer values (Figure, Image, Video, HParam)


def test_output_formats_have_sb3_class_names(tmp_path: Any) -> None:
    from easyrl import logger as easyrl_logger

    logger = configure(str(tmp_path), ("stdout", "log", "csv", "json", "tensorboard"))
    kinds = [type(output) for output in logger.output_formats]
    assert kinds == [
        easyrl_logger.HumanOutputFormat,
        easyrl_logger.HumanOutputFormat,
        easyrl_logger.CSVOutputFormat,
        easyrl_logger.JSONOutputFormat,
        easyrl_logger.TensorBoardOutputFormat,
    ]
    assert all(isinstance(output, easyrl_logger.KVWriter) for output in logger.output_formats)
    assert [output.name for output in logger.output_formats] == [
        "stdout",
        "log",
        "csv",
        "json",
        "tensorboard",
    ]
    # SB3's idiom: find the TensorBoard writer among the formats and write to it directly.
    writer = next(
        f for f in logger.output_formats if isinstance(f, easyrl_logger.TensorBoardOutputFormat)
    ).writer
    writer.add_text("notes", "hello", 0)
    logger.close()
    assert easyrl_logger.ConsoleOutput is easyrl_logger.HumanOutputFormat  # easyrl's earlier names still work
    assert easyrl_logger.OutputFormat is easyrl_logger.KVWriter


def test_a_writer_made_for_sb3_receives_values_and_exclusions() -> None:
    from easyrl.logger import KVWriter, Logger

    class Recorder(KVWriter):
        def __init__(self) -> None:
            self.calls: list[tuple[dict[str, Any], dict[str, Any], int]] = []

        def write(self, key_values: Any, key_excluded: Any, step: int = 0) -> None:
            self.calls.append((dict(key_values), dict(key_excluded), step))

    recorder = Recorder()
    logger = Logger(None, [recorder])
    logger.record("a", torch.tensor(1.5), exclude="stdout")
    logger.record_mean("b", 2)
    logger.dump(step=3)
    assert recorder.calls == [({"a": 1.5, "b": 2.0}, {"a": ("stdout",), "b": ()}, 3)]


def test_human_output_format_takes_sb3_arguments(tmp_path: Any) -> None:
    from easyrl.logger import HumanOutputFormat

    path = str(tmp_path / "log.txt")
    output = HumanOutputFormat(path, max_length=8)
    assert output.name == "log"
    output.write({"train/a_very_long_key": 1.0, "train/b": "a long string value"}, {}, 0)
    output.close()
    with open(path, encoding="utf-8") as file:
        text = file.read()
    assert "a_ver..." in text and "a lon..." in text
    assert HumanOutputFormat(sys.stdout).name == "stdout"
    buffer = io.StringIO()
    HumanOutputFormat(buffer).write({"x": 1}, {"x": None}, 0)
    assert "x" in buffer.getvalue()
    with pytest.raises(ValueError, match="Expected a file, a path or a rich Console, got 3"):
        HumanOutputFormat(3)  # type: ignore[arg-type]


def figure() -> Any:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.add_subplot().plot([0, 1, 2], [1, 0, 1])
    return fig


TEXT_FORMATS = ("stdout", "log", "json", "csv")


def test_rich_values_need_the_text_formats_excluded(tmp_path: Any) -> None:
    from easyrl.logger import Figure, FormatUnsupportedError, HParam, Image, Video

    logger = configure(str(tmp_path), ("stdout", "csv", "tensorboard"), console=Console(file=io.StringIO()))
    values = {
        "figure": Figure(figure(), close=True),
        "image": Image(np.zeros((8, 8, 3), np.uint8), "HWC"),
        "video": Video(torch.zeros(1, 2, 3, 8, 8), fps=5),
        "hparam": HParam({"lr": 0.1}, {"rollout/ep_rew_mean": 0}),
    }
    for word, value in values.items():
        with pytest.raises(FormatUnsupportedError) as error:
            logger.record(f"x/{word}", value)
        assert str(error.value) == (
            f"The formats stdout, csv are not supported for the {word} value logged.\n"
            "You can exclude formats via the `exclude` parameter of the logger's `record` function, e.g. "
            "logger.record(key, value, exclude=('stdout', 'csv'))."
        )
        with pytest.raises(
            FormatUnsupportedError, match=f"The format csv is not supported for the {word} value"
        ):
            logger.record(f"x/{word}", value, exclude="stdout")
        logger.record(f"x/{word}", value, exclude=TEXT_FORMATS)
        with pytest.raises(TypeError, match=r"record_mean\('x', \.\.\.\) needs a number"):
            logger.record_mean("x", value)
    logger.close()
    # A text format handed one directly (as SB3's formats are) refuses it too.
    from easyrl.logger import CSVOutputFormat

    output = CSVOutputFormat(str(tmp_path / "direct.csv"))
    with pytest.raises(
        FormatUnsupportedError, match="The format csv is not supported for the image value logged"
    ):
        output.write({"image": values["image"]}, {"image": None}, 0)
    output.close()
    with pytest.raises(ValueError, match="`metric_dict` must not be empty"):
        HParam({"lr": 0.1}, {})


def test_rich_values_reach_tensorboard(tmp_path: Any) -> None:
    from PIL import Image as PILImage
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from easyrl.logger import Figure, HParam, Image, Video

    logger = configure(
        str(tmp_path), ("stdout", "log", "json", "csv", "tensorboard"), console=Console(file=io.StringIO())
    )
    fig = figure()
    logger.record("plots/curve", Figure(fig, close=True), exclude=TEXT_FORMATS)
    logger.record("frames/last", Image(np.full((3, 10, 12), 200, np.uint8), "CHW"), exclude=TEXT_FORMATS)
    frames = torch.rand(3, 4, 3, 6, 5)  # 3 videos of 4 frames, floats in [0, 1]
    logger.record("videos/rollout", Video(frames, fps=10), exclude=TEXT_FORMATS)
    hparams = HParam({"algorithm": "SAC", "learning rate": 3e-4, "gamma": 0.99}, {"rollout/ep_rew_mean": 0})
    logger.record("hparams", hparams, exclude=TEXT_FORMATS)
    logger.record("rollout/ep_rew_mean", -150.0)
    logger.dump(step=7)
    logger.close()
    import matplotlib.pyplot as plt

    assert not plt.fignum_exists(fig.number)  # close=True
    with open(tmp_path / "progress.csv", encoding="utf-8") as file:
        assert file.read().splitlines() == ["rollout/ep_rew_mean", "-150.0"]

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["frames/last", "plots/curve", "videos/rollout"]
    image = events.Images("frames/last")[0]
    assert (image.step, image.height, image.width) == (7, 10, 12)
    assert events.Images("plots/curve")[0].step == 7
    video = events.Images("videos/rollout")[0]
    gif = PILImage.open(io.BytesIO(video.encoded_image_string))
    assert gif.format == "GIF"
    assert gif.n_frames == 4
    assert (video.height, video.width) == (6, 4 * 5)  # 3 videos in torch's 1x4 grid
    assert events.Scalars("rollout/ep_rew_mean")[0].value == -150.0
    hparam_tags = events.PluginTagToContent("hparams")
    assert set(hparam_tags) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hparam_tags["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["algorithm"].string_value == "SAC"
    assert start.session_start_info.hparams["gamma"].number_value == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("n", "grid"),
    [(1, (1, 1)), (2, (1, 2)), (3, (1, 4)), (4, (2, 2)), (5, (2, 4))],
)
def test_videos_are_tiled_as_torch_tiles_them(n: int, grid: tuple[int, int]) -> None:
    from torch.utils.tensorboard._utils import _prepare_video

    from easyrl.logger.tensorboard import video_grid

    frames = np.random.default_rng(n).integers(0, 256, size=(n, 2, 3, 4, 5), dtype=np.uint8)
    tiled = video_grid(frames)
    assert tiled.shape == (2, grid[0] * 4, grid[1] * 5, 3)
    # torch's own layout (what add_video would encode), on the same videos.
    theirs = (_prepare_video(frames.astype(np.float32) / 255.0) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(tiled, theirs)
    with pytest.raises(ValueError, match=r"Video frames must have shape \(N, T, C, H, W\)"):
        video_grid(np.zeros((2, 3, 4, 5)))
