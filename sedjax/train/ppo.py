"""Generic PPO (no environment knowledge): GAE, the clipped loss, the epochs x minibatches update
and the optimizer. Pure functions over pytrees; the program (:mod:`sedjax.train.program`) wires them
to the agents and the Principal."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState


class PPOConfig(NamedTuple):
    """The static part of a PPO learner's settings (they fix scan lengths or select code)."""

    epochs: int
    minibatches: int
    normalize_adv: bool = True  # each minibatch's advantages to mean 0, std 1 (False: taken as given)
    per_group: bool = False  # shuffle within each group (env) of a (groups, rows, ...) batch


@struct.dataclass
class PPOHypers:
    """The traced part: numbers that only scale the arithmetic, so a sweep over them is a ``vmap``
    (one compiled program). ``lr`` and ``max_grad_norm`` live in the optimizer state
    (:func:`optimizer`, :func:`with_hypers`); the others are read by :func:`gae` and
    :func:`clipped_loss`."""

    lr: jax.Array
    max_grad_norm: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array


HYPER_KEYS = tuple(f.name for f in dataclasses.fields(PPOHypers))  # the sweepable keys of a PPO group


def ppo_config(c) -> PPOConfig:
    """The static PPO settings of a config group (``cfg.agents`` or ``cfg.principal``); a group's
    ``adv_norm: running`` means the caller scales the advantages (so the loss takes them as given)."""
    return PPOConfig(int(c.epochs), int(c.minibatches), c.get("adv_norm", "batch") == "batch",
                     c.get("shuffle", "global") == "per_env")


def ppo_hypers(c) -> PPOHypers:
    """The traced PPO hyper-parameters of a config group, as float32 scalars."""
    return PPOHypers(**{k: jnp.float32(float(c[k])) for k in HYPER_KEYS})


def running_scale(adv, stats):
    """Advantages centred on their batch mean and divided by the square root of their variance
    averaged over **all** updates so far (``stats = (mean variance, count)``, count 0 before the
    first update). Unlike per-batch normalisation, a batch that carries no signal (every reward 0,
    as when the commons has collapsed and nobody earns) gives small advantages, not unit-size
    noise; and unlike a moving average, the scale does not forget the updates that carried signal,
    so a long stretch without any (a collapsed commons) cannot shrink it back to the critic's noise.
    Returns ``(scaled advantages, new stats)``."""
    mean_var, count = stats
    centred = adv - adv.mean()
    var = jnp.mean(jnp.square(centred))
    count = count + 1.0
    mean_var = mean_var + (var - mean_var) / count
    return centred / (jnp.sqrt(mean_var) + 1e-8), (mean_var, count)


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


def minibatches(key, batch, num: int, per_group: bool = False):
    """One epoch's minibatches of ``batch`` (leaves ``(groups, rows, ...)``): leaves
    ``(num, groups x rows / num, ...)``.

    * ``per_group=False``: one permutation of all ``groups x rows`` samples, cut into ``num``
      (the classic PPO shuffle).
    * ``per_group=True`` (stratified): each group's rows are permuted on their own and every
      minibatch takes ``rows / num`` rows of every group. When the groups are split over devices
      (the run's ``envs`` axis), a minibatch then never leaves its devices: each computes the
      gradient of its own rows and only the gradient is all-reduced. The global shuffle instead
      gathers every minibatch from all devices and computes it on each of them.

    Both give the same minibatches on any number of devices."""
    G, R = jax.tree.leaves(batch)[0].shape[:2]
    if not per_group:
        perm = jax.random.permutation(key, G * R)
        return jax.tree.map(lambda x: x.reshape((G * R,) + x.shape[2:])[perm].reshape((num, -1) + x.shape[2:]),
                            batch)
    perms = jax.vmap(lambda k: jax.random.permutation(k, R))(jax.random.split(key, G))  # (G, R)

    def take(x):
        y = jax.vmap(lambda xg, pg: xg[pg])(x, perms).reshape((G, num, R // num) + x.shape[2:])
        return jnp.moveaxis(y, 1, 0).reshape((num, G * (R // num)) + x.shape[2:])

    return jax.tree.map(take, batch)


def ppo_update(key, ts: TrainState, batch, loss_fn, cfg: PPOConfig):
    """Epochs x minibatches of clipped PPO on ``batch``: a pytree with leading axes
    ``(groups, rows)`` (the agents: envs, then their steps x agents), shuffled by
    :func:`minibatches` (``cfg.per_group``: stratified by group)."""

    def epoch(carry, k):
        ts = carry
        mbs = minibatches(k, batch, cfg.minibatches, cfg.per_group)

        def minibatch(ts, mb):
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.params, mb)
            return ts.apply_gradients(grads=grads), (loss, aux)

        return jax.lax.scan(minibatch, ts, mbs)

    ts, (loss, aux) = jax.lax.scan(epoch, ts, jax.random.split(key, cfg.epochs))
    return ts, jax.tree.map(jnp.mean, (loss, aux))


def clipped_loss(new_logp, old_logp, adv, value, old_value, ret, entropy, cfg: PPOConfig, hp: PPOHypers):
    """The clipped PPO loss. ``new_logp`` / ``old_logp`` may carry trailing axes beyond ``adv``'s
    (a factored action, e.g. one rate per bracket): each factor's ratio is then clipped on its own
    and the surrogates are summed over the factors, so a factor the advantage says nothing about
    (a bracket no income reaches) cannot use up the others' trust region, as it does in the ratio
    of the joint log-probability."""
    if cfg.normalize_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = jnp.exp(new_logp - old_logp)
    a = adv.reshape(adv.shape + (1,) * (ratio.ndim - adv.ndim))
    surr = jnp.minimum(ratio * a, jnp.clip(ratio, 1 - hp.clip_eps, 1 + hp.clip_eps) * a)
    pg = -surr.reshape(surr.shape[: adv.ndim] + (-1,)).sum(-1).mean()
    v_clip = old_value + jnp.clip(value - old_value, -hp.clip_eps, hp.clip_eps)
    vf = 0.5 * jnp.maximum((value - ret) ** 2, (v_clip - ret) ** 2).mean()
    ent = entropy.mean()
    total = pg + hp.vf_coef * vf - hp.ent_coef * ent
    return total, {"policy_loss": pg, "value_loss": vf, "entropy": ent, "approx_kl": ((ratio - 1) - jnp.log(ratio)).mean()}


def linear_decay(lr, horizon):
    """``optax.linear_schedule(lr, 0.0, horizon)`` with ``horizon`` an array (traced), giving the
    rates optax's schedule gives with ``horizon`` a Python constant, bit for bit: XLA compiles a
    division by a constant as a multiplication by its float32 reciprocal, so that is what this does
    (``count / horizon`` with a traced horizon rounds differently and changed the default run;
    ``tests/test_scaling.py``)."""

    def schedule(count):
        count = jnp.clip(count, 0, horizon)
        return lr * (1 - count * (1 / horizon))

    return schedule


def optimizer(c, total_updates: int) -> optax.GradientTransformation:
    """Adam with global-norm clipping for a config group (``lr``, ``anneal_lr``, ``max_grad_norm``);
    with ``anneal_lr`` the rate decays linearly to 0 over ``total_updates`` optimizer steps.
    ``lr``, ``max_grad_norm`` and the decay's length ``lr_horizon`` are injected hyper-parameters
    (``optax.inject_hyperparams``): they live in the optimizer state, so :func:`with_hypers` sets
    them to traced values (a sweep; runs of other lengths on one compiled program)."""
    anneal = bool(c.anneal_lr)

    def adam(lr, max_grad_norm, lr_horizon):
        if anneal:
            lr = linear_decay(lr, lr_horizon)
        return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(lr, eps=1e-5))

    return optax.inject_hyperparams(adam)(lr=float(c.lr), max_grad_norm=float(c.max_grad_norm),
                                          lr_horizon=float(max(1, int(total_updates))))


def with_hypers(ts: TrainState, hp: PPOHypers, lr_horizon=None) -> TrainState:
    """``ts`` whose optimizer uses ``hp.lr`` and ``hp.max_grad_norm`` (call after ``create``) and,
    when given, decays the rate over ``lr_horizon`` optimizer steps."""
    hyper = dict(ts.opt_state.hyperparams)
    hyper["lr"] = jnp.asarray(hp.lr, hyper["lr"].dtype)
    hyper["max_grad_norm"] = jnp.asarray(hp.max_grad_norm, hyper["max_grad_norm"].dtype)
    if lr_horizon is not None:
        hyper["lr_horizon"] = jnp.maximum(jnp.asarray(lr_horizon, hyper["lr_horizon"].dtype), 1)
    return ts.replace(opt_state=ts.opt_state._replace(hyperparams=hyper))
