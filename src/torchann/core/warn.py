"""``warn()``: a Python warning that points at the user's line, not at torchann's.

A fixed ``stacklevel`` is right for one call path only: ``Preprocessor.transform_x`` is
reached from ``Model.predict``, ``Model.evaluate``, the report and the server, each at another
depth, and ``stacklevel=2`` blamed whichever torchann line called it
(``torchann/model/base.py:170: UnseenCategoryWarning``). ``warn`` skips every frame inside
the torchann package instead: Python 3.12 does it itself (``skip_file_prefixes``); on 3.10
and 3.11 the frames are walked here to the first one outside the package and the matching
``stacklevel`` is passed. The warning's file and line (and the once-per-place filter that
keys on them) are then the caller's.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn", "PACKAGE_PREFIX"]

# The folder of the torchann package, with a trailing separator so ``torchann_extra/`` is not inside.
PACKAGE_PREFIX = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)``, attributed to the first caller outside torchann."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(PACKAGE_PREFIX,))
        return
    warnings.warn(message, category, stacklevel=outside_stacklevel())


def outside_stacklevel() -> int:
    """The ``stacklevel`` that a ``warnings.warn`` inside :func:`warn` passes to name the first
    frame outside the torchann package (``stacklevel=1`` would name ``warn`` itself)."""
    level, frame = 2, sys._getframe(2)  # frames: 0 here, 1 warn(), 2 warn()'s caller = stacklevel 2
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_PREFIX):
        frame = frame.f_back
        level += 1
    return level
