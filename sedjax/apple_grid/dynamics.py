"""The grid's dynamics as pure functions of ``(arrays, layout, params)``, in the SPEC's order:
turns and moves (conflicts resolved with a uniformly random winner) -> eating (an apple is eaten
only by an agent *entering* its cell) -> zap beams and respawn (option) -> regrowth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sedjax.apple_grid.layout import Layout, flat_index
from sedjax.apple_grid.types import DENSE_RESOLVE_MAX_AGENTS, DIRS, MOVE_ROT, NOOP, STAY, TURN, ZAP, GridParams, GridState


def move_priority(bits: jax.Array, n: int) -> jax.Array:
    """Move priorities from ``n`` random uint32 ``bits``: a uniformly random strict order of the
    agents (the highest claimant wins a contested cell), int32 in ``[0, STAY)``.

    Random bits in the high part, the agent's index in the low ``b`` bits (``2**b > n``): the
    priorities are distinct by construction (one winner per cell, always), and the order is uniform
    except when two agents draw the same ``31 - b`` random bits (probability ``2**-(31 - b)`` per
    pair; the higher index then wins), the same kind of tie rule as ``jax.random.permutation`` (a
    stable sort on random 32-bit keys) without its sort, which cost ~10% of a step on CPU.
    """
    b = n.bit_length()  # <= 24 (GridStatic checks it): >= 7 random bits per priority
    return ((bits >> (b + 1)) << b).astype(jnp.int32) | jnp.arange(n, dtype=jnp.int32)


def resolve_moves(prio, cur, target, moving, num_cells: int) -> jax.Array:
    """Simultaneous moves with a uniformly random winner per contested cell: the flat cell of each
    agent after the moves. Agents that stay (or lose) hold their cell with top priority; losing can
    cascade (a loser blocks whoever wanted its cell), so rounds repeat until nothing changes. Two
    agents trying to swap cells both fail.

    Each round is O(n + cells) for large n (scatters into a cells-sized array), or, for at most
    ``DENSE_RESOLVE_MAX_AGENTS`` agents, O(n^2) pairwise tests, which for a handful of agents is far
    cheaper than touching every cell of the map (7 agents: 49 comparisons vs. 1.5k cells on the
    default map). Both give the same result; the choice is static.
    """
    n = cur.shape[0]
    dense = n <= DENSE_RESOLVE_MAX_AGENTS
    size = num_cells + 1
    if dense:
        # swap[i]: i's target holds an agent j whose target is i's cell (j != i since i moves).
        swap = jnp.any((target[:, None] == cur[None, :]) & (target[None, :] == cur[:, None]), axis=1)
    else:
        occ = jnp.full((size,), -1, jnp.int32).at[cur].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
        other = occ[target]
        swap = (other >= 0) & (other != jnp.arange(n)) & (target[jnp.maximum(other, 0)] == cur)
    moving = moving & ~swap

    def contest(moving):
        t = jnp.where(moving, target, cur)
        p = jnp.where(moving, prio, STAY)  # stayers outrank every mover for their own cell
        if dense:
            beaten = jnp.any((t[None, :] == t[:, None]) & (p[None, :] > p[:, None]), axis=1)
            return moving & ~beaten
        best = jnp.full((size,), -1, jnp.int32).at[t].max(p)
        return moving & (best[t] == p)

    def cond(c):
        moving, new = c
        return jnp.any(moving != new)

    def body(c):
        _, new = c
        return new, contest(new)

    moving, _ = jax.lax.while_loop(cond, body, (moving, contest(moving)))
    return jnp.where(moving, target, cur)


def move(bits, state: GridState, act, layout: Layout):
    """Turns and moves. Returns ``(pos, facing, new_flat, moved)``."""
    n, Wp = layout.num_agents, layout.Wp
    facing = (state.facing + jnp.asarray(TURN)[act]) % 4
    rot = jnp.asarray(MOVE_ROT)[act]
    move_dir = (state.facing + rot) % 4
    wants = rot >= 0
    cur = jnp.where(state.on_map, flat_index(layout, state.pos), layout.num_cells)  # removed: sentinel cell
    step_off = jnp.asarray(DIRS[:, 0] * Wp + DIRS[:, 1])[move_dir]
    target = jnp.where(wants, cur + step_off, cur)
    blocked = layout.walls_flat[jnp.minimum(target, layout.num_cells - 1)] & wants
    moving = wants & ~blocked
    new_flat = resolve_moves(move_priority(bits, n), cur, jnp.where(moving, target, cur), moving, layout.num_cells)
    moved = new_flat != cur
    pos = state.pos + jnp.where(moved[:, None], jnp.asarray(DIRS)[move_dir], 0)
    return pos, facing, new_flat, moved


def eat(apples, new_flat, moved, layout: Layout):
    """An agent that *entered* a cell holding a live apple eats it. Returns ``(ate, alive_ext)``,
    ``alive_ext``: live apples after eating plus a dead sentinel slot at the end."""
    A = layout.num_apple_cells
    alive_ext = jnp.concatenate([apples, jnp.zeros((1,), bool)])
    slot = layout.apple_slot[new_flat]
    ate = moved & alive_ext[slot]
    return ate, alive_ext.at[jnp.where(ate, slot, A)].set(False)


def zap_and_respawn(key, act, new_flat, pos, facing, on_map, removed_for, cooldown, layout: Layout,
                    params: GridParams):
    """Zap beams (``zap_range`` ahead, ``zap_width`` each side, stopped by walls and by the first agent
    hit), removal for ``zap_timeout`` steps, and respawn on free P cells.

    Cooldown as in Melting Pot: an agent whose ``cooldown`` is 0 may zap; zapping sets it to
    ``zap_cooldown``, and it counts down by one on each later step, so with cooldown ``c`` an agent
    zaps at most every ``c + 1``-th step (every 3rd with the default 2).
    """
    n = layout.num_agents
    k_spawn, k_face = jax.random.split(key)
    occ = jnp.full((layout.num_cells + 1,), -1, jnp.int32).at[jnp.where(on_map, new_flat, layout.num_cells)].set(
        jnp.arange(n, dtype=jnp.int32))
    occ = occ.at[layout.num_cells].set(-1)
    zapper = (act == ZAP) & on_map & (cooldown == 0)
    beam = new_flat[:, None, None] + layout.beam_off[facing]  # (n, lanes, depth)
    who = occ[beam]
    stop = layout.walls_flat[beam] | (who >= 0)
    # A lane is stopped by walls and by the first agent it hits.
    before = jnp.cumsum(stop, axis=-1) - stop
    hit_cell = (who >= 0) & (before == 0) & zapper[:, None, None]
    hit = jnp.zeros((n + 1,), bool).at[jnp.where(hit_cell, who, n)].set(True)[:n]
    cooldown = jnp.where(zapper, params.zap_cooldown, jnp.maximum(cooldown - 1, 0))
    # Removed agents count down; a hit agent leaves the map for zap_timeout steps.
    removed_for = jnp.where(on_map, 0, jnp.maximum(removed_for - 1, 0))
    on_map = on_map & ~hit
    removed_for = jnp.where(hit, params.zap_timeout, removed_for)
    # Respawn on free P cells: rank free cells randomly, give the r-th returning agent the r-th.
    back = ~on_map & ~hit & (removed_for == 0)
    taken = jnp.zeros((layout.num_cells + 1,), bool).at[jnp.where(on_map, new_flat, layout.num_cells)].set(True)
    free = ~taken[layout.spawn_flat]
    score = jnp.where(free, jax.random.uniform(k_spawn, free.shape), 2.0)
    order = jnp.argsort(score)
    rank = jnp.cumsum(back) - 1
    ok = back & (rank < free.sum())
    cell = layout.spawn_rc[order[jnp.clip(rank, 0, free.shape[0] - 1)]]
    pos = jnp.where(ok[:, None], cell, pos)
    facing = jnp.where(ok, jax.random.randint(k_face, (n,), 0, 4, jnp.int32), facing)
    return on_map | ok, removed_for, cooldown, pos, facing


def regrow(alive_ext, bits, layout: Layout, params: GridParams) -> jax.Array:
    """Each eaten apple cell regrows with probability p(k), k = live apples among the other apple
    cells within the regrowth radius (p from ``params.regrowth_probs``, the last entry for every
    larger k). ``bits``: one random uint32 per apple cell."""
    A = layout.num_apple_cells
    alive = alive_ext[:A]
    k_live = alive_ext[layout.neighbours].sum(-1)
    probs = params.regrowth_probs
    p = probs[jnp.minimum(k_live, probs.shape[0] - 1)]
    u = (bits >> 8).astype(jnp.float32) * (2.0**-24)  # uniform in [0, 1), 24-bit resolution
    return alive | (~alive & (u < p))


def transition(key, state: GridState, action, layout: Layout, params: GridParams):
    """Advance the world one step: ``(state, ate)`` (``ate``: bool (n,), apples eaten this step)."""
    n, A = layout.num_agents, layout.num_apple_cells
    # One draw of random bits serves the move priorities and the regrowth coins: each threefry
    # call is a loop of its own on CPU, and their fixed cost dominates at small batch sizes.
    k_zap = None
    if layout.static.zap:
        key, k_zap = jax.random.split(key)
    bits = jax.random.bits(key, (n + A,), jnp.uint32)
    act = jnp.where(state.on_map, jnp.asarray(action, jnp.int32), NOOP)
    pos, facing, new_flat, moved = move(bits[:n], state, act, layout)
    ate, alive_ext = eat(state.apples, new_flat, moved, layout)
    on_map, removed_for, cooldown = state.on_map, state.removed_for, state.cooldown
    if layout.static.zap:
        on_map, removed_for, cooldown, pos, facing = zap_and_respawn(
            k_zap, act, new_flat, pos, facing, on_map, removed_for, cooldown, layout, params)
    apples = regrow(alive_ext, bits[n:], layout, params)
    state = GridState(pos=pos, facing=facing, apples=apples, on_map=on_map, removed_for=removed_for,
                      cooldown=cooldown, t=state.t + 1)
    return state, ate
