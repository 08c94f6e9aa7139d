"""Deprecated name of :mod:`sedjax.where` (kept so older code keeps importing)."""

from __future__ import annotations

from typing import Callable

from sedjax.where import apply_where


def make_maybe_reset(reset_fn: Callable) -> Callable:
    """``reset_fn(key, params, (obs, state)) -> (obs, state)``; returns
    ``maybe_reset(done, key, obs, state, params)``. Use :func:`sedjax.where.apply_where`."""
    call = apply_where(reset_fn)
    return lambda done, key, obs, state, params: call(done, key, (obs, state), params)
