"""RGB rendering, 8 px per cell, as pure jnp (jittable: usable as an RGB observation, SPEC §2).

Sprites: floor dark, wall grey, apple a green disc, agent a coloured disc with a white notch on the
side it faces. ``render_world`` draws the whole map, ``render_view`` one agent's symbolic window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CELL_PX = 8
FLOOR, WALL, APPLE = (20, 20, 24), (120, 120, 128), (60, 200, 70)
SELF_COLOUR, OTHER_COLOUR = (240, 200, 40), (80, 140, 240)
# Distinct agent colours for the world view (cycled for many agents).
AGENT_COLOURS = np.array(
    [(230, 70, 70), (80, 140, 240), (240, 200, 40), (200, 90, 220), (60, 210, 210), (250, 140, 40),
     (170, 230, 90), (240, 120, 170), (150, 110, 80), (200, 200, 200)], np.uint8)


def _masks():
    y, x = np.mgrid[0:CELL_PX, 0:CELL_PX] + 0.5
    c = CELL_PX / 2
    disc = (y - c) ** 2 + (x - c) ** 2 <= (CELL_PX * 0.42) ** 2
    small = (y - c) ** 2 + (x - c) ** 2 <= (CELL_PX * 0.3) ** 2
    # Facing notches (N, E, S, W) drawn in the sprite's own frame (row 0 = north).
    notch = np.zeros((4, CELL_PX, CELL_PX), bool)
    mid = slice(CELL_PX // 2 - 1, CELL_PX // 2 + 1)
    notch[0, 0:2, mid] = True
    notch[1, mid, -2:] = True
    notch[2, -2:, mid] = True
    notch[3, mid, 0:2] = True
    return disc, small, notch


_DISC, _SMALL, _NOTCH = _masks()


def _tile(cells_rgb):
    """(H, W, P, P, 3) -> (H*P, W*P, 3)."""
    h, w = cells_rgb.shape[:2]
    return cells_rgb.transpose(0, 2, 1, 3, 4).reshape(h * CELL_PX, w * CELL_PX, 3)


def _base_sprites(wall, apple):
    """Per-cell sprite of the static layer: floor, wall or apple (H, W, P, P, 3) uint8."""
    floor = jnp.asarray(FLOOR, jnp.uint8)
    img = jnp.broadcast_to(floor, wall.shape + (CELL_PX, CELL_PX, 3))
    img = jnp.where(wall[..., None, None, None], jnp.asarray(WALL, jnp.uint8), img)
    apple_px = apple[..., None, None] & jnp.asarray(_SMALL)
    return jnp.where(apple_px[..., None], jnp.asarray(APPLE, jnp.uint8), img)


def _draw_agents(img, present, colour, facing):
    """Overlay agent discs (H, W) mask with per-cell colour (H, W, 3) and facing (H, W)."""
    body = present[..., None, None] & jnp.asarray(_DISC)
    img = jnp.where(body[..., None], colour[..., None, None, :], img)
    notch = present[..., None, None] & jnp.asarray(_NOTCH)[facing]
    return jnp.where(notch[..., None], jnp.uint8(255), img)


def render_world(env, state) -> jax.Array:
    """The whole map as an RGB image ``(H*8, W*8, 3)`` uint8. ``env`` is an ``AppleGrid`` or ``SED``;
    ``state`` the matching state."""
    grid = getattr(env, "grid", env)
    gstate = getattr(state, "grid", state)
    m = grid.map
    H, W = m.height, m.width
    apples = jnp.zeros((H * W,), bool).at[jnp.asarray(np.flatnonzero(m.apples.ravel()))].set(gstate.apples)
    img = _base_sprites(jnp.asarray(m.walls), apples.reshape(H, W))
    n = grid.num_agents
    flat = jnp.where(gstate.on_map, gstate.pos[:, 0] * W + gstate.pos[:, 1], H * W)
    colours = jnp.asarray(AGENT_COLOURS)[jnp.arange(n) % len(AGENT_COLOURS)]
    present = jnp.zeros((H * W + 1,), bool).at[flat].set(True)[:-1].reshape(H, W)
    colour = jnp.zeros((H * W + 1, 3), jnp.uint8).at[flat].set(colours)[:-1].reshape(H, W, 3)
    facing = jnp.zeros((H * W + 1,), jnp.int32).at[flat].set(gstate.facing)[:-1].reshape(H, W)
    return _tile(_draw_agents(img, present, colour, facing))


def render_view(obs: jax.Array) -> jax.Array:
    """One agent's symbolic window ``(rows, cols, C)`` as RGB ``(rows*8, cols*8, 3)``; the agent is
    drawn facing up (the window is egocentric)."""
    wall, apple, me, other = (obs[..., i].astype(bool) for i in range(4))
    img = _base_sprites(wall, apple)
    facing = jnp.zeros(wall.shape, jnp.int32)
    if obs.shape[-1] >= 8:  # other agents' facing channels (relative: ahead, right, back, left)
        facing = jnp.argmax(obs[..., 4:8], -1).astype(jnp.int32)
    colour = jnp.where(me[..., None], jnp.asarray(SELF_COLOUR, jnp.uint8), jnp.asarray(OTHER_COLOUR, jnp.uint8))
    return _tile(_draw_agents(img, me | other, colour, facing))
