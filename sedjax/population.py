"""Agents' types (SPEC §4): selfishness sigma and trust beta, and the typed reward they induce.

A type distribution has a static **family** (``fixed``, ``uniform`` or ``beta``: it selects the
sampler) and four traced numbers ``[low, high, a, b]``: ``low + (high - low) * Beta(a, b)``, with
``low == high`` for ``fixed`` and ``a = b = 1`` for ``uniform``. Sweeping the numbers within a
family never recompiles; a value the family cannot honour (e.g. ``a != 1`` on a uniform family) is
an error (:func:`check_type_dist`), never a silent substitute. ``parse_type_dist`` turns a config
value (a number, ``"uniform"``, or a mapping) into that vector and validates it.
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


FAMILIES = ("fixed", "uniform", "beta")


def is_beta(dist) -> bool:
    """Whether a parsed distribution needs the Beta sampler (``a`` or ``b`` differs from 1)."""
    d = np.asarray(dist, np.float64)
    return bool(d[2] != 1.0 or d[3] != 1.0)


def family_of(dist) -> str:
    """The family a parsed ``[low, high, a, b]`` belongs to: ``beta`` if ``a`` or ``b`` differs
    from 1, else ``fixed`` if ``low == high``, else ``uniform``."""
    d = np.asarray(dist, np.float64)
    if is_beta(d):
        return "beta"
    return "fixed" if d[0] == d[1] else "uniform"


def check_type_dist(dist, family: str, field: str) -> None:
    """Host-side: raise ``ValueError`` naming ``field`` if (possibly batched) ``dist`` values cannot
    be drawn by the static ``family``'s sampler."""
    d = np.asarray(dist, np.float64)
    if d.shape[-1:] != (4,):
        raise ValueError(f"{field} must be [low, high, a, b], got shape {d.shape}")
    low, high, a, b = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    if not (np.all(np.isfinite(d)) and np.all((0 <= low) & (low <= high) & (high <= 1)) and np.all((a > 0) & (b > 0))):
        raise ValueError(f"{field}: need 0 <= low <= high <= 1 and a, b > 0, got {d.tolist()}")
    if family == "fixed" and np.any(low != high):
        raise ValueError(f"{field}: the env was built with fixed types, so low must equal high; got {d.tolist()} "
                         "(build the env with a distribution to sweep one)")
    if family in ("fixed", "uniform") and np.any((a != 1) | (b != 1)):
        raise ValueError(f"{field}: the env was built with a {family} type distribution, whose sampler cannot draw "
                         f"Beta(a, b) with a, b != 1; got {d.tolist()} (build the env with a Beta distribution)")


def sample_types(key: jax.Array, dist: jax.Array, n: int, family="beta") -> jax.Array:
    """``n`` draws from ``low + (high - low) * Beta(a, b)``; ``dist = [low, high, a, b]``.

    ``family`` (static) selects the sampler: ``beta`` honours every value; ``uniform`` draws
    ``U(0, 1)`` for the Beta part (so it needs ``a = b = 1``), ``fixed`` returns ``low`` (needs
    ``low == high``): JAX's Beta sampler is a rejection loop that costs seconds of compile time, so
    it is compiled only when a config asks for a Beta. (``True``/``False`` mean beta/uniform.)
    """
    family = {True: "beta", False: "uniform"}.get(family, family)
    low, high, a, b = dist[0], dist[1], dist[2], dist[3]
    if family == "fixed":
        return jnp.broadcast_to(jnp.clip(low, 0.0, 1.0), (n,)).astype(jnp.float32)
    u = jax.random.beta(key, a, b, (n,)) if family == "beta" else jax.random.uniform(key, (n,))
    return jnp.clip(low + (high - low) * u, 0.0, 1.0)


def typed_reward(extrinsic, apples, others_in_scope, sigma, beta) -> jax.Array:
    """The policy implementation map P (SPEC §4): ``r_i = beta_i * e_i + (1 - beta_i) * r_int,i``
    with ``r_int,i = sigma_i * a_i + (1 - sigma_i) * S_i``.

    ``extrinsic`` e: post-tax reward; ``apples`` a: own apples this step; ``others_in_scope`` S:
    apples collected by the other agents in scope (in view, or everyone else). All ``(..., n)``.
    """
    intrinsic = sigma * apples + (1.0 - sigma) * others_in_scope
    return beta * extrinsic + (1.0 - beta) * intrinsic
