"""Voting mechanisms: reported selfishness → objective parameter (SPEC §5).

``sigma`` has shape ``(..., n)``: each of the ``n`` agents' reported selfishness in [0, 1] (the
last axis); leading axes are batch axes. Every mechanism returns ``sigma.shape[:-1]``. All
functions are pure ``jax.numpy`` (jittable, vmappable; the array functions are ``jax.jit``-wrapped
so eager calls compile once per shape). ``vote`` and ``MECHANISMS`` take/list static names.

Strategic voting (pure functions; not wired into the env here): :func:`manipulation` measures
each agent's gain from its best misreport (alone or in a small coalition), and
:func:`strategic_reports` iterates simultaneous best responses to a fixed point. Both use the
preference model "agent i's ideal outcome is its own true σ_i, utility −|outcome − σ_i|" and
search a grid of reports in [0, 1] (closed forms for the mean).
"""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

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
    "manipulation",
    "strategic_reports",
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


# ---------------------------------------------------------------------------- strategic voting
_MAX_COALITION = 3
# A best response must beat the current report's loss by this much (absolute, losses are in
# [0, 1]) to count as a move: keeps float noise from creating spurious moves or cycles.
_IMPROVE_TOL_ULPS = 16


def _check_mechanism(mechanism: str) -> None:
    if mechanism not in MECHANISMS:
        raise ValueError(f"voting.mechanism must be one of {MECHANISMS}, got {mechanism!r}")


def _coalition_mask(n: int, k: int) -> np.ndarray:
    """Static ``(C(n, k), n)`` bool array: row c marks the members of the c-th k-subset."""
    idx = np.array(list(itertools.combinations(range(n), k)), np.int64).reshape(-1, k)
    mask = np.zeros((idx.shape[0], n), bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def _vote_with(reports, mask: np.ndarray, values, mechanism: str) -> jax.Array:
    """The vote when coalition c's members (``mask[c]``) all report ``values[..., c, j]``.

    ``reports (..., n)``, static ``mask (m, n)``, ``values (..., m, J)`` → ``(..., m, J)``.
    The mean is O(m·J) in closed form (only the coalition's sum changes); the medians vote on
    the ``(..., m, J, n)`` modified report arrays.
    """
    if mechanism == "mean":
        n = reports.shape[-1]
        size = mask.sum(-1).astype(np.float32)[:, None]  # (m, 1)
        rest = jnp.sum(reports, -1)[..., None] - jnp.sum(jnp.where(mask, reports[..., None, :], 0.0), -1)
        return (rest[..., None] + size * values) / n
    modified = jnp.where(mask[:, None, :], values[..., None], reports[..., None, None, :])
    return vote(modified, mechanism)


@partial(jax.jit, static_argnames=("mechanism", "coalition_size", "grid"))
def manipulation(sigma, mechanism: str, coalition_size: int = 1, grid: int = 101) -> jax.Array:
    """Each agent's gain from its best misreport, shape ``(..., n)`` (≥ 0; 0 = no incentive).

    ``sigma (..., n)`` are the true preferences, reported truthfully by everyone else. Agent
    i's loss is ``|vote(reports) − σ_i|``; its gain is the truthful loss minus the smallest loss
    it can reach by misreporting (the truthful report is always a candidate, so gains ≥ 0).

    With ``coalition_size = k`` (1 ≤ k ≤ 3, k ≤ n), every k-subset containing i deviates
    together, **all members reporting one common value** (a restriction: the joint grid is
    ``grid**k``); entry i is i's best gain over those coalitions and common values, measured
    for i alone (an upper bound on what i gets from partners who also want to gain).

    Search: for ``"median"`` and ``"weighted_median"`` a **grid search** over ``grid`` evenly
    spaced reports in [0, 1] (exact only up to the grid; cost O(C(n, k)·grid·n log n)). For
    ``"mean"`` the closed form: the outcome ``(rest + k·r)/n`` is linear in the common report r,
    so the best r in [0, 1] is ``clip((n·σ_i − rest)/k, 0, 1)`` (exact over the whole interval;
    the common-value restriction loses nothing since only the coalition's sum matters).
    ``mechanism``, ``coalition_size`` and ``grid`` are static.
    """
    _check_mechanism(mechanism)
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    k = int(coalition_size)
    if not 1 <= k <= min(_MAX_COALITION, n):
        raise ValueError(f"coalition_size must be in [1, min({_MAX_COALITION}, n = {n})], got {coalition_size}")
    mask = _coalition_mask(n, k)  # (m, n)
    loss0 = jnp.abs(vote(sigma, mechanism)[..., None] - sigma)  # (..., n) truthful losses
    if mechanism == "mean":
        rest = jnp.sum(sigma, -1)[..., None] - jnp.sum(jnp.where(mask, sigma[..., None, :], 0.0), -1)
        rest = rest[..., :, None]  # (..., m, 1): everyone else's sum, per coalition
        best = jnp.clip((n * sigma[..., None, :] - rest) / k, 0.0, 1.0)  # (..., m, n)
        loss = jnp.abs((rest + k * best) / n - sigma[..., None, :])
    else:
        levels = jnp.linspace(0.0, 1.0, grid, dtype=sigma.dtype)
        values = jnp.broadcast_to(levels, sigma.shape[:-1] + (mask.shape[0], grid))
        out = _vote_with(sigma, mask, values, mechanism)  # (..., m, grid)
        loss = jnp.min(jnp.abs(out[..., :, :, None] - sigma[..., None, None, :]), axis=-2)  # (..., m, n)
    gain = jnp.where(mask, loss0[..., None, :] - loss, 0.0)  # only members of each coalition
    return jnp.maximum(jnp.max(gain, axis=-2), 0.0)


def _strategic_one(sigma, mechanism: str, grid: int, max_iters: int):
    """:func:`strategic_reports` for one electorate ``sigma (n,)``."""
    n = sigma.shape[-1]
    mask = np.eye(n, dtype=bool)
    levels = jnp.linspace(0.0, 1.0, grid, dtype=sigma.dtype)
    tol = _IMPROVE_TOL_ULPS * jnp.finfo(sigma.dtype).eps

    def best_response(r):
        # Candidates: the current report first, then the grid; all evaluated by one code path
        # so the "stay" option is compared with exactly the same arithmetic.
        cand = jnp.concatenate([r[:, None], jnp.broadcast_to(levels, (n, grid))], axis=-1)
        loss = jnp.abs(_vote_with(r, mask, cand, mechanism) - sigma[:, None])  # (n, 1 + grid)
        j = jnp.argmin(loss[:, 1:], axis=-1)  # lowest grid level among the best
        move = jnp.take_along_axis(loss[:, 1:], j[:, None], -1)[:, 0] < loss[:, 0] - tol
        return jnp.where(move, levels[j], r)

    def cond(state):
        _, it, done = state
        return ~done & (it < max_iters)

    def body(state):
        r, it, _ = state
        new = best_response(r)
        return new, it + 1, jnp.all(new == r)

    init = (jnp.clip(sigma, 0.0, 1.0), jnp.int32(0), jnp.bool_(False))
    return jax.lax.while_loop(cond, body, init)


@partial(jax.jit, static_argnames=("mechanism", "grid", "max_iters"))
def strategic_reports(sigma, mechanism: str, grid: int = 101, max_iters: int = 20):
    """Reports after iterated simultaneous best responses: ``(reports, iterations, converged)``.

    Preference model: agent i's true ideal outcome is its own ``σ_i`` and its utility is
    ``−|vote(reports) − σ_i|`` (single-peaked). Starting from truthful reports, each round every
    agent simultaneously best-responds to the others' current reports, choosing among its
    current report and ``grid`` evenly spaced levels in [0, 1]; it moves only on a strict
    improvement (by more than a few ulps), to the lowest best level. The rounds run inside a
    ``lax.while_loop`` until no report changes (a pure Nash equilibrium on the grid: e.g. the
    truthful profile of an odd-n median after one round) or ``max_iters`` rounds.

    Returns ``reports (..., n)`` in [0, 1] (each a true σ_i or a grid level),
    ``iterations (...)`` int32 (rounds run, counting the last one that found no move) and
    ``converged (...)`` bool (a fixed point was reached). Simultaneous updates can cycle
    (e.g. even-n medians); then ``converged`` is False. Leading axes are batch axes, each
    electorate with its own loop. ``mechanism``, ``grid`` and ``max_iters`` are static.
    """
    _check_mechanism(mechanism)
    sigma = as_float(sigma)
    n = sigma.shape[-1]
    flat = sigma.reshape(-1, n)
    r, it, ok = jax.vmap(lambda s: _strategic_one(s, mechanism, grid, max_iters))(flat)
    batch = sigma.shape[:-1]
    return r.reshape(sigma.shape), it.reshape(batch), ok.reshape(batch)
