"""Tests for sedjax.welfare: power mean (limits, stability, zeros), eta objective, Gini, equality stats.

Evaluations are batched over p with jax.vmap (one compile per shape) to keep the suite fast.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedjax import welfare

X = np.array([1.0, 2.0, 4.0, 8.0], np.float32)
XZ = np.array([0.0, 2.0, 4.0, 8.0], np.float32)
GEO = 8.0**0.5  # (1*2*4*8)^(1/4) = 64^(1/4) = 2*sqrt(2)
INF = np.inf

# Many p values for one x: a single compiled function.
_over_p = jax.jit(jax.vmap(welfare.power_mean, in_axes=(None, 0)))


def pm(x, ps):
    """power_mean(x, p) for each p in ps; ps is padded to a fixed length so that every call
    with the same x shape reuses one compiled program."""
    ps = np.asarray(ps, np.float32)
    padded = np.ones(16, np.float32)
    padded[: ps.size] = ps
    return np.asarray(_over_p(np.asarray(x, np.float32), padded))[: ps.size]


def _np_pmean(x, p):
    x = np.asarray(x, np.float64)
    return np.mean(x**p) ** (1.0 / p)


def test_exact_limits():
    got = pm(X, [0.0, INF, -INF, 1.0, -1.0, 2.0])
    assert got[0] == pytest.approx(GEO, rel=1e-6)
    assert got[1] == 8.0 and got[2] == 1.0
    # p = 1 is the arithmetic mean, bit for bit: (1+2+4+8)/4 = 3.75.
    assert got[3] == 3.75
    # Worked: p = -1 harmonic mean = 4 / (1 + 1/2 + 1/4 + 1/8) = 4 / 1.875 = 2.1333...
    assert got[4] == pytest.approx(4 / 1.875, rel=1e-6)
    # Worked: p = 2 quadratic mean = sqrt((1+4+16+64)/4) = sqrt(21.25)
    assert got[5] == pytest.approx(21.25**0.5, rel=1e-6)
    # Direct (non-vmapped) call with a Python integer p.
    assert float(welfare.power_mean(X, 1)) == 3.75


def test_matches_float64_reference():
    x = np.random.default_rng(0).uniform(0.05, 30.0, (3, 9)).astype(np.float32)
    ps = [-20.0, -3.0, -1.0, -0.5, -1e-3, 1e-3, 0.3, 1.0, 2.0, 5.0, 20.0]
    got = pm(x, ps)  # (P, 5)
    want = np.array([[_np_pmean(row, p) for row in x] for p in ps])
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_continuity_near_zero():
    ps = [1e-2, -1e-2, 1e-4, -1e-4, 1e-6, -1e-6, 1e-8, -1e-8, 1e-30, -1e-30]
    got = pm(X, ps)
    # |p| <= 1e-6: within float32 noise of the geometric mean (M_p - G ~ G p Var(log x) / 2).
    np.testing.assert_allclose(got[4:], GEO, rtol=1e-6)
    # Small but resolvable p: matches the float64 closed form.
    np.testing.assert_allclose(got[:4], [_np_pmean(X, p) for p in ps[:4]], rtol=1e-6)


def test_continuity_near_infinity():
    # |p| = 1e4: M_p = max * (k/n)^(1/p) -> error ~ log(n)/|p| ~ 1.4e-4 relative; no overflow.
    got = pm(X, [1e4, -1e4, 1e6, -1e6, 1e30, -1e30])
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [8.0, 1.0] * 3, rtol=2e-4)
    # Wide dynamic range still fine.
    wide = pm([1e-20, 1.0, 1.0, 1e20], [1e3, -1e3, 1e-7, 1.0])
    np.testing.assert_allclose(wide, [1e20, 1e-20, 1.0, 1e20 / 4], rtol=2e-3)


def test_zeros():
    ps = [1.0, 2.0, 1e4, INF, 0.0, -1e-8, -1.0, -1e4, -INF, 1e-3]
    got = pm(XZ, ps)
    # p > 0: the zero just contributes 0^p = 0. p = 1: 14/4 = 3.5; p = 2: sqrt((0+4+16+64)/4) = sqrt(21)
    assert got[0] == 3.5
    assert got[1] == pytest.approx(21.0**0.5, rel=1e-6)
    assert got[2] == pytest.approx(8.0, rel=2e-4)
    assert got[3] == 8.0
    # p <= 0: geometric mean with a zero and every p < 0 give 0 (the limit).
    np.testing.assert_array_equal(got[4:9], 0.0)
    # p -> 0+ with a zero tends to 0 too (continuity).
    assert got[9] < 1e-30
    # All zeros: 0 for every p, no NaN.
    np.testing.assert_array_equal(pm(np.zeros(4), [-INF, -2.0, 0.0, 1e-6, 1.0, 3.0, INF]), 0.0)


def test_monotone_in_p():
    x = np.random.default_rng(1).uniform(0.0, 10.0, (3, 9)).astype(np.float32)
    x[0, 0] = 0.0  # a row with a zero
    ps = [-INF, -1e4, -50.0, -2.0, -1.0, -1e-6, 0.0, 1e-6, 0.5, 1.0, 2.0, 50.0, 1e4, INF]
    vals = pm(x, ps)  # (P, 3)
    assert np.all(np.isfinite(vals))
    assert np.all(np.diff(vals, axis=0) >= -1e-5 * vals[1:])


def test_gradients_finite():
    #                0     1     2     3      4    5      6     7    8    9    10      11     12
    ps = np.array([-INF, -1e4, -2.0, -1e-8, 0.0, 1e-8, 1e-3, 1.0, 3.0, 1e4, INF, 1e-6, -1e-6], np.float32)

    def grads(x, p):
        return jax.grad(welfare.power_mean, argnums=(0, 1))(x, p)

    grads = jax.jit(jax.vmap(grads, in_axes=(None, 0)))
    for x in (X, XZ):
        gx, gp = grads(x, ps)
        assert np.all(np.isfinite(gx)), x
        assert np.all(np.isfinite(gp[1:-3])), x  # d/dp at p = ±inf is not meaningful
    gx, gp = grads(X, ps)
    # At p = 1, dM/dx_i = 1/n; at p = 0, dM/dx_i = G / (n x_i).
    np.testing.assert_allclose(gx[7], 0.25, rtol=1e-5)
    np.testing.assert_allclose(gx[4], GEO / (4 * X), rtol=1e-5)
    # d/dp is continuous through 0: dM/dp at 0 = G * Var(log x) / 2.
    var = np.var(np.log(np.asarray(X, np.float64)))
    np.testing.assert_allclose(np.asarray(gp)[[4, 11, 12]], GEO * var / 2, rtol=1e-3)


def test_batched_p_and_int_input():
    x = np.array([[1, 2, 4, 8], [3, 3, 3, 3], [0, 1, 2, 3]], np.int32)  # integers
    out = welfare.power_mean(x, np.array([0.0, -INF, INF], np.float32))
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_allclose(out, [GEO, 3.0, 3.0], rtol=1e-6)
    # All-equal x gives that value for any p.
    np.testing.assert_allclose(pm(np.full(4, 2.5), [-INF, -1e4, -1.0, 0.0, 1e-7, 1.0, 1e4, INF]), 2.5, rtol=1e-5)


def test_jit_and_vmap():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 5.0, (3, 4)).astype(np.float32)
    p = np.array([-3.0, 1e-7, INF], np.float32)
    batched = welfare.power_mean(x, p)
    vm = jax.jit(jax.vmap(welfare.power_mean))(x, p)
    loop = np.stack([pm(x[i], p[i : i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(vm, loop, rtol=1e-6)
    np.testing.assert_allclose(batched, loop, rtol=1e-6)
    eta = np.array([0.0, 0.3, 1.0], np.float32)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(welfare.eta_objective))(x, eta), welfare.eta_objective(x, eta), rtol=1e-6
    )


def test_eta_objective():
    x = np.array([[1.0, 2.0, 3.0, 0.5]] * 3, np.float32)
    # eta = 0.5: 0.5 * (1+2+3+0.5) + 0.5 * 0.5 = 3.25 + 0.25 = 3.5; eta = 1: sum 6.5; eta = 0: min 0.5.
    np.testing.assert_allclose(welfare.eta_objective(x, np.array([0.5, 1.0, 0.0], np.float32)), [3.5, 6.5, 0.5])


def test_gini_and_equality():
    x = np.array([[3.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    # [0, 0, 0, 1]: Σ_ij |x_i - x_j| = 6 ordered pairs of 1 -> 6 / (2 * n^2 * mean) = 6 / (2*16/4) = 3/4
    np.testing.assert_allclose(welfare.gini(x), [0.0, 0.75, 0.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(welfare.equality(x), [1.0, 0.25, 1.0], rtol=1e-6, atol=1e-7)
    # Against the pairwise definition on random data.
    x = np.random.default_rng(5).uniform(0.0, 1.0, (3, 4))
    want = np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2)) / (2 * 4 * x.sum(-1))
    x = x.astype(np.float32)
    np.testing.assert_allclose(welfare.gini(x), want, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.vmap(welfare.gini))(x), want, rtol=1e-5)


def test_objective_dispatch():
    assert float(welfare.objective(X, "eta", 0.5)) == pytest.approx(float(welfare.eta_objective(X, 0.5)))
    assert float(welfare.objective(X, "pmean", 1)) == 3.75
    with pytest.raises(ValueError, match="kind"):
        welfare.objective(X, "nash", 0.0)


def test_earning():
    x = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(welfare.earning(x), [False, True, True])
    np.testing.assert_array_equal(welfare.earning(np.zeros((2, 3, 4), np.int32)), np.zeros((2, 3), bool))


def test_equality_stats_worked():
    # 4 periods of 2 agents (axis -2 = periods):
    #  [1, 1]: Gini 0 -> equality 1;  [0, 2]: Gini 2*(1*0 + 2*2)/(2*2) - 3/2 = 1/2 -> 0.5
    #  [0, 0], [0, 0]: nobody earns -> left out of the mean, counted in zero_income_share
    #  equality = (1 + 0.5)/2 = 0.75, zero_income_share = 2/4. (welfare.equality's plain mean
    #  would be (1 + .5 + 1 + 1)/4 = 0.875.)
    x = np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
    st = welfare.equality_stats(x)
    assert float(st.equality) == pytest.approx(0.75)
    assert float(st.zero_income_share) == pytest.approx(0.5)
    assert int(st.earning_periods) == 2 and int(st.periods) == 4
    assert float(np.mean(welfare.equality(x))) == pytest.approx(0.875)
    # [0, 0, 0, 1] (Gini 3/4, equality 1/4) and [2, 2, 2, 2] (equality 1) over 3 periods, one
    # empty: equality (0.25 + 1)/2 = 0.625, zero share 1/3.
    x = np.array([[0, 0, 0, 1], [0, 0, 0, 0], [2, 2, 2, 2]], np.float32)
    st = welfare.equality_stats(x)
    assert float(st.equality) == pytest.approx(0.625) and float(st.zero_income_share) == pytest.approx(1 / 3)


def test_equality_stats_all_zero_is_not_perfect():
    # A collapsed commons: nobody earns in any period. welfare.equality says 1 per period; the
    # honest summary reports equality 0 (documented value, no NaN) with every period zero-income.
    x = np.zeros((5, 7), np.float32)
    assert np.all(np.asarray(welfare.equality(x)) == 1.0)
    st = welfare.equality_stats(x)
    assert float(st.equality) == 0.0 and not np.isnan(float(st.equality))
    assert float(st.zero_income_share) == 1.0 and int(st.earning_periods) == 0 and int(st.periods) == 5


def test_equality_stats_axes_and_batching():
    rng = np.random.default_rng(9)
    x = rng.uniform(0.0, 3.0, (3, 6, 5)).astype(np.float32)  # (episodes, periods, agents)
    x[0, :2] = 0.0  # episode 0: two empty periods
    x[1] = 0.0  # episode 1: all empty
    st = welfare.equality_stats(x)  # per episode
    eq = np.asarray(welfare.equality(x))
    earn = x.sum(-1) > 0
    want = np.array([eq[e][earn[e]].mean() if earn[e].any() else 0.0 for e in range(3)])
    np.testing.assert_allclose(st.equality, want, rtol=1e-6)
    np.testing.assert_allclose(st.zero_income_share, [2 / 6, 1.0, 0.0])
    np.testing.assert_array_equal(st.earning_periods, [4, 0, 6])
    # Over every period at once (axis=None or both leading axes): 10 earning periods of 18.
    for axis in (None, (0, 1), (-3, -2)):
        st_all = welfare.equality_stats(x, axis=axis)
        assert float(st_all.equality) == pytest.approx(eq[earn].mean(), rel=1e-6)
        assert float(st_all.zero_income_share) == pytest.approx(8 / 18)
    # Reducing over episodes instead (axis 0) and under vmap.
    np.testing.assert_array_equal(welfare.equality_stats(x, axis=0).periods, np.full(6, 3))
    vm = jax.jit(jax.vmap(welfare.equality_stats))(x)
    np.testing.assert_allclose(vm.equality, st.equality, rtol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        welfare.equality_stats(x, axis=-1)
    with pytest.raises(ValueError, match="period axis"):
        welfare.equality_stats(x[0, 0])
