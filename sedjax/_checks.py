"""Host-side validation helpers shared by the env settings: each raises ``ValueError`` naming the
config field as the user typed it (``tax.period_len``), with plain numbers in the message."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def plain(v: Any) -> Any:
    """``v`` with numpy scalars/arrays turned into Python numbers/lists, for error messages."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "tolist") and hasattr(v, "dtype"):  # jax arrays
        return np.asarray(v).tolist()
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    return v


def integer(v: Any, field: str, lo: int | None = None) -> int:
    """``v`` as an int (bools and non-integral floats are errors), at least ``lo``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)) \
            or (isinstance(v, (float, np.floating)) and not float(v).is_integer()):
        raise ValueError(f"{field} must be an integer, got {plain(v)!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise ValueError(f"{field} must be >= {lo}, got {v}")
    return v


def number(v: Any, field: str, lo: float = -math.inf, hi: float = math.inf, allow_inf: bool = False) -> float:
    """``v`` as a float in ``[lo, hi]`` (NaN is an error; +-inf only with ``allow_inf``)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} must be a number, got {plain(v)!r}")
    v = float(v)
    if math.isnan(v) or (math.isinf(v) and not allow_inf) or not (lo <= v <= hi):
        rng = f"[{plain(lo)}, {plain(hi)}]"
        raise ValueError(f"{field} must be a number in {rng}, got {v}")
    return v


def choice(v: Any, field: str, options: tuple) -> Any:
    if v not in options:
        raise ValueError(f"{field} must be one of {options}, got {plain(v)!r}")
    return v


def flag(v: Any, field: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{field} must be true or false, got {plain(v)!r}")
    return bool(v)
