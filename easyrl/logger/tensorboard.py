"""TensorBoard output (SB3's ``TensorBoardOutputFormat``): scalars, and the richer values only it can
show: figures, images, videos (animated GIFs) and hyperparameters.

Videos are encoded to GIF with Pillow, which tensorboard itself requires, instead of through
``SummaryWriter.add_video``, which needs moviepy 1.x (moviepy 2 dropped the ``moviepy.editor`` module
torch imports, and without it torch prints a line and writes nothing).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from easyrl.logger.outputs import KVWriter
from easyrl.logger.values import Figure, HParam, Image, Video, shown_values

TENSORBOARD_MISSING = (
    "TensorBoard logging needs the tensorboard package; install it with "
    '`pip install "easyrl[tensorboard]"` (or `pip install tensorboard`), or leave `tensorboard_log` unset.'
)


class TensorBoardOutputFormat(KVWriter):
    """TensorBoard event files in ``folder``, written with ``torch.utils.tensorboard.SummaryWriter``
    (its ``writer`` attribute, as in SB3). Numbers become scalars; strings are skipped."""

    name = "tensorboard"

    def __init__(self, folder: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(TENSORBOARD_MISSING) from error
        self.writer = SummaryWriter(log_dir=folder)

    def write(
        self, key_values: Mapping[str, Any], key_excluded: Mapping[str, Sequence[str] | None], step: int = 0
    ) -> None:
        for key, value in shown_values(key_values, key_excluded, self.name).items():
            if isinstance(value, Figure):
                self.writer.add_figure(key, value.figure, step, close=value.close)
            elif isinstance(value, Image):
                self.writer.add_image(key, value.image, step, dataformats=value.dataformats)
            elif isinstance(value, Video):
                self._add_summary(video_summary(key, value), step)
            elif isinstance(value, HParam):
                self._add_hparams(value)
            elif not isinstance(value, str):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def _add_summary(self, summary: Any, step: int | None = None) -> None:
        self.writer._get_file_writer().add_summary(summary, step)

    def _add_hparams(self, value: HParam) -> None:
        # Not SummaryWriter.add_hparams, which writes to a new sub-folder: these belong to this run (as SB3).
        from torch.utils.tensorboard.summary import hparams

        for summary in hparams(dict(value.hparam_dict), metric_dict=dict(value.metric_dict)):
            self._add_summary(summary)

    def close(self) -> None:
        self.writer.close()


def video_summary(tag: str, video: Video) -> Any:
    """A TensorBoard image summary holding ``video`` as an animated GIF (N videos tiled in a grid)."""
    from PIL import Image as PILImage
    from torch.utils.tensorboard.summary import Summary

    frames = video_grid(video.frames)
    height, width, channels = frames.shape[1:]
    pictures = [PILImage.fromarray(frame[..., 0] if channels == 1 else frame) for frame in frames]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=max(1, round(1000 / video.fps)),
        loop=0,
    )
    image = Summary.Image(
        height=height, width=width, colorspace=channels, encoded_image_string=buffer.getvalue()
    )
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def video_grid(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, T, C, H, W) videos as (T, rows * H, cols * W, C) uint8 frames, tiled as ``add_video`` tiles them."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 5 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"Video frames must have shape (N, T, C, H, W) with C = 1, 3 or 4 channels, got {array.shape}; "
            "for one video of T frames in (T, H, W, C), pass frames.transpose(0, 3, 1, 2)[None]."
        )
    if array.dtype != np.uint8:  # floats in [0, 1]
        array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    n, t, c, h, w = array.shape
    if c == 4:
        array, c = array[:, :, :3], 3  # GIF has no alpha channel
    # torch's layout: pad N to a power of two, 2 ** ((N.bit_length() - 1) // 2) rows.
    rows = 2 ** ((n.bit_length() - 1) // 2)
    cols = (1 << (n - 1).bit_length()) // rows
    padded = np.zeros((rows * cols, t, c, h, w), dtype=np.uint8)
    padded[:n] = array
    grid = padded.reshape(rows, cols, t, c, h, w).transpose(2, 0, 4, 1, 5, 3)
    return grid.reshape(t, rows * h, cols * w, c)
