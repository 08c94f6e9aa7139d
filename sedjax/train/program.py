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
from flax import struct
from flax.training.train_state import TrainState

from sedjax import welfare
from sedjax.envs import from_config as build_env
from sedjax.train.config import validate_train
from sedjax.train.policy import Policy, agent_types, make_policy
from sedjax.train.ppo import clipped_loss, gae, optimizer, ppo_config, ppo_update
from sedjax.train.schedule import Schedule


@struct.dataclass
class Runner:
    agents: TrainState
    principal: TrainState
    env_state: Any  # batched SEDState
    obs: Any  # batched observation dict
    key: jax.Array
    iteration: jax.Array  # agent iterations done


class Program(NamedTuple):
    init: Callable  # key -> Runner
    chunk: Callable  # Runner -> (Runner, metrics with a leading axis of schedule.iters_per_chunk)
    train: Callable  # key -> (Runner, metrics with leading axes (num_chunks, iters_per_chunk))
    schedule: Schedule
    env: Any
    params: Any  # the env's params
    policy: Policy

    def __call__(self, key):
        """``program(key)`` is ``program.train(key)`` (so ``jax.vmap(make_train(cfg))`` still works)."""
        return self.train(key)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """The per-seed PRNG keys of a run (seed ``i`` of a run is reproducible on its own only through
    these keys; they depend on ``num_seeds``)."""
    return jax.random.split(jax.random.key(int(seed)), int(num_seeds))


def seed_slice(runner, i: int = 0):
    """Seed ``i`` of a vmapped runner."""
    return jax.tree.map(lambda x: x[i], runner)


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
    anneal_steps, anneal_start = S.anneal_steps, float(cfg.tax.anneal_start)
    principal_kind = str(pc.kind)
    a_cfg, p_cfg = ppo_config(ac), ppo_config(pc)
    policy = make_policy(cfg, env)
    agent_net, principal_net, use_types = policy.agent_net, policy.principal_net, policy.use_types
    agent_ids = jnp.arange(S.num_agents)

    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_reset_where = jax.vmap(env.reset_where, in_axes=(0, 0, 0, 0, None))

    def init(key):
        k_env, k_a, k_p, key = jax.random.split(key, 4)
        obs, state = v_reset(jax.random.split(k_env, E), params)
        a_params, p_params = policy.init(k_a, k_p, obs)
        agents = TrainState.create(apply_fn=agent_net.apply, params=a_params, tx=optimizer(ac, S.agent_updates))
        principal = TrainState.create(apply_fn=principal_net.apply, params=p_params,
                                      tx=optimizer(pc, S.principal_updates))
        return Runner(agents, principal, state, obs, key, jnp.zeros((), jnp.int32))

    def record_step(s):
        tr = {
            "obs": s.obs["agents"], "action": s.action, "logp": s.logp, "value": s.value,
            "reward": s.reward["agents"], "apples": s.info["apples_collected"],
            "apples_alive": s.info["apples_alive"],
        }
        if use_types:
            tr["types"] = agent_types(s.state)
        return tr, s.reward["principal"], s.info

    def rollout(runner: Runner, sparams):
        def period(carry, _):
            carry, start, (trs, p_rewards, infos) = policy.play_period(
                runner.agents.params, runner.principal.params, carry, sparams, record_step)
            last = jax.tree.map(lambda x: x[-1], infos)  # the period's last step: settlement
            p_tr = {
                "obs": start.obs, "action": start.action, "logp": start.logp, "value": start.value,
                "reward": p_rewards[-1], "done": last["round_end"].astype(jnp.float32),
                "objective": last["objective"], "rates": last["rates"], "voted": last["voted"],
                "equality": welfare.equality(last["income"]), "income": last["income"],
            }
            return carry, (trs, p_tr)

        key, k_roll = jax.random.split(runner.key)
        (obs, state, _), (trs, p_trs) = jax.lax.scan(
            period, (runner.obs, runner.env_state, k_roll), None, S.periods_per_rollout)
        trs = jax.tree.map(lambda x: x.reshape((T,) + x.shape[2:]), trs)
        return runner.replace(obs=obs, env_state=state, key=key), trs, p_trs

    def agent_loss(p, mb):
        logits, value = agent_net.apply(p, mb["obs"], mb["id"], mb["types"] if use_types else None)
        dist = distrax.Categorical(logits=logits)
        return clipped_loss(dist.log_prob(mb["action"]), mb["logp"], mb["adv"], value, mb["value"],
                            mb["ret"], dist.entropy(), a_cfg)

    def principal_loss(p, mb):
        dist, value = principal_net.apply(p, mb["obs"])
        return clipped_loss(dist.log_prob(mb["action"]), mb["logp"], mb["adv"], value, mb["value"],
                            mb["ret"], dist.entropy(), p_cfg)

    def agent_iteration(runner: Runner, _):
        env_steps = runner.iteration * (E * T)
        scale = anneal_start + (1.0 - anneal_start) * jnp.clip(env_steps / jnp.maximum(anneal_steps, 1.0), 0.0, 1.0)
        sparams = params.replace(transfer_scale=jnp.where(anneal_steps > 0, scale, 1.0).astype(jnp.float32))
        runner, trs, p_trs = rollout(runner, sparams)
        _, last_value = policy.agent_forward(runner.agents.params, runner.obs["agents"], runner.env_state)
        zeros = jnp.zeros_like(trs["reward"])
        adv, ret = gae(trs["reward"], trs["value"], last_value, zeros, a_cfg.gamma, a_cfg.gae_lambda)
        batch = {
            "obs": trs["obs"], "action": trs["action"], "logp": trs["logp"], "value": trs["value"],
            "adv": adv, "ret": ret, "id": jnp.broadcast_to(agent_ids, trs["action"].shape),
        }
        if use_types:
            batch["types"] = trs["types"]
        batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[3:]), batch)
        key, k_upd, k_reset = jax.random.split(runner.key, 3)
        agents, a_stats = ppo_update(k_upd, runner.agents, batch, agent_loss, a_cfg)
        # Episode time limit reached (rollouts are aligned to it): reset the world, keep types.
        done = runner.env_state.t >= S.episode_len
        obs, state = v_reset_where(done, jax.random.split(k_reset, E), runner.obs, runner.env_state, params)
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
            adv, ret = gae(p_trs["reward"], p_trs["value"], last_v, p_trs["done"], p_cfg.gamma, p_cfg.gae_lambda)
            batch = {"obs": p_trs["obs"], "action": p_trs["action"], "logp": p_trs["logp"],
                     "value": p_trs["value"], "adv": adv, "ret": ret}
            batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
            key, k_upd = jax.random.split(runner.key)
            principal, (_, p_stats) = ppo_update(k_upd, runner.principal, batch, principal_loss, p_cfg)
            runner = runner.replace(principal=principal, key=key)
            p_metrics = {f"principal/{k_}": v for k_, v in p_stats.items()}
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics.update(p_metrics)
        metrics.update({
            "objective": p_trs["objective"].mean(),
            "tax_rates": p_trs["rates"].mean((0, 1)),
            "equality": p_trs["equality"].mean(),
            "voted": p_trs["voted"].mean(),
            "income": p_trs["income"].mean((0, 1)),
        })
        return runner, metrics

    def chunk(runner: Runner):
        return jax.lax.scan(principal_iteration, runner, None, S.iters_per_chunk)

    def train(key):
        return jax.lax.scan(lambda r, _: chunk(r), init(key), None, S.num_chunks)

    return Program(init, chunk, train, S, env, params, policy)
