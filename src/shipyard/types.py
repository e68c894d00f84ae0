"""Type aliases shared by every layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[Any]
"""One column (shape [rows]) or one tensor input (shape [rows, ...])."""

Columns: TypeAlias = dict[str, Array]
"""Columnar batch: name -> array whose first axis is rows. The currency of every runtime."""

JSONValue: TypeAlias = Any
"""A value that json.dumps accepts."""


def num_rows(columns: Mapping[str, Any]) -> int:
    """The rows of a columnar batch or sample: its first column's length (0 when empty)."""
    return len(next(iter(columns.values()))) if columns else 0


__all__ = ["Array", "Columns", "JSONValue", "np", "num_rows"]
