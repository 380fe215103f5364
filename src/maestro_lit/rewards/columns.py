"""Reading optional per-item dataset columns, shared by the reward components.

Columns come from JSONL/Parquet/HF datasets, so "absent" shows up as a missing key,
``None``, a float NaN (pandas/arrow nulls) or an empty string; all mean "no value here".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def is_missing(value: Any) -> bool:
    """True for None, NaN, and empty/blank strings or empty lists."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0 or (isinstance(value, str) and not value.strip())
    return False


def column(columns: Mapping[str, Any], key: str, n: int) -> list[Any]:
    """The column as a list of length ``n`` (all ``None`` when absent); a wrong length is an error."""
    values = columns.get(key)
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column '{key}' has {len(values)} values for {n} completions")
    return values
