"""Behaviour tests for the apple grid (sedjax.grid.AppleGrid): movement and conflicts, eating,
regrowth statistics, egocentric observations, zapping, auto-reset, determinism and vectorisation.

Exact situations are built on small custom ASCII maps with hand-made states; statistical checks
run many keys at once under ``vmap`` and use a 4-sigma binomial tolerance (fixed seeds, so the
tests are deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sedjax
from sedjax.apple_grid import (
    BACKWARD, DIRS, FORWARD, NOOP, STEP_LEFT, STEP_RIGHT, TURN_LEFT, TURN_RIGHT, ZAP,
)

from conftest import (
    E_, N_, S_, W_, Fns, ahead_right, apple_slot, ascii_map, assert_binomial, assert_valid_positions,
    char_grid, grid_state,
)

WALL, APPLE, SELF, OTHER = range(4)  # symbolic observation channels
CY, CX = 9, 5  # the agent's own cell in the 11 x 11 window (view_ahead, view_side)


def acts(n, **overrides):
    """NOOP for everyone except ``a<i>=action`` overrides."""
    a = np.full(n, NOOP, np.int32)
    for k, v in overrides.items():
        a[int(k[1:])] = v
    return jnp.asarray(a)


# =============================================================================== the lab map
# A 14 x 14 room in the top-left corner with NO border wall on its top and left sides (those map
# edges are the map's edge: out-of-map cells must read as wall), walls on its right (col 14) and
# bottom (row 14), one inner wall at (10, 11), apple cells at (6, 6), (7, 7), (2, 9), (2, 10), two Q
# cells. Far to the right (col 28, > 10 cells from the room, outside any view) are four 1-cell walled
# pockets holding the only P cells: agents not used by a scenario are parked there, and a zapped agent
# must respawn in a free one.
POCKETS = [(1, 28), (4, 28), (7, 28), (10, 28)]
INNER_WALL = (10, 11)
LAB_APPLES = [(6, 6), (7, 7), (2, 9), (2, 10)]
LAB_N = 5


def lab_map(width=32, pockets=POCKETS):
    g = char_grid(15, width, "W")
    g[0:14, 0:14] = " "
    for r, c in LAB_APPLES:
        g[r, c] = "A"
    g[INNER_WALL] = "W"
    g[12, 1] = g[12, 3] = "Q"
    for r, c in pockets:
        g[r, c] = "P"
    return ascii_map(g, "lab")


def _lab_fns(env, pockets):
    fns = Fns(env)
    fns.pockets = pockets
    # One step of many independent keys from the same state (for the statistical checks).
    fns.vstep = jax.jit(jax.vmap(env.step_env, in_axes=(0, None, None, None)))
    return fns


@pytest.fixture(scope="module")
def lab():
    """5 agents, zap on (move resolution for few agents)."""
    return _lab_fns(sedjax.make("apple_grid", map=lab_map(), num_agents=LAB_N, zap=True), POCKETS)


# The same room with 105 pockets, for 70 agents: move resolution for a large population (more than
# 64 agents) may use a different algorithm than for a handful; both must behave the same.
BIG_POCKETS = [(r, c) for r in range(1, 14, 2) for c in range(17, 47, 2)]


@pytest.fixture(scope="module")
def lab70():
    return _lab_fns(sedjax.make("apple_grid", map=lab_map(48, BIG_POCKETS), num_agents=70), BIG_POCKETS)


def lab_state(env, agents, alive=None, pockets=POCKETS, **kw):
    """``agents``: [((row, col), facing), ...] for agents 0..k-1; the others are parked in pockets.
    ``alive``: apple cells that hold a live apple (default: all)."""
    pos = [p for p, _ in agents] + list(pockets[: env.num_agents - len(agents)])
    facing = [f for _, f in agents] + [N_] * (env.num_agents - len(agents))
    apples = None
    if alive is not None:
        apples = np.zeros(env.num_apple_cells, bool)
        for rc in alive:
            apples[apple_slot(env, *rc)] = True
    return grid_state(env, pos, facing, apples=apples, **kw)


def zero_regrowth(params):
    """GridParams with no regrowth (apples only disappear)."""
    return params.replace(regrowth_probs=jnp.zeros_like(params.regrowth_probs))


# =============================================================================== 1. invariants
def test_reset_default_map(default_grid, default_reset):
    env = default_grid.env
    obs, st = default_reset
    assert obs.shape == (7, 11, 11, 4) and obs.dtype == jnp.uint8
    q = env.map.inside_spawn
    np.testing.assert_array_equal(np.asarray(st.pos[:2]), q[:2])  # agents 0 and 1 on the Q cells
    p_cells = {tuple(x) for x in env.map.spawn}
    assert all(tuple(x) in p_cells for x in np.asarray(st.pos[2:]))
    assert_valid_positions(env.map, st.pos, st.on_map)
    assert int(st.apples.sum()) == 64 and int(st.t) == 0
    assert set(np.asarray(st.facing).tolist()) <= {0, 1, 2, 3}
    # Each agent sees itself at (9, 5) and nowhere else.
    assert (np.asarray(obs[:, CY, CX, SELF]) == 1).all()
    assert int(obs[..., SELF].sum()) == 7
    # Different keys give different spawns.
    _, st2 = default_grid.reset(jax.random.key(1), default_grid.params)
    assert not np.array_equal(np.asarray(st.pos), np.asarray(st2.pos))
    np.testing.assert_array_equal(np.asarray(st2.pos[:2]), q[:2])


def _eat_rule_holds(grid_map, state0, traj):
    """Reward is 1 exactly for the agents that entered a cell holding a live apple."""
    pos = np.asarray(traj["pos"])
    prev_pos = np.concatenate([np.asarray(state0.pos)[None], pos[:-1]])
    prev_apples = np.concatenate([np.asarray(state0.apples)[None], np.asarray(traj["apples"])[:-1]])
    slot_of = np.full(grid_map.walls.shape, -1)
    rc = np.argwhere(grid_map.apples)
    slot_of[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    slot = slot_of[pos[..., 0], pos[..., 1]]
    moved = (pos != prev_pos).any(-1)
    live = np.take_along_axis(prev_apples, np.maximum(slot, 0), axis=1) & (slot >= 0)
    np.testing.assert_array_equal(np.asarray(traj["reward"]), (moved & live).astype(np.float32))


def test_random_rollout_default_map(default_grid, default_reset):
    """Random actions on the default map: nobody in a wall or sharing a cell; the eating rule
    holds exactly at every step; the action space samples valid actions."""
    env, params = default_grid.env, default_grid.params
    _, st0 = default_reset
    _, traj = default_grid.rollout(300, auto_reset=False)(jax.random.key(7), st0, params)
    assert_valid_positions(env.map, traj["pos"], traj["on_map"])
    assert not np.asarray(traj["done"]).any()
    np.testing.assert_array_equal(np.asarray(traj["t"]), np.arange(1, 301))
    moved = (np.diff(np.asarray(traj["pos"]), axis=0) != 0).any(-1)
    assert moved.mean() > 0.2  # agents actually move
    _eat_rule_holds(env.map, st0, traj)
    assert float(traj["reward"].sum()) > 0  # non-vacuous: some apples were eaten
    a = np.asarray(traj["action"])
    assert a.min() >= 0 and a.max() <= 6 and set(np.unique(a)) == set(range(7))
    np.testing.assert_array_equal(np.asarray(traj["apples_alive"]), np.asarray(traj["apples"]).sum(-1))


def test_reward_equals_apples_collected(default_grid, default_reset):
    """Without regrowth, apples only disappear by being eaten: the apples lost equal the rewards."""
    env, params = default_grid.env, zero_regrowth(default_grid.params)
    _, st0 = default_reset
    _, traj = default_grid.rollout(300, auto_reset=False)(jax.random.key(7), st0, params)
    alive = np.concatenate([[64], np.asarray(traj["apples_alive"])])
    eaten = np.asarray(traj["reward"]).sum(-1)
    np.testing.assert_array_equal(alive[:-1] - alive[1:], eaten)
    assert eaten.sum() > 0
    assert set(np.unique(np.asarray(traj["reward"]))) <= {0.0, 1.0}
    _eat_rule_holds(env.map, st0, traj)


CROWDED = [
    "WWWWWW",
    "WQPPPW",
    "WPAAPW",
    "WPAAPW",
    "WPPPQW",
    "WWWWWW",
]


@pytest.mark.parametrize("zap", [False, True])
def test_random_rollout_crowded_map(zap):
    """10 agents in a 4 x 4 room (6 free cells), with and without zapping. With zapping, removed
    agents see nothing (all-zero obs) and stay off the map for at least 4 steps (longer only while no
    P cell is free), then respawn on a P cell."""
    env = sedjax.make("apple_grid", map=ascii_map(CROWDED), num_agents=10, zap=zap)
    fns = Fns(env)
    _, st0 = fns.reset(jax.random.key(3), fns.params)
    assert_valid_positions(env.map, st0.pos, st0.on_map)
    _, traj = fns.rollout(300, auto_reset=False, keep_obs=zap)(jax.random.key(4), st0, fns.params)
    on = np.asarray(traj["on_map"])
    pos = np.asarray(traj["pos"])
    assert_valid_positions(env.map, pos, on)
    moved = (np.diff(pos, axis=0) != 0).any(-1) & on[1:] & on[:-1]
    assert moved.sum() > 50
    space = env.action_space(fns.params)
    assert bool(space.contains(traj["action"][0])) and bool(space.contains(traj["action"][-1]))
    assert set(np.unique(np.asarray(traj["action"]))) == set(range(8 if zap else 7))
    if not zap:
        assert on.all()
        _eat_rule_holds(env.map, st0, traj)
        return
    assert (~on).any(), "no agent was ever zapped; the test would be vacuous"
    obs = np.asarray(traj["obs"])
    assert (obs[~on] == 0).all()
    assert (obs[on][:, CY, CX, SELF] == 1).all()
    p_cells = {tuple(x) for x in env.map.spawn}
    spells = 0
    for i in range(env.num_agents):
        col = np.concatenate([[True], on[:, i], [True]])
        starts = np.flatnonzero(col[:-1] & ~col[1:])  # first off-map state of a spell
        ends = np.flatnonzero(~col[:-1] & col[1:])  # first state back on the map
        for s, e in zip(starts, ends):
            if e >= len(on):
                continue
            spells += 1
            assert e - s >= 4
            assert tuple(pos[e, i]) in p_cells
    assert spells > 0


def test_large_population_never_shares_cells():
    """512 agents on a procedural map, random actions for 50 steps."""
    env = sedjax.make("apple_grid", map="procedural", num_agents=512)
    fns = Fns(env)
    _, st0 = fns.reset(jax.random.key(0), fns.params)
    assert_valid_positions(env.map, st0.pos, st0.on_map)
    _, traj = fns.rollout(50, auto_reset=False)(jax.random.key(1), st0, fns.params)
    assert_valid_positions(env.map, traj["pos"], traj["on_map"])
    moved = (np.diff(np.asarray(traj["pos"]), axis=0) != 0).any(-1)
    assert moved.mean() > 0.2


# =============================================================================== 2. eating
@pytest.mark.parametrize(
    "action,facing", [(FORWARD, N_), (BACKWARD, S_), (STEP_LEFT, E_), (STEP_RIGHT, W_)]
)
def test_entering_an_apple_eats_it(lab, action, facing):
    env = lab.env
    st = lab_state(env, [((8, 7), facing)])
    params = zero_regrowth(lab.params)
    _, nxt, r, _, info = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=action), params)
    assert tuple(np.asarray(nxt.pos[0])) == (7, 7)
    np.testing.assert_array_equal(np.asarray(r), [1, 0, 0, 0, 0])
    assert not bool(nxt.apples[apple_slot(env, 7, 7)])
    assert int(info["apples_alive"]) == len(LAB_APPLES) - 1 == int(nxt.apples.sum())
    np.testing.assert_array_equal(np.asarray(info["apples_collected"]), np.asarray(r))


@pytest.mark.parametrize("action", [NOOP, TURN_LEFT, TURN_RIGHT, ZAP])
def test_standing_on_a_live_apple_does_not_eat(lab, action):
    env = lab.env
    st = lab_state(env, [((7, 7), N_)])  # a live apple under the agent (e.g. regrown there)
    _, nxt, r, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=action), zero_regrowth(lab.params))
    assert float(r.sum()) == 0.0
    assert bool(nxt.apples[apple_slot(env, 7, 7)])
    assert tuple(np.asarray(nxt.pos[0])) == (7, 7)


def test_entering_a_dead_apple_cell_or_bumping_gives_nothing(lab):
    env = lab.env
    params = zero_regrowth(lab.params)
    # Dead apple at (7, 7): entering it gives nothing.
    st = lab_state(env, [((8, 7), N_)], alive=[(6, 6)])
    _, nxt, r, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=FORWARD), params)
    assert tuple(np.asarray(nxt.pos[0])) == (7, 7) and float(r.sum()) == 0.0
    # A blocked move (another agent stands on the apple) eats nothing, for either agent.
    st = lab_state(env, [((8, 7), N_), ((7, 7), S_)])
    _, nxt, r, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=FORWARD), params)
    assert float(r.sum()) == 0.0 and bool(nxt.apples[apple_slot(env, 7, 7)])
    assert tuple(np.asarray(nxt.pos[0])) == (8, 7)


def test_regrown_apple_under_agent_is_eaten_only_on_reentry(lab):
    env = lab.env
    params = lab.params.replace(regrowth_probs=jnp.ones_like(lab.params.regrowth_probs))  # always regrow
    st = lab_state(env, [((8, 7), N_)])
    slot = apple_slot(env, 7, 7)
    rewards, alive = [], []
    for i, a in enumerate([FORWARD, NOOP, TURN_LEFT, TURN_RIGHT, BACKWARD, FORWARD]):
        _, st, r, _, _ = lab.step_env(jax.random.key(i), st, acts(LAB_N, a0=a), params)
        rewards.append(float(r[0]))
        alive.append(bool(st.apples[slot]))
    assert rewards == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert alive[1:5] == [True] * 4  # regrew under the standing agent, not eaten by standing on it


@pytest.mark.parametrize("facing", [N_, E_, S_, W_])
def test_turns_rotate_in_place(lab, facing):
    st = lab_state(lab.env, [((6, 2), facing), ((6, 4), facing)])
    _, nxt, r, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=TURN_LEFT, a1=TURN_RIGHT), lab.params)
    np.testing.assert_array_equal(np.asarray(nxt.facing[:2]), [(facing + 3) % 4, (facing + 1) % 4])
    np.testing.assert_array_equal(np.asarray(nxt.pos), np.asarray(st.pos))
    assert float(r.sum()) == 0.0


# =============================================================================== 3. regrowth
NEIGHBOURS = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1), (0, 2), (2, 0), (0, -2), (-2, 0)]
KNIGHT = [(1, 2), (2, -1), (-1, -2), (-2, 1)]  # distance sqrt(5) > 2: not neighbours
# (live neighbours k, extra dead neighbours, extra live cells at distance sqrt 5)
CLUSTERS = [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (5, 0, 0), (12, 0, 0), (1, 3, 0), (0, 0, 4)]
CLUSTER_K = [k for k, _, _ in CLUSTERS]


def regrowth_map():
    """Isolated clusters (centres 7 columns apart, row 3); the single agent is walled into a
    1-cell pocket below, so nothing ever eats an apple."""
    W = 7 * len(CLUSTERS) + 1
    g = char_grid(10, W, "W")
    g[1:6, 1 : W - 1] = " "
    centres, dead = [], []
    for i, (k, d, kn) in enumerate(CLUSTERS):
        cy, cx = 3, 3 + 7 * i
        cells = [(cy, cx)] + [(cy + dy, cx + dx) for dy, dx in NEIGHBOURS[: k + d] + KNIGHT[:kn]]
        for r, c in cells:
            g[r, c] = "A"
        centres.append((cy, cx))
        dead += [(cy + dy, cx + dx) for dy, dx in NEIGHBOURS[k : k + d]]
    g[8, 1] = "P"
    return ascii_map(g, "regrowth"), centres, dead


@pytest.fixture(scope="module")
def regrowth():
    m, centres, dead = regrowth_map()
    env = sedjax.make("apple_grid", map=m, num_agents=1)
    c_slots = jnp.asarray([apple_slot(env, *rc) for rc in centres])
    kill = jnp.asarray([apple_slot(env, *rc) for rc in centres + dead])
    apples0 = jnp.ones(env.num_apple_cells, bool).at[kill].set(False)
    st0 = grid_state(env, [(8, 1)], [N_], apples=apples0)

    def one_env(key, params):
        def body(st, k):
            _, nxt, _, _, _ = env.step_env(k, st, jnp.zeros((1,), jnp.int32), params)
            grown = nxt.apples[c_slots]
            return nxt.replace(apples=nxt.apples.at[kill].set(False)), grown

        st, grown = jax.lax.scan(body, st0, jax.random.split(key, 200))
        return grown.sum(0), st.apples

    run = jax.jit(jax.vmap(one_env, in_axes=(0, None)))
    return env, run, kill


@pytest.mark.parametrize(
    "table", [(0.0, 0.1, 0.2, 0.3), (0.0, 0.0025, 0.005, 0.025), (0.0, 1.0, 1.0, 1.0)],
    ids=["large", "default", "extremes"],
)
def test_regrowth_rate_matches_table(regrowth, table):
    """A dead cell with k live neighbours (other apple cells within distance 2) regrows with p(k) per
    step; dead neighbours and cells at distance sqrt(5) do not count; the last entry covers k up to 12;
    p(0) = 0 never regrows and p = 1 always does. 256 envs x 200 steps = 51200 Bernoulli trials per
    cluster, 4-sigma tolerance."""
    env, run, kill = regrowth
    if table[1] == 0.0025:
        np.testing.assert_allclose(np.asarray(env.default_params.regrowth_probs), table)  # the default
    params = env.default_params.replace(regrowth_probs=jnp.asarray(table, jnp.float32))
    counts, final = run(jax.random.split(jax.random.key(5), 256), params)
    counts = np.asarray(counts).sum(0)
    trials = 256 * 200
    for k, c in zip(CLUSTER_K, counts):
        p = table[min(k, 3)]
        if p in (0.0, 1.0):
            assert c == p * trials, (k, c)
        else:
            assert_binomial(c, trials, p)
    # Nobody ate anything: the live neighbours are still alive.
    alive = np.ones(env.num_apple_cells, bool)
    alive[np.asarray(kill)] = False
    assert np.asarray(final)[:, alive].all()


# =============================================================================== 4. observations
@pytest.mark.parametrize("ahead,right", [(3, 0), (3, 2), (2, -3), (-1, 1)])
def test_observation_is_egocentric(lab, ahead, right):
    """An apple ``ahead`` cells in front and ``right`` to the right lands on window cell
    (9 - ahead, 5 + right) whatever the agent's facing."""
    env = lab.env
    apple = np.array([7, 7])
    for f in range(4):
        pos = apple - ahead * DIRS[f] - right * DIRS[(f + 1) % 4]
        st = lab_state(env, [(tuple(pos), f)], alive=[(7, 7)])
        obs = np.asarray(env.get_obs(st))
        assert obs.shape == (LAB_N, 11, 11, 4)
        a = obs[0, ..., APPLE]
        assert a.sum() == 1 and a[CY - ahead, CX + right] == 1, f"facing {f}: apple at {np.argwhere(a)}"


def test_observation_after_step_rotates_with_turn(lab):
    """After TURN_RIGHT facing N, an apple that was 3 cells to the right is 3 cells ahead."""
    st = lab_state(lab.env, [((7, 4), N_)], alive=[(7, 7)])
    obs, nxt, _, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=TURN_RIGHT), lab.params)
    assert int(nxt.facing[0]) == E_
    a = np.asarray(obs[0, ..., APPLE])
    assert a.sum() == 1 and a[CY - 3, CX] == 1


@pytest.mark.parametrize(
    "pos,facing,oob",
    [((5, 0), N_, True), ((0, 5), E_, True), ((5, 13), S_, False), ((13, 5), W_, False)],
    ids=["N-edge", "E-edge", "S-wall", "W-wall"],
)
def test_wall_on_the_left_appears_in_left_columns(lab, pos, facing, oob):
    """The cell to the agent's left is a wall (a real one, or outside the map): window (9, 4) is wall,
    window (9, 6) (the floor to its right) is not."""
    obs = np.asarray(lab.env.get_obs(lab_state(lab.env, [(pos, facing)])))[0, ..., WALL]
    assert obs[CY, CX - 1] == 1 and obs[CY, CX + 1] == 0 and obs[CY, CX] == 0
    if oob:  # everything further left is outside the map: wall as well
        assert (obs[:, : CX] == 1).all()


def test_out_of_map_reads_as_wall(lab):
    """Agent on the top edge (row 0, no border wall) facing N: all 9 rows ahead are outside the map."""
    st = lab_state(lab.env, [((0, 6), N_)])
    obs = np.asarray(lab.env.get_obs(st))[0]
    assert (obs[:CY, :, WALL] == 1).all() and (obs[:CY, :, APPLE] == 0).all()
    assert (obs[CY:, :, WALL] == 0).all()  # its own row and the row behind are floor
    # And it cannot walk out of the map.
    _, nxt, _, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=FORWARD), lab.params)
    assert tuple(np.asarray(nxt.pos[0])) == (0, 6)


def test_self_and_other_agent_channels(lab):
    env = lab.env
    st = lab_state(env, [((10, 7), N_), ((8, 7), S_), ((10, 9), E_)], alive=[])
    obs = np.asarray(env.get_obs(st))
    for i in range(3):
        assert obs[i, ..., SELF].sum() == 1 and obs[i, CY, CX, SELF] == 1
        assert obs[i, CY, CX, OTHER] == 0
    o0 = obs[0, ..., OTHER]  # agent 1 is 2 ahead, agent 2 two to the right
    assert o0.sum() == 2 and o0[CY - 2, CX] == 1 and o0[CY, CX + 2] == 1
    o1 = obs[1, ..., OTHER]  # facing S at (8, 7): agent 0 two ahead, agent 2 two ahead and two to its left
    assert o1.sum() == 2 and o1[CY - 2, CX] == 1 and o1[CY - 2, CX - 2] == 1
    o2 = obs[2, ..., OTHER]  # facing E at (10, 9): both others are 2 columns behind it: out of view
    assert o2.sum() == 0


def test_collected_in_view_counts_only_others_in_the_window(lab):
    """info['collected_in_view'] (S_i for social_scope='view'): apples eaten this step by the *other*
    agents inside i's window after the step."""
    env = lab.env
    agents = [
        ((8, 8), S_),  # 0: looks south; (7, 7) is 1 behind / 1 right of it, (6, 6) and (2, 9) out of view
        ((8, 7), N_),  # 1: eats (7, 7)
        ((6, 5), E_),  # 2: eats (6, 6)
        ((3, 9), N_),  # 3: eats (2, 9)
    ]
    st = lab_state(env, agents)
    _, nxt, r, _, info = lab.step_env(jax.random.key(0), st, acts(LAB_N, a1=FORWARD, a2=FORWARD, a3=FORWARD),
                                      zero_regrowth(lab.params))
    np.testing.assert_array_equal(np.asarray(r), [0, 1, 1, 1, 0])
    # 1 at (7, 7) facing N sees 2 (1 ahead, 1 left) and 3 (5 ahead, 2 right); 2 at (6, 6) facing E sees
    # 1 (1 ahead, 1 right) and 3 (3 ahead, 4 left); 3 at (2, 9) facing N has both 4+ cells behind it.
    np.testing.assert_array_equal(np.asarray(info["collected_in_view"]), [1, 2, 2, 0, 0])


def test_other_agents_facing_channels():
    """obs_facing=True adds 4 channels: the other agent's facing relative to the observer's
    (ahead = same direction, right, back = towards me, left)."""
    env = sedjax.make("apple_grid", map=lab_map(), num_agents=LAB_N, obs_facing=True)
    assert env.observation_space(env.default_params).shape == (LAB_N, 11, 11, 8)
    for f1 in range(4):
        st = lab_state(env, [((10, 7), N_), ((8, 7), f1)])
        obs = np.asarray(env.get_obs(st))
        assert obs.shape == (LAB_N, 11, 11, 8)
        fac = obs[0, CY - 2, CX, 4:]
        np.testing.assert_array_equal(fac, np.eye(4)[f1])  # observer faces N: relative = absolute
        assert obs[0, ..., 4:].sum() == 1  # only at the other agent's cell
        # Seen by agent 1: agent 0 faces N; relative to agent 1's facing f1.
        if f1 == S_:  # agent 0 is 2 ahead of agent 1
            np.testing.assert_array_equal(obs[1, CY - 2, CX, 4:], np.eye(4)[(N_ - S_) % 4])


# =============================================================================== 5. zapping
Z0 = (6, 2)  # the zapper's cell, facing E


@pytest.mark.parametrize(
    "ahead,right,hit",
    [(1, 0, True), (2, 0, True), (3, 0, True), (4, 0, False), (1, -1, True), (3, 1, True),
     (3, -1, True), (1, 2, False), (0, 1, False), (-1, 0, False), (4, 1, False)],
)
def test_zap_beam_geometry(lab, ahead, right, hit):
    """Beam: 3 cells ahead x 3 lanes (1 each side)."""
    victim = ahead_right(Z0, E_, ahead, right)
    st = lab_state(lab.env, [(Z0, E_), (victim, N_)])
    obs, nxt, r, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=ZAP), lab.params)
    assert bool(nxt.on_map[1]) == (not hit)
    assert bool(nxt.on_map[0]) and nxt.on_map[2:].all()
    assert float(jnp.abs(r).sum()) == 0.0  # no reward or penalty for zapping or being zapped
    if hit:
        assert int(nxt.removed_for[1]) == 4
        assert (np.asarray(obs[1]) == 0).all()


@pytest.mark.parametrize("facing", [N_, E_, S_, W_])
def test_zap_beam_rotates_with_facing(lab, facing):
    z = (7, 6)
    near, far, side = (ahead_right(z, facing, 3, 1), ahead_right(z, facing, 4, 0), ahead_right(z, facing, 2, 2))
    st = lab_state(lab.env, [(z, facing), (near, N_), (far, N_), (side, N_)])
    _, nxt, _, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=ZAP), lab.params)
    np.testing.assert_array_equal(np.asarray(nxt.on_map[:4]), [True, False, True, True])


def test_zap_stops_at_first_agent_and_walls(lab):
    # Centre lane: the first agent is hit, the one behind it is shielded; the side lane is independent.
    st = lab_state(lab.env, [(Z0, E_), ((6, 3), N_), ((6, 5), N_), ((5, 4), N_)])
    _, nxt, _, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=ZAP), lab.params)
    np.testing.assert_array_equal(np.asarray(nxt.on_map[:4]), [True, False, True, False])
    # A wall 2 ahead shields the cell behind it in that lane; the lane beside it is open.
    z = (10, 9)
    assert ahead_right(z, E_, 2, 0) == INNER_WALL
    st = lab_state(lab.env, [(z, E_), ((10, 12), N_), ((9, 11), N_)])
    _, nxt, _, _, _ = lab.step_env(jax.random.key(0), st, acts(LAB_N, a0=ZAP), lab.params)
    np.testing.assert_array_equal(np.asarray(nxt.on_map[:3]), [True, True, False])


def test_zapped_agent_removed_for_4_steps_then_respawns_on_free_p(lab):
    env = lab.env
    # Zapper, victim, and three parked agents in 3 of the 4 pockets: one free P cell remains.
    st = lab_state(env, [(Z0, E_), ((6, 3), W_)])
    plan = [acts(LAB_N, a0=ZAP, a1=FORWARD), acts(LAB_N, a0=FORWARD, a1=FORWARD)] + [acts(LAB_N, a1=FORWARD)] * 3
    on, obs1, seen_by_zapper = [], [], []
    for i, a in enumerate(plan):
        obs, st, r, _, _ = lab.step_env(jax.random.key(10 + i), st, a, lab.params)
        on.append(bool(st.on_map[1]))
        obs1.append(np.asarray(obs[1]))
        seen_by_zapper.append(int(np.asarray(obs[0, ..., OTHER]).sum()))
        assert_valid_positions(env.map, st.pos, st.on_map)
        assert float(r.sum()) == 0.0
        if i == 1:  # the victim occupies no cell: the zapper walked into its former cell
            assert tuple(np.asarray(st.pos[0])) == (6, 3)
    assert on == [False, False, False, False, True]
    for o in obs1[:4]:
        assert (o == 0).all()
    assert obs1[4][CY, CX, SELF] == 1
    assert seen_by_zapper[:4] == [0, 0, 0, 0]
    assert tuple(np.asarray(st.pos[1])) == POCKETS[3]  # the only free P cell


@pytest.mark.parametrize("cooldown", [0, 2, 3])
def test_zap_cooldown(lab, cooldown):
    """Melting Pot's cooldown: after zapping, an agent waits ``zap_cooldown`` steps, so with
    cooldown c it zaps at most every (c + 1)-th step (every 3rd with the default 2)."""
    params = lab.params.replace(zap_cooldown=jnp.int32(cooldown))
    # V1 in front shields V2 on the first zap; afterwards V2 is exposed.
    st = lab_state(lab.env, [(Z0, E_), ((6, 3), N_), ((6, 4), N_)])
    hits = []
    for i in range(cooldown + 2):
        _, st, _, _, _ = lab.step_env(jax.random.key(i), st, acts(LAB_N, a0=ZAP), params)
        hits.append((not bool(st.on_map[1]), not bool(st.on_map[2])))
    assert hits[0] == (True, False)
    for h in hits[1 : cooldown + 1]:
        assert not h[1]  # zap during the cooldown: V2 untouched
    assert hits[cooldown + 1][1]  # the (c + 1)-th step after the first zap fires (V1 may be back by then)


def test_zap_not_available_without_option(default_grid, lab):
    assert default_grid.env.action_space(default_grid.params).n == 7
    assert lab.env.action_space(lab.params).n == 8


def test_zap_on_map_without_p_cells_is_rejected():
    """Zapped agents respawn on free P cells: a map with only Q spawn cells cannot host the zap."""
    m = ascii_map(["WWWWWW", "WQ  QW", "WWWWWW"])
    sedjax.make("apple_grid", map=m, num_agents=2)  # fine without the zap
    with pytest.raises(ValueError, match="env.zap"):
        sedjax.make("apple_grid", map=m, num_agents=2, zap=True)


# =============================================================================== 6. conflicts
KEYS = 4000


@pytest.fixture(scope="module", params=["lab", "lab70"])
def arena(request):
    return request.getfixturevalue(request.param)


def _contest(fns, agents, moves, alive=None):
    """One step from a hand-made state under KEYS keys; ``moves``: {agent: action}."""
    env = fns.env
    st = lab_state(env, agents, alive=alive, pockets=fns.pockets)
    a = acts(env.num_agents, **{f"a{i}": m for i, m in moves.items()})
    keys = jax.random.split(jax.random.key(123), KEYS)
    _, nxt, r, _, _ = fns.vstep(keys, st, a, fns.params)
    pos = np.asarray(nxt.pos)
    assert_valid_positions(env.map, pos, np.asarray(nxt.on_map))
    return st, pos, np.asarray(r)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_contested_cell_uniform_winner(arena, k):
    """k agents enter the apple cell (6, 6) at once: exactly one succeeds (and eats), each wins with
    probability 1/k."""
    contenders = [((6, 5), E_), ((6, 7), W_), ((7, 6), N_), ((5, 6), S_)][:k]
    _, pos, r = _contest(arena, contenders, {i: FORWARD for i in range(k)})
    won = (pos[:, :k] == np.array([6, 6])).all(-1)
    np.testing.assert_array_equal(won.sum(1), 1)
    np.testing.assert_array_equal(r[:, :k], won.astype(np.float32))
    # Losers stay where they were.
    for i, (p, _) in enumerate(contenders):
        assert (pos[~won[:, i], i] == np.array(p)).all()
    for i in range(k):
        assert_binomial(won[:, i].sum(), KEYS, 1.0 / k)


def test_contest_winner_independent_of_agent_index(lab70):
    """Agents with high indices win as often as low ones (priorities are not index-ordered)."""
    n = lab70.env.num_agents
    st = lab_state(lab70.env, [], pockets=lab70.pockets)
    # Move agents 0 and n-1 out of their pockets next to the contested cell.
    pos = st.pos.at[0].set(jnp.array([6, 5])).at[n - 1].set(jnp.array([6, 7]))
    st = st.replace(pos=pos, facing=st.facing.at[0].set(E_).at[n - 1].set(W_))
    a = acts(n, a0=FORWARD, **{f"a{n - 1}": FORWARD})
    _, nxt, _, _, _ = lab70.vstep(jax.random.split(jax.random.key(7), KEYS), st, a, lab70.params)
    won_last = (np.asarray(nxt.pos[:, n - 1]) == [6, 6]).all(-1)
    won_first = (np.asarray(nxt.pos[:, 0]) == [6, 6]).all(-1)
    assert (won_last ^ won_first).all()
    assert_binomial(won_last.sum(), KEYS, 0.5)


def test_swap_fails(arena):
    st, pos, _ = _contest(arena, [((6, 5), E_), ((6, 6), W_)], {0: FORWARD, 1: FORWARD})
    assert (pos == np.asarray(st.pos)).all()


def test_move_into_cell_vacated_same_step(arena):
    _, pos, _ = _contest(arena, [((6, 4), E_), ((6, 5), E_)], {0: FORWARD, 1: FORWARD})
    assert (pos[:, 0] == [6, 5]).all() and (pos[:, 1] == [6, 6]).all()


def test_rotating_square_never_shares(arena):
    """Four agents in a 2 x 2 square each step into the next one's cell."""
    agents = [((5, 5), E_), ((5, 6), S_), ((6, 6), W_), ((6, 5), N_)]
    _contest(arena, agents, {i: FORWARD for i in range(4)})


def test_move_into_staying_agent_or_wall_fails(arena):
    agents = [((6, 5), E_), ((6, 6), N_), ((10, 10), E_)]  # 0 bumps into 1 (NOOP); 2 into the inner wall
    st, pos, _ = _contest(arena, agents, {0: FORWARD, 2: FORWARD})
    assert (pos == np.asarray(st.pos)).all()


def test_chain_blocked_at_head(arena):
    """A queue walking into a wall: nobody moves."""
    agents = [((6, 11), E_), ((6, 12), E_), ((6, 13), E_)]
    st, pos, _ = _contest(arena, agents, {0: FORWARD, 1: FORWARD, 2: FORWARD})
    assert (pos == np.asarray(st.pos)).all()


def test_cascade_behind_contested_head(arena):
    """A queue of 4 whose head contests a cell with agent 4: the queue moves as a whole iff its head
    wins; never any sharing."""
    agents = [((6, 2), E_), ((6, 3), E_), ((6, 4), E_), ((6, 5), E_), ((6, 7), W_)]
    st, pos, _ = _contest(arena, agents, {i: FORWARD for i in range(5)})
    start = np.asarray(st.pos)
    moved = (pos != start).any(-1)
    head_won = moved[:, 3]
    assert (moved[:, :4] == head_won[:, None]).all()
    assert (moved[:, 4] == ~head_won).all()
    assert_binomial(head_won.sum(), KEYS, 0.5)


# =============================================================================== 8. determinism
def test_jit_equals_no_jit(default_grid, default_reset):
    """Two steps run op by op (``jax.disable_jit``) equal the jitted ones exactly."""
    env, params = default_grid.env, default_grid.params
    _, st = default_reset
    st_j = st_n = st
    for i in range(2):
        key = jax.random.key(100 + i)
        a = env.action_space(params).sample(jax.random.key(200 + i))
        out_j = default_grid.step_env(key, st_j, a, params)
        with jax.disable_jit():
            out_n = env.step_env(key, st_n, a, params)
        for x, y in zip(jax.tree.leaves(out_j), jax.tree.leaves(out_n)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        st_j, st_n = out_j[1], out_n[1]
    assert int(st_j.t) == 2 and not np.array_equal(np.asarray(st_j.pos), np.asarray(st.pos))


def test_same_key_same_trajectory_and_keys_differ(default_grid, default_reset):
    _, st0 = default_reset
    run = default_grid.rollout(300, auto_reset=False)
    _, a = run(jax.random.key(42), st0, default_grid.params)
    _, b = run(jax.random.key(42), st0, default_grid.params)
    _, c = run(jax.random.key(43), st0, default_grid.params)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert not np.array_equal(np.asarray(a["pos"]), np.asarray(c["pos"]))


@pytest.fixture(scope="module")
def short_grid():
    """The default grid with 5-step episodes (``max_steps`` is static: it is the episode's length)."""
    return Fns(sedjax.make("apple_grid", max_steps=5))


@pytest.fixture(scope="module")
def vmapped(short_grid):
    env = short_grid.env
    return jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))


def test_vmap_equals_loop_with_partial_resets(short_grid, vmapped):
    """vmap over envs == a Python loop over them, including auto-resets of only some envs; only the
    envs that finish their episode reset."""
    default_grid = short_grid
    env = default_grid.env
    vstep = vmapped
    params = zero_regrowth(default_grid.params)
    keys = jax.random.split(jax.random.key(9), 4)
    vst = jax.tree.map(lambda *xs: jnp.stack(xs), *[default_grid.reset(k, params)[1] for k in keys])
    # Different times; half the apples eaten by hand.
    vst = vst.replace(t=jnp.asarray([4, 0, 2, 4], jnp.int32), apples=vst.apples.at[:, ::2].set(False))
    loop_st = [jax.tree.map(lambda v: v[i], vst) for i in range(4)]
    for step in range(3):
        skeys = jax.random.split(jax.random.key(50 + step), 4)
        a = jax.vmap(lambda k: env.action_space(params).sample(k))(jax.random.split(jax.random.key(60 + step), 4))
        vout = vstep(skeys, vst, a, params)
        for i in range(4):
            lout = default_grid.step(skeys[i], loop_st[i], a[i], params)
            for x, y in zip(jax.tree.leaves(lout), jax.tree.leaves(jax.tree.map(lambda v: v[i], vout))):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
            loop_st[i] = lout[1]
        if step == 0:
            _, nst, _, done, info = vout
            np.testing.assert_array_equal(np.asarray(done), [True, False, False, True])
            np.testing.assert_array_equal(np.asarray(nst.t), [0, 1, 3, 0])
            apples = np.asarray(nst.apples)
            assert apples[[0, 3]].all()  # new episodes: all apples alive
            assert (apples[[1, 2]].sum(-1) <= 32).all()  # the others keep their eaten apples
            np.testing.assert_array_equal(np.asarray(nst.pos[[0, 3], :2]), np.stack([env.map.inside_spawn[:2]] * 2))
            assert (np.asarray(info["apples_alive"]) <= 32).all()  # info belongs to the finished step
        vst = vout[1]


def test_auto_reset_after_max_steps(short_grid, default_grid, default_reset):
    env = short_grid.env
    params = zero_regrowth(short_grid.params)
    _, st = default_reset
    st = st.replace(apples=st.apples.at[:10].set(False))
    dones = []
    for i in range(5):
        obs, st, _, done, info = short_grid.step(jax.random.key(i), st, jnp.zeros(7, jnp.int32), params)
        dones.append(bool(done))
        if i < 4:
            assert int(st.t) == i + 1 and int(st.apples.sum()) == 54
    assert dones == [False] * 4 + [True]
    assert int(st.t) == 0 and int(st.apples.sum()) == 64
    assert int(info["apples_alive"]) == 54
    np.testing.assert_array_equal(np.asarray(st.pos[:2]), env.map.inside_spawn[:2])
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(env.get_obs(st)))  # obs of the new episode
    # The default bare-grid episode is 1000 steps.
    assert default_grid.env.max_steps == 1000
    _, nxt, _, done, _ = default_grid.step(jax.random.key(0), st.replace(t=jnp.int32(999)), jnp.zeros(7, jnp.int32),
                                           default_grid.params)
    assert bool(done) and int(nxt.t) == 0


# =============================================================================== 13. spaces / info
def test_action_space_sample_is_valid(default_grid):
    """``action_space(params).sample(key)`` gives valid joint actions covering all 7 actions (the zap
    env's 8 actions are covered by the crowded-map rollout, which samples from its space)."""
    space = default_grid.env.action_space(default_grid.params)
    samples = np.stack([np.asarray(space.sample(jax.random.key(200 + i))) for i in range(20)])
    assert samples.shape == (20, 7)
    assert all(bool(space.contains(a)) for a in samples[:3])
    assert set(np.unique(samples)) == set(range(7))
    assert not bool(space.contains(jnp.full((7,), 7)))
    assert not bool(space.contains(jnp.zeros((8,), jnp.int32)))


def test_observation_space_contains_obs(default_grid, default_reset):
    obs, _ = default_reset
    space = default_grid.env.observation_space(default_grid.params)
    assert space.shape == obs.shape and bool(space.contains(obs))
