"""PureJaxRL-style training of PPO agents and a PPO Principal in one compiled program.

Structure of one **Principal iteration** (the unit of the outer ``scan``):

* ``principal.update_every`` agent iterations, each: a rollout of ``train.rollout_len`` steps in
  ``train.num_envs`` envs, then a PPO update of the agents' shared network. A rollout is a scan over
  tax periods (:func:`sedjax.train.policy` ``play_period``); the Principal acts once at each
  period's start (no dummy steps) and its transition is (observation at the period start, rates,
  objective at the period end).
* a PPO update of the Principal on the period transitions of those agent iterations.

Episode ends are time limits: rollouts are aligned to them (``rollout_len`` divides the episode), so
the agents bootstrap from the value of the last pre-reset observation, and the world is reset
between rollouts. There is no terminal inside a rollout for the agents. For the Principal a voting
round is an episode: the objective may change at the next vote, so its return stops at the round's
last period (the paper's Principal is greedy per round) and GAE does not bootstrap across it.

``make_train(cfg, env=None)`` returns a :class:`Program` of pure functions and data: ``train(key)``
(the whole run, ``vmap``-able over seeds), ``init(key)`` / ``chunk(runner)`` for host-side logging
between compiled chunks, the run's :class:`~sedjax.train.schedule.Schedule`, the env, its params
and the :class:`~sedjax.train.policy.Policy`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from sedjax import welfare
from sedjax.envs import from_config as build_env
from sedjax.train.config import fixed_rates, validate_train
from sedjax.train.policy import Policy, make_policy
from sedjax.train.ppo import (PPOHypers, clipped_loss, gae, optimizer, ppo_config, ppo_hypers, ppo_update,
                              running_scale, with_hypers)
from sedjax.train.schedule import Schedule


@struct.dataclass
class Budget:
    """The length of a run, traced: the learning-rate decays' lengths and the tax curriculum's. A
    compiled chunk therefore serves runs of any length made of its chunks (:func:`budget_of`):
    ``sedjax-scaling`` trains every budget of a width on one program."""

    agent_updates: jax.Array  # the agents' optimizer steps over the run (their lr decays to 0 over them)
    principal_updates: jax.Array
    anneal_steps: jax.Array  # env steps over which the transfer scale anneals (0: none)


def budget_of(S: Schedule) -> Budget:
    return Budget(agent_updates=jnp.float32(max(1, S.agent_updates)),
                  principal_updates=jnp.float32(max(1, S.principal_updates)),
                  anneal_steps=jnp.float32(S.anneal_steps))


@struct.dataclass
class Hypers:
    """Every traced setting of a run: the env's params and the numbers the learners only scale by.
    A sweep (:mod:`sedjax.train.sweep`) stacks one of these per configuration and ``vmap``s the
    program over them, so sweeping them never recompiles; everything else in the config is static."""

    env: Any  # SEDParams
    agents: PPOHypers
    principal: PPOHypers
    principal_rates: jax.Array  # (B,) the fixed Principal's rates (principal.rates; read when kind=fixed)
    anneal_start: jax.Array  # tax.anneal_start: the curriculum's first transfer scale
    budget: Budget  # the run's length (schedule lengths)


def hypers_of(cfg, env_params, schedule: Schedule) -> Hypers:
    """The traced settings of ``cfg`` (validated), with ``env_params`` = ``from_config(cfg)[1]`` and
    ``schedule`` its :class:`~sedjax.train.schedule.Schedule` (``validate_train``)."""
    num_brackets = int(env_params.thresholds.shape[-1])
    rates = fixed_rates(cfg) if str(cfg.principal.kind) == "fixed" else np.zeros(num_brackets, np.float32)
    return Hypers(env=env_params, agents=ppo_hypers(cfg.agents), principal=ppo_hypers(cfg.principal),
                  principal_rates=jnp.asarray(rates, jnp.float32),
                  anneal_start=jnp.float32(float(cfg.tax.anneal_start)), budget=budget_of(schedule))


@struct.dataclass
class Runner:
    agents: TrainState
    principal: TrainState
    env_state: Any  # batched SEDState
    obs: Any  # batched observation dict
    key: jax.Array
    iteration: jax.Array  # agent iterations done
    principal_adv_stats: Any  # (mean variance, count) of the Principal's advantages (principal.adv_norm=running)
    hypers: Hypers  # this run's traced settings (one configuration of a sweep)


class Program(NamedTuple):
    init: Callable  # (key, hypers=None) -> Runner
    chunk: Callable  # Runner -> (Runner, metrics with a leading axis of schedule.iters_per_chunk)
    train: Callable  # (key, hypers=None) -> (Runner, metrics with leading axes (num_chunks, iters_per_chunk))
    schedule: Schedule
    env: Any
    params: Any  # the env's params
    policy: Policy
    reset_envs: Callable  # (key, num_envs, population=None, env_params=None) -> batched (obs, state)
    hypers: Hypers  # the config's traced settings (the default of init/train)

    def __call__(self, key, hypers=None):
        """``program(key)`` is ``program.train(key)`` (so ``jax.vmap(make_train(cfg))`` still works)."""
        return self.train(key, hypers)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """The per-seed PRNG keys of a run (seed ``i`` of a run is reproducible on its own only through
    these keys; they depend on ``num_seeds``)."""
    return jax.random.split(jax.random.key(int(seed)), int(num_seeds))


def seed_slice(runner, i: int = 0):
    """Seed ``i`` of a vmapped runner."""
    return jax.tree.map(lambda x: x[i], runner)


def period_metrics(p_trs, rounds_per_episode: int) -> dict:
    """The honest per-period metrics of an iteration's period transitions (leading axes: periods,
    envs). Ratios are reported as ``ratio/<name>/num`` and ``.../den`` pairs, which
    :func:`sedjax.train.metrics.chunk_record` sums over a chunk before dividing (an iteration may
    hold no period of a phase, or no period in which anyone earns):

    * ``equality``: mean 1 - Gini of post-tax income over the periods **in which someone earns**
      (a period where nobody earns is not perfect equality); ``zero_income_share``: the share of
      periods in which nobody earns, its own metric (:func:`sedjax.welfare.equality_stats`);
    * ``objective`` and ``agent_reward`` over the periods of the episode's first and of its last
      voting round (``..._first_round`` / ``..._last_round``), so that a commons that collapses
      within an episode shows in the numbers;
    * ``tax_rates_earning``: the mean rate per bracket over the periods in which someone earns.
    """
    eq = welfare.equality_stats(p_trs["income"], axis=(0, 1))
    den = eq.earning_periods.astype(jnp.float32)
    out = {
        "zero_income_share": eq.zero_income_share,
        "ratio/equality/num": eq.equality * den,
        "ratio/equality/den": den,
    }
    # The rates where they can act: in a period nobody earns any rate taxes nothing, so the plain
    # mean (``tax_rates``) is diluted by a collapsed commons' periods; this one is not.
    rates = p_trs["rates"]
    earning = welfare.earning(p_trs["income"])[..., None].astype(jnp.float32) * jnp.ones_like(rates)
    out["ratio/tax_rates_earning/num"] = (rates * earning).sum((0, 1))
    out["ratio/tax_rates_earning/den"] = earning.sum((0, 1))
    for phase, r in (("first_round", 0), ("last_round", rounds_per_episode - 1)):
        mask = (p_trs["round"] == r).astype(jnp.float32)
        for name in ("objective", "agent_reward"):
            out[f"ratio/{name}_{phase}/num"] = (p_trs[name] * mask).sum()
            out[f"ratio/{name}_{phase}/den"] = mask.sum()
    return out


def make_train(cfg, env=None) -> Program:
    """The training program of ``cfg`` (validated first: ``ValueError`` naming the key).

    ``env`` replaces the environment built from ``cfg`` (same interface and time structure; used by
    the benchmark's stub env).
    """
    built_env, params = build_env(cfg)
    built_env.check_params(params)  # the traced values this env's static settings must honour
    S = validate_train(cfg, built_env)  # every count of the run, derived once
    env = built_env if env is None else env
    ac, pc = cfg.agents, cfg.principal
    E, T, k = S.num_envs, S.rollout_len, S.update_every
    principal_kind = str(pc.kind)
    a_cfg, p_cfg = ppo_config(ac), ppo_config(pc)
    default_hypers = hypers_of(cfg, params, S)
    running_adv = str(pc.adv_norm) == "running"
    policy = make_policy(cfg, env)
    agent_net, principal_net = policy.agent_net, policy.principal_net
    agent_ids = jnp.arange(S.num_agents)
    per_env_types = bool(cfg.types.per_env)

    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_reset_types = jax.vmap(env.reset_with_types, in_axes=(0, None, None, None))
    v_reset_where = jax.vmap(env.reset_where, in_axes=(0, 0, 0, 0, None))

    def reset_envs(key, num_envs: int, population=None, env_params=None):
        """``num_envs`` fresh episodes. ``types.per_env=false`` (the default): one population
        (``population = (sigma, beta)``, or one drawn from ``key``) shared by all of them, so an
        agent's id identifies its type, as in the paper; ``true``: each env draws its own.
        ``env_params``: default the config's."""
        params = default_hypers.env if env_params is None else env_params
        k_types, k_env = jax.random.split(key)
        if per_env_types:
            return v_reset(jax.random.split(k_env, num_envs), params)
        if population is None:
            population = env.sample_types(k_types, params)
        return v_reset_types(jax.random.split(k_env, num_envs), params, *population)

    def reset_done(done, key, obs, state, params):
        """The episode ends (time limits; all envs of a seed end together, rollouts are aligned to
        them): a new world for each done env, the types kept, or with ``types.resample_on_reset``
        a new draw (one for the whole batch when the population is shared)."""
        k_types, k_reset = jax.random.split(key)
        p = params
        if not per_env_types:
            sigma, beta = env.sample_types(k_types, params)
            new = params.resample_on_reset & done[:, None]
            # Done envs start from the new draw or the population's trust (env.episode_trust).
            beta = jnp.where(new, beta, jax.vmap(env.episode_trust, in_axes=(0, None))(state, params))
            state = state.replace(sigma=jnp.where(new, sigma, state.sigma),
                                  beta=jnp.where(done[:, None], beta, state.beta),
                                  beta_init=jnp.where(done[:, None], beta, state.beta_init))
            p = params.replace(resample_on_reset=jnp.asarray(False))  # the draw above is the resample
        return v_reset_where(done, jax.random.split(k_reset, E), obs, state, p)

    a_tx, p_tx = optimizer(ac, S.agent_updates), optimizer(pc, S.principal_updates)

    def init(key, hypers: Hypers | None = None):
        hypers = default_hypers if hypers is None else hypers
        k_env, k_a, k_p, key = jax.random.split(key, 4)
        obs, state = reset_envs(k_env, E, env_params=hypers.env)
        a_params, p_params = policy.init(k_a, k_p, obs)
        agents = with_hypers(TrainState.create(apply_fn=agent_net.apply, params=a_params, tx=a_tx), hypers.agents,
                             hypers.budget.agent_updates)
        principal = with_hypers(TrainState.create(apply_fn=principal_net.apply, params=p_params, tx=p_tx),
                                hypers.principal, hypers.budget.principal_updates)
        return Runner(agents, principal, state, obs, key, jnp.zeros((), jnp.int32),
                      (jnp.float32(0.0), jnp.float32(0.0)), hypers)

    def record_step(s):
        tr = {
            "obs": s.obs["agents"], "action": s.action, "logp": s.logp, "value": s.value,
            "reward": s.reward["agents"], "apples": s.info["apples_collected"],
            "apples_alive": s.info["apples_alive"], "inputs": s.inputs,
        }
        return tr, s.reward["principal"], s.info

    def rollout(runner: Runner, sparams):
        def period(carry, _):
            carry, start, (trs, p_rewards, infos) = policy.play_period(
                runner.agents.params, runner.principal.params, carry, sparams, record_step,
                rates=runner.hypers.principal_rates)
            last = jax.tree.map(lambda x: x[-1], infos)  # the period's last step: settlement
            t_end = carry[1].t  # steps done at the period's end (1 .. episode_len)
            p_tr = {
                "round": (t_end - 1) // S.round_len,  # the period's voting round in the episode
                "agent_reward": trs["reward"].mean((0, 2)),  # per agent-step, this period
                "obs": start.obs, "action": start.action, "logp": start.logp, "value": start.value,
                "reward": p_rewards[-1], "done": last["round_end"].astype(jnp.float32),
                "objective": last["objective"], "rates": last["rates"], "voted": last["voted"],
                "income": last["income"],
            }
            return carry, (trs, p_tr)

        key, k_roll = jax.random.split(runner.key)
        (obs, state, _), (trs, p_trs) = jax.lax.scan(
            period, (runner.obs, runner.env_state, k_roll), None, S.periods_per_rollout)
        trs = jax.tree.map(lambda x: x.reshape((T,) + x.shape[2:]), trs)
        return runner.replace(obs=obs, env_state=state, key=key), trs, p_trs

    def agent_loss(hp):
        def loss(p, mb):
            logits, value = agent_net.apply(p, mb["obs"], mb["id"], **mb["inputs"])
            dist = distrax.Categorical(logits=logits)
            return clipped_loss(dist.log_prob(mb["action"]), mb["logp"], mb["adv"], value, mb["value"],
                                mb["ret"], dist.entropy(), a_cfg, hp)
        return loss

    def principal_loss(hp):
        def loss(p, mb):
            dist, value = principal_net.apply(p, mb["obs"])
            return clipped_loss(policy.principal_logp(dist, mb["action"]), mb["logp"], mb["adv"], value,
                                mb["value"], mb["ret"], dist.entropy(), p_cfg, hp)
        return loss

    def agent_iteration(runner: Runner, _):
        hp = runner.hypers
        params, anneal_start, anneal_steps = hp.env, hp.anneal_start, hp.budget.anneal_steps
        env_steps = runner.iteration * (E * T)
        # x * (1 / a), not x / a: what XLA compiled when anneal_steps was a constant (same rounding).
        scale = anneal_start + (1.0 - anneal_start) * jnp.clip(env_steps * (1 / jnp.maximum(anneal_steps, 1.0)),
                                                               0.0, 1.0)
        sparams = params.replace(transfer_scale=jnp.where(anneal_steps > 0, scale, 1.0).astype(jnp.float32))
        runner, trs, p_trs = rollout(runner, sparams)
        # Bootstrap from the state after the rollout, as seen before the next period's rates are
        # chosen (its mechanism input shows the current rates).
        _, last_value = policy.agent_forward(runner.agents.params, runner.obs["agents"],
                                             policy.agent_inputs(runner.env_state, None, sparams))
        zeros = jnp.zeros_like(trs["reward"])
        adv, ret = gae(trs["reward"], trs["value"], last_value, zeros, hp.agents.gamma, hp.agents.gae_lambda)
        batch = {
            "obs": trs["obs"], "action": trs["action"], "logp": trs["logp"], "value": trs["value"],
            "adv": adv, "ret": ret, "id": jnp.broadcast_to(agent_ids, trs["action"].shape),
            "inputs": trs["inputs"],
        }
        if a_cfg.per_group:  # (envs, steps x agents, ...): a minibatch stays on its envs' devices
            batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((E, -1) + x.shape[3:]), batch)
        else:  # one group of every sample, in (step, env, agent) order
            batch = jax.tree.map(lambda x: x.reshape((1, -1) + x.shape[3:]), batch)
        key, k_upd, k_reset = jax.random.split(runner.key, 3)
        agents, a_stats = ppo_update(k_upd, runner.agents, batch, agent_loss(hp.agents), a_cfg)
        # Episode time limit reached (rollouts are aligned to it): reset the world, keep types.
        done = runner.env_state.t >= S.episode_len
        obs, state = reset_done(done, k_reset, runner.obs, runner.env_state, params)
        metrics = {
            "agent_reward": trs["reward"].mean(),
            "apples_per_agent_step": trs["apples"].mean(),
            "apples_alive": trs["apples_alive"].mean(),
            "transfer_scale": sparams.transfer_scale,
            **{f"agents/{k_}": v for k_, v in a_stats[1].items()},
        }
        runner = runner.replace(agents=agents, obs=obs, env_state=state, key=key, iteration=runner.iteration + 1)
        return runner, (metrics, p_trs)

    def principal_iteration(runner: Runner, _):
        runner, (metrics, p_trs) = jax.lax.scan(agent_iteration, runner, None, k)
        p_trs = jax.tree.map(lambda x: x.reshape((k * S.periods_per_rollout,) + x.shape[2:]), p_trs)
        p_metrics = {}
        if principal_kind == "ppo":
            _, last_v = principal_net.apply(runner.principal.params, runner.obs["principal"])
            php = runner.hypers.principal
            adv, ret = gae(p_trs["reward"], p_trs["value"], last_v, p_trs["done"], php.gamma, php.gae_lambda)
            adv_stats = runner.principal_adv_stats
            if running_adv:
                adv, adv_stats = running_scale(adv, adv_stats)
            batch = {"obs": p_trs["obs"], "action": p_trs["action"], "logp": p_trs["logp"],
                     "value": p_trs["value"], "adv": adv, "ret": ret}
            batch = jax.tree.map(lambda x: x.reshape((1, -1) + x.shape[2:]), batch)  # one group
            key, k_upd = jax.random.split(runner.key)
            principal, (_, p_stats) = ppo_update(k_upd, runner.principal, batch, principal_loss(php), p_cfg)
            runner = runner.replace(principal=principal, key=key, principal_adv_stats=adv_stats)
            p_metrics = {f"principal/{k_}": v for k_, v in p_stats.items()}
            p_metrics["principal/adv_scale"] = jnp.sqrt(adv_stats[0])
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics.update(p_metrics)
        metrics.update({
            "objective": p_trs["objective"].mean(),
            "tax_rates": p_trs["rates"].mean((0, 1)),
            "voted": p_trs["voted"].mean(),
            "income": p_trs["income"].mean((0, 1)),
        })
        metrics.update(period_metrics(p_trs, S.rounds_per_episode))
        return runner, metrics

    def chunk(runner: Runner):
        return jax.lax.scan(principal_iteration, runner, None, S.iters_per_chunk)

    def train(key, hypers: Hypers | None = None):
        return jax.lax.scan(lambda r, _: chunk(r), init(key, hypers), None, S.num_chunks)

    return Program(init, chunk, train, S, env, params, policy, reset_envs, default_hypers)
