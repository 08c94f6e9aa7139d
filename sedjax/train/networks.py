"""Flax networks: the agents' shared actor-critic and the Principal's actor-critic."""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def orthogonal(scale: float = 1.0):
    """``nn.initializers.orthogonal(scale)`` that runs its QR one matrix at a time under ``vmap``.

    ``jax.vmap(train.init)`` over seeds batches the QR decompositions of the orthogonal
    initialisers; on CPU, jaxlib's batched LAPACK kernels fan the batch out on the intra-op thread
    pool and, with two cores and two such QRs scheduled at once, each waits for the other's threads
    (seen deadlocking on a 2-core machine with jax 0.10.2). ``sequential_vmap`` turns the batch into
    a loop of unbatched QRs: same values, and init runs once per run, so the loop costs nothing.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        return jax.custom_batching.sequential_vmap(lambda k: base(k, shape, dtype))(key)

    return init


def _dense(features, scale=np.sqrt(2)):
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


def _patches(x, size: int, stride: int):
    """(..., H, W, C) -> (..., H', W', size*size*C) 'valid' patches by stacking shifted slices."""
    H, W = x.shape[-3], x.shape[-2]
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    cols = [
        x[..., i : i + stride * (Ho - 1) + 1 : stride, j : j + stride * (Wo - 1) + 1 : stride, :]
        for i in range(size)
        for j in range(size)
    ]
    return jnp.concatenate(cols, -1)


class PatchConv(nn.Module):
    """A 'valid' 2-D convolution as patches @ kernel. Same maths as ``nn.Conv``, but a plain matmul:
    XLA's CPU convolutions (and their gradients) are orders of magnitude slower at these sizes."""

    features: int
    size: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        return _dense(self.features)(_patches(x, self.size, self.stride))


class AgentNet(nn.Module):
    """One network shared by all agents: a small CNN (or MLP) over the egocentric view, plus the
    agent's one-hot id, optionally its type ``(sigma, beta)`` and what it observes of the mechanism
    (:meth:`sedjax.sed.SED.mechanism_obs`: rates, thresholds, position in the period and round, own
    apples this period), then two dense layers, to policy logits and a value.

    ``obs_mode="rgb"`` (88x88x3 uint8 views, 8 px per cell): the pixels are scaled to [0, 1] and read
    by an 8x8 stride-8 convolution, one output per cell (16 features), before the same network."""

    num_actions: int
    num_agents: int
    network: str = "cnn"
    hidden: int = 128
    obs_mode: str = "symbolic"

    @nn.compact
    def __call__(self, obs, agent_id, types=None, mech=None):
        x = obs.astype(jnp.float32)
        if self.obs_mode == "rgb":
            from sedjax.render import CELL_PX

            x = nn.relu(PatchConv(16, CELL_PX, CELL_PX)(x / 255.0))
        if self.network == "cnn":
            # One strided 3x3 layer (11x11 -> 5x5x16): the view is small and CPU time is precious.
            x = nn.relu(PatchConv(16, 3, 2)(x))
        x = x.reshape(x.shape[: -3] + (-1,))
        extra = [jnp.broadcast_to(jax.nn.one_hot(agent_id, self.num_agents), x.shape[:-1] + (self.num_agents,))]
        for v in (types, mech):
            if v is not None:
                extra.append(jnp.broadcast_to(v, x.shape[:-1] + v.shape[-1:]).astype(jnp.float32))
        x = jnp.concatenate([x] + extra, -1)
        x = nn.relu(_dense(self.hidden)(x))
        x = nn.relu(_dense(self.hidden)(x))
        logits = _dense(self.num_actions, 0.01)(x)
        value = _dense(1, 1.0)(x)[..., 0]
        return logits, value


ORDINAL_SCALE_INIT = 0.6  # the initial spread: logits within 0.35 of each other, close to uniform
ORDINAL_SCALE_MIN = 0.05


def ordinal_logits(loc_scale, rate_levels: int):
    """A discretised Gaussian over the rate grid {0, 1/(L-1), ..., 1}: ``logit_l = -((r_l - mu) /
    s)^2 / 2`` with ``mu = 0.5 + loc_scale[..., 0]`` (unbounded: beyond the grid's ends the mass
    piles on the end level) and ``s = ORDINAL_SCALE_MIN + softplus(loc_scale[..., 1] + c)``, ``c`` such
    that ``s = ORDINAL_SCALE_INIT`` at 0. Rates are ordered: evidence that a higher rate is better
    moves the whole distribution up, where 11 free logits learn each level on its own (and a PPO
    Principal settles on 0.9 when 1.0 is optimal). (..., 2) -> (..., L)."""
    c = np.log(np.expm1(ORDINAL_SCALE_INIT - ORDINAL_SCALE_MIN))
    mu = 0.5 + loc_scale[..., 0:1]
    s = ORDINAL_SCALE_MIN + jax.nn.softplus(loc_scale[..., 1:2] + c)
    grid = jnp.linspace(0.0, 1.0, rate_levels)
    return -0.5 * jnp.square((grid - mu) / s)


class PrincipalNet(nn.Module):
    """The Principal: an MLP over its compact observation. Discrete: an 11-way categorical per
    bracket; continuous: a Beta per bracket (rates in (0, 1)).

    ``shared_head`` (default): each bracket's logits (or Beta concentrations) are a part common to
    all brackets plus ``bracket_scale`` x a part of the bracket's own. Evidence about the rate in
    the brackets incomes reach then carries over to brackets they rarely reach, which the objective
    gives no gradient (on the default map, with a depleted commons, nobody reaches 10 apples per
    period). ``bracket_scale`` < 1 makes the per-bracket part learn slower than the shared one
    (with Adam every parameter moves at about the learning rate, so the scale acts as a ratio of
    learning rates): a prior that brackets share a rate unless the objective keeps saying otherwise.
    The config's default is 0.1 (``principal.bracket_scale``): on the default map incomes reach
    the upper brackets in about 1 % of periods, and at 1 they stayed near 0.7 where 1.0 was optimal
    (README, "Principal defaults").
    ``shared_head=False``: independent heads (the previous network).

    ``policy_input``: ``objective`` (the config's default, ``principal.policy_input``) makes the
    rates a function of the voted parameter only (``obs[voted_index]``, through a torso of its own):
    the Stackelberg leader commits to a mechanism for the objective it serves. The critic still
    reads the whole observation. Trained on the whole state, the schedule was mostly trained on
    periods after the commons had collapsed, where the objective is 0 whatever the rates, and
    nothing held the rates there. ``state``: the actor shares the critic's torso over the whole
    observation (the previous network).

    ``rate_head`` (discrete rates): ``ordinal`` (default, :func:`ordinal_logits`: a location and a
    spread per bracket) or ``categorical`` (one free logit per level, the previous network).

    ``world_shape`` (``env.principal_obs=world``): the observation is the compact summary followed
    by the whole map ``(H, W, 3)`` flattened; the map goes through two 3x3 stride-2 convolutions (16
    features each) and a dense layer to ``hidden`` features, concatenated with the summary before
    the MLP."""

    num_brackets: int
    rate_levels: int = 11
    continuous: bool = False
    hidden: int = 64
    shared_head: bool = True
    rate_head: str = "ordinal"
    bracket_scale: float = 1.0
    world_shape: tuple | None = None
    policy_input: str = "state"
    voted_index: int | None = None

    def _head(self, x, width):
        out = _dense(self.num_brackets * width, 0.01)(x).reshape(x.shape[:-1] + (self.num_brackets, width))
        if self.shared_head:
            out = self.bracket_scale * out + _dense(width, 0.01)(x)[..., None, :]
        return out

    @nn.compact
    def __call__(self, obs):
        if self.world_shape is not None:
            d = obs.shape[-1] - int(np.prod(self.world_shape))
            world = obs[..., d:].reshape(obs.shape[:-1] + tuple(self.world_shape))
            w = nn.relu(PatchConv(16, 3, 2)(world))
            w = nn.relu(PatchConv(16, 3, 2)(w))
            w = nn.relu(_dense(self.hidden)(w.reshape(w.shape[:-3] + (-1,))))
            obs = jnp.concatenate([obs[..., :d], w], -1)
        x = nn.tanh(_dense(self.hidden)(obs))
        x = nn.tanh(_dense(self.hidden)(x))
        value = _dense(1, 1.0)(x)[..., 0]
        if self.policy_input == "objective":
            # the schedule is a function of the objective served (the voted parameter) only; the
            # critic still sees the whole observation
            i = self.voted_index
            if i is None:
                raise ValueError("PrincipalNet(policy_input='objective') needs voted_index: where the vote is in obs")
            x = nn.tanh(_dense(self.hidden)(obs[..., i:i + 1]))
            x = nn.tanh(_dense(self.hidden)(x))
        if self.continuous:
            ab = 1.0 + jax.nn.softplus(self._head(x, 2))  # concentrations > 1: unimodal, finite log-probs
            dist = distrax.Independent(distrax.Beta(ab[..., 0], ab[..., 1]), 1)
        elif self.rate_head == "ordinal":
            logits = ordinal_logits(self._head(x, 2), self.rate_levels)
            dist = distrax.Independent(distrax.Categorical(logits=logits), 1)
        else:
            logits = self._head(x, self.rate_levels)
            dist = distrax.Independent(distrax.Categorical(logits=logits), 1)
        return dist, value
