"""The SPEC's options wired through the env and the config: strategic reports to the vote, dynamic
trust, the Principal observing the whole map, RGB views (values checked against the definitions;
one tiny training run with all of them on)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sedjax
from sedjax import voting
from sedjax.config import compose_config
from sedjax.envs import from_config

SMALL = dict(map="procedural", num_agents=5, period_len=2, periods_per_round=2, rounds_per_episode=3)


def _rollout(env, params, key, steps):
    """``steps`` steps with random agent actions and a random Principal; per-step infos, states."""
    obs, state = env.reset(key, params)

    def step(carry, k):
        state = carry
        k_a, k_p, k_e = jax.random.split(k, 3)
        action = {"agents": jax.random.randint(k_a, (env.num_agents,), 0, env.grid.num_actions),
                  "principal": jax.random.randint(k_p, (env.num_brackets,), 0, env.rate_levels)}
        _, state2, _, _, info = env.step_env(k_e, state, action, params)
        return state2, (info, state2)

    _, (infos, states) = jax.lax.scan(step, state, jax.random.split(key, steps))
    return state, infos, states


# ----------------------------------------------------------------------------- strategic reports
@pytest.mark.parametrize("mechanism", ["mean", "median", "weighted_median"])
def test_strategic_reports_drive_the_vote(mechanism):
    env = sedjax.make("sed", mechanism=mechanism, reports="strategic", **SMALL)
    truthful = sedjax.make("sed", mechanism=mechanism, **SMALL)
    params = env.default_params
    _, state = jax.jit(env.reset)(jax.random.key(3), params)
    reports, iters, ok = voting.strategic_reports(state.sigma, mechanism)
    assert np.all((np.asarray(reports) >= 0) & (np.asarray(reports) <= 1))
    np.testing.assert_allclose(state.voted, voting.vote(reports, mechanism), rtol=1e-6)
    assert int(state.vote_iterations) == int(iters) >= 1
    _, t_state = jax.jit(truthful.reset)(jax.random.key(3), truthful.default_params)
    np.testing.assert_array_equal(t_state.sigma, state.sigma)  # same population
    assert int(t_state.vote_iterations) == 0
    np.testing.assert_allclose(t_state.voted, voting.vote(state.sigma, mechanism), rtol=1e-6)
    if mechanism == "median":  # 5 voters: one agent cannot move the median towards itself
        np.testing.assert_allclose(state.voted, t_state.voted, rtol=1e-6)
    if mechanism == "mean":  # everyone pulls the mean towards itself: a different outcome
        assert abs(float(state.voted) - float(t_state.voted)) > 1e-3


def test_strategic_revote_at_round_start():
    env = sedjax.make("sed", reports="strategic", **SMALL)
    params = env.default_params
    _, infos, states = jax.jit(lambda k: _rollout(env, params, k, 12))(jax.random.key(0))
    sigma = states.sigma[0]
    expected = voting.vote(voting.strategic_reports(sigma, "mean")[0], "mean")
    np.testing.assert_allclose(states.voted, np.full(12, float(expected)), rtol=1e-6)
    ends = np.asarray(infos["round_end"])
    assert ends.sum() == 3 and np.all(np.asarray(infos["vote_iterations"])[ends] >= 1)


def test_report_config_errors():
    with pytest.raises(ValueError, match="voting.reports"):
        sedjax.make("sed", reports="sincere", **SMALL)
    with pytest.raises(ValueError, match="voting.report_grid"):
        sedjax.make("sed", reports="strategic", report_grid=1, **SMALL)
    with pytest.raises(ValueError, match="voting.report_iters"):
        from_config(compose_config(["voting.report_iters=0"]))


# ----------------------------------------------------------------------------- dynamic trust
def test_update_trust_worked():
    env = sedjax.make("sed", trust_rate=0.1, trust_ref=1.0, trust_scale=2.0, **SMALL)
    beta = jnp.array([0.2, 0.9, 0.5, 0.0, 1.0])
    # Two periods per round summing to 10: O_round = 5, beta + 0.1 * (5 - 1) / 2 = beta + 0.2.
    np.testing.assert_allclose(env.update_trust(beta, jnp.float32(10.0), env.default_params),
                               [0.4, 1.0, 0.7, 0.2, 1.0], rtol=1e-6)
    # O_round = -3: beta - 0.2, clipped at 0.
    np.testing.assert_allclose(env.update_trust(beta, jnp.float32(-6.0), env.default_params),
                               [0.0, 0.7, 0.3, 0.0, 0.8], rtol=1e-6, atol=1e-7)
    off = env.default_params.replace(trust_rate=jnp.float32(0.0))
    np.testing.assert_array_equal(env.update_trust(beta, jnp.float32(jnp.nan), off), beta)


def test_dynamic_trust_trajectory_by_hand():
    kappa, ref, scale = 0.3, 4.0, 5.0
    env = sedjax.make("sed", trust_rate=kappa, trust_ref=ref, trust_scale=scale, eta=1.0, **SMALL)
    params = env.default_params
    steps = env.episode_len  # 3 rounds of 2 periods of 2 steps
    _, infos, states = jax.jit(lambda k: _rollout(env, params, k, steps))(jax.random.key(1))
    obj = np.asarray(infos["objective"], np.float64)
    period_end = np.asarray(infos["period_end"])
    beta = np.asarray(states.beta_init[0], np.float64)
    expected = []
    round_sum = 0.0
    for t in range(steps):  # the SPEC's rule, step by step
        if period_end[t]:
            round_sum += obj[t]
        if (t + 1) % env.round_len == 0:
            beta = np.clip(beta + kappa * (round_sum / env.periods_per_round - ref) / scale, 0.0, 1.0)
            round_sum = 0.0
        expected.append(beta.copy())
    np.testing.assert_allclose(np.asarray(states.beta), np.stack(expected), rtol=1e-5, atol=1e-6)
    assert np.abs(np.diff(np.asarray(states.beta), axis=0)).sum() > 0  # trust moved
    # The next episode starts from the trust at the last episode start again.
    obs, state = env.reset_keeping(jax.random.key(9), params, None, jax.tree.map(lambda x: x[-1], states))
    np.testing.assert_array_equal(state.beta, states.beta_init[0])


def test_static_trust_by_default():
    env = sedjax.make("sed", **SMALL)
    _, infos, states = jax.jit(lambda k: _rollout(env, env.default_params, k, env.episode_len))(jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(states.beta), np.broadcast_to(states.beta_init[0], states.beta.shape))


def test_trust_config_errors():
    with pytest.raises(ValueError, match="types.trust_scale"):
        from_config(compose_config(["types.trust_scale=0"]))
    dynamic = sedjax.make("sed", dynamic_trust=True, **SMALL)
    with pytest.raises(ValueError, match="types.trust_rate must be finite"):
        dynamic.check_params(dynamic.default_params.replace(trust_rate=jnp.float32(jnp.inf)))
    dynamic.check_params(dynamic.default_params.replace(trust_rate=jnp.float32(0.2)))
    # Static trust (the default) compiles no trust code, so it cannot honour a nonzero rate.
    static = sedjax.make("sed", **SMALL)
    assert not static.static.dynamic_trust and sedjax.make("sed", trust_rate=0.1, **SMALL).static.dynamic_trust
    with pytest.raises(ValueError, match="types.dynamic_trust is false"):
        static.check_params(static.default_params.replace(trust_rate=jnp.float32(0.1)))
    with pytest.raises(ValueError, match="types.dynamic_trust is false"):
        from_config(compose_config(["types.trust_rate=0.1", "types.dynamic_trust=false"]))


# ----------------------------------------------------------------------------- the Principal sees the map
def test_world_observation_matches_the_map():
    env = sedjax.make("sed", principal_obs="world", **SMALL)
    summary = sedjax.make("sed", **SMALL)
    params = env.default_params
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    H, W, C = env.world_shape
    assert env.principal_obs_dim == summary.principal_obs_dim + H * W * C
    world = np.asarray(obs["principal"][summary.principal_obs_dim:]).reshape(H, W, C)
    np.testing.assert_array_equal(world, np.asarray(env.world_obs(state)))
    m = env.grid.map
    np.testing.assert_array_equal(world[..., 0], m.walls.astype(np.float32))
    assert world[..., 1].sum() == env.grid.num_apple_cells  # every apple alive at reset
    rows, cols = np.asarray(state.grid.pos).T
    assert world[..., 2].sum() == env.num_agents and np.all(world[rows, cols, 2] == 1)
    # The compact summary is unchanged in front of the map.
    _, s_state = jax.jit(summary.reset)(jax.random.key(0), summary.default_params)
    np.testing.assert_array_equal(obs["principal"][: summary.principal_obs_dim],
                                  summary.principal_obs(s_state, summary.default_params))
    with pytest.raises(ValueError, match="env.principal_obs"):
        sedjax.make("sed", principal_obs="pixels", **SMALL)


@pytest.mark.parametrize("objective", ["eta", "pmean"])
def test_voted_obs_index_is_where_the_vote_is(objective):
    """``voted_obs_index`` (what ``principal.policy_input=objective`` reads) points at the voted
    parameter in the Principal's observation, with or without the map after the summary."""
    for extra in ({}, {"principal_obs": "world"}):
        env = sedjax.make("sed", kind=objective, **SMALL, **extra)
        params = env.default_params
        _, state = env.reset(jax.random.key(1), params)
        for v in (0.0, 0.37, 0.81):
            obs = np.asarray(env.principal_obs(state.replace(voted=jnp.float32(v)), params))
            scaled = v if objective == "eta" else v / 10.0  # pmean: p clipped to [-10, 1], over 10
            np.testing.assert_allclose(obs[env.voted_obs_index], scaled, rtol=1e-6)


# ----------------------------------------------------------------------------- one run with all of them
TINY = ["env.map=procedural", "env.num_agents=3", "train.num_envs=2", "train.rollout_len=20", "tax.period_len=10",
        "voting.periods_per_round=2", "env.rounds_per_episode=1", "principal.update_every=1",
        "agents.minibatches=1", "principal.minibatches=1", "train.total_env_steps=40", "train.chunks=1",
        "agents.hidden=16", "principal.hidden=16"]


@pytest.fixture(scope="module")
def options_program():
    from sedjax.train import make_train

    cfg = compose_config(TINY + ["env.obs_mode=rgb", "env.principal_obs=world", "principal.policy_input=state",
                                 "voting.reports=strategic",
                                 "types.trust_rate=0.05", "types.trust_ref=1.0", "voting.mechanism=median"])
    return make_train(cfg)


def test_run_with_every_option(options_program):
    program = options_program
    env = program.env
    assert env.grid.obs_mode == "rgb" and env.world_shape is not None and env.reports == "strategic"
    runner, metrics = jax.jit(program.train)(jax.random.key(0))
    flat = jax.tree.leaves(metrics)
    assert all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in flat if np.issubdtype(np.asarray(x).dtype, np.number))
    assert runner.obs["agents"].shape[-3:] == (88, 88, 3)
    # Trust moved during the episodes and the episode that just started is back at the population's.
    st = runner.env_state
    np.testing.assert_array_equal(st.beta, st.beta_init)
    np.testing.assert_array_equal(st.beta_init, np.broadcast_to(st.beta_init[0], st.beta_init.shape))
    # The Principal's network reads the map: changing only the map part changes its policy.
    pnet, p_params = program.policy.principal_net, runner.principal.params
    pobs = runner.obs["principal"][0]
    d = env.summary_obs_dim
    other = pobs.at[d:].set(1.0 - pobs[d:])
    l1 = pnet.apply(p_params, pobs)[0].distribution.logits
    l2 = pnet.apply(p_params, other)[0].distribution.logits
    assert float(jnp.abs(l1 - l2).max()) > 0
    # The agents' network reads pixels cell by cell: its first layer takes 8x8x3 patches.
    a_params = runner.agents.params["params"]
    assert a_params["PatchConv_0"]["Dense_0"]["kernel"].shape[0] == 8 * 8 * 3


def test_conf_defaults_are_the_paper():
    cfg = compose_config([])
    assert (cfg.env.obs_mode, cfg.env.principal_obs, cfg.voting.reports) == ("symbolic", "summary", "truthful")
    assert cfg.types.trust_rate == 0.0
    env, _ = from_config(cfg)
    assert env.world_shape is None and env.reports == "truthful"
