"""Social-welfare objectives for the Principal (SPEC §5).

All reductions are over the last axis (the agents); leading axes are batch axes. Every function
is pure ``jax.numpy`` (jittable, vmappable; the array functions are ``jax.jit``-wrapped so eager
calls compile once per shape); parameters such as ``p`` and ``eta`` may be traced and broadcast
against ``x.shape[:-1]``. Outcomes ``x`` must be ≥ 0.

Equality metric (SPEC §5 Metrics): :func:`equality` scores a period in which nobody earns
(Σx = 0) as perfect equality (Gini := 0), which would make a collapsed commons look ideal.
:func:`equality_stats` is the honest summary over many periods: the mean equality over the
periods in which someone earns (:func:`earning`), with the share of zero-income periods as its
own number.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from sedjax._arrays import as_float

__all__ = [
    "power_mean",
    "eta_objective",
    "gini",
    "equality",
    "earning",
    "EqualityStats",
    "equality_stats",
    "objective",
    "OBJECTIVES",
]

OBJECTIVES = ("eta", "pmean")

# Switch from the expm1/log1p (series-accurate) form to the logsumexp form once |p|·spread of
# log x exceeds this. exp(30) ~ 1e13 keeps the expm1 form far from float32 overflow (~3e38)
# even summed over many agents, and past this point logsumexp has no cancellation problem.
_SERIES_LIMIT = 30.0
# Below this |p|·spread the cumulant series is used (exact at p = 0, accurate p-derivative).
_TAYLOR_LIMIT = 1e-2


@jax.jit
def power_mean(x, p) -> jax.Array:
    """Power (generalised) mean ``((1/n) Σ_i x_i^p)^(1/p)`` over the last axis, for ``x ≥ 0``.

    ``p`` is a scalar or an array broadcastable to ``x.shape[:-1]`` (may be traced, ±inf or 0).
    Limits are exact: ``p = 0`` geometric mean (0 if any ``x_i = 0``), ``p = -inf`` min,
    ``p = +inf`` max; ``p = 1`` is the arithmetic mean. With a zero in ``x``, ``p < 0`` gives 0
    (the limit, since ``0^p = inf``) and ``p > 0`` counts the zero as 0.

    Computed in log space around ``a = mean log x`` (over positive entries), ``c = log x − a``,
    choosing per element of ``p`` by ``t = |p|·max|c|``:

    * ``t ≤ 1e-2`` (no zeros): cumulant series ``a + p κ2/2 + p² κ3/6 + p³ κ4/24``, exact at
      ``p = 0`` and with an accurate derivative in ``p`` (the closed forms cancel there);
    * ``t ≤ 30``: ``a + log1p(mean(expm1(p c))) / p`` (no ``log n`` cancellation as ``p → 0``);
    * otherwise: ``a + (logsumexp(p c) − log n) / p`` (no overflow for large ``|p|``).

    Each branch sees only safe inputs, so values and gradients are NaN-free.
    """
    x = as_float(x)
    p = as_float(p).astype(x.dtype)
    n = x.shape[-1]
    pe = p[..., None]

    pos = x > 0
    npos = jnp.sum(pos, axis=-1)
    has_zero = npos < n
    # Safe log: log(1) = 0 stands in for zeros so neither values nor gradients see -inf; the
    # zeros are then handled explicitly by `pos` masks below.
    logx = jnp.log(jnp.where(pos, x, 1.0))
    center = jnp.sum(logx, axis=-1) / jnp.maximum(npos, 1)
    c = jnp.where(pos, logx - center[..., None], 0.0)
    spread = jnp.max(jnp.abs(c), axis=-1)

    finite_p = jnp.isfinite(p)
    t = jnp.where(finite_p, jnp.abs(p) * spread, jnp.inf)
    use_taylor = (t <= _TAYLOR_LIMIT) & ~has_zero
    use_series = t <= _SERIES_LIMIT

    # Taylor branch: log M_p = K(p)/p with K the cumulant generating function of log x.
    # Truncation error ~ max|c| · t⁴ / 10, negligible for t ≤ 1e-2. p is zeroed where unused
    # so large |p| cannot overflow the polynomial.
    p_t = jnp.where(use_taylor, p, 0.0)
    k2 = jnp.mean(c**2, axis=-1)
    k3 = jnp.mean(c**3, axis=-1)
    k4 = jnp.mean(c**4, axis=-1) - 3.0 * k2**2
    log_taylor = center + p_t * (k2 / 2.0 + p_t * (k3 / 6.0 + p_t * k4 / 24.0))

    # expm1/log1p branch. p = 0 is replaced by 1 (never selected there); the product is
    # clipped so an unselected branch never produces inf (0 * inf cotangents are NaN).
    p_s = jnp.where(use_series & (p != 0), p, 1.0)
    pc_s = jnp.clip(p_s[..., None] * c, -_SERIES_LIMIT, _SERIES_LIMIT)
    # A zero contributes x^p = 0 for p > 0, i.e. expm1 = -1. For p < 0 the result is forced to
    # 0 below; ignoring zeros (expm1 = 0) there keeps this branch finite.
    em = jnp.where(pos, jnp.expm1(pc_s), jnp.where(pe > 0, -1.0, 0.0))
    e_mean = jnp.mean(em, axis=-1)
    # Keep log1p's argument > -1 where all entries are zero (result is overridden to 0 there).
    e_mean = jnp.where(npos > 0, e_mean, 0.0)
    log_series = center + jnp.log1p(e_mean) / p_s

    # Large-|p| branch: logsumexp over positive entries (zeros are -inf, i.e. weight 0).
    p_l = jnp.where(use_series, 1.0, jnp.where(finite_p, p, 1.0))
    z = jnp.where(pos, p_l[..., None] * c, -jnp.inf)
    lse = logsumexp(z, axis=-1)
    lse = jnp.where(npos > 0, lse, 0.0)  # all-zero rows: overridden below
    log_lse = center + (lse - jnp.log(n).astype(x.dtype)) / p_l

    log_m = jnp.where(use_taylor, log_taylor, jnp.where(use_series, log_series, log_lse))
    m = jnp.exp(log_m)

    # p = 1: return the arithmetic mean bit-exactly; gradients (w.r.t. x and p) come from the
    # general branch through `m - stop_gradient(m)`, which is exactly 0 in value.
    sg = jax.lax.stop_gradient
    m = jnp.where(p == 1, sg(jnp.mean(x, axis=-1)) + (m - sg(m)), m)
    m = jnp.where(p == jnp.inf, jnp.max(x, axis=-1), m)
    m = jnp.where(p == -jnp.inf, jnp.min(x, axis=-1), m)
    # With a zero: the geometric mean is 0, and for p < 0, 0^p = inf makes the mean infinite
    # and its 1/p-th power 0. All-zero x is 0 for every p.
    m = jnp.where((has_zero & (p <= 0)) | (npos == 0), 0.0, m)
    return m


@jax.jit
def eta_objective(x, eta) -> jax.Array:
    """``eta · Σ_i x_i + (1 − eta) · min_i x_i`` over the last axis (utilitarian ↔ egalitarian)."""
    x = as_float(x)
    eta = as_float(eta).astype(x.dtype)
    return eta * jnp.sum(x, axis=-1) + (1.0 - eta) * jnp.min(x, axis=-1)


@jax.jit
def gini(x) -> jax.Array:
    """Gini coefficient over the last axis (0 = perfect equality); defined as 0 when Σx = 0.

    Uses the sorted form ``G = 2 Σ_i i x_(i) / (n Σ x) − (n + 1) / n`` (i = 1..n ascending),
    O(n log n) instead of the O(n²) pairwise mean absolute difference.
    """
    x = as_float(x)
    n = x.shape[-1]
    xs = jnp.sort(x, axis=-1)
    i = jnp.arange(1, n + 1, dtype=x.dtype)
    total = jnp.sum(xs, axis=-1)
    safe_total = jnp.where(total > 0, total, 1.0)
    g = 2.0 * jnp.sum(i * xs, axis=-1) / (n * safe_total) - (n + 1.0) / n
    return jnp.where(total > 0, g, 0.0)


def equality(x) -> jax.Array:
    """``1 − gini(x)`` over the last axis (1 = everyone equal).

    Per period, and 1 where nobody earns (Σx = 0, Gini := 0): averaging it over periods lets
    a collapsed commons score as perfect equality. For a summary over periods use
    :func:`equality_stats`, which leaves those periods out and counts them separately.
    """
    return 1.0 - gini(x)


@jax.jit
def earning(x) -> jax.Array:
    """Whether someone earns, ``Σx > 0`` over the last axis (bool, ``x.shape[:-1]``)."""
    return jnp.sum(as_float(x), axis=-1) > 0


class EqualityStats(NamedTuple):
    """Summary of per-period equality over a batch of periods (see :func:`equality_stats`)."""

    equality: jax.Array  #: mean 1 − Gini over earning periods; 0 when no period earns
    zero_income_share: jax.Array  #: fraction of periods in which nobody earns
    earning_periods: jax.Array  #: number of periods in which someone earns (int32)
    periods: jax.Array  #: number of periods summarised (int32)


@partial(jax.jit, static_argnames="axis")
def equality_stats(x, axis=-2) -> EqualityStats:
    """Equality over many periods without scoring zero-income periods as perfect equality.

    ``x (..., n)``: outcomes (e.g. post-tax period income) with the agents on the last axis;
    ``axis`` (int, tuple or None = every axis but the last) names the period axes of ``x`` to
    reduce over. Returns an :class:`EqualityStats` of arrays over the remaining axes:

    * ``equality``: mean of ``1 − gini`` over the periods in which someone earns
      (:func:`earning`). When no period earns it is **0**, not NaN and not 1: a commons with no
      income has no equality to report (check ``earning_periods``, which is 0 there);
    * ``zero_income_share``: fraction of the periods in which nobody earns;
    * ``earning_periods``, ``periods``: the counts behind both.

    Pure ``jax.numpy`` (``axis`` is static), jittable and vmappable.
    """
    x = as_float(x)
    if x.ndim < 2:
        raise ValueError(f"equality_stats needs a period axis besides the agents' last axis, got shape {x.shape}")
    if axis is None:
        axes = tuple(range(x.ndim - 1))
    else:
        axes = tuple(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
        if x.ndim - 1 in axes:
            raise ValueError("equality_stats: axis must not include the agents' (last) axis")
    # Per-period arrays drop only the last axis, so the period axes keep their indices.
    earn = earning(x)
    eq = equality(x)
    count = jnp.sum(earn, axis=axes, dtype=jnp.int32)
    periods = 1
    for a in axes:
        periods *= x.shape[a]
    total = jnp.sum(jnp.where(earn, eq, 0.0), axis=axes)
    mean_eq = jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)
    periods = jnp.full(count.shape, periods, jnp.int32)
    return EqualityStats(
        equality=mean_eq,
        zero_income_share=(periods - count).astype(x.dtype) / jnp.maximum(periods, 1),
        earning_periods=count,
        periods=periods,
    )


def objective(x, kind: str, param) -> jax.Array:
    """Principal's objective over the last axis. ``kind`` is static: ``'eta'`` (``param`` = η)
    or ``'pmean'`` (``param`` = p)."""
    if kind == "eta":
        return eta_objective(x, param)
    if kind == "pmean":
        return power_mean(x, param)
    raise ValueError(f"objective.kind must be one of {OBJECTIVES}, got {kind!r}")
