"""Where a (trained) policy meets the env: the one implementation shared by the trainer's rollout,
``sedjax-eval``, the learning tests and ``scripts/compare_principals.py``.

:func:`make_policy` (cfg, env) -> :class:`Policy`, a NamedTuple of the networks and pure functions:

* ``agent_forward(agent_params, agent_obs, state) -> (logits, value)`` and
  ``agent_act(key, agent_params, agent_obs, state) -> (action, logp, value)``: the agents' shared
  network (with ``agents.use_types`` it also sees each agent's (sigma, beta) from ``state``);
  any leading batch axes (envs) before the agent axis.
* ``principal_act(key, principal_params, principal_obs) -> (action, logp, value)``: the
  Principal's rates for the period starting now, for a batch of observations ``(..., obs_dim)``:
  ``ppo`` samples its policy; ``none`` / ``fixed`` / ``random`` are the baselines (logp = value = 0).
* ``play_period(agent_params, principal_params, carry, env_params, record, agent_act=None)``: one
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
    init: Callable  # (key_agents, key_principal, batched obs) -> (agent_params, principal_params)
    agent_forward: Callable
    agent_act: Callable
    principal_act: Callable
    play_period: Callable


def agent_types(state) -> jax.Array:
    """Each agent's (sigma, beta), the extra input of a ``use_types`` network: (..., agents, 2)."""
    return jnp.stack([state.sigma, state.beta], -1)


def make_policy(cfg, env) -> Policy:
    ac, pc = cfg.agents, cfg.principal
    n, B = env.num_agents, env.num_brackets
    P = int(env.period_len)
    use_types = bool(ac.use_types)
    kind = str(pc.kind)
    rates_fixed = jnp.asarray(fixed_rates(cfg)) if kind == "fixed" else None
    agent_net = AgentNet(env.grid.num_actions, n, str(ac.network), int(ac.hidden))
    principal_net = PrincipalNet(B, env.rate_levels, env.continuous_rates, int(pc.hidden))
    agent_ids = jnp.arange(n)
    v_step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))

    def init(k_agents, k_principal, obs):
        dummy_types = jnp.zeros((n, 2)) if use_types else None
        a_params = agent_net.init(k_agents, obs["agents"][0], agent_ids, dummy_types)
        p_params = principal_net.init(k_principal, obs["principal"][0])
        return a_params, p_params

    def agent_forward(a_params, agent_obs, state):
        return agent_net.apply(a_params, agent_obs, agent_ids, agent_types(state) if use_types else None)

    def sample_agents(key, a_params, agent_obs, state):
        logits, value = agent_forward(a_params, agent_obs, state)
        dist = distrax.Categorical(logits=logits)
        action = dist.sample(seed=key)
        return action, dist.log_prob(action), value

    def principal_act(key, p_params, pobs):
        if kind == "ppo":
            dist, value = principal_net.apply(p_params, pobs)
            action = dist.sample(seed=key)
            return action, dist.log_prob(action), value
        batch = pobs.shape[:-1]
        zeros = jnp.zeros(batch)
        if kind == "none":
            action = jnp.zeros(batch + (B,), jnp.float32)
        elif kind == "fixed":
            action = jnp.broadcast_to(rates_fixed, batch + (B,))
        elif env.continuous_rates:  # random
            action = jax.random.uniform(key, batch + (B,))
        else:
            action = jax.random.randint(key, batch + (B,), 0, env.rate_levels)
        return action, zeros, zeros

    def play_period(a_params, p_params, carry, env_params, record: Callable[[Step], Any] = lambda s: s.info,
                    agent_act: Callable | None = None):
        act = sample_agents if agent_act is None else agent_act
        obs, state, key = carry
        num_envs = state.t.shape[0]
        key, k_p = jax.random.split(key)
        p_obs = obs["principal"]  # the Principal observes the world at the period's start
        p_action, p_logp, p_value = principal_act(k_p, p_params, p_obs)

        def step(c, _):
            obs, state, key = c
            key, k_a, k_e = jax.random.split(key, 3)
            action, logp, value = act(k_a, a_params, obs["agents"], state)
            obs2, state2, reward, done, info = v_step(
                jax.random.split(k_e, num_envs), state, {"agents": action, "principal": p_action}, env_params)
            return (obs2, state2, key), record(Step(obs, state, action, logp, value, obs2, state2, reward, done, info))

        carry, records = jax.lax.scan(step, (obs, state, key), None, P)
        return carry, PeriodStart(p_obs, p_action, p_logp, p_value), records

    return Policy(agent_net, principal_net, use_types, init, agent_forward, sample_agents, principal_act, play_period)
