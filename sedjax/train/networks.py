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
    agent's one-hot id (and optionally its type), then two dense layers, to policy logits and a
    value."""

    num_actions: int
    num_agents: int
    network: str = "cnn"
    hidden: int = 128

    @nn.compact
    def __call__(self, obs, agent_id, types=None):
        x = obs.astype(jnp.float32)
        if self.network == "cnn":
            # One strided 3x3 layer (11x11 -> 5x5x16): the view is small and CPU time is precious.
            x = nn.relu(PatchConv(16, 3, 2)(x))
        x = x.reshape(x.shape[: -3] + (-1,))
        extra = [jnp.broadcast_to(jax.nn.one_hot(agent_id, self.num_agents), x.shape[:-1] + (self.num_agents,))]
        if types is not None:
            extra.append(jnp.broadcast_to(types, x.shape[:-1] + types.shape[-1:]))
        x = jnp.concatenate([x] + extra, -1)
        x = nn.relu(_dense(self.hidden)(x))
        x = nn.relu(_dense(self.hidden)(x))
        logits = _dense(self.num_actions, 0.01)(x)
        value = _dense(1, 1.0)(x)[..., 0]
        return logits, value


class PrincipalNet(nn.Module):
    """The Principal: an MLP over its compact observation. Discrete: one 11-way categorical head per
    bracket; continuous: a Beta per bracket (rates in (0, 1))."""

    num_brackets: int
    rate_levels: int = 11
    continuous: bool = False
    hidden: int = 64

    @nn.compact
    def __call__(self, obs):
        x = nn.tanh(_dense(self.hidden)(obs))
        x = nn.tanh(_dense(self.hidden)(x))
        value = _dense(1, 1.0)(x)[..., 0]
        if self.continuous:
            ab = _dense(2 * self.num_brackets, 0.01)(x).reshape(x.shape[:-1] + (self.num_brackets, 2))
            ab = 1.0 + jax.nn.softplus(ab)  # concentrations > 1: unimodal, finite log-probs
            dist = distrax.Independent(distrax.Beta(ab[..., 0], ab[..., 1]), 1)
        else:
            logits = _dense(self.num_brackets * self.rate_levels, 0.01)(x)
            logits = logits.reshape(x.shape[:-1] + (self.num_brackets, self.rate_levels))
            dist = distrax.Independent(distrax.Categorical(logits=logits), 1)
        return dist, value
