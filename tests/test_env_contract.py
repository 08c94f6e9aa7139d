"""The env contract (sedjax.testing) on both envs, on small configs with short episodes so that
resets happen inside the checks, at different steps for different envs (partial resets)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import sedjax
from sedjax import testing

from conftest import ROOM, ascii_map

GRID_KW = dict(num_agents=3, max_steps=4, regrowth_probs=(0.0, 0.3, 0.4, 0.5), view_ahead=3, view_behind=1, view_side=2)
SED_KW = dict(num_agents=3, regrowth_probs=(0.0, 0.3, 0.4, 0.5), view_ahead=3, view_behind=1, view_side=2,
              thresholds=(0.0, 1.0, 2.0), period_len=2, periods_per_round=2, rounds_per_episode=1)  # 4-step episodes
CASES = {
    "apple_grid": ("apple_grid", GRID_KW),
    "apple_grid_zap": ("apple_grid", dict(GRID_KW, zap=True, obs_facing=True)),
    "sed": ("sed", SED_KW),
    "sed_weighted_median_pmean": ("sed", dict(SED_KW, mechanism="weighted_median", kind="pmean", welfare_of="post_tax",
                                              social_scope="all", continuous=True, sigma={"dist": "beta", "a": 2, "b": 3})),
}


def build(name, kw):
    return sedjax.make(name, map=ascii_map(ROOM, "room"), **kw)


@pytest.fixture(scope="module", params=list(CASES))
def env(request):
    return build(*CASES[request.param])


def test_jit_equals_nojit(env):
    testing.check_jit_equals_nojit(env, env.default_params, jax.random.key(0), steps=2)


def test_vmap_equals_loop_with_partial_resets(env):
    dones = testing.check_vmap_equals_loop(env, env.default_params, jax.random.key(1), offsets=[0, 1, 3], steps=4)
    assert dones.any() and not dones.all(axis=1).any(), "the check must see resets of only some envs"


def test_nested_vmap_equals_loop(env):
    """seeds x envs: the batched reset's rule that merges two vmapped axes into one scalar cond."""
    dones = testing.check_nested_vmap_equals_loop(env, env.default_params, jax.random.key(2),
                                                  offsets=[[0, 2], [1, 3]], steps=3)
    assert dones.any() and not dones.reshape(len(dones), -1).all(axis=1).any()


def test_spaces_contain_observations(env):
    testing.check_spaces_contain(env, env.default_params, jax.random.key(3), steps=9)


def test_params_batch_equals_built_envs_grid():
    values = [dict(regrowth_probs=(0.0, 0.3, 0.4, 0.5)), dict(regrowth_probs=(0.0, 0.9, 0.9, 0.9)),
              dict(regrowth_probs=(0.0, 0.0, 0.0, 0.0), zap_timeout=2, zap_cooldown=0)]
    testing.check_params_batch_equals_built(
        lambda v: build("apple_grid", dict(GRID_KW, zap=True, **v)), values, jax.random.key(4), steps=6)


def test_params_batch_equals_built_envs_sed():
    """Every traced SED value through a batch of params == an env built with it (this is the
    check that would have caught the type-family bug)."""
    base = dict(SED_KW, sigma={"dist": "beta", "a": 2.0, "b": 2.0})
    values = [
        dict(sigma={"dist": "beta", "a": 50.0, "b": 50.0}, beta={"dist": "uniform", "low": 0.2, "high": 0.7}),
        dict(regrowth_probs=(0.0, 0.9, 0.9, 0.9), thresholds=(0.0, 2.0, 5.0), max_rate_change=0.2,
             transfer_scale=0.5, eta=0.25, resample_on_reset=True),
    ]
    testing.check_params_batch_equals_built(lambda v: build("sed", dict(base, **v)), values, jax.random.key(5), steps=6)


def test_window_rows_match_cell_offsets():
    """The row-slice window table reads the same cells as the per-cell egocentric offsets, for
    every facing and several view shapes (the check the constructor used to run as an assert)."""
    from sedjax.apple_grid.layout import view_offsets, window_row_table

    for ahead, behind, side in [(9, 1, 5), (3, 1, 2), (0, 0, 0), (2, 4, 1)]:
        pad = max(ahead, behind, side, 1) + 1
        Hp, Wp = 7 + 2 * pad, 11 + 2 * pad
        rows, cols = ahead + behind + 1, 2 * side + 1
        off = view_offsets(ahead, behind, side)
        table = window_row_table(ahead, side, Hp, Wp)
        world = np.arange(Hp * Wp).reshape(Hp, Wp)
        for r, c in [(pad, pad), (pad + 3, pad + 5), (Hp - pad - 1, Wp - pad - 1)]:
            for f in range(4):
                s0, a, b, stride = table[f]
                start = s0 + a * r + b * c + stride * np.arange(rows)[:, None] + np.arange(cols)
                expect = r * Wp + c + off[f, :, 0] * Wp + off[f, :, 1]
                np.testing.assert_array_equal(np.rot90(world, f).ravel()[start].ravel(), expect)


def test_params_batch_env_cannot_honour_raises():
    """A batch whose values need another static setting than the env it runs on (Beta types on an
    env built with uniform ones, the old silent-U(0, 1) bug) is refused, naming the field."""
    values = [dict(sigma="uniform"), dict(sigma={"dist": "beta", "a": 50.0, "b": 50.0})]
    with pytest.raises(ValueError, match=r"types\.sigma"):
        testing.check_params_batch_equals_built(lambda v: build("sed", dict(SED_KW, **v)), values,
                                                jax.random.key(6), steps=2)


def _reference_decode(codes, facing, on_map, center, obs_facing):
    """The channel decode written plainly, one channel at a time (numpy)."""
    codes = np.asarray(codes).astype(np.int64)
    chans = [codes & 1, (codes >> 1) & 1, np.zeros_like(codes), (codes >> 2) & 1]
    chans[2][:, center] = on_map
    chans[3][:, center] = 0
    if obs_facing:
        rel = (((codes >> 3) & 3) - np.asarray(facing)[:, None]) % 4
        chans += [chans[3] * (rel == k) for k in range(4)]
    return np.stack(chans, -1).astype(np.uint8)


@pytest.mark.parametrize("obs_facing", [False, True])
def test_packed_decode_matches_per_channel_decode(obs_facing):
    """The byte-packed decode (and its bitcast byte order on this platform) equals a per-channel one
    on random window codes, facings and removed agents."""
    from sedjax.apple_grid import observation

    env = build("apple_grid", dict(GRID_KW, obs_facing=obs_facing))
    L = env.layout
    rng = np.random.default_rng(0)
    n, V = env.num_agents, L.view_shape[0] * L.view_shape[1]
    st = env.reset(jax.random.key(0))[1]
    for _ in range(5):
        codes = rng.integers(0, 64, (n, V)).astype(np.uint8)
        st = st.replace(facing=jax.numpy.asarray(rng.integers(0, 4, n), jax.numpy.int32),
                        on_map=jax.numpy.asarray(rng.random(n) < 0.7))
        got = np.asarray(observation.decode(jax.numpy.asarray(codes), st, L)).reshape(n, V, -1)
        want = _reference_decode(codes, st.facing, np.asarray(st.on_map), L.center, obs_facing)
        np.testing.assert_array_equal(got, want)
