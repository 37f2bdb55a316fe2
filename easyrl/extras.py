"""Optional dependencies: importing one, or saying which extra to install.

The experiment commands use a few packages that easyrl does not install by default (matplotlib for
``easyrl plot``, imageio for ``easyrl video``); :func:`require` imports one or raises
:class:`MissingExtraError` naming the ``pip install "easyrl[<extra>]"`` that provides it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional package is missing; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise MissingExtraError: ``purpose`` needs it, from the extra ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0].replace("_", "-")
        raise MissingExtraError(
            f'{purpose} needs the {package} package, which is not installed: pip install "easyrl[{extra}]"'
        ) from None
