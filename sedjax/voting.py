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
    "weighted_medians_dense",
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


def _sorted_with_rank(sigma):
    """Stable sort of the reports: sorted values, and each voter's own sorted position.

    One sort carrying the indices along, then the inverse permutation by a scatter (a second
    argsort would cost as much as the sort itself at large n).
    """
    n = sigma.shape[-1]
    iota = jax.lax.broadcasted_iota(jnp.int32, sigma.shape, sigma.ndim - 1)
    s, order = jax.lax.sort((sigma, iota), dimension=sigma.ndim - 1, num_keys=1, is_stable=True)

    def invert(o):
        return jnp.zeros_like(o).at[o].set(jnp.arange(n, dtype=o.dtype), unique_indices=True)

    rank = jax.vmap(invert)(order.reshape(-1, n)).reshape(order.shape)
    return s, rank


# "≥ 1/2" is tested as "≥ 1/2 − 8 ulps" so that exact-half ties (hand-worked examples such as
# 3 · (1/6)) stay on the documented lower median despite float rounding. Shared by both versions.
_HALF_TOL_ULPS = 8


@jax.jit
def weighted_medians_dense(sigma) -> jax.Array:
    """Reference O(n²) version of :func:`weighted_medians` (same values, bit for bit).

    Builds voter i's cumulative weight at every sorted position k as an ``(..., n, n)`` matrix,
    ``(k + 1)·off_i + [rank_i ≤ k]·(σ_i − off_i)``, and takes the first position reaching half.
    Kept for tests and as the readable definition; 16.8M weights per electorate at n = 4,096.
    """
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    if n == 1:
        # A single voter's only report carries all of its (possibly zero) weight.
        return sigma
    s, rank = _sorted_with_rank(sigma)
    off = (1.0 - sigma) / (n - 1)  # (..., n) weight voter i gives each other agent
    k = jnp.arange(n)
    # cum[..., i, k]: voter i's total weight on the k+1 smallest reports. Ties among equal
    # reports do not matter: the first position reaching 1/2 holds the same value either way.
    cum = (k + 1).astype(sigma.dtype) * off[..., :, None] + jnp.where(
        rank[..., :, None] <= k, (sigma - off)[..., :, None], 0.0
    )
    reached = cum >= 0.5 - _HALF_TOL_ULPS * jnp.finfo(sigma.dtype).eps
    # First sorted position reaching half the weight; the last position always does (cum = 1).
    first = jnp.argmax(reached, axis=-1)  # (..., n)
    return jnp.take_along_axis(s, first, axis=-1)


def _first_true(pred, lo, hi, steps: int):
    """Smallest k in [lo, hi) with ``pred(k)`` (elementwise; ``pred`` monotone in k), else hi.

    A fixed number of vectorised bisection steps (``steps ≥ log2(max width + 1)``), so the
    predicate is evaluated exactly as the dense version evaluates it, with no closed-form
    rounding to second-guess.
    """

    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) // 2
        go_left = (lo < hi) & pred(mid)
        return jnp.where(go_left, lo, jnp.minimum(mid + 1, hi)), jnp.where(go_left, mid, hi)

    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return lo


@jax.jit
def weighted_medians(sigma) -> jax.Array:
    """Each voter's care-weighted median of all reports, shape ``(..., n)``.

    Voter i weighs agent j's report σ_j by ``C_ij`` (see :func:`care_graph`) and takes the
    *lower* weighted median: the smallest reported value v such that the total weight of
    reports ≤ v is at least half of the row's total weight (1). Exact-half ties resolve low
    (a tolerance of 8 ulps on the "≥ 1/2" test absorbs float rounding); n = 1 returns σ.

    O(n log n) time, O(n) memory. σ is sorted once; row i's weights are the uniform
    ``off_i = (1 − σ_i)/(n − 1)`` except ``σ_i`` on its own report (sorted position ``rank_i``),
    so its cumulative weight at sorted position k is ``(k + 1)·off_i`` for ``k < rank_i`` and
    ``(k + 1)·off_i + (σ_i − off_i)`` from ``rank_i`` on. Each piece is monotone in k (also in
    float arithmetic, for σ in [0, 1]), so the first position reaching 1/2 is found per voter by
    bisection on each piece: ⌈log2(n + 1)⌉ vectorised passes. The predicate is the same float
    expression as in :func:`weighted_medians_dense` (including any FMA contraction XLA applies
    to it), so the values are identical to it; the tests check this on many electorates.
    """
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    if n == 1:
        return sigma
    s, rank = _sorted_with_rank(sigma)
    off = (1.0 - sigma) / (n - 1)
    d = sigma - off
    half = 0.5 - _HALF_TOL_ULPS * jnp.finfo(sigma.dtype).eps
    steps = int(n).bit_length()  # 2**steps > n ≥ any interval width

    def weight(k):  # (k + 1)·off_i, as the dense version computes it
        return (k + 1).astype(sigma.dtype) * off

    zero = jnp.zeros_like(rank)
    # Before the voter's own report (k < rank_i): uniform weights only.
    k_lo = _first_true(lambda k: weight(k) >= half, zero, rank, steps)
    # From its own report on: the dense version adds (σ_i − off_i).
    k_hi = _first_true(lambda k: weight(k) + d >= half, rank, zero + n, steps)
    first = jnp.where(k_lo < rank, k_lo, k_hi)
    # The last position always reaches half (its weight is 1); the dense argmax of an all-False
    # row would be 0, matched here for any out-of-range input.
    first = jnp.where(first < n, first, 0)
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
