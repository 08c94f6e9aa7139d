"""The JaxMARL adapter (sedjax.interop.jaxmarl) against the wrapped SED env and against what
JaxMARL's API and baselines (LogWrapper, IPPO's batchify/unbatchify/info reshape) expect.

Small game: 3 agents on a small room, 5x5 views, 5-step periods, 10-step episodes; every jitted
function is compiled once per module (module-scoped fixtures), which is most of the cost."""

from __future__ import annotations

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from jaxmarl.environments.multi_agent_env import MultiAgentEnv  # noqa: E402
from jaxmarl.wrappers.baselines import LogWrapper  # noqa: E402

import sedjax  # noqa: E402
from sedjax import tax  # noqa: E402
from sedjax.interop.jaxmarl import SEDMultiAgentEnv  # noqa: E402

from conftest import ROOM, ascii_map  # noqa: E402

SED_KW = dict(map=ascii_map(ROOM, "room"), num_agents=3, view_ahead=3, view_behind=1, view_side=2,
              regrowth_probs=(0.0, 0.3, 0.4, 0.5), thresholds=(0.0, 1.0, 2.0), period_len=5,
              periods_per_round=2, rounds_per_episode=1)  # 10-step episodes
RATES = (0.1, 0.25, 0.4)
EP = 10
T = 2 * EP + 3  # two auto-resets inside a rollout
TOL = dict(rtol=1e-6, atol=1e-6)


def tree_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def sample_actions(env, key):
    keys = jax.random.split(key, len(env.agents))
    return {a: env.action_space(a).sample(k) for a, k in zip(env.agents, keys)}


def rollout(env, key, steps):
    """Reset, then ``steps`` auto-resetting steps with actions sampled from the action spaces."""
    k0, key = jax.random.split(key)
    obs0, s0 = env.reset(k0)

    def body(carry, k):
        obs, s = carry
        ka, ks = jax.random.split(k)
        act = sample_actions(env, ka)
        obs2, s2, r, d, info = env.step(ks, s, act)
        return (obs2, s2), dict(obs=obs, state=s, act=act, key=ks, next_obs=obs2, next_state=s2, reward=r, done=d,
                                info=info)

    return (obs0, s0), jax.lax.scan(body, (obs0, s0), jax.random.split(key, steps))[1]


def sed_replay(sed, key, keys, principal_actions, agent_actions):
    """The wrapped env's own ``reset``/``step`` (auto-reset) with the same keys and actions."""
    k0, _ = jax.random.split(key)
    obs0, s0 = sed.reset_env(k0, sed.default_params)

    def body(carry, x):
        obs, s = carry
        k, pa, aa = x
        obs2, s2, r, d, info = sed.step(k, s, {"agents": aa, "principal": pa})
        return (obs2, s2), dict(obs=obs, state=s, next_obs=obs2, next_state=s2, reward=r, done=d, info=info)

    return jax.lax.scan(body, (obs0, s0), (keys, principal_actions, agent_actions))[1]


def stack_agents(d, agents):
    return jnp.stack([d[a] for a in agents], -1)


@pytest.fixture(scope="module")
def sed():
    return sedjax.make("sed", **SED_KW)


@pytest.fixture(scope="module")
def fixed(sed):
    return SEDMultiAgentEnv(sed, rates=RATES)


@pytest.fixture(scope="module")
def as_agent(sed):
    return SEDMultiAgentEnv(sed, principal="agent", info="raw")


@pytest.fixture(scope="module")
def replay(sed):
    return jax.jit(lambda key, keys, pa, aa: sed_replay(sed, key, keys, pa, aa))


@pytest.fixture(scope="module")
def get_obs(fixed):
    return jax.jit(fixed.get_obs)


@pytest.fixture(scope="module")
def fixed_run(fixed):
    key = jax.random.PRNGKey(3)
    return key, jax.jit(lambda k: rollout(fixed, k, T))(key)


@pytest.fixture(scope="module")
def agent_run(as_agent):
    key = jax.random.PRNGKey(4)
    return key, jax.jit(lambda k: rollout(as_agent, k, T))(key)


def expected_obs(env, sed, env_obs, state, principal_action):
    """Each follower's flat vector: its view, then SED.mechanism_obs (over a time axis)."""
    views = env_obs["agents"].astype(jnp.float32)  # (T, n, H, W, C)
    mech = jax.vmap(sed.mechanism_obs, in_axes=(0, None, None))(state, principal_action, sed.default_params)
    flat = jnp.concatenate([views.reshape(*views.shape[:2], -1), mech], -1)
    return {a: flat[:, i] for i, a in enumerate(env.followers)}


# ---------------------------------------------------------------------------- the interface
def test_interface_and_spaces_hold_what_the_env_returns(fixed, as_agent, fixed_run, agent_run):
    assert isinstance(fixed, MultiAgentEnv)
    assert fixed.agents == ["agent_0", "agent_1", "agent_2"] and fixed.num_agents == 3
    assert as_agent.agents == ["agent_0", "agent_1", "agent_2", "principal"] and as_agent.num_agents == 4
    for env, (_, ((obs0, s0), traj)) in ((fixed, fixed_run), (as_agent, agent_run)):
        assert set(env.observation_spaces) == set(env.action_spaces) == set(env.agents)
        assert set(traj["reward"]) == set(env.agents) and set(traj["done"]) == set(env.agents) | {"__all__"}
        assert set(obs0) == set(env.agents)
        for a in env.agents:
            space = env.observation_space(a)
            for o in (obs0[a], *traj["next_obs"][a]):
                assert o.shape == space.shape and o.dtype == space.dtype
                assert bool(space.contains(o)), (a, o)
            # Sampled actions were accepted: the world moved (positions differ somewhere).
            assert env.action_space(a).contains(traj["act"][a][0])
        avail = env.get_avail_actions(s0)
        assert avail["agent_0"].shape == (env.action_space("agent_0").n,) and bool(avail["agent_0"].all())
    # Every info leaf is (num_agents,) per step: what IPPO's ``info.reshape(NUM_ACTORS)`` needs.
    for k, v in fixed_run[1][1]["info"].items():
        assert v.shape == (T, fixed.num_agents), k
    # info="raw" (the agent-mode fixture) is SED's info; per agent, the Principal's entry of the
    # followers' quantities is 0 and shared ones are broadcast.
    raw = agent_run[1][1]["info"]
    assert set(raw) >= {"rates", "apples_collected", "income", "period_end"} and raw["rates"].shape == (T, 3)
    pick = lambda tree: jax.tree.map(lambda x: x[EP - 1], tree)  # noqa: E731
    per = SEDMultiAgentEnv(as_agent.env, principal="agent")._per_agent_info(
        {"principal": pick(agent_run[1][1]["reward"])["principal"]}, pick(raw))
    for k, v in per.items():
        assert v.shape == (4,), k
    np.testing.assert_array_equal(per["income"], np.append(pick(raw)["income"], 0.0))
    np.testing.assert_array_equal(per["rate_2"], np.full(4, pick(raw)["rates"][2]))
    np.testing.assert_array_equal(per["principal_reward"], np.full(4, pick(agent_run[1][1]["reward"])["principal"]))
    # The default space is a follower's (``env.action_space().n`` in JaxMARL's CNN baselines).
    assert fixed.action_space().n == fixed.env.grid.num_actions
    pos = fixed_run[1][1]["next_state"].grid.pos
    assert np.any(np.asarray(pos[1:] != pos[:-1]))
    assert as_agent.action_space("principal").shape == (3,)
    assert as_agent.observation_space("principal").shape == (fixed.env.principal_obs_dim,)


def test_matches_sed_step_with_the_same_keys(fixed, sed, fixed_run, replay):
    key, ((obs0, _), traj) = fixed_run
    agent_act = stack_agents(traj["act"], fixed.followers)
    ref = replay(key, traj["key"], jnp.broadcast_to(jnp.float32(RATES), (T, 3)), agent_act)
    # Separately compiled programs may round float sums differently (1 ulp): rewards to 1e-6.
    tree_close(traj["next_state"], ref["next_state"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(traj["next_state"].grid.pos, ref["next_state"].grid.pos)
    np.testing.assert_allclose(stack_agents(traj["reward"], fixed.followers), ref["reward"]["agents"], **TOL)
    np.testing.assert_array_equal(traj["done"]["__all__"], ref["done"])
    want = expected_obs(fixed, sed, ref["next_obs"], ref["next_state"], jnp.float32(RATES))
    for a in fixed.followers:
        np.testing.assert_allclose(traj["next_obs"][a], want[a], **TOL)
    # The per-agent info is SED's.
    for k in ("apples_collected", "income", "extrinsic", "period_raw"):
        np.testing.assert_allclose(traj["info"][k], ref["info"][k], **TOL)
    np.testing.assert_array_equal(traj["info"]["period_end"][:, 0], ref["info"]["period_end"])


def test_all_done_exactly_at_the_time_limit_and_auto_reset(fixed, fixed_run, get_obs):
    _, ((obs0, s0), traj) = fixed_run
    done = np.asarray(traj["done"]["__all__"])
    np.testing.assert_array_equal(np.flatnonzero(done), [EP - 1, 2 * EP - 1])
    for a in fixed.agents:
        np.testing.assert_array_equal(traj["done"][a], done)
    t_next = np.asarray(traj["next_state"].t)
    np.testing.assert_array_equal(t_next, [(i + 1) % EP for i in range(T)])  # a new episode after done
    # The returned obs after done is the new episode's (its state's), not the finished one's.
    for i in np.flatnonzero(done):
        s = jax.tree.map(lambda x: x[i], traj["next_state"])
        assert np.all(np.asarray(s.period_raw) == 0)
        tree_close({a: traj["next_obs"][a][i] for a in fixed.agents}, get_obs(s), rtol=0, atol=0)
    # Types carry over into the next episode (SED.reset_keeping; resample_on_reset is off).
    np.testing.assert_array_equal(traj["next_state"].sigma[-1], s0.sigma)
    # get_obs of any state is the observation step returned for it.
    i = 3
    s = jax.tree.map(lambda x: x[i], traj["next_state"])
    tree_close({a: traj["next_obs"][a][i] for a in fixed.agents}, get_obs(s), rtol=0, atol=0)


def test_step_env_get_obs_and_reset_state_follow_jaxmarls_step(fixed, fixed_run):
    """JaxMARL's own ``MultiAgentEnv.step`` (built on the adapter's ``step_env``, ``get_obs`` and
    ``reset``), with ``reset_state``, gives what the adapter's ``step`` gives; at done both return
    ``reset_state``, elsewhere the trajectory's step (over every step of it, vmapped)."""
    _, ((obs0, s0), traj) = fixed_run

    def both(k, s, a):
        return MultiAgentEnv.step(fixed, k, s, a, reset_state=s0), fixed.step(k, s, a, reset_state=s0)

    theirs, ours = jax.jit(jax.vmap(both))(traj["key"], traj["state"], traj["act"])
    tree_close(theirs, ours, rtol=0, atol=0)
    done = np.asarray(traj["done"]["__all__"])
    keep = lambda tree, m: jax.tree.map(lambda x: x[m], tree)  # noqa: E731
    want = (traj["next_obs"], traj["next_state"], traj["reward"], traj["done"], traj["info"])
    tree_close(keep(ours, ~done), keep(want, ~done), **TOL)
    tree_close(keep(ours[2:], done), keep(want[2:], done), **TOL)  # the finished step's rewards, dones, info
    for i in np.flatnonzero(done):
        tree_close(keep(ours[:2], i), (obs0, s0), rtol=0, atol=0)


def test_jit_equals_no_jit(fixed, fixed_run):
    """The trajectory was scanned inside one ``jax.jit``; the same steps called one by one from
    Python (the adapter's own jitted ``reset``/``step``, as JaxMARL's envs) agree."""
    key, ((obs0, s0), traj) = fixed_run
    k0, _ = jax.random.split(key)
    o, s = fixed.reset(k0)
    tree_close((o, s), (obs0, s0), rtol=0, atol=0)
    for i in range(EP + 1):  # through an auto-reset
        o, s, r, d, info = fixed.step(traj["key"][i], s, jax.tree.map(lambda x: x[i], traj["act"]))
        want = jax.tree.map(lambda x: x[i], (traj["next_obs"], traj["next_state"], traj["reward"], traj["done"]))
        tree_close((o, s, r, d), want, **TOL)


# ---------------------------------------------------------------------------- the Principal
def test_fixed_schedule_is_what_the_env_applies(fixed, fixed_run, sed):
    _, (_, traj) = fixed_run
    for b, r in enumerate(RATES):
        np.testing.assert_allclose(traj["info"][f"rate_{b}"], np.float32(r))
    live = ~np.asarray(traj["done"]["__all__"])  # (a reset state's rates are 0 until its first step)
    np.testing.assert_allclose(traj["next_state"].rates[live], np.broadcast_to(np.float32(RATES), (live.sum(), 3)))
    # The followers see the schedule's rates (the first B mechanism features), from the first step.
    V = int(np.prod(fixed.view_shape))
    for a in fixed.followers:
        np.testing.assert_allclose(traj["obs"][a][:, V:V + 3], np.broadcast_to(np.float32(RATES), (T, 3)))
    # Income is taxed by the schedule: at period ends, income == settle_period(raw, RATES).
    pe = np.asarray(traj["info"]["period_end"][:, 0])
    want, _ = tax.settle_period(traj["info"]["period_raw"][pe], jnp.float32(RATES), sed.default_params.thresholds)
    np.testing.assert_allclose(traj["info"]["income"][pe], want, rtol=1e-6)
    with pytest.raises(ValueError, match="rates"):
        SEDMultiAgentEnv(sed, rates=(0.1, 0.2))
    with pytest.raises(ValueError, match="rates"):
        SEDMultiAgentEnv(sed, rates=(0.1, 0.2, 1.5))
    with pytest.raises(ValueError, match="rates"):
        SEDMultiAgentEnv(sed, principal="agent", rates=RATES)


def test_principal_agent_acts_at_period_starts(as_agent, sed, agent_run, replay):
    key, ((obs0, s0), traj) = agent_run
    levels = np.asarray(traj["act"]["principal"])  # (T, B), a fresh random action every step
    t = np.asarray(traj["state"].t)
    want, cur = [], np.zeros(3, np.float32)
    for i in range(T):
        if t[i] % 5 == 0:
            cur = levels[i] / np.float32(sed.rate_levels - 1)
        want.append(cur)
    want = np.stack(want)
    got = np.asarray(traj["info"]["rates"])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len({tuple(r) for r in want}) > 1  # the actions did change the rates
    # Same outcome as SED.step given the action (as rates: levels / (L - 1)).
    ref = replay(key, traj["key"], jnp.float32(levels / (sed.rate_levels - 1)),
                 stack_agents(traj["act"], as_agent.followers))
    tree_close(traj["next_state"], ref["next_state"], **TOL)
    np.testing.assert_allclose(traj["reward"]["principal"], ref["reward"]["principal"], **TOL)
    np.testing.assert_allclose(traj["next_obs"]["principal"], ref["next_obs"]["principal"], **TOL)
    np.testing.assert_allclose(stack_agents(traj["reward"], as_agent.followers), ref["reward"]["agents"], **TOL)
    # The followers' mechanism features show the current rates (the Principal moves simultaneously).
    want_obs = expected_obs(as_agent, sed, ref["next_obs"], ref["next_state"], None)
    for a in as_agent.followers:
        np.testing.assert_allclose(traj["next_obs"][a], want_obs[a], **TOL)
    assert np.any(np.asarray(traj["reward"]["principal"]) != 0)


# ---------------------------------------------------------------------------- formats
def test_image_obs_types_and_world_state(sed, fixed, fixed_run):
    _, (_, traj) = fixed_run
    img = SEDMultiAgentEnv(sed, rates=RATES, obs="image", observe_types=True, world_state_in_obs=True)
    blind = SEDMultiAgentEnv(sed, rates=RATES, observe_mechanism=False)
    s = jax.tree.map(lambda x: x[4], traj["next_state"])
    flat, o_img, o_blind, ws_direct = jax.jit(
        lambda s: (fixed.get_obs(s), img.get_obs(s), blind.get_obs(s), fixed.world_state(s)))(s)
    H, W, C = fixed.view_shape
    M = sed.mechanism_obs_dim
    assert img.observation_space().shape == (H, W, C + M + 2)
    assert blind.observation_space().shape == (H * W * C,)
    for i, a in enumerate(fixed.followers):
        assert bool(img.observation_space(a).contains(o_img[a])) and o_img[a].shape == (H, W, C + M + 2)
        np.testing.assert_array_equal(o_img[a][..., :C].ravel(), flat[a][:H * W * C])
        np.testing.assert_array_equal(o_blind[a], flat[a][:H * W * C])
        for h, w in ((0, 0), (H - 1, W - 1)):  # the extra features are constant channels
            np.testing.assert_array_equal(o_img[a][h, w, C:C + M], flat[a][H * W * C:])
            np.testing.assert_array_equal(o_img[a][h, w, C + M:], [s.sigma[i], s.beta[i]])
    ws = o_img["world_state"]
    assert ws.shape == (img.state_size,) and ws.dtype == jnp.float32
    np.testing.assert_array_equal(ws, ws_direct)
    n = fixed.num_followers
    np.testing.assert_array_equal(ws[: n * flat["agent_0"].size], jnp.concatenate([flat[a] for a in fixed.followers]))
    np.testing.assert_array_equal(ws[-2 * n:], jnp.concatenate([s.sigma, s.beta]))


def test_missing_jaxmarl_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "jaxmarl" or m.startswith("jaxmarl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jaxmarl", None)
    monkeypatch.delitem(sys.modules, "sedjax.interop.jaxmarl")
    with pytest.raises(ImportError, match=r"sedjax\[jaxmarl\]"):
        importlib.import_module("sedjax.interop.jaxmarl")
    import sedjax.interop  # the package itself imports without jaxmarl

    assert sedjax.interop.__name__ == "sedjax.interop"


# ---------------------------------------------------------------------------- JaxMARL's baselines
def test_ippo_data_path_with_log_wrapper_and_vmap_equals_a_loop(fixed, fixed_run):
    """What JaxMARL's ``ippo_ff_*`` baselines do with an env: LogWrapper, ``vmap(reset)`` /
    ``vmap(step)`` over envs, ``batchify`` / ``unbatchify`` (per-env actions of shape (1,)), the
    info reshape to NUM_ACTORS. Env 0 replays the unbatched trajectory (vmap == loop, with a second
    env alongside); LogWrapper's returned episode returns are the summed rewards."""
    key, ((obs0, s0), traj) = fixed_run
    env = LogWrapper(fixed)
    agents, E = env.agents, 2
    A = env.num_agents
    NA = A * E  # NUM_ACTORS

    def batchify(x):  # the baselines' (agent-major)
        return jnp.stack([x[a] for a in agents]).reshape((NA, -1))

    def unbatchify(x):
        x = x.reshape((A, E, -1))
        return {a: x[i] for i, a in enumerate(agents)}

    k0, _ = jax.random.split(key)
    reset_keys = jnp.stack([k0, jax.random.PRNGKey(11)])
    step_keys = jnp.stack([traj["key"], jax.random.split(jax.random.PRNGKey(12), T)], 1)  # (T, E, 2)
    acts = stack_agents(traj["act"], agents)  # (T, A) env 0's; env 1 plays them backwards
    flat_actions = jnp.stack([acts, acts[::-1]], -1).reshape(T, NA)

    def run():
        obs, st = jax.vmap(env.reset)(reset_keys)

        def body(c, x):
            obs, st = c
            ks, a = x
            ob = batchify(obs)
            obs2, st2, r, d, info = jax.vmap(env.step)(ks, st, unbatchify(a))
            info = jax.tree.map(lambda v: v.reshape((NA,)), info)
            return (obs2, st2), dict(obs=ob, done=batchify(d).squeeze(), reward=batchify(r).squeeze(), info=info,
                                     state=st2.env_state)

        return jax.lax.scan(body, (obs, st), (step_keys, flat_actions))[1]

    out = jax.jit(run)()
    ob = np.asarray(out["obs"]).reshape(T, A, E, -1)
    for i, a in enumerate(agents):
        np.testing.assert_allclose(ob[:, i, 0], traj["obs"][a], **TOL)
        np.testing.assert_allclose(np.asarray(out["reward"]).reshape(T, A, E)[:, i, 0], traj["reward"][a], **TOL)
    tree_close(jax.tree.map(lambda x: x[:, 0], out["state"]), traj["next_state"], **TOL)
    assert np.any(ob[:, :, 1] != ob[:, :, 0])  # the second env is a different game
    done = np.asarray(out["done"]).reshape(T, A, E)
    np.testing.assert_array_equal(np.flatnonzero(done[:, 0, 0]), [EP - 1, 2 * EP - 1])
    info = jax.tree.map(lambda v: np.asarray(v).reshape(T, E, A), out["info"])  # info leaves are env-major
    rew = np.asarray(out["reward"]).reshape(T, A, E).transpose(0, 2, 1)  # (T, E, A)
    np.testing.assert_array_equal(np.flatnonzero(info["returned_episode"][:, 0, 0]), [EP - 1, 2 * EP - 1])
    for end, ep in ((EP - 1, slice(0, EP)), (2 * EP - 1, slice(EP, 2 * EP))):
        np.testing.assert_allclose(info["returned_episode_returns"][end], rew[ep].sum(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(info["returned_episode_lengths"][end], EP)
    np.testing.assert_array_equal(info["rate_1"], np.float32(RATES[1]))
    assert np.abs(rew[:EP]).sum() > 0  # something was collected: the comparison is not 0 == 0
