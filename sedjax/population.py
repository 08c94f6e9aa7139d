"""Agents' types (SPEC §4): selfishness sigma and trust beta, one per agent per environment.

A type distribution is four traced numbers ``[low, high, a, b]``: ``low + (high - low) * Beta(a, b)``.
That one form covers fixed values (``low == high``), uniform ranges (``a = b = 1``) and Beta(a, b),
so sweeping over type distributions never recompiles. ``parse_type_dist`` turns a config value
(a number, ``"uniform"``, or a mapping) into that vector and validates it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def parse_type_dist(value: Any, field: str) -> np.ndarray:
    """Config -> ``[low, high, a, b]``. Accepted: a number in [0, 1] (fixed); ``"uniform"`` (U(0, 1));
    ``{dist: uniform, low, high}``; ``{dist: beta, a, b}``; ``{dist: fixed, value}``."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a number in [0, 1] or a distribution, got {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
        if not (0.0 <= v <= 1.0):
            raise ValueError(f"{field} must lie in [0, 1], got {value}")
        return np.array([v, v, 1.0, 1.0], np.float32)
    if isinstance(value, str):
        if value == "uniform":
            return np.array([0.0, 1.0, 1.0, 1.0], np.float32)
        raise ValueError(f"{field}: unknown distribution {value!r} (a number, 'uniform', or a mapping with 'dist')")
    if isinstance(value, Mapping):
        d = dict(value)
        kind = d.pop("dist", None)
        try:
            if kind == "fixed":
                return parse_type_dist(float(d.pop("value")), field)
            if kind == "uniform":
                low, high = float(d.pop("low", 0.0)), float(d.pop("high", 1.0))
                if not (0.0 <= low <= high <= 1.0):
                    raise ValueError(f"{field}: need 0 <= low <= high <= 1, got low={low}, high={high}")
                out = np.array([low, high, 1.0, 1.0], np.float32)
            elif kind == "beta":
                a, b = float(d.pop("a")), float(d.pop("b"))
                if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                    raise ValueError(f"{field}: Beta parameters must be finite and > 0, got a={a}, b={b}")
                out = np.array([0.0, 1.0, a, b], np.float32)
            else:
                raise ValueError(f"{field}.dist must be one of fixed, uniform, beta; got {kind!r}")
        except KeyError as e:
            raise ValueError(f"{field}: missing key {e.args[0]!r} for dist={kind!r}") from None
        if d:
            raise ValueError(f"{field}: unexpected keys {sorted(d)} for dist={kind!r}")
        return out
    raise ValueError(f"{field} must be a number in [0, 1] or a distribution, got {value!r}")


def is_beta(dist) -> bool:
    """Whether a parsed distribution needs the Beta sampler (``a`` or ``b`` differs from 1)."""
    d = np.asarray(dist, np.float64)
    return bool(d[2] != 1.0 or d[3] != 1.0)


def sample_types(key: jax.Array, dist: jax.Array, n: int, beta: bool = True) -> jax.Array:
    """``n`` draws from ``low + (high - low) * Beta(a, b)``; ``dist = [low, high, a, b]``.

    ``beta=False`` (static) draws ``U(0, 1)`` instead of ``Beta(a, b)``, i.e. assumes ``a = b = 1``:
    JAX's Beta sampler is a rejection loop that costs seconds of compile time, so it is used only
    when a config asks for a Beta.
    """
    low, high, a, b = dist[0], dist[1], dist[2], dist[3]
    u = jax.random.beta(key, a, b, (n,)) if beta else jax.random.uniform(key, (n,))
    return jnp.clip(low + (high - low) * u, 0.0, 1.0)
