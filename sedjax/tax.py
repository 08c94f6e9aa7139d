"""Bracketed marginal income tax with equal lump-sum redistribution (SPEC §3).

Conventions
-----------
* ``income`` has shape ``(..., n)``: the last axis is the population of ``n`` agents.
* ``thresholds`` are the brackets' increasing *lower* bounds, starting at 0; the last bracket
  is unbounded. The default ``(0, 10, 20)`` is the spec's τ = (0, 10, 20, ∞).
* ``rates`` has one rate per bracket (last axis ``B``). Leading dimensions of ``rates`` and
  ``thresholds`` broadcast against the leading dimensions of ``income``, so one call can tax a
  batch of environments, each with its own rates.

Every array function here is pure ``jax.numpy``: jittable and vmappable. The public array
functions are wrapped in ``jax.jit`` so eager calls compile once per shape; they nest freely
inside a caller's ``jit``/``vmap``. ``check_brackets`` is the host-side (NumPy) validator for
config values.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from sedjax._arrays import as_float
from sedjax._checks import plain as _plain

__all__ = [
    "DEFAULT_THRESHOLDS",
    "NUM_RATE_LEVELS",
    "bracket_tax",
    "redistribute",
    "tax_and_transfer",
    "rate_levels",
    "levels_to_rates",
    "apply_divergence_bound",
    "settle_period",
    "check_brackets",
]

DEFAULT_THRESHOLDS: Tuple[float, ...] = (0.0, 10.0, 20.0)
NUM_RATE_LEVELS: int = 11


def _bracket_amounts(income, thresholds) -> jax.Array:
    """Income falling in each bracket, shape ``(..., n, B)``.

    amount_b = clip(w - τ_b, 0, τ_{b+1} - τ_b) with the last width = +inf. ``jnp.minimum``
    against an infinite width is exact and never forms ``inf * 0`` (which would be NaN), and
    the amounts stay finite, so gradients w.r.t. rates and income are finite too.
    """
    tau = thresholds[..., None, :]  # (..., 1, B)
    upper = jnp.concatenate(
        [thresholds[..., 1:], jnp.full(thresholds.shape[:-1] + (1,), jnp.inf, thresholds.dtype)],
        axis=-1,
    )[..., None, :]
    width = upper - tau
    return jnp.minimum(jnp.maximum(income[..., :, None] - tau, 0.0), width)


@jax.jit
def bracket_tax(income, rates, thresholds=DEFAULT_THRESHOLDS) -> jax.Array:
    """Marginal tax per agent: T(w) = Σ_b φ_b · clip(w − τ_b, 0, τ_{b+1} − τ_b).

    Args:
      income: ``(..., n)`` raw income (apples collected in the period).
      rates: ``(..., B)`` rate per bracket, in [0, 1].
      thresholds: ``(..., B)`` brackets' lower bounds, 0 first, strictly increasing.

    Returns:
      ``(..., n)`` tax owed by each agent (float; broadcast batch shape).
    """
    income = as_float(income)
    rates = as_float(rates)
    thresholds = as_float(thresholds)
    dtype = jnp.result_type(income, rates, thresholds)
    income, rates, thresholds = (a.astype(dtype) for a in (income, rates, thresholds))
    amounts = _bracket_amounts(income, thresholds)  # (..., n, B)
    return jnp.sum(rates[..., None, :] * amounts, axis=-1)


@jax.jit
def tax_and_transfer(income, rates, thresholds=DEFAULT_THRESHOLDS) -> Tuple[jax.Array, jax.Array]:
    """Tax and post-tax income together (shares the single tax computation).

    Returns:
      ``(tax, post_tax)``, both ``(..., n)``, with
      ``post_tax = income − tax + mean_j tax_j`` (the pool split equally among all n agents).
    """
    tax = bracket_tax(income, rates, thresholds)
    income = jnp.broadcast_to(as_float(income).astype(tax.dtype), tax.shape)
    # Mean over agents == pool / n: every agent (taxpayers included) gets an equal share,
    # so Σ_i post_tax_i = Σ_i income_i exactly up to rounding.
    post = income - tax + jnp.mean(tax, axis=-1, keepdims=True)
    return tax, post


@jax.jit
def redistribute(income, rates, thresholds=DEFAULT_THRESHOLDS) -> jax.Array:
    """Post-tax income ``w_i − T(w_i) + (1/n) Σ_j T(w_j)`` over the last axis (SPEC §3)."""
    return tax_and_transfer(income, rates, thresholds)[1]


def rate_levels(num_levels: int = NUM_RATE_LEVELS) -> jax.Array:
    """The discrete rate grid {0, 1/(L−1), …, 1}; 11 levels gives {0, 0.1, …, 1.0}."""
    return jnp.linspace(0.0, 1.0, num_levels)


def levels_to_rates(levels, num_levels: int = NUM_RATE_LEVELS) -> jax.Array:
    """Integer levels in ``[0, num_levels)`` (e.g. categorical actions) → rates in [0, 1]."""
    # Division rather than indexing rate_levels(): exact at both ends and works for any
    # integer/float input without a gather.
    return jnp.asarray(levels).astype(jnp.result_type(float)) / (num_levels - 1)


@jax.jit
def apply_divergence_bound(prev_rates, rates, delta) -> jax.Array:
    """Project ``rates`` onto ``|rates − prev_rates|_∞ ≤ delta`` and then onto [0, 1].

    ``delta = inf`` disables the bound (``prev ± inf`` is ±inf, so the first clip is a no-op).
    """
    prev_rates = as_float(prev_rates)
    rates = as_float(rates)
    bounded = jnp.clip(rates, prev_rates - delta, prev_rates + delta)
    return jnp.clip(bounded, 0.0, 1.0)


@jax.jit
def settle_period(period_raw, rates, thresholds, transfer_scale=1.0) -> Tuple[jax.Array, jax.Array]:
    """The settlement of a tax period (SPEC §3): ``(income, transfer)``.

    ``period_raw`` w: raw apples each agent collected in the period ``(..., n)``. The brackets tax
    w, the pool is split equally, and the net transfer ``scale * (post_tax(w) - w)`` (``scale``:
    the curriculum factor of SPEC §6) is what reaches each agent's extrinsic reward at the period's
    end; ``income = w + transfer`` is the post-tax income the Principal's objective may be
    measured on. With ``scale = 1`` the transfers sum to zero (tax is conserved).
    """
    period_raw = as_float(period_raw)
    income = period_raw + transfer_scale * (redistribute(period_raw, rates, thresholds) - period_raw)
    # The transfer as income - w (not the scaled difference itself): the same float rounding as
    # the delivered lump sum has always had, so training runs reproduce bit for bit.
    return income, income - period_raw


def check_brackets(thresholds, rates: Optional[object] = None, rates_field: str = "tax.rates",
                   thresholds_field: str = "tax.thresholds"):
    """Host-side validation of a tax config; raises ``ValueError`` naming the bad field.

    ``thresholds`` (``tax.thresholds``) must be a non-empty 1-D list of finite numbers that
    starts at 0 and strictly increases (the last bracket is implicitly unbounded: do not list
    ``inf``). ``rates`` (named ``rates_field`` in errors, e.g. ``principal.rates``), if given, must have the same length (last axis) and
    finite values in [0, 1].

    Returns:
      ``(thresholds, rates)`` as NumPy float arrays (``rates`` is ``None`` if not given).
    """
    try:
        th = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{thresholds_field} must be a list of numbers, got {_plain(thresholds)!r}") from e
    if th.ndim != 1 or th.size == 0:
        raise ValueError(f"{thresholds_field} must be a non-empty 1-D list, got shape {th.shape}")
    if not np.all(np.isfinite(th)):
        raise ValueError(
            f"{thresholds_field} must be finite (the last bracket is already unbounded; "
            f"do not list inf), got {th.tolist()}"
        )
    if th[0] != 0.0:
        raise ValueError(f"{thresholds_field} must start at 0, got {th.tolist()}")
    if np.any(np.diff(th) <= 0):
        raise ValueError(f"{thresholds_field} must be strictly increasing, got {th.tolist()}")

    if rates is None:
        return th, None
    try:
        r = np.asarray(rates, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{rates_field} must be a list of numbers, got {_plain(rates)!r}") from e
    if r.ndim == 0 or r.shape[-1] != th.size:
        raise ValueError(
            f"{rates_field} must have one rate per bracket ({th.size}, like {thresholds_field}), "
            f"got shape {r.shape}"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{rates_field} must be finite, got {r.tolist()}")
    if np.any((r < 0.0) | (r > 1.0)):
        raise ValueError(f"{rates_field} must lie in [0, 1], got {r.tolist()}")
    return th, r
