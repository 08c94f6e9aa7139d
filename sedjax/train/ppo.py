"""PureJaxRL-style training of PPO agents and a PPO Principal in one compiled program.

Structure of one **Principal iteration** (the unit of the outer ``scan``):

* ``principal.update_every`` agent iterations, each: a rollout of ``train.rollout_len`` steps in
  ``train.num_envs`` envs, then a PPO update of the agents' shared network. A rollout is a scan over
  tax periods; the Principal acts once at each period's start (no dummy steps) and its transition
  is (observation at the period start, rates, objective at the period end).
* a PPO update of the Principal on the period transitions of those agent iterations.

Episode ends are time limits: rollouts are aligned to them (``rollout_len`` divides the episode), so
the agents bootstrap from the value of the last pre-reset observation, and the world is reset
between rollouts. There is no terminal inside a rollout for the agents. For the Principal a voting
round is an episode: the objective may change at the next vote, so its return stops at the round's
last period (the paper's Principal is greedy per round) and GAE does not bootstrap across it.

``make_train(cfg)`` returns ``train(key)`` (the whole run, ``vmap``-able over seeds) with
``train.init(key)`` / ``train.chunk(runner)`` for host-side logging between compiled chunks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from sedjax import welfare
from sedjax.config import build_env, fixed_rates, validate_train
from sedjax.train.networks import AgentNet, PrincipalNet


@struct.dataclass
class Runner:
    agents: TrainState
    principal: TrainState
    env_state: Any  # batched SEDState
    obs: Any  # batched observation dict
    key: jax.Array
    iteration: jax.Array  # agent iterations done


class PPOConfig(NamedTuple):
    gamma: float
    gae_lambda: float
    clip_eps: float
    ent_coef: float
    vf_coef: float
    epochs: int
    minibatches: int


def _ppo_cfg(c) -> PPOConfig:
    return PPOConfig(float(c.gamma), float(c.gae_lambda), float(c.clip_eps), float(c.ent_coef),
                     float(c.vf_coef), int(c.epochs), int(c.minibatches))


def gae(rewards, values, last_value, dones, gamma, lam):
    """Generalised advantage estimation over the leading (time) axis. ``dones[t]`` marks a
    terminal transition t (no bootstrap from t+1)."""

    def body(carry, x):
        adv_next, v_next = carry
        r, v, d = x
        not_done = 1.0 - d
        delta = r + gamma * v_next * not_done - v
        adv = delta + gamma * lam * not_done * adv_next
        return (adv, v), adv

    _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), (rewards, values, dones), reverse=True)
    return adv, adv + values


def ppo_update(key, ts: TrainState, batch, loss_fn, cfg: PPOConfig):
    """Epochs x minibatches of clipped PPO on ``batch`` (a pytree with a leading sample axis)."""
    size = jax.tree.leaves(batch)[0].shape[0]

    def epoch(carry, k):
        ts = carry
        perm = jax.random.permutation(k, size)
        mbs = jax.tree.map(lambda x: x[perm].reshape((cfg.minibatches, -1) + x.shape[1:]), batch)

        def minibatch(ts, mb):
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.params, mb)
            return ts.apply_gradients(grads=grads), (loss, aux)

        return jax.lax.scan(minibatch, ts, mbs)

    ts, (loss, aux) = jax.lax.scan(epoch, ts, jax.random.split(key, cfg.epochs))
    return ts, jax.tree.map(jnp.mean, (loss, aux))


def clipped_loss(new_logp, old_logp, adv, value, old_value, ret, entropy, cfg: PPOConfig):
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = jnp.exp(new_logp - old_logp)
    pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
    v_clip = old_value + jnp.clip(value - old_value, -cfg.clip_eps, cfg.clip_eps)
    vf = 0.5 * jnp.maximum((value - ret) ** 2, (v_clip - ret) ** 2).mean()
    ent = entropy.mean()
    total = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
    return total, {"policy_loss": pg, "value_loss": vf, "entropy": ent, "approx_kl": ((ratio - 1) - jnp.log(ratio)).mean()}


def _optimizer(c, total_updates):
    lr = float(c.lr)
    if c.anneal_lr:
        lr = optax.linear_schedule(lr, 0.0, max(1, total_updates))
    return optax.chain(optax.clip_by_global_norm(float(c.max_grad_norm)), optax.adam(lr, eps=1e-5))


def chunk_count(units: int, max_chunks: int, keep: float = 0.95) -> int:
    """The most chunks (at most ``max_chunks``) of equal whole ``units`` that keep at least ``keep``
    of the ``units`` (every chunk is one compiled program, so chunks must be equal)."""
    for c in range(max(1, min(max_chunks, units)), 0, -1):
        if c * (units // c) >= keep * units:
            return c
    return 1


def make_train(cfg, env=None):
    """``train(key) -> (runner, metrics)``: the whole run as one jittable, vmappable function.

    ``env`` replaces the environment built from ``cfg`` (same interface; used by the benchmark's
    stub env). Attributes: ``init``, ``chunk``, ``num_chunks``, ``iters_per_chunk``, ``env``,
    ``params``, ``agent_net``, ``principal_net``, ``steps_per_chunk``.
    """
    built_env, params = build_env(cfg)
    validate_train(cfg, built_env)
    env = built_env if env is None else env
    tc, ac, pc = cfg.train, cfg.agents, cfg.principal
    E, T, P = int(tc.num_envs), int(tc.rollout_len), int(cfg.tax.period_len)
    n, B = env.num_agents, env.num_brackets
    k = int(pc.update_every)
    periods_per_rollout = T // P
    env_steps_per_iter = E * T * k  # per Principal iteration
    num_iters = max(1, int(tc.total_env_steps) // env_steps_per_iter)
    episode_len = P * int(cfg.voting.periods_per_round) * int(cfg.env.rounds_per_episode)
    # A chunk spans whole episodes where it can, so its averages (apples alive, objective, ...)
    # cover every phase of an episode, from the fresh world to the (possibly depleted) end,
    # instead of rising and falling with where the chunk happens to fall in the episode.
    unit = episode_len // (T * k) if episode_len % (T * k) == 0 else 1
    unit = max(1, min(unit, num_iters))
    num_units = num_iters // unit
    num_chunks = chunk_count(num_units, int(tc.chunks))
    iters_per_chunk = (num_units // num_chunks) * unit
    num_iters = iters_per_chunk * num_chunks
    total_env_steps = num_iters * env_steps_per_iter
    anneal_steps = float(cfg.tax.anneal_fraction) * total_env_steps
    anneal_start = float(cfg.tax.anneal_start)
    principal_kind = str(pc.kind)
    use_types = bool(ac.use_types)
    rates_fixed = jnp.asarray(fixed_rates(cfg)) if principal_kind == "fixed" else None
    a_cfg, p_cfg = _ppo_cfg(ac), _ppo_cfg(pc)

    agent_net = AgentNet(env.grid.num_actions, n, str(ac.network), int(ac.hidden))
    principal_net = PrincipalNet(B, env.rate_levels, env.continuous_rates, int(pc.hidden))
    agent_ids = jnp.arange(n)

    def agent_forward(p, obs, state):
        types = jnp.stack([state.sigma, state.beta], -1) if use_types else None
        return agent_net.apply(p, obs, agent_ids, types)

    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))
    v_maybe_reset = jax.vmap(env.reset_where, in_axes=(0, 0, 0, 0, None))

    def init(key):
        k_env, k_a, k_p, key = jax.random.split(key, 4)
        obs, state = v_reset(jax.random.split(k_env, E), params)
        dummy_types = jnp.zeros((n, 2)) if use_types else None
        a_params = agent_net.init(k_a, obs["agents"][0], agent_ids, dummy_types)
        p_params = principal_net.init(k_p, obs["principal"][0])
        a_updates = num_iters * k * a_cfg.epochs * a_cfg.minibatches
        p_updates = num_iters * p_cfg.epochs * p_cfg.minibatches
        agents = TrainState.create(apply_fn=agent_net.apply, params=a_params, tx=_optimizer(ac, a_updates))
        principal = TrainState.create(apply_fn=principal_net.apply, params=p_params, tx=_optimizer(pc, p_updates))
        return Runner(agents, principal, state, obs, key, jnp.zeros((), jnp.int32))

    def principal_act(key, p_params, pobs):
        """Rates for the period starting now: (action, log-prob, value) per env."""
        if principal_kind == "ppo":
            dist, value = principal_net.apply(p_params, pobs)
            action = dist.sample(seed=key)
            return action, dist.log_prob(action), value
        zeros = jnp.zeros((E,))
        if principal_kind == "none":
            action = jnp.zeros((E, B), jnp.float32)
        elif principal_kind == "fixed":
            action = jnp.broadcast_to(rates_fixed, (E, B))
        elif env.continuous_rates:  # random
            action = jax.random.uniform(key, (E, B))
        else:
            action = jax.random.randint(key, (E, B), 0, env.rate_levels)
        return action, zeros, zeros

    def rollout(runner: Runner, sparams):
        def period(carry, _):
            obs, state, key = carry
            key, k_p = jax.random.split(key)
            p_obs = obs["principal"]  # the Principal observes the world at the period's start
            p_action, p_logp, p_value = principal_act(k_p, runner.principal.params, p_obs)

            def step(carry, _):
                obs, state, key = carry
                key, k_a, k_e = jax.random.split(key, 3)
                logits, value = agent_forward(runner.agents.params, obs["agents"], state)
                dist = distrax.Categorical(logits=logits)
                action = dist.sample(seed=k_a)
                obs2, state2, reward, _, info = v_step(
                    jax.random.split(k_e, E), state, {"agents": action, "principal": p_action}, sparams)
                tr = {
                    "obs": obs["agents"], "action": action, "logp": dist.log_prob(action), "value": value,
                    "reward": reward["agents"], "apples": info["apples_collected"],
                    "apples_alive": info["apples_alive"],
                }
                if use_types:
                    tr["types"] = jnp.stack([state.sigma, state.beta], -1)
                return (obs2, state2, key), (tr, reward["principal"], info)

            (obs, state, key), (trs, p_rewards, infos) = jax.lax.scan(step, (obs, state, key), None, P)
            last = jax.tree.map(lambda x: x[-1], infos)  # the period's last step: settlement
            p_tr = {
                "obs": p_obs, "action": p_action, "logp": p_logp, "value": p_value,
                "reward": p_rewards[-1], "done": last["round_end"].astype(jnp.float32),
                "objective": last["objective"], "rates": last["rates"], "voted": last["voted"],
                "equality": welfare.equality(last["income"]), "income": last["income"],
            }
            return (obs, state, key), (trs, p_tr)

        key, k_roll = jax.random.split(runner.key)
        (obs, state, _), (trs, p_trs) = jax.lax.scan(
            period, (runner.obs, runner.env_state, k_roll), None, periods_per_rollout)
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
        _, last_value = agent_forward(runner.agents.params, runner.obs["agents"], runner.env_state)
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
        done = runner.env_state.t >= episode_len
        obs, state = v_maybe_reset(done, jax.random.split(k_reset, E), runner.obs, runner.env_state, params)
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
        p_trs = jax.tree.map(lambda x: x.reshape((k * periods_per_rollout,) + x.shape[2:]), p_trs)
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
        return jax.lax.scan(principal_iteration, runner, None, iters_per_chunk)

    def train(key):
        runner = init(key)

        def body(r, _):
            return chunk(r)

        return jax.lax.scan(body, runner, None, num_chunks)

    train.init = init
    train.chunk = chunk
    train.num_chunks = num_chunks
    train.iters_per_chunk = iters_per_chunk
    train.steps_per_chunk = iters_per_chunk * env_steps_per_iter
    train.total_env_steps = total_env_steps
    train.env, train.params = env, params
    train.agent_net, train.principal_net = agent_net, principal_net
    train.agent_forward = agent_forward
    train.principal_act = principal_act
    return train
