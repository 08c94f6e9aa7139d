"""Tests for sedjax.render: whole-map and egocentric RGB images, and the RGB observation mode."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sedjax
from sedjax import render
from sedjax.render import APPLE, CELL_PX, FLOOR, OTHER_COLOUR, SELF_COLOUR, WALL, render_view, render_world

C = CELL_PX // 2  # a cell's centre pixel offset


def px(img, r, c):
    return tuple(int(v) for v in np.asarray(img)[r * CELL_PX + C, c * CELL_PX + C])


@pytest.fixture(scope="module")
def render_fn(default_grid):
    return jax.jit(functools.partial(render_world, default_grid.env))


@pytest.fixture(scope="module")
def world(default_grid, default_reset, render_fn):
    _, st = default_reset
    st = st.replace(apples=st.apples.at[::3].set(False))  # some dead apples
    return default_grid.env, st, np.asarray(render_fn(st))


def test_render_world_shape_and_cells(world):
    env, st, img = world
    m = env.map
    assert img.shape == (18 * 8, 24 * 8, 3) and img.dtype == np.uint8
    agent_cells = {tuple(p) for p in np.asarray(st.pos)}
    rc = np.argwhere(m.apples)
    alive = np.asarray(st.apples)
    for (r, c), a in zip(rc, alive):
        if (r, c) in agent_cells:
            continue
        assert px(img, r, c) == (APPLE if a else FLOOR), (r, c, a)
    for r, c in np.argwhere(m.walls)[::7]:
        assert (img[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] == np.array(WALL, np.uint8)).all()
    for i, (r, c) in enumerate(np.asarray(st.pos)):
        assert px(img, r, c) == tuple(render.AGENT_COLOURS[i % len(render.AGENT_COLOURS)])
    floor = np.argwhere(~m.walls & ~m.apples)
    r, c = next((r, c) for r, c in floor if (r, c) not in agent_cells)
    assert (img[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] == np.array(FLOOR, np.uint8)).all()


def test_render_world_hides_removed_agents(default_reset, render_fn):
    _, st = default_reset
    st = st.replace(on_map=st.on_map.at[0].set(False))
    img = np.asarray(render_fn(st))
    r, c = np.asarray(st.pos[0])
    assert px(img, r, c) == FLOOR  # agent 0's Q cell is plain floor once it is removed
    r1, c1 = np.asarray(st.pos[1])
    assert px(img, r1, c1) == tuple(render.AGENT_COLOURS[1])


def test_render_view(default_reset):
    obs, _ = default_reset
    view = jax.jit(render_view)(obs[0])
    assert view.shape == (88, 88, 3) and view.dtype == jnp.uint8
    assert px(view, 9, 5) == SELF_COLOUR  # the agent itself, at row 9, col 5
    o = np.asarray(obs[0])
    for (r, c) in np.argwhere(o[..., 0] == 1)[:10]:
        assert px(view, r, c) == WALL
    for (r, c) in np.argwhere(o[..., 1] == 1):
        if not o[r, c, 2:].any():
            assert px(view, r, c) == APPLE
    for (r, c) in np.argwhere(o[..., 3] == 1):
        assert px(view, r, c) == OTHER_COLOUR
    # Batched (as used by obs_mode='rgb').
    views = jax.jit(jax.vmap(render_view))(obs)
    assert views.shape == (7, 88, 88, 3)
    np.testing.assert_array_equal(np.asarray(views[0]), np.asarray(view))


def test_rgb_observation_mode(default_grid, default_reset):
    env = sedjax.make("apple_grid", obs_mode="rgb")
    space = env.observation_space(env.default_params)
    assert space.shape == (7, 88, 88, 3)
    obs, st = jax.jit(env.reset)(jax.random.key(0), env.default_params)  # same key as default_reset
    assert obs.shape == (7, 88, 88, 3) and obs.dtype == jnp.uint8 and bool(space.contains(obs))
    sym, st_sym = default_reset
    np.testing.assert_array_equal(np.asarray(st.pos), np.asarray(st_sym.pos))
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(jax.vmap(render_view)(sym)))
