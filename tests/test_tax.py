"""Tests for sedjax.tax: bracket tax, redistribution, rate grid, divergence bound, validator.

Inputs are NumPy arrays and shapes are reused across tests, so the suite compiles few programs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedjax import tax

F32 = np.float32


def _np_tax(w, rates, thresholds):
    """Reference: plain-Python marginal tax for one agent."""
    uppers = list(thresholds[1:]) + [np.inf]
    return sum(r * min(max(w - lo, 0.0), hi - lo) for r, lo, hi in zip(rates, thresholds, uppers))


def test_worked_example():
    # thresholds (0, 10, 20, inf), rates (0.1, 0.2, 0.5):
    #   w = 5  -> 0.1*5                      = 0.5
    #   w = 15 -> 0.1*10 + 0.2*5             = 2.0
    #   w = 30 -> 0.1*10 + 0.2*10 + 0.5*10   = 8.0
    # pool = 10.5, share = 10.5 / 3 = 3.5
    # post = 5-0.5+3.5 = 8, 15-2+3.5 = 16.5, 30-8+3.5 = 25.5  (sum 50 = 5+15+30)
    income = np.array([5.0, 15.0, 30.0], F32)
    rates = np.array([0.1, 0.2, 0.5], F32)
    t, post = tax.tax_and_transfer(income, rates, np.array([0.0, 10.0, 20.0], F32))
    np.testing.assert_allclose(t, [0.5, 2.0, 8.0], rtol=1e-6)
    np.testing.assert_allclose(post, [8.0, 16.5, 25.5], rtol=1e-6)
    # Default thresholds are (0, 10, 20).
    np.testing.assert_allclose(tax.redistribute(income, rates), post, rtol=1e-6)


def test_integer_income_and_boundaries():
    # Exactly on a boundary: w = 10 pays only bracket 0 (0.5 * 10 = 5); w = 20 pays 5 + 0.25*10.
    income = np.array([0, 10, 20], np.int32)
    t = tax.bracket_tax(income, np.array([0.5, 0.25, 1.0], F32))
    assert jnp.issubdtype(t.dtype, jnp.floating)
    np.testing.assert_allclose(t, [0.0, 5.0, 7.5], rtol=1e-6)


@pytest.mark.parametrize(
    "income_shape,rates_shape",
    [((7,), (3,)), ((5, 7), (5, 3)), ((2, 4, 9), (4, 3))],
)
def test_conservation_random(income_shape, rates_shape):
    rng = np.random.default_rng(0)
    for _ in range(3):
        income = rng.uniform(0.0, 60.0, income_shape).astype(F32)
        income[..., 0] = 0.0  # zero earners too
        rates = rng.uniform(0.0, 1.0, rates_shape).astype(F32)
        post = np.asarray(tax.redistribute(income, rates))
        batch = np.broadcast_shapes(income_shape[:-1], rates_shape[:-1])
        assert post.shape == batch + income_shape[-1:]
        raw_sum = np.broadcast_to(income.sum(-1), batch)
        np.testing.assert_allclose(post.sum(-1), raw_sum, rtol=1e-5, atol=1e-4)


def test_matches_reference_many_brackets():
    rng = np.random.default_rng(1)
    for B in (1, 5):
        thresholds = np.concatenate([[0.0], np.cumsum(rng.uniform(1, 8, B - 1))]).astype(F32)
        rates = rng.uniform(0, 1, B).astype(F32)
        income = rng.uniform(0, 50, 11).astype(F32)
        got = tax.bracket_tax(income, rates, thresholds)
        want = [_np_tax(w, rates, thresholds) for w in income]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batched_thresholds():
    # Per-environment thresholds broadcast against income's leading dims.
    income = np.array([[5.0, 15.0], [5.0, 15.0]], F32)
    rates = np.array([0.0, 1.0], F32)
    thresholds = np.array([[0.0, 10.0], [0.0, 4.0]], F32)
    # env 0: 0 on [0,10), 1 above 10 -> (0, 5); env 1: above 4 -> (1, 11)
    np.testing.assert_allclose(tax.bracket_tax(income, rates, thresholds), [[0.0, 5.0], [1.0, 11.0]])


def test_monotone_tax_and_post_tax():
    income = np.linspace(0.0, 50.0, 201, dtype=F32)
    for rates in ([0.1, 0.5, 0.9], [0.9, 0.1, 0.3], [1.0, 1.0, 0.0]):
        t, post = tax.tax_and_transfer(income, np.array(rates, F32))
        assert np.all(np.diff(np.asarray(t)) >= -1e-6)
        # Marginal rates <= 1, so ranking by income is preserved after tax.
        assert np.all(np.diff(np.asarray(post)) >= -1e-5)


def test_full_tax_equalises_and_zero_tax_is_identity():
    income = np.random.default_rng(3).uniform(0.0, 40.0, (5, 7)).astype(F32)
    post = tax.redistribute(income, np.ones((5, 3), F32))
    np.testing.assert_allclose(post, np.broadcast_to(income.mean(-1, keepdims=True), income.shape), rtol=1e-5)
    post0 = tax.redistribute(income, np.zeros((5, 3), F32))
    np.testing.assert_array_equal(post0, income)


def test_no_nan_large_income_and_finite_grads():
    rates = np.array([0.2, 0.3, 0.4], F32)
    income = np.array([0.0, 1e6, 3e7], F32)
    assert np.all(np.isfinite(tax.redistribute(income, rates)))
    both = jax.jit(jax.grad(lambda w, r: tax.redistribute(w, r).max(), argnums=(0, 1)))
    assert all(np.all(np.isfinite(g)) for g in both(income, rates))
    # d tax / d w is the marginal rate of the agent's bracket.
    d_tax = jax.jit(jax.grad(lambda w: tax.bracket_tax(w, rates).sum()))
    np.testing.assert_allclose(d_tax(np.array([5.0, 15.0, 25.0], F32)), rates)


def test_jit_and_vmap():
    rng = np.random.default_rng(4)
    income = rng.uniform(0.0, 40.0, (5, 7)).astype(F32)
    rates = rng.uniform(0.0, 1.0, (5, 3)).astype(F32)
    batched = tax.redistribute(income, rates)
    vm = jax.jit(jax.vmap(tax.redistribute))(income, rates)
    loop = np.stack([tax.redistribute(income[i], rates[i]) for i in range(5)])
    np.testing.assert_allclose(vm, loop, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batched, loop, rtol=1e-6, atol=1e-6)


def test_rate_levels():
    np.testing.assert_allclose(tax.rate_levels(), np.linspace(0, 1, 11), atol=1e-7)
    np.testing.assert_allclose(tax.levels_to_rates(np.array([0, 3, 10])), [0.0, 0.3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(tax.levels_to_rates(np.array([0, 1, 4]), num_levels=5), [0.0, 0.25, 1.0])
    # levels_to_rates agrees with indexing the grid.
    np.testing.assert_allclose(tax.levels_to_rates(np.arange(11)), np.asarray(tax.rate_levels()), rtol=1e-6)


def test_divergence_bound():
    prev = np.array([0.0, 0.5, 0.95], F32)
    new = np.array([1.0, 0.1, 0.9], F32)
    bound = jax.jit(tax.apply_divergence_bound)
    np.testing.assert_allclose(bound(prev, new, F32(0.2)), [0.2, 0.3, 0.9], rtol=1e-6)
    np.testing.assert_allclose(bound(prev, new, F32(np.inf)), new)
    # Out-of-range proposals are clipped into [0, 1] even without a bound.
    np.testing.assert_allclose(bound(prev, np.array([1.5, -0.2, 0.5], F32), F32(np.inf)), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(bound(prev, new, F32(0.0)), prev)
    np.testing.assert_allclose(tax.apply_divergence_bound(prev, new, 0.2), [0.2, 0.3, 0.9], rtol=1e-6)


def test_check_brackets_ok():
    th, r = tax.check_brackets([0, 10, 20], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(th, [0, 10, 20])
    np.testing.assert_array_equal(r, [0, 0.5, 1])
    assert tax.check_brackets([0])[1] is None


@pytest.mark.parametrize(
    "thresholds,rates,field",
    [
        ([0, 20, 10], None, "tax.thresholds"),  # unordered
        ([0, 10, 10], None, "tax.thresholds"),  # not strictly increasing
        ([5, 10, 20], None, "tax.thresholds"),  # does not start at 0
        ([0, 10, np.inf], None, "tax.thresholds"),  # not finite
        ([], None, "tax.thresholds"),  # empty
        ([0, 10, 20], [0.1, 1.5, 0.0], "tax.rates"),  # above 1
        ([0, 10, 20], [-0.1, 0.5, 0.0], "tax.rates"),  # below 0
        ([0, 10, 20], [0.1, 0.2], "tax.rates"),  # length mismatch
        ([0, 10, 20], [0.1, np.nan, 0.2], "tax.rates"),  # not finite
    ],
)
def test_check_brackets_errors(thresholds, rates, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        tax.check_brackets(thresholds, rates)


def test_settle_period_worked_example():
    """Brackets (0, 10, 20), rates (0.1, 0.2, 0.5), raw apples (5, 15, 30): taxes 0.5, 2 and 8
    (1 + 2 + 5); the pool 10.5 gives each agent 3.5, so post-tax income is (8, 16.5, 25.5) and the
    full transfers (3, 1.5, -4.5) sum to zero. At curriculum scale 0.5 half of each arrives."""
    raw = jnp.array([5.0, 15.0, 30.0])
    rates = jnp.array([0.1, 0.2, 0.5])
    th = jnp.array([0.0, 10.0, 20.0])
    income, transfer = tax.settle_period(raw, rates, th, 1.0)
    np.testing.assert_allclose(np.asarray(income), [8.0, 16.5, 25.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(transfer), [3.0, 1.5, -4.5], rtol=1e-6)
    assert abs(float(transfer.sum())) < 1e-5
    income, transfer = tax.settle_period(raw, rates, th, 0.5)
    np.testing.assert_allclose(np.asarray(transfer), [1.5, 0.75, -2.25], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(income), [6.5, 15.75, 27.75], rtol=1e-6)
