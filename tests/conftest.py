"""Shared helpers and (session-scoped, so compiled once) fixtures for the environment tests.

Compilation dominates the cost of these tests on CPU, so jitted functions are built once per
environment instance and reused; traced settings (``GridParams``/``SEDParams``) are varied through
``params.replace(...)`` instead of building new environments.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sedjax
from sedjax.apple_grid import DIRS, GridState
from sedjax.maps import parse_ascii

N_, E_, S_, W_ = 0, 1, 2, 3  # facings


# ---------------------------------------------------------------------------- map building
def ascii_map(rows, name="test"):
    """``rows``: list of equal-length strings (or a char array) -> GridMap."""
    if isinstance(rows, np.ndarray):
        rows = ["".join(r) for r in rows]
    return parse_ascii("\n".join(rows), name=name)


def char_grid(height, width, fill=" "):
    return np.full((height, width), fill, dtype="<U1")


# A 3-agent room dense with apples (tests/test_env_contract.py, tests/test_jaxmarl.py).
ROOM = [
    "WWWWWWWW",
    "WAAQ AAW",
    "WAAAAAAW",
    "WPAAAAPW",
    "WWWWWWWW",
]

# ---------------------------------------------------------------------------- states
def grid_state(env, pos, facing, apples=None, on_map=None, removed_for=None, cooldown=None, t=0):
    """A GridState built by hand (positions are (row, col) map coordinates)."""
    n = env.num_agents
    A = env.num_apple_cells
    return GridState(
        pos=jnp.asarray(np.asarray(pos, np.int32).reshape(n, 2)),
        facing=jnp.asarray(np.asarray(facing, np.int32).reshape(n)),
        apples=jnp.ones((A,), bool) if apples is None else jnp.asarray(np.asarray(apples, bool).reshape(A)),
        on_map=jnp.ones((n,), bool) if on_map is None else jnp.asarray(np.asarray(on_map, bool)),
        removed_for=jnp.zeros((n,), jnp.int32) if removed_for is None else jnp.asarray(removed_for, jnp.int32),
        cooldown=jnp.zeros((n,), jnp.int32) if cooldown is None else jnp.asarray(cooldown, jnp.int32),
        t=jnp.asarray(t, jnp.int32),
    )


def apple_slot(env_or_map, r, c):
    """Index of the apple cell (r, c) in ``state.apples`` (apple cells in row-major order)."""
    m = getattr(env_or_map, "map", env_or_map)
    rc = np.argwhere(m.apples)
    idx = np.flatnonzero((rc[:, 0] == r) & (rc[:, 1] == c))
    assert len(idx) == 1, f"({r}, {c}) is not an apple cell"
    return int(idx[0])


def ahead_right(pos, facing, ahead, right):
    """Cell ``ahead`` cells in front of and ``right`` cells to the right of ``pos``."""
    fwd, rgt = DIRS[facing], DIRS[(facing + 1) % 4]
    return tuple(int(v) for v in np.asarray(pos) + ahead * fwd + right * rgt)


# ---------------------------------------------------------------------------- checks
def assert_valid_positions(grid_map, pos, on_map):
    """``pos (..., n, 2)``, ``on_map (..., n)``: every agent on the map is inside it, not in a wall,
    and no two agents on the map share a cell."""
    pos = np.asarray(pos)
    n = pos.shape[-2]
    pos = pos.reshape(-1, n, 2)
    on = np.asarray(on_map, bool).reshape(-1, n)
    H, W = grid_map.height, grid_map.width
    r, c = pos[..., 0], pos[..., 1]
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    assert inside[on].all(), "an agent left the map"
    in_wall = grid_map.walls[np.clip(r, 0, H - 1), np.clip(c, 0, W - 1)]
    assert not in_wall[on].any(), "an agent stands in a wall"
    flat = np.where(on, r * W + c, -1 - np.arange(n))  # removed agents: distinct negative ids
    s = np.sort(flat, axis=-1)
    shared = (np.diff(s, axis=-1) == 0).any(-1)
    assert not shared.any(), f"agents share a cell at rows {np.flatnonzero(shared)[:5]}"


def assert_binomial(k, n, p, z=4.0):
    """``k`` successes out of ``n`` trials is within ``z`` standard deviations of Binomial(n, p)."""
    k = float(k)
    if p == 0.0:
        assert k == 0, f"{k} successes with p = 0"
        return
    sd = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) <= z * sd, f"{k}/{n} = {k / n:.4f}, expected p = {p} (+- {z * sd / n:.4f})"


# ---------------------------------------------------------------------------- rollouts
def make_rollout(env, steps, auto_reset=True, keep_obs=False):
    """jit(run(key, state, params) -> (final_state, traj)) with uniformly random actions.

    ``traj`` holds per-step (after the step) positions, on_map, apples, t, rewards, done, actions
    and ``info['apples_alive']`` (and observations if ``keep_obs``).
    """

    def run(key, state, params):
        step = env.step if auto_reset else env.step_env

        def body(state, k):
            ka, ks = jax.random.split(k)
            a = env.action_space(params).sample(ka)
            obs, nxt, r, done, info = step(ks, state, a, params)
            out = dict(
                pos=nxt.pos, facing=nxt.facing, on_map=nxt.on_map, apples=nxt.apples, t=nxt.t,
                reward=r, done=done, action=a, apples_alive=info["apples_alive"],
            )
            if keep_obs:
                out["obs"] = obs
            return nxt, out

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return jax.jit(run)


# ---------------------------------------------------------------------------- shared envs
class Fns:
    """Jitted entry points of one environment instance (compiled lazily, once)."""

    def __init__(self, env):
        self.env = env
        self.params = env.default_params
        self.reset = jax.jit(env.reset)
        self.step = jax.jit(env.step)
        self.step_env = jax.jit(env.step_env)
        self._rollouts = {}

    def rollout(self, steps, auto_reset=True, keep_obs=False):
        k = (steps, auto_reset, keep_obs)
        if k not in self._rollouts:
            self._rollouts[k] = make_rollout(self.env, steps, auto_reset, keep_obs)
        return self._rollouts[k]


@pytest.fixture(scope="session")
def default_grid():
    """``make("apple_grid")``: default map, 7 agents, no zap."""
    return Fns(sedjax.make("apple_grid"))


@pytest.fixture(scope="session")
def default_reset(default_grid):
    """(obs, state) of the default grid for key 0."""
    return default_grid.reset(jax.random.key(0), default_grid.params)


# ---------------------------------------------------------------------------- compilation cache
CACHE_OPTIONS = {
    "jax_compilation_cache_dir": None,  # set by the fixture
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent compilation cache for the requesting module (restored to the previous settings after)."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = str(tmp_path_factory.mktemp("jax_cache"))
    old = {k: getattr(jax.config, k) for k in CACHE_OPTIONS}
    for k, v in CACHE_OPTIONS.items():
        jax.config.update(k, path if v is None else v)
    cc.reset_cache()
    yield path
    for k, v in old.items():
        jax.config.update(k, v)
    cc.reset_cache()
