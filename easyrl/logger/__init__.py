"""Training-metrics logger (SB3's ``stable_baselines3.common.logger``): a rich console table, CSV, JSON
lines and TensorBoard outputs, and SB3's ``Figure``, ``Image``, ``Video`` and ``HParam`` values.

``values`` holds what can be recorded, ``outputs`` the text formats, ``tensorboard`` the TensorBoard
format, ``core`` the :class:`Logger` and :func:`configure`. The older easyrl names of the formats
(``OutputFormat``, ``ConsoleOutput``, ``CSVOutput``, ``JSONOutput``, ``TensorBoardOutput``) are kept as
aliases of SB3's.
"""

from easyrl.logger.core import FORMATS, Logger, configure, make_output_format, next_run_dir
from easyrl.logger.outputs import (
    CSVOutputFormat,
    HumanOutputFormat,
    JSONOutputFormat,
    KVWriter,
    format_value,
)
from easyrl.logger.tensorboard import TENSORBOARD_MISSING, TensorBoardOutputFormat
from easyrl.logger.values import (
    Figure,
    FormatUnsupportedError,
    HParam,
    Image,
    Logged,
    LogValue,
    RichValue,
    Scalar,
    Video,
)

OutputFormat = KVWriter
ConsoleOutput = HumanOutputFormat
CSVOutput = CSVOutputFormat
JSONOutput = JSONOutputFormat
TensorBoardOutput = TensorBoardOutputFormat

__all__ = [
    "FORMATS",
    "TENSORBOARD_MISSING",
    "CSVOutput",
    "CSVOutputFormat",
    "ConsoleOutput",
    "Figure",
    "FormatUnsupportedError",
    "HParam",
    "HumanOutputFormat",
    "Image",
    "JSONOutput",
    "JSONOutputFormat",
    "KVWriter",
    "LogValue",
    "Logged",
    "Logger",
    "OutputFormat",
    "RichValue",
    "Scalar",
    "TensorBoardOutput",
    "TensorBoardOutputFormat",
    "Video",
    "configure",
    "format_value",
    "make_output_format",
    "next_run_dir",
]
