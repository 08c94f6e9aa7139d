"""Behaviour tests for the full SED game (sedjax.sed.SED): tax periods, settlement, the Principal's
reward, votes at round starts, types across auto-resets, the reward map, and config validation.

One small game (4 agents on an apple-rich 6 x 5 room, periods of 6 steps, 2 periods per round,
2 rounds per episode = 24 steps) is compiled once; its traced parameters (transfer scale, rate bound,
type distributions, resampling) are varied through ``params.replace``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sedjax
from sedjax import tax, voting, welfare

from conftest import ascii_map

RICH = [
    "WWWWWWWW",
    "WPAAAAPW",
    "WAAAAAAW",
    "WAAAAAAW",
    "WAAAAAAW",
    "WPAAAAPW",
    "WWWWWWWW",
]
N_AGENTS = 4
PERIOD, PER_ROUND, ROUNDS = 6, 2, 2
ROUND_LEN, EPISODE = PERIOD * PER_ROUND, PERIOD * PER_ROUND * ROUNDS
THRESHOLDS = (0.0, 2.0, 4.0)
STEPS = 30  # crosses one episode end (after step 24)
KW = dict(
    map=None, num_agents=N_AGENTS, social_scope="all", thresholds=THRESHOLDS, period_len=PERIOD,
    periods_per_round=PER_ROUND, rounds_per_episode=ROUNDS, regrowth_probs=(0.0, 0.3, 0.3, 0.3),
)


def _kw(**extra):
    kw = dict(KW, map=ascii_map(RICH, "rich"))
    kw.update(extra)
    return kw


class Game:
    def __init__(self, env):
        self.env = env
        self.params = env.default_params
        self.reset = jax.jit(env.reset)
        self.step_env = jax.jit(env.step_env)

        def run(key, state, params):
            def body(st, k):
                ka, ks = jax.random.split(k)
                a = env.action_space(params).sample(ka)
                obs, nxt, r, done, info = env.step(ks, st, a, params)
                out = dict(info=info, r_agents=r["agents"], r_principal=r["principal"], done=done,
                           action=a, t=nxt.t, rates=nxt.rates, voted=nxt.voted, sigma=nxt.sigma, beta=nxt.beta,
                           apples=nxt.grid.apples, period_raw=nxt.period_raw, obs_p=obs["principal"],
                           pos=nxt.grid.pos)
                return nxt, out

            return jax.lax.scan(body, state, jax.random.split(key, STEPS))

        self.run = jax.jit(run)


@pytest.fixture(scope="module")
def game():
    return Game(sedjax.make("sed", **_kw()))


@pytest.fixture(scope="module")
def start(game):
    return game.reset(jax.random.key(0), game.params)


def np_tree(t):
    return jax.tree.map(np.asarray, t)


def expected_extrinsic(a, rates, t_before, scale, thresholds=THRESHOLDS):
    """Recompute from the apples collected ``a (T, n)``: per-period raw income, lump sums at period ends
    (``scale * (redistribute(raw) - raw)``), and the period-end mask."""
    T, n = a.shape
    raw = np.zeros(n, np.float32)
    raws, lumps, ends = [], [], []
    for s in range(T):
        if t_before[s] % PERIOD == 0:
            raw = np.zeros(n, np.float32)
        raw = raw + a[s]
        end = (t_before[s] + 1) % PERIOD == 0
        post = np.asarray(tax.redistribute(jnp.asarray(raw), jnp.asarray(rates[s]), jnp.asarray(thresholds)))
        lumps.append(scale * (post - raw) if end else np.zeros(n, np.float32))
        raws.append(raw.copy())
        ends.append(end)
    return np.array(raws), np.array(lumps), np.array(ends)


def t_before_of(traj):
    return np.concatenate([[0], np.asarray(traj["t"])[:-1]])


# =============================================================================== reset / spaces
def test_reset_and_spaces(game, start):
    env = game.env
    obs, st = start
    assert obs["agents"].shape == (N_AGENTS, 11, 11, 4)
    assert obs["principal"].shape == (env.principal_obs_dim,)
    assert bool(env.observation_space(game.params).contains(obs))
    assert int(st.t) == 0 and (np.asarray(st.rates) == 0).all()  # phi_0 = 0
    s, b = np.asarray(st.sigma), np.asarray(st.beta)
    assert ((s >= 0) & (s <= 1)).all() and ((b >= 0) & (b <= 1)).all() and len(set(s.tolist())) == N_AGENTS
    np.testing.assert_allclose(float(st.voted), s.mean(), rtol=1e-6)  # 'eta' + 'mean': eta = mean(sigma)


# =============================================================================== rates and taxes
def test_rates_set_only_at_period_starts(game, start):
    _, st = start
    _, traj = game.run(jax.random.key(1), st, game.params)
    # The actions were drawn with action_space(params).sample(key) inside the rollout: valid ones.
    space = game.env.action_space(game.params)
    for s in (0, 7, STEPS - 1):
        a = jax.tree.map(lambda v: v[s], traj["action"])
        assert bool(space.contains(a))
        assert a["agents"].shape == (N_AGENTS,) and a["principal"].shape == (3,)
    traj = np_tree(traj)
    assert set(np.unique(traj["action"]["principal"])) == set(range(11))
    assert set(np.unique(traj["action"]["agents"])) == set(range(7))
    live = ~traj["done"]  # on the episode's last step, info is the finished step's, the state the new one's
    np.testing.assert_array_equal(traj["info"]["apples_alive"][live], traj["apples"].sum(-1)[live])
    tb = t_before_of(traj)
    rates = traj["info"]["rates"]
    levels = traj["action"]["principal"]
    prev = np.zeros(3)
    changed_mid_period = 0
    for s in range(STEPS):
        if tb[s] % PERIOD == 0:
            np.testing.assert_allclose(rates[s], levels[s] / 10.0, atol=1e-6)
        else:
            np.testing.assert_array_equal(rates[s], prev)  # the principal's action is ignored
            changed_mid_period += not np.array_equal(levels[s], levels[s - 1])
        prev = rates[s]
    assert changed_mid_period > 0
    # The auto-reset (after step 24) starts the new episode with phi = 0 in the state.
    assert traj["done"][EPISODE - 1] and (traj["rates"][EPISODE - 1] == 0).all()


def test_mechanism_obs_shows_the_rates_in_effect(game, start):
    """What the followers see (Stackelberg: the Principal moves first): on a period's first step the
    rates the Principal's action sets (within the divergence bound), on later steps the period's
    rates; thresholds / 10, the position in the period and the round, own apples this period / 10."""
    env, params = game.env, game.params
    _, st = start
    mech = jax.jit(env.mechanism_obs)
    levels = jnp.array([10, 5, 0])
    st0 = st.replace(period_raw=jnp.array([0.0, 3.0, 1.0, 12.0]))
    m = np.asarray(mech(st0, levels, params))
    assert m.shape == (N_AGENTS, env.mechanism_obs_dim) == (4, 9)
    np.testing.assert_allclose(m[:, :3], np.tile([1.0, 0.5, 0.0], (4, 1)))  # the new rates
    np.testing.assert_allclose(m[:, 3:6], np.tile(np.array(THRESHOLDS) / 10, (4, 1)))
    np.testing.assert_allclose(m[:, 6:8], 0.0)
    np.testing.assert_allclose(m[:, 8], [0.0, 0.3, 0.1, 1.2], rtol=1e-6)
    # Within the divergence bound 0.1 from the current rates 0.
    m = np.asarray(mech(st0, levels, params.replace(max_rate_change=jnp.float32(0.1))))
    np.testing.assert_allclose(m[:, :3], np.tile([0.1, 0.1, 0.0], (4, 1)), rtol=1e-6)
    # Mid-period (t = 7: step 1 of period 1, step 7 of the 12-step round): the action is ignored.
    mid = st0.replace(grid=st0.grid.replace(t=jnp.int32(7)), rates=jnp.array([0.2, 0.4, 0.6]))
    m = np.asarray(mech(mid, levels, params))
    np.testing.assert_allclose(m[:, :3], np.tile([0.2, 0.4, 0.6], (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(m[:, 6:8], np.tile([1 / PERIOD, 7 / ROUND_LEN], (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mech(st0, None, params))[:, :3], 0.0)  # before the Principal moves
    # On a trajectory: the rates shown before each step are the rates the step is taxed at.
    k = jax.random.key(3)
    for s in range(8):
        k, ka, ks = jax.random.split(k, 3)
        a = env.action_space(params).sample(ka)
        shown = np.asarray(mech(st, a["principal"], params))[0, :3]
        _, st, _, _, info = game.step_env(ks, st, a, params)
        np.testing.assert_allclose(shown, np.asarray(info["rates"]), rtol=1e-6)


def test_reset_with_types_plays_the_given_population(game):
    env, params = game.env, game.params
    sigma, beta = jnp.array([0.1, 0.2, 0.3, 0.4]), jnp.array([1.0, 0.0, 0.5, 0.25])
    obs, st = jax.jit(env.reset_with_types)(jax.random.key(5), params, sigma, beta)
    np.testing.assert_array_equal(np.asarray(st.sigma), np.asarray(sigma))
    np.testing.assert_array_equal(np.asarray(st.beta), np.asarray(beta))
    np.testing.assert_allclose(float(st.voted), 0.25, rtol=1e-6)  # the vote is on the given sigma
    # Same world as reset_env with the same key (only the types differ).
    _, st_ref = game.reset(jax.random.key(5), params)
    np.testing.assert_array_equal(np.asarray(st.grid.pos), np.asarray(st_ref.grid.pos))


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_tax_settlement_and_principal_reward(game, start, scale):
    _, st = start
    params = game.params.replace(transfer_scale=jnp.float32(scale))
    _, traj = game.run(jax.random.key(1), st, params)
    traj = np_tree(traj)
    info = traj["info"]
    tb = t_before_of(traj)
    a = info["apples_collected"]
    raws, lumps, ends = expected_extrinsic(a, info["rates"], tb, scale)
    np.testing.assert_array_equal(info["period_end"], ends)
    np.testing.assert_allclose(info["period_raw"], raws)
    # Extrinsic reward: apples each step, plus the lump sum on a period's last step only.
    np.testing.assert_allclose(info["extrinsic"], a + lumps, atol=1e-5)
    assert np.abs(lumps).max() > 0.1, "no tax was ever transferred; the test would be vacuous"
    # Conservation: sum of post-tax income == sum of raw apples of the period.
    np.testing.assert_allclose(info["income"][ends].sum(-1), raws[ends].sum(-1), atol=1e-4)
    np.testing.assert_allclose(info["income"][ends], raws[ends] + lumps[ends], atol=1e-5)
    # The Principal's reward: the period objective at period ends, 0 elsewhere.
    eta = info["voted"]
    obj = eta * raws.sum(-1) + (1 - eta) * raws.min(-1)
    np.testing.assert_allclose(traj["r_principal"], np.where(ends, obj, 0.0), rtol=1e-5, atol=1e-5)
    assert (traj["r_principal"][ends] > 0).any()
    # Raw apples: the period_raw in the state restarts at period ends.
    np.testing.assert_allclose(traj["period_raw"][ends], 0.0)


def test_transfer_scale_scales_the_lump_sum(game, start):
    _, st = start
    outs = []
    for scale in (1.0, 0.25):
        _, traj = game.run(jax.random.key(2), st, game.params.replace(transfer_scale=jnp.float32(scale)))
        info = np_tree(traj["info"])
        outs.append((info["apples_collected"], info["extrinsic"] - info["apples_collected"]))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])  # same world
    np.testing.assert_allclose(outs[1][1], 0.25 * outs[0][1], atol=1e-5)
    assert np.abs(outs[0][1]).max() > 0.1


def test_divergence_bound_limits_rate_changes(game, start):
    _, st = start
    delta = 0.2
    _, traj = game.run(jax.random.key(3), st, game.params.replace(max_rate_change=jnp.float32(delta)))
    traj = np_tree(traj)
    tb = t_before_of(traj)
    rates, levels = traj["info"]["rates"], traj["action"]["principal"] / 10.0
    prev = np.zeros(3)
    clipped = 0
    for s in range(STEPS):
        if tb[s] == 0:
            prev = np.zeros(3)  # a new episode starts from phi_0 = 0
        if tb[s] % PERIOD == 0:
            want = np.clip(levels[s], prev - delta, prev + delta)
            np.testing.assert_allclose(rates[s], want, atol=1e-6)
            assert np.abs(rates[s] - prev).max() <= delta + 1e-6
            clipped += (np.abs(levels[s] - prev) > delta + 1e-6).any()
            prev = rates[s]
    assert clipped > 0


# =============================================================================== rewards and types
def _check_reward_formula(traj, sigma, beta):
    info = traj["info"]
    a, e = info["apples_collected"], info["extrinsic"]
    S = a.sum(-1, keepdims=True) - a  # social_scope 'all'
    want = beta * e + (1 - beta) * (sigma * a + (1 - sigma) * S)
    np.testing.assert_allclose(traj["r_agents"], want, rtol=1e-5, atol=1e-5)


def test_reward_formula_heterogeneous_types(game, start):
    _, st = start
    sigma = np.array([0.0, 0.3, 0.8, 1.0], np.float32)
    beta = np.array([1.0, 0.2, 0.5, 0.0], np.float32)
    st = st.replace(sigma=jnp.asarray(sigma), beta=jnp.asarray(beta))
    _, traj = game.run(jax.random.key(4), st, game.params)
    traj = np_tree(traj)
    _check_reward_formula(traj, sigma, beta)
    a = traj["info"]["apples_collected"]
    assert ((a.sum(-1, keepdims=True) - a) > 0).any(axis=0).all()  # everyone saw others collect
    np.testing.assert_array_equal(traj["sigma"], np.broadcast_to(sigma, (STEPS, N_AGENTS)))  # types kept


def test_fixed_types_from_make(game):
    env2 = sedjax.make("sed", **_kw(sigma=0.3, beta=0.6))
    p2 = env2.default_params
    _, st = env2.reset(jax.random.key(5), p2)
    np.testing.assert_allclose(np.asarray(st.sigma), 0.3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(st.beta), 0.6, rtol=1e-6)
    _, traj = Game(env2).run(jax.random.key(6), st, p2)
    _check_reward_formula(np_tree(traj), 0.3, 0.6)


def _draws(env, params, field="beta", n_resets=2000):
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    _, st = reset(jax.random.split(jax.random.key(11), n_resets), params)
    return np.asarray(getattr(st, field)).ravel()


def test_type_distributions_have_their_moments():
    """The drawn types follow the configured distribution: mean and std within 4 standard errors
    (8,000 draws), not only the support."""
    cases = [
        ({"dist": "beta", "a": 2.0, "b": 5.0}, 2 / 7, np.sqrt(10 / (49 * 8))),
        ("uniform", 0.5, np.sqrt(1 / 12)),
        ({"dist": "uniform", "low": 0.2, "high": 0.6}, 0.4, 0.4 / np.sqrt(12)),
        ({"dist": "beta", "a": 50.0, "b": 50.0}, 0.5, np.sqrt(2500 / (100**2 * 101))),
    ]
    for value, mean, std in cases:
        env = sedjax.make("sed", **_kw(beta=value))
        b = _draws(env, env.default_params)
        se_mean, se_std = std / np.sqrt(b.size), std / np.sqrt(2 * b.size)
        assert abs(b.mean() - mean) < 4 * se_mean, (value, b.mean(), mean)
        assert abs(b.std() - std) < 4 * se_std + 1e-3 * std, (value, b.std(), std)
        assert ((b >= 0) & (b <= 1)).all()


def test_type_family_is_static_and_checked():
    """A traced type distribution the env's static family cannot draw is an error, not a silent
    U(0, 1): on an env built with uniform types, Beta(50, 50) params raise naming types.sigma; an
    env built with a Beta family honours any Beta parameters through params."""
    uni = sedjax.make("sed", **_kw())
    bad = uni.default_params.replace(sigma_dist=jnp.asarray([0.0, 1.0, 50.0, 50.0]))
    with pytest.raises(ValueError, match=r"types\.sigma"):
        uni.reset(jax.random.key(0), bad)
    with pytest.raises(ValueError, match=r"types\.sigma"):
        uni.check_params(bad)
    fixed = sedjax.make("sed", **_kw(sigma=0.3))
    with pytest.raises(ValueError, match=r"types\.sigma"):
        fixed.check_params(fixed.default_params.replace(sigma_dist=jnp.asarray([0.0, 1.0, 1.0, 1.0])))
    beta_env = sedjax.make("sed", **_kw(sigma={"dist": "beta", "a": 2.0, "b": 2.0}))
    s = _draws(beta_env, beta_env.default_params.replace(sigma_dist=jnp.asarray([0.0, 1.0, 50.0, 50.0])), "sigma")
    assert abs(s.std() - 0.0498) < 0.004, s.std()  # Beta(50, 50), not U(0, 1) (0.29)


@pytest.mark.parametrize("resample", [False, True])
def test_episode_reset_keeps_types(game, start, resample):
    """After rounds_per_episode rounds the world resets (t = 0, all apples alive, phi = 0) and the
    types are kept (or redrawn with ``resample_on_reset``)."""
    _, st = start
    params = game.params.replace(resample_on_reset=jnp.asarray(resample))
    _, traj = game.run(jax.random.key(7), st, params)
    traj = np_tree(traj)
    done = traj["done"]
    np.testing.assert_array_equal(np.flatnonzero(done), [EPISODE - 1])
    np.testing.assert_array_equal(traj["t"], [*range(1, EPISODE), 0, *range(1, STEPS - EPISODE + 1)])
    assert not traj["apples"][EPISODE - 2].all()  # apples were eaten before the end ...
    assert traj["apples"][EPISODE - 1].all()  # ... and all alive in the new episode
    np.testing.assert_array_equal(traj["period_raw"][EPISODE - 1], 0.0)
    s0, b0 = np.asarray(st.sigma), np.asarray(st.beta)
    np.testing.assert_array_equal(traj["sigma"][EPISODE - 2], s0)
    s1, b1 = traj["sigma"][EPISODE - 1], traj["beta"][EPISODE - 1]
    if resample:
        assert not np.allclose(s1, s0) and not np.allclose(b1, b0)
    else:
        np.testing.assert_array_equal(s1, s0)
        np.testing.assert_array_equal(b1, b0)
    np.testing.assert_allclose(traj["voted"][EPISODE - 1], s1.mean(), rtol=1e-6)  # new episode's vote


def test_vote_happens_at_round_starts(game, start):
    _, st = start
    sigma = np.array([0.1, 0.2, 0.4, 0.9], np.float32)
    st = st.replace(sigma=jnp.asarray(sigma), voted=jnp.float32(0.123))
    _, traj = game.run(jax.random.key(8), st, game.params)
    voted = np.asarray(traj["voted"])  # after each step
    np.testing.assert_allclose(voted[: ROUND_LEN - 1], 0.123)
    np.testing.assert_allclose(voted[ROUND_LEN - 1 :], sigma.mean(), rtol=1e-6)  # eta = mean(sigma) = 0.4
    # The vote is the objective's parameter for the periods that follow (eta for 'eta').
    info = np_tree(traj["info"])
    np.testing.assert_allclose(info["voted"][:ROUND_LEN], 0.123)


def test_world_carries_over_between_rounds(game, start):
    """A voting round's end is not an episode's end: the next round starts from the world as the
    last one left it (mu0 of round k+1 = s_T of round k); only the episode's end resets it."""
    _, st = start
    no_regrowth = game.params.replace(grid=game.params.grid.replace(regrowth_probs=jnp.zeros(4)))
    _, traj = game.run(jax.random.key(21), st, no_regrowth)
    t, apples, pos = (np.asarray(traj[k]) for k in ("t", "apples", "pos"))
    r = ROUND_LEN - 1  # index of the round's last step
    assert t[r] == ROUND_LEN and t[r + 1] == ROUND_LEN + 1 and not traj["done"][r]
    assert not apples[r].all()  # apples were eaten in round 1 ...
    assert (apples[r + 1] <= apples[r]).all()  # ... and stay eaten (no regrowth here, no reset)
    assert (np.abs(pos[r + 1] - pos[r]).sum(-1) <= 1).all()  # agents move one cell at most, no respawn
    np.testing.assert_array_equal(np.asarray(traj["sigma"])[r + 1], np.asarray(traj["sigma"])[r])
    e = EPISODE - 1  # whereas the episode's end resets the world
    assert traj["done"][e] and apples[e].all() and t[e] == 0


@pytest.fixture(scope="module")
def pmean_game():
    return Game(sedjax.make("sed", **_kw(kind="pmean")))


def test_pmean_vote_and_objective(pmean_game, start):
    """'pmean' + 'mean': at a round start p = ln(mean sigma) + 1; the Principal's reward at a period
    end is the power mean of the period's raw apples with the current p."""
    g = pmean_game
    _, st = start  # same static shapes: a state of the eta game is a valid state here
    sigma = np.array([0.1, 0.2, 0.4, 0.9], np.float32)
    raw = np.array([3.0, 1.0, 0.0, 2.0], np.float32)
    st = st.replace(sigma=jnp.asarray(sigma), voted=jnp.float32(0.5), grid=st.grid.replace(t=jnp.int32(ROUND_LEN - 1)),
                    period_raw=jnp.asarray(raw))
    act = {"agents": jnp.zeros(N_AGENTS, jnp.int32), "principal": jnp.zeros(3, jnp.int32)}
    _, nxt, r, done, info = g.step_env(jax.random.key(0), st, act, g.params)
    assert not bool(done) and bool(info["period_end"]) and bool(info["round_end"])
    np.testing.assert_allclose(float(nxt.voted), np.log(sigma.mean()) + 1.0, rtol=1e-5)
    w = raw + np.asarray(info["apples_collected"])
    np.testing.assert_allclose(float(r["principal"]), float(welfare.power_mean(jnp.asarray(w), 0.5)), rtol=1e-5)
    np.testing.assert_allclose(float(r["principal"]), np.mean(np.sqrt(w)) ** 2, rtol=1e-4)
    # Mid-round, mid-period: no reward, vote unchanged.
    st2 = nxt.replace(grid=nxt.grid.replace(t=jnp.int32(1)))
    _, nxt2, r2, _, _ = g.step_env(jax.random.key(1), st2, act, g.params)
    assert float(r2["principal"]) == 0.0 and float(nxt2.voted) == float(nxt.voted)


def test_vote_to_p_matches_voting_module():
    sigma = jnp.array([0.1, 0.2, 0.4, 0.9])
    np.testing.assert_allclose(float(voting.vote_to_p(voting.vote(sigma, "mean"))), np.log(0.4) + 1, rtol=1e-6)


# =============================================================================== config validation
BAD = [
    ("apple_grid", dict(regrowth_probs=(0.0, 1.5)), "env.regrowth_probs"),
    ("apple_grid", dict(regrowth_probs=(-0.1, 0.2)), "env.regrowth_probs"),
    ("sed", dict(regrowth_probs=(0.0, float("nan"))), "env.regrowth_probs"),
    ("sed", dict(thresholds=(0.0, 20.0, 10.0)), "tax.thresholds"),
    ("sed", dict(thresholds=(5.0, 10.0)), "tax.thresholds"),
    ("sed", dict(kind="utilitarian"), "objective.kind"),
    ("sed", dict(mechanism="plurality"), "voting.mechanism"),
    ("sed", dict(eta=1.5), "objective.eta"),
    ("sed", dict(p=0.5), "objective.p"),  # p is set but the family is eta
    ("sed", dict(period_len=2.5), "tax.period_len"),
    ("sed", dict(continuous="yes"), "tax.continuous"),
    ("sed", dict(max_rate_change=-0.1), "tax.max_rate_change"),
    ("sed", dict(rate_levels=1), "tax.rate_levels"),
    ("apple_grid", dict(zap_cooldown=-1), "env.zap_cooldown"),
    ("apple_grid", dict(view_ahead=-1), "env.view_ahead"),
    ("sed", dict(sigma=1.5), "types.sigma"),
    ("sed", dict(sigma=-0.1), "types.sigma"),
    ("sed", dict(sigma="gaussian"), "types.sigma"),
    ("sed", dict(beta={"dist": "beta", "a": 0.0, "b": 1.0}), "types.beta"),
    ("sed", dict(beta={"dist": "beta", "a": 1.0}), "types.beta"),
    ("sed", dict(beta={"dist": "uniform", "low": 0.8, "high": 0.2}), "types.beta"),
    ("sed", dict(social_scope="friends"), "types.social_scope"),
    ("sed", dict(period_len=0), "tax.period_len"),
    ("sed", dict(transfer_scale=2.0), "tax.transfer_scale"),
    ("sed", dict(bogus_option=1), "bogus_option"),
    ("apple_grid", dict(bogus_option=1), "bogus_option"),
    ("apple_grid", dict(period_len=5), "period_len"),  # a SED keyword is unknown to the bare grid
    ("apple_grid", dict(num_agents=63), "env.num_agents"),  # the default map seats 62
    ("apple_grid", dict(map="no_such_map"), "env.map"),
    ("apple_grid", dict(obs_mode="pixels"), "env.obs_mode"),
]


@pytest.mark.parametrize("name,kw,field", BAD, ids=[f for _, _, f in BAD])
def test_invalid_config_raises_naming_field(name, kw, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        sedjax.make(name, **kw)


def test_valid_edge_configs_build():
    sedjax.make("apple_grid", num_agents=62)
    sedjax.make("sed", sigma=0.0, beta=1.0, thresholds=(0.0,), regrowth_probs=(0.0, 1.0))
    with pytest.raises(ValueError):
        sedjax.make("no_such_env")
