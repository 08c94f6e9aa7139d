"""Observations as pure functions of ``(state, layout)``: each agent's egocentric window (rotated
with its facing, ``view_ahead`` ahead, ``view_behind`` behind, ``view_side`` to each side), as
symbolic channels (or RGB).

Cell contents are encoded as bit fields in one uint8 per cell (``CODE_*`` in
:mod:`sedjax.apple_grid.types`); a window is ``rows`` row slices of ``cols`` codes (from the world
rotated to the agent's facing), decoded into channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sedjax.apple_grid.layout import Layout, flat_index
from sedjax.apple_grid.types import ATE_SHIFT, CODE_AGENT, CODE_APPLE, FACING_SHIFT, GridState


def world_codes(state: GridState, layout: Layout, ate=None) -> jax.Array:
    """The padded world as uint8 bit codes, flat ``(Hp * Wp,)``."""
    n = layout.num_agents
    ate = jnp.zeros((n,), bool) if ate is None else ate
    code = layout.base_code.at[layout.apple_flat].add(state.apples.astype(jnp.uint8) * CODE_APPLE)
    agent_code = (CODE_AGENT + (state.facing.astype(jnp.uint8) << FACING_SHIFT)
                  + (ate.astype(jnp.uint8) << ATE_SHIFT))
    where = jnp.where(state.on_map, flat_index(layout, state.pos), layout.num_cells)
    return code.at[where].add(agent_code, mode="drop")


def window_codes(state: GridState, layout: Layout, ate=None) -> jax.Array:
    """(n, V) codes of each agent's egocentric window (removed agents: zeros).

    Gathered as ``rows`` slices of ``cols`` contiguous cells from the rotation of the world that
    matches the agent's facing (:func:`sedjax.apple_grid.layout.window_row_table`) rather than as
    ``V`` single cells: on CPU, a vmapped per-cell gather was the most expensive op of a step (~40%
    of it at 1024 envs); the slices cost several times less, rotations included.
    """
    rows, cols = layout.view_shape
    code = world_codes(state, layout, ate).reshape(layout.Hp, layout.Wp)
    rotated = jnp.stack([jnp.rot90(code, f).ravel() for f in range(4)])  # (4, Hp * Wp)
    s0, r_coef, c_coef, stride = layout.win_rows[state.facing].T  # (n,) each
    r, c = state.pos[:, 0] + layout.pad, state.pos[:, 1] + layout.pad
    starts = (s0 + r_coef * r + c_coef * c)[:, None] + stride[:, None] * jnp.arange(rows, dtype=jnp.int32)
    facing = jnp.broadcast_to(state.facing[:, None], starts.shape)
    win = jax.vmap(lambda f, s: jax.lax.dynamic_slice(rotated, (f, s), (1, cols)))(facing.ravel(), starts.ravel())
    return jnp.where(state.on_map[:, None], win.reshape(layout.num_agents, rows * cols), 0)


def decode(codes, state: GridState, layout: Layout) -> jax.Array:
    """Window codes -> ``(n, rows, cols, C)`` uint8 symbolic channels (or RGB views).

    The channels of a cell are packed into the bytes of one uint32 (wall, apple, self, other agent;
    a second word for the facing channels) and bitcast to bytes, so every window code is read
    once. Why: when the decode is the windows' only consumer (the bare grid, whose caller does not
    read ``collected_in_view``), XLA on CPU fuses the window gather into it, and a decode that
    reads each code once per channel redoes the gather per channel: the bare grid stepped 2.6-3.7x
    slower than the full game, which also reads the windows for S_i and so materialises them.
    (Byte order is checked against a per-channel decode in the tests.)
    """
    c = codes.astype(jnp.uint32)
    # bytes: 0 wall, 1 apple, 2 self (set below), 3 other agent
    low = (c & 1) | (((c >> 1) & 1) << 8) | (((c >> 2) & 1) << 24)
    words = [jax.lax.bitcast_convert_type(low, jnp.uint8)]
    if layout.static.obs_facing:
        # Other agents' facing relative to the observer's: ahead, right, back, left.
        agent = (c >> 2) & 1
        rel = (((c >> FACING_SHIFT) & 3).astype(jnp.int32) - state.facing[:, None]) % 4
        high = sum((agent * (rel == k).astype(jnp.uint32)) << (8 * k) for k in range(4))
        words.append(jax.lax.bitcast_convert_type(high.astype(jnp.uint32), jnp.uint8))
    obs = jnp.concatenate(words, -1) if len(words) > 1 else words[0]  # (n, V, C)
    C, ctr = obs.shape[-1], layout.center
    # The agent's own cell: wall and apple as read, self = on the map, no other agent.
    own = jnp.zeros((layout.num_agents, C), jnp.uint8).at[:, :2].set(obs[:, ctr, :2])
    obs = obs.at[:, ctr].set(own.at[:, 2].set(state.on_map.astype(jnp.uint8)))
    obs = obs.reshape(layout.num_agents, *layout.view_shape, C)
    if layout.static.obs_mode == "rgb":
        from sedjax.render import render_view

        obs = jax.vmap(render_view)(obs)
    return obs


def collected_in_view(codes, layout: Layout) -> jax.Array:
    """Apples collected this step by the *other* agents inside each agent's window (S_i of SPEC §4)."""
    # float32 sums are exact here (at most V ones) and much faster than int32 ones on CPU.
    ate_in_window = ((codes >> ATE_SHIFT) & 1).sum(-1, dtype=jnp.float32)
    return ate_in_window - (codes[:, layout.center] >> ATE_SHIFT & 1).astype(jnp.float32)


def observe(state: GridState, layout: Layout, ate=None):
    """``(obs, codes)`` after a step (``ate``: who ate this step, for :func:`collected_in_view`)."""
    codes = window_codes(state, layout, ate)
    return decode(codes, state, layout), codes
