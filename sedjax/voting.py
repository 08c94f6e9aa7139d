"""Voting mechanisms: reported selfishness → objective parameter (SPEC §5).

``sigma`` has shape ``(..., n)``: each of the ``n`` agents' reported selfishness in [0, 1] (the
last axis); leading axes are batch axes. Every mechanism returns ``sigma.shape[:-1]``. All
functions are pure ``jax.numpy`` (jittable, vmappable; the array functions are ``jax.jit``-wrapped
so eager calls compile once per shape). ``vote`` and ``MECHANISMS`` take/list static names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sedjax._arrays import as_float

__all__ = [
    "MECHANISMS",
    "mean_vote",
    "median_vote",
    "weighted_median_vote",
    "weighted_medians",
    "care_graph",
    "vote",
    "vote_to_p",
]

MECHANISMS = ("mean", "median", "weighted_median")


@jax.jit
def mean_vote(sigma) -> jax.Array:
    """The paper's f(σ) = (1/n) Σ_i σ_i."""
    return jnp.mean(as_float(sigma), axis=-1)


@jax.jit
def median_vote(sigma) -> jax.Array:
    """Median of the reports (``jnp.median``: for even n, the mean of the two middle values)."""
    return jnp.median(as_float(sigma), axis=-1)


@jax.jit
def care_graph(sigma) -> jax.Array:
    """Care matrix ``C`` of shape ``(..., n, n)``: ``C_ii = σ_i``, ``C_ij = (1 − σ_i)/(n − 1)``.

    Row i is how much voter i cares about each agent j; every row sums to 1 (for n ≥ 2).
    For reference and tests; :func:`weighted_median_vote` never builds it explicitly.
    """
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    off = (1.0 - sigma) / max(n - 1, 1)
    eye = jnp.eye(n, dtype=bool)
    return jnp.where(eye, sigma[..., :, None], off[..., :, None])


@jax.jit
def weighted_medians(sigma) -> jax.Array:
    """Each voter's care-weighted median of all reports, shape ``(..., n)``.

    Voter i weighs agent j's report σ_j by ``C_ij`` (see :func:`care_graph`) and takes the
    *lower* weighted median: the smallest reported value v such that the total weight of
    reports ≤ v is at least half of the row's total weight (1).

    Cost O(n²) time and memory: σ is sorted once; since row i's weights differ from the uniform
    (1 − σ_i)/(n − 1) only on the diagonal, voter i's cumulative weight at sorted position k is
    ``(k + 1)·off_i + [rank_i ≤ k]·(σ_i − off_i)``, with no per-voter sort. A tolerance of a
    few ulps on the "≥ 1/2" test keeps exact-half ties (e.g. hand-worked examples) on the
    documented lower median despite float rounding.
    """
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    if n == 1:
        # A single voter's only report carries all of its (possibly zero) weight.
        return sigma
    order = jnp.argsort(sigma, axis=-1)
    s = jnp.take_along_axis(sigma, order, axis=-1)  # sorted reports (..., n)
    rank = jnp.argsort(order, axis=-1)  # sorted position of each voter's own report

    off = (1.0 - sigma) / (n - 1)  # (..., n) weight voter i gives each other agent
    k = jnp.arange(n)
    # cum[..., i, k]: voter i's total weight on the k+1 smallest reports. Ties among equal
    # reports do not matter: the first position reaching 1/2 holds the same value either way.
    cum = (k + 1).astype(sigma.dtype) * off[..., :, None] + jnp.where(
        rank[..., :, None] <= k, (sigma - off)[..., :, None], 0.0
    )
    tol = 8 * jnp.finfo(sigma.dtype).eps
    reached = cum >= 0.5 - tol
    # First sorted position reaching half the weight; the last position always does (cum = 1).
    first = jnp.argmax(reached, axis=-1)  # (..., n)
    return jnp.take_along_axis(s, first, axis=-1)


@jax.jit
def weighted_median_vote(sigma) -> jax.Array:
    """Median over voters of their care-weighted (lower) medians, see :func:`weighted_medians`.

    The outer median is ``jnp.median`` (even n: the mean of the two middle voters' values).
    """
    return jnp.median(weighted_medians(sigma), axis=-1)


@jax.jit
def vote_to_p(m) -> jax.Array:
    """Map a vote ``m`` ∈ [0, 1] to a power-mean exponent ``p = ln(m) + 1``.

    m = 1 → p = 1 (utilitarian mean), m = 1/e → p = 0 (Nash), m = 0 → p = −inf exactly
    (egalitarian min).
    """
    return jnp.log(as_float(m)) + 1.0


def vote(sigma, mechanism: str) -> jax.Array:
    """Dispatch on a static mechanism name in :data:`MECHANISMS`."""
    if mechanism == "mean":
        return mean_vote(sigma)
    if mechanism == "median":
        return median_vote(sigma)
    if mechanism == "weighted_median":
        return weighted_median_vote(sigma)
    raise ValueError(f"voting.mechanism must be one of {MECHANISMS}, got {mechanism!r}")
