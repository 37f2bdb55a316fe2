"""What a logger records: numbers and strings, and SB3's richer values for TensorBoard (``Figure``,
``Image``, ``Video``, ``HParam``), with the checks that turn a value it cannot write into a clear error.

The richer values are SB3's classes (``stable_baselines3.common.logger``), with SB3's constructor
arguments, so a callback that records ``Figure(fig, close=True)`` runs unchanged. Only TensorBoard
can show them: record them with ``exclude=("stdout", "log", "json", "csv")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch

if TYPE_CHECKING:
    import matplotlib.figure


class Figure:
    """A matplotlib figure, drawn into TensorBoard's images (``SummaryWriter.add_figure``).

    Args:
        figure: the ``matplotlib.figure.Figure`` to draw.
        close: close the figure once it was written (frees matplotlib's memory).
    """

    def __init__(self, figure: matplotlib.figure.Figure, close: bool) -> None:
        self.figure = figure
        self.close = close


class Image:
    """An image for TensorBoard (``SummaryWriter.add_image``).

    Args:
        image: the pixels, uint8 in [0, 255] or float in [0, 1].
        dataformats: the layout of ``image``: ``"HWC"`` (what gymnasium's ``render()`` returns),
            ``"CHW"``, ``"HW"``, ...
    """

    def __init__(self, image: torch.Tensor | np.ndarray, dataformats: str) -> None:
        self.image = image
        self.dataformats = dataformats


class Video:
    """A video for TensorBoard, shown as an animated GIF among its images.

    Args:
        frames: shape (N, T, C, H, W): N videos (tiled into one) of T frames with C = 1, 3 or 4
            channels (an alpha channel is dropped), uint8 in [0, 255] or float in [0, 1].
        fps: frames per second.
    """

    def __init__(self, frames: torch.Tensor | np.ndarray, fps: float) -> None:
        self.frames = frames
        self.fps = fps


class HParam:
    """Hyperparameters and the metrics to compare runs by, for TensorBoard's HPARAMS tab.

    Args:
        hparam_dict: hyperparameter names and values (bool, str, int, float).
        metric_dict: the names of metrics logged as scalars (``"rollout/ep_rew_mean"``...) and an
            initial value; TensorBoard shows each run's latest value. Must not be empty.
    """

    def __init__(
        self, hparam_dict: Mapping[str, bool | str | float | None], metric_dict: Mapping[str, float]
    ) -> None:
        self.hparam_dict = hparam_dict
        if not metric_dict:
            raise ValueError(
                "`metric_dict` must not be empty to display hyperparameters to the HPARAMS tensorboard tab."
            )
        self.metric_dict = metric_dict


RichValue: TypeAlias = Figure | Image | Video | HParam
"""The values only TensorBoard can write."""
RICH_VALUES = (Figure, Image, Video, HParam)
Scalar: TypeAlias = int | float | str
"""A plain value as written to the text outputs."""
Logged: TypeAlias = Scalar | RichValue
"""A value as handed to the output formats at a dump."""
LogValue: TypeAlias = Scalar | np.generic | np.ndarray | torch.Tensor | RichValue
"""A value accepted by ``Logger.record``: a number, a string, a one-element array or tensor, or a
:data:`RichValue`."""


class FormatUnsupportedError(NotImplementedError):
    """A value recorded for output formats that cannot write it (a ``Figure`` for ``"csv"``, say)."""

    def __init__(self, unsupported_formats: Sequence[str], value_description: str) -> None:
        if len(unsupported_formats) > 1:
            format_str = f"formats {', '.join(unsupported_formats)} are"
        else:
            format_str = f"format {unsupported_formats[0]} is"
        super().__init__(
            f"The {format_str} not supported for the {value_description} value logged.\n"
            "You can exclude formats via the `exclude` parameter of the logger's `record` function, e.g. "
            f"logger.record(key, value, exclude={tuple(unsupported_formats)!r})."
        )


def describe(value: RichValue) -> str:
    """SB3's word for the value in :class:`FormatUnsupportedError`: video, figure, image or hparam."""
    return type(value).__name__.lower()


def check_value(key: str, value: Any) -> Scalar | torch.Tensor | RichValue:
    """``value`` as the logger keeps it until a dump; ValueError or TypeError for what it cannot log."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{key}: can only log a real one-element tensor, got shape {tuple(value.shape)}")
        return value
    if isinstance(value, np.ndarray | np.generic):
        if value.size != 1:
            raise ValueError(f"{key}: can only log a one-element array, got shape {value.shape}")
        item: Scalar = value.item()  # host memory: no device sync
        return item
    if isinstance(value, bool | int | float | str | Figure | Image | Video | HParam):
        return value
    raise TypeError(
        f"{key}: can log a number, a string, a one-element tensor or a Figure, Image, Video or HParam; "
        f"got {type(value).__name__}"
    )


def shown_values(
    key_values: Mapping[str, Any], key_excluded: Mapping[str, Sequence[str] | None], name: str
) -> dict[str, Any]:
    """The values the output format ``name`` writes: those whose exclusions do not name it."""
    return {key: value for key, value in key_values.items() if name not in (key_excluded.get(key) or ())}


def refuse_rich_values(values: Mapping[str, Any], name: str) -> None:
    """Raises :class:`FormatUnsupportedError` if a text format ``name`` was handed a richer value."""
    for value in values.values():
        if isinstance(value, RICH_VALUES):
            raise FormatUnsupportedError([name], describe(value))
