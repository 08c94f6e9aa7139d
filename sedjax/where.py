"""A batched "apply ``fn`` where a flag is set" that costs ``fn`` only on steps where some flag is.

Under ``vmap`` a ``lax.cond`` on a per-env flag becomes a ``select`` that evaluates both branches,
so a gymnax-style auto-reset computes a full reset on every step. :func:`apply_where` wraps
``fn`` in a ``custom_vmap`` whose batching rule turns the batch of flags into one scalar
``lax.cond(any(flag), ...)``: batched envs (any nesting of ``vmap``, e.g. seeds x envs, merged
into one batch axis) pay for ``fn`` only on the steps where at least one of them needs it. The
envs use it for episode resets (:meth:`sedjax.environment.Environment.reset_where`) and for the
vote at the start of a voting round.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def _broadcast(tree, batched, n):
    return jax.tree.map(lambda a, b: a if b else jnp.broadcast_to(a, (n,) + jnp.shape(a)), tree, batched)


def _select(flag, new, old):
    return jax.tree.map(lambda a, b: jnp.where(flag.reshape(flag.shape + (1,) * (a.ndim - flag.ndim)), a, b), new, old)


def apply_where(fn: Callable) -> Callable:
    """``fn(key, params, carry) -> carry`` (same structure) becomes
    ``call(flag, key, carry, params)``: ``fn``'s result where ``flag``, ``carry`` elsewhere."""

    @custom_vmap
    def flat(flag, keys, carry, params):
        # flag: (N,), everything else batched along a leading N axis.
        def do():
            return _select(flag, jax.vmap(fn)(keys, params, carry), carry)

        return jax.lax.cond(jnp.any(flag), do, lambda: carry)

    @flat.def_vmap
    def _flat_rule(axis_size, in_batched, flag, keys, carry, params):
        # An outer vmap around an already batched call: merge the two batch axes into one.
        args = _broadcast((flag, keys, carry, params), tuple(in_batched), axis_size)
        merged = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), args)
        out = flat(*merged)
        out = jax.tree.map(lambda a: a.reshape((axis_size, -1) + a.shape[1:]), out)
        return out, jax.tree.map(lambda _: True, out)

    @custom_vmap
    def call(flag, key, carry, params):
        return jax.lax.cond(flag, lambda: fn(key, params, carry), lambda: carry)

    @call.def_vmap
    def _rule(axis_size, in_batched, flag, key, carry, params):
        args = _broadcast((flag, key, carry, params), tuple(in_batched), axis_size)
        out = flat(*args)
        return out, jax.tree.map(lambda _: True, out)

    return call
