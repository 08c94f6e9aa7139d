"""Where a (trained) policy meets the env: the one implementation shared by the trainer's rollout,
``sedjax-eval``, the learning tests and ``scripts/compare_principals.py``.

:func:`make_policy` (cfg, env) -> :class:`Policy`, a NamedTuple of the networks and pure functions:

* ``agent_inputs(state, principal_action, env_params) -> dict``: the agents' inputs besides the
  view, for a batch of envs: ``"mech"`` (``agents.observe_mechanism``, on by default: the rates in
  effect, thresholds, position in the period and round, own apples this period, from
  :meth:`sedjax.sed.SED.mechanism_obs`) and ``"types"`` (``agents.use_types``: each agent's
  (sigma, beta)); empty for the blind agents of the authors' code.
* ``agent_forward(agent_params, agent_obs, inputs) -> (logits, value)`` and
  ``agent_act(key, agent_params, agent_obs, inputs) -> (action, logp, value)``: the agents' shared
  network; any leading batch axes (envs) before the agent axis.
* ``principal_act(key, principal_params, principal_obs, rates=None) -> (action, logp, value)``: the
  Principal's rates for the period starting now, for a batch of observations ``(..., obs_dim)``:
  ``ppo`` samples its policy; ``none`` / ``fixed`` / ``random`` are the baselines (logp = value = 0).
* ``play_period(agent_params, principal_params, carry, env_params, record, agent_act=None, rates=None)``: one
  tax period in a batch of envs, ``carry = (obs, state, key)`` (``obs`` / ``state`` batched over
  envs, one key): the Principal acts once on the observation at the period's start, then a
  ``lax.scan`` of ``period_len`` steps of ``env.step_env`` (vmapped over envs). ``record`` maps each
  step's :class:`Step` to what the caller keeps (stacked over steps), so callers do not pay for
  outputs they drop. Returns ``(carry, PeriodStart, records)``.

The PRNG use is the trainer's (its results depend on it bit for bit): per period
``key, k_principal = split(key)``, per step ``key, k_agents, k_env = split(key, 3)`` and
``split(k_env, num_envs)`` for the envs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import distrax
import jax
import jax.numpy as jnp

from sedjax.train.config import fixed_rates
from sedjax.train.networks import AgentNet, PrincipalNet


class Step(NamedTuple):
    """One env step of a batch of envs, as seen by ``record``."""

    obs: Any  # observation dict the agents acted on
    inputs: dict  # the agents' other inputs (``agent_inputs``) they acted on
    state: Any  # state before the step
    action: jax.Array  # agents' actions (envs, agents)
    logp: jax.Array
    value: jax.Array
    next_obs: Any
    next_state: Any
    reward: dict  # {"agents": (envs, agents), "principal": (envs,)}
    done: jax.Array
    info: dict


class PeriodStart(NamedTuple):
    """The Principal's decision at a period's start (per env)."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array


class Policy(NamedTuple):
    agent_net: AgentNet
    principal_net: PrincipalNet
    use_types: bool
    observe_mechanism: bool
    init: Callable  # (key_agents, key_principal, batched obs) -> (agent_params, principal_params)
    principal_logp: Callable  # (dist, action) -> the log-probability of PPO's ratio
    agent_inputs: Callable
    agent_forward: Callable
    agent_act: Callable
    principal_act: Callable
    play_period: Callable


def agent_types(state) -> jax.Array:
    """Each agent's (sigma, beta), the extra input of a ``use_types`` network: (..., agents, 2)."""
    return jnp.stack([state.sigma, state.beta], -1)


def resolve_use_types(cfg) -> bool:
    """``agents.use_types``; ``null`` (the default) means: feed the types exactly when they differ
    between envs (``types.per_env``), since with one population per seed the id identifies them."""
    v = cfg.agents.use_types
    return bool(cfg.types.per_env) if v is None else bool(v)


def make_policy(cfg, env) -> Policy:
    ac, pc = cfg.agents, cfg.principal
    n, B = env.num_agents, env.num_brackets
    P = int(env.period_len)
    use_types = resolve_use_types(cfg)
    observe_mechanism = bool(ac.observe_mechanism)
    factored = bool(pc.factored_ratio)
    kind = str(pc.kind)
    rates_fixed = jnp.asarray(fixed_rates(cfg)) if kind == "fixed" else None
    agent_net = AgentNet(env.grid.num_actions, n, str(ac.network), int(ac.hidden), env.grid.obs_mode)
    principal_net = PrincipalNet(B, env.rate_levels, env.continuous_rates, int(pc.hidden), bool(pc.shared_head),
                                 str(pc.rate_head), float(pc.bracket_scale), env.world_shape,
                                 str(pc.policy_input), env.voted_obs_index)
    agent_ids = jnp.arange(n)
    v_step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))

    def agent_inputs(state, principal_action, env_params):
        """For a batch of envs (``state`` batched; ``principal_action`` batched, or None before the
        Principal moves: then the current rates)."""
        out = {}
        if observe_mechanism:
            a_axis = None if principal_action is None else 0
            out["mech"] = jax.vmap(env.mechanism_obs, in_axes=(0, a_axis, None))(state, principal_action, env_params)
        if use_types:
            out["types"] = agent_types(state)
        return out

    def init(k_agents, k_principal, obs):
        dummy = {}
        if observe_mechanism:
            dummy["mech"] = jnp.zeros((n, env.mechanism_obs_dim))
        if use_types:
            dummy["types"] = jnp.zeros((n, 2))
        a_params = agent_net.init(k_agents, obs["agents"][0], agent_ids, **dummy)
        p_params = principal_net.init(k_principal, obs["principal"][0])
        return a_params, p_params

    def agent_forward(a_params, agent_obs, inputs):
        return agent_net.apply(a_params, agent_obs, agent_ids, **inputs)

    def sample_agents(key, a_params, agent_obs, inputs):
        logits, value = agent_forward(a_params, agent_obs, inputs)
        dist = distrax.Categorical(logits=logits)
        action = dist.sample(seed=key)
        return action, dist.log_prob(action), value

    def principal_logp(dist, action):
        """The log-probability PPO's ratio is taken of: per bracket ``(..., B)`` with
        ``principal.factored_ratio`` (each bracket's ratio clipped on its own), else the joint."""
        return dist.distribution.log_prob(action) if factored else dist.log_prob(action)

    def principal_act(key, p_params, pobs, rates=None):
        """``rates``: the fixed Principal's schedule (traced, e.g. one configuration of a sweep);
        default ``principal.rates``."""
        if kind == "ppo":
            dist, value = principal_net.apply(p_params, pobs)
            action = dist.sample(seed=key)
            return action, principal_logp(dist, action), value
        batch = pobs.shape[:-1]
        zeros = jnp.zeros(batch)
        if kind == "none":
            action = jnp.zeros(batch + (B,), jnp.float32)
        elif kind == "fixed":
            action = jnp.broadcast_to(rates_fixed if rates is None else rates, batch + (B,))
        elif env.continuous_rates:  # random
            action = jax.random.uniform(key, batch + (B,))
        else:
            action = jax.random.randint(key, batch + (B,), 0, env.rate_levels)
        return action, zeros, zeros

    def play_period(a_params, p_params, carry, env_params, record: Callable[[Step], Any] = lambda s: s.info,
                    agent_act: Callable | None = None, rates=None):
        act = sample_agents if agent_act is None else agent_act
        obs, state, key = carry
        num_envs = state.t.shape[0]
        key, k_p = jax.random.split(key)
        p_obs = obs["principal"]  # the Principal observes the world at the period's start
        p_action, p_logp, p_value = principal_act(k_p, p_params, p_obs, rates)

        def step(c, _):
            obs, state, key = c
            key, k_a, k_e = jax.random.split(key, 3)
            inputs = agent_inputs(state, p_action, env_params)
            action, logp, value = act(k_a, a_params, obs["agents"], inputs)
            obs2, state2, reward, done, info = v_step(
                jax.random.split(k_e, num_envs), state, {"agents": action, "principal": p_action}, env_params)
            return (obs2, state2, key), record(
                Step(obs, inputs, state, action, logp, value, obs2, state2, reward, done, info))

        carry, records = jax.lax.scan(step, (obs, state, key), None, P)
        return carry, PeriodStart(p_obs, p_action, p_logp, p_value), records

    return Policy(agent_net, principal_net, use_types, observe_mechanism, init, principal_logp, agent_inputs,
                  agent_forward, sample_agents, principal_act, play_period)
