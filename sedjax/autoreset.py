"""Auto-reset that costs a reset only on steps where some episode actually ends.

gymnax-style envs compute a full reset on every step and ``select`` it in, because under ``vmap`` a
``lax.cond`` on a per-env ``done`` becomes a ``select`` that evaluates both branches. Here the
per-env reset is a ``custom_vmap`` function whose batching rule turns the batch of ``done`` flags
into one scalar ``lax.cond(any(done), ...)``: batched envs (any nesting of ``vmap``, e.g. seeds x
envs) pay for a reset only on the steps where at least one of them finishes an episode.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def _broadcast(tree, batched, n):
    return jax.tree.map(lambda a, b: a if b else jnp.broadcast_to(a, (n,) + jnp.shape(a)), tree, batched)


def _where(done, new, old):
    return jax.tree.map(lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - done.ndim)), a, b), new, old)


def make_maybe_reset(reset_fn: Callable) -> Callable:
    """``reset_fn(key, params, (obs, state)) -> (obs, state)`` (the old pair lets a reset keep what
    must survive it, e.g. agent types). Returns ``maybe_reset(done, key, obs, state, params)``: the
    reset pair where ``done``, ``(obs, state)`` elsewhere."""

    @custom_vmap
    def flat(done, keys, carry, params):
        # done: (N,), everything else batched along a leading N axis.
        def do():
            return _where(done, jax.vmap(reset_fn)(keys, params, carry), carry)

        return jax.lax.cond(jnp.any(done), do, lambda: carry)

    @flat.def_vmap
    def _flat_rule(axis_size, in_batched, done, keys, carry, params):
        # An outer vmap around an already batched call: merge the two batch axes into one.
        args = _broadcast((done, keys, carry, params), tuple(in_batched), axis_size)
        merged = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), args)
        out = flat(*merged)
        out = jax.tree.map(lambda a: a.reshape((axis_size, -1) + a.shape[1:]), out)
        return out, jax.tree.map(lambda _: True, out)

    @custom_vmap
    def maybe_reset(done, key, carry, params):
        return jax.lax.cond(done, lambda: reset_fn(key, params, carry), lambda: carry)

    @maybe_reset.def_vmap
    def _rule(axis_size, in_batched, done, key, carry, params):
        args = _broadcast((done, key, carry, params), tuple(in_batched), axis_size)
        out = flat(*args)
        return out, jax.tree.map(lambda _: True, out)

    def call(done, key, obs, state, params):
        return maybe_reset(done, key, (obs, state), params)

    return call
