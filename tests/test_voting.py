"""Tests for sedjax.voting: mean, median, median of care-weighted medians, vote -> p."""

import math

import jax
import numpy as np
import pytest

from sedjax import voting

F32 = np.float32


def _np_weighted_medians(sigma):
    """Reference: explicit care graph, per-voter sort, lower weighted median (float64)."""
    sigma = np.asarray(sigma, np.float64)
    n = sigma.size
    out = []
    for i in range(n):
        w = np.full(n, (1 - sigma[i]) / (n - 1))
        w[i] = sigma[i]
        order = np.argsort(sigma, kind="stable")
        cum = np.cumsum(w[order])
        out.append(sigma[order][np.argmax(cum >= 0.5 * w.sum() - 1e-12)])
    return np.array(out)


def test_mean_and_median_worked():
    s = np.array([0.1, 0.2, 0.9], F32)
    assert float(voting.mean_vote(s)) == pytest.approx(0.4)  # (0.1+0.2+0.9)/3 = 1.2/3
    assert float(voting.median_vote(s)) == pytest.approx(0.2)
    # Even n: mean of the two middle values, (0.2 + 0.5) / 2 = 0.35.
    assert float(voting.median_vote(np.array([0.9, 0.2, 0.1, 0.5], F32))) == pytest.approx(0.35)


def test_weighted_median_worked():
    # sigma = [0.1, 0.2, 0.9], n = 3, off-diagonal weight (1 - sigma_i) / 2:
    #  voter 0: 0.1 (self) -> w .10, 0.2 -> .45 (cum .55 >= .5)  => 0.2
    #  voter 1: 0.1 -> .40, 0.2 (self) -> .20 (cum .60)          => 0.2
    #  voter 2: 0.1 -> .05, 0.2 -> .05 (cum .10), 0.9 (self) .90 => 0.9
    #  median(0.2, 0.2, 0.9) = 0.2
    s = np.array([0.1, 0.2, 0.9], F32)
    np.testing.assert_allclose(voting.weighted_medians(s), [0.2, 0.2, 0.9])
    assert float(voting.weighted_median_vote(s)) == pytest.approx(0.2)

    # sigma = [0, 0.1, 0.5, 0.9], n = 4, off weight (1 - sigma_i) / 3:
    #  voter 0 (off 1/3): 0 (self) 0, 0.1 -> 1/3, 0.5 -> 2/3 >= 1/2          => 0.5
    #  voter 1 (off .3):  0 -> .3, 0.1 (self) -> .4, 0.5 -> .7                => 0.5
    #  voter 2 (off 1/6): 0 -> 1/6, 0.1 -> 2/6, 0.5 (self) -> 2/6 + .5        => 0.5
    #  voter 3 (off 1/30): 1/30, 2/30, 3/30, 0.9 (self) -> 1                  => 0.9
    #  median(0.5, 0.5, 0.5, 0.9) = 0.5  (mean vote 0.375, plain median 0.3)
    s = np.array([0.0, 0.1, 0.5, 0.9], F32)
    np.testing.assert_allclose(voting.weighted_medians(s), [0.5, 0.5, 0.5, 0.9])
    assert float(voting.weighted_median_vote(s)) == pytest.approx(0.5)
    assert float(voting.median_vote(s)) == pytest.approx(0.3)


def test_weighted_median_exact_half_is_lower():
    # sigma = [0, 0.5, 1]: voter 0 gives 0 to itself and 1/2 to each other report, so the
    # cumulative weight reaches exactly 1/2 at 0.5 -> lower weighted median 0.5 (not 1).
    np.testing.assert_allclose(voting.weighted_medians(np.array([0.0, 0.5, 1.0], F32)), [0.5, 0.5, 1.0])
    # n = 7, voter 0 with sigma 0: weight 1/6 on each other; 3/6 = 1/2 is reached at the 3rd
    # smallest other report (0.3) even though 1/6 * 3 is not exactly 0.5 in float32.
    s = np.array([0.0, 0.1, 0.2, 0.3, 0.7, 0.8, 0.95], F32)
    assert float(voting.weighted_medians(s)[0]) == pytest.approx(0.3)


def test_weighted_median_matches_reference():
    rng = np.random.default_rng(0)
    for n in (50, 7):
        s = rng.uniform(0.0, 1.0, (8, n)).astype(F32)  # a batch of 8 electorates
        want = np.stack([_np_weighted_medians(row) for row in s])
        np.testing.assert_allclose(voting.weighted_medians(s), want, rtol=1e-6)
    np.testing.assert_allclose(voting.weighted_median_vote(s), np.median(want, axis=-1), rtol=1e-6)
    # With ties in the reports, and n = 2.
    s[0] = [0.3, 0.3, 0.6, 0.6, 0.1, 0.3, 0.9]
    s[1] = [0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2]
    s[2, 2:] = s[2, 0]
    np.testing.assert_allclose(voting.weighted_medians(s), np.stack([_np_weighted_medians(r) for r in s]), rtol=1e-6)
    # n = 2: voter i keeps sigma_i on itself and 1 - sigma_i on the other.
    # [0.2, 0.7]: voter 0 weights (0.2 on 0.2, 0.8 on 0.7) -> 0.7; voter 1 (0.3 on 0.2, 0.7 on 0.7) -> 0.7.
    np.testing.assert_allclose(voting.weighted_medians(np.array([0.2, 0.7], F32)), [0.7, 0.7])


def _random_electorates(rng, n, batch=4):
    """A few batches of reports for size n: uniform, heavy ties, a coarse grid, only 0/1, and
    values exactly 0, 0.5 and 1 mixed with uniform ones."""
    yield rng.uniform(0.0, 1.0, (batch, n))
    yield rng.choice([0.0, 0.25, 0.5, 1.0], (batch, n))
    yield np.round(rng.uniform(0.0, 1.0, (batch, n)), 1)
    yield rng.choice([0.0, 1.0], (batch, n))
    s = rng.uniform(0.0, 1.0, (batch, n))
    exact = rng.choice([0.0, 0.5, 1.0], s.shape)
    yield np.where(rng.uniform(size=s.shape) < 0.4, exact, s)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 16, 31, 64, 127, 200, 300])
def test_weighted_medians_fast_equals_dense(n):
    # The O(n log n) version must reproduce the O(n²) reference bit for bit (same float
    # predicate), including ties, exact 0/0.5/1 reports and n = 1, 2.
    rng = np.random.default_rng(1000 + n)
    for s in _random_electorates(rng, n):
        s = s.astype(F32)
        np.testing.assert_array_equal(voting.weighted_medians(s), voting.weighted_medians_dense(s))
    if n <= 64:  # and the float64 explicit-care-graph reference
        for s in _random_electorates(rng, n, batch=2):
            s = s.astype(F32)
            want = np.stack([_np_weighted_medians(r) if n > 1 else r for r in s])
            np.testing.assert_allclose(voting.weighted_medians(s), want, rtol=1e-6)


def test_weighted_medians_batched_axes():
    s = np.random.default_rng(3).uniform(0.0, 1.0, (2, 3, 9)).astype(F32)
    s[1, 2] = [0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    got = voting.weighted_medians(s)
    assert got.shape == (2, 3, 9)
    np.testing.assert_array_equal(got, voting.weighted_medians_dense(s))
    np.testing.assert_array_equal(got[1, 2], voting.weighted_medians(s[1, 2]))
    vm = jax.jit(jax.vmap(jax.vmap(voting.weighted_medians)))(s)
    np.testing.assert_array_equal(vm, got)


def test_weighted_medians_worked_edges():
    # n = 1: the only report, whatever its (zero or full) weight.
    np.testing.assert_array_equal(voting.weighted_medians(np.array([0.0], F32)), [0.0])
    np.testing.assert_array_equal(voting.weighted_medians(np.array([0.7], F32)), np.array([0.7], F32))
    # n = 2, sigma = [1, 0]: voter 0 puts all weight on itself (1) -> 1; voter 1 puts weight 0
    # on itself and 1 on the other report (1) -> cum 0 at 0, 1 at 1 -> 1.
    np.testing.assert_array_equal(voting.weighted_medians(np.array([1.0, 0.0], F32)), [1.0, 1.0])
    # n = 2, sigma = [0.5, 0.5]: weights 1/2, 1/2 -> exact half at the first -> 0.5 both.
    # sigma = [0.5, 0.9]: voter 0 gives 0.5 to 0.5 (exact half, lower) -> 0.5; voter 1 gives
    # 0.1 to 0.5 and 0.9 to itself -> 0.9.
    np.testing.assert_array_equal(voting.weighted_medians(np.array([0.5, 0.9], F32)), np.array([0.5, 0.9], F32))
    # n = 4, sigma = [1, 0, 0, 1] (ties, exact 0/1): the sigma = 1 voters give off = 0 to the
    # others and keep all weight on their own report -> 1. A sigma = 0 voter gives 0 to itself
    # and 1/3 to each other report: the 0s hold 0 + 1/3 < 1/2, the first 1 brings 2/3 -> 1.
    np.testing.assert_array_equal(voting.weighted_medians(np.array([1.0, 0.0, 0.0, 1.0], F32)), [1, 1, 1, 1])
    # n = 3, sigma = [0, 0, 1]: voter 0/1 give 1/2 to the other 0 -> exact half at 0 -> 0;
    # voter 2 keeps everything on itself -> 1.
    np.testing.assert_array_equal(voting.weighted_medians(np.array([0.0, 0.0, 1.0], F32)), [0, 0, 1])
    for s in ([0.0, 0.5, 1.0], [0.0, 0.1, 0.2, 0.3, 0.7, 0.8, 0.95], [1.0, 0.0, 0.0, 1.0]):
        s = np.array(s, F32)
        np.testing.assert_array_equal(voting.weighted_medians(s), voting.weighted_medians_dense(s))


def test_weighted_medians_exact_half_needs_tolerance():
    # Exact-half ties where float32 lands just below 1/2 (found by search), one per piece of
    # the cumulative weight (from / before the voter's own sorted position). Whether a case
    # rounds low depends on XLA fusing k·off + d into one FMA, hence several cases:
    # n = 83 (51), voter 0 reports 0: weight 1/82 (1/50) on each other report, so 41 (25) of
    # them hold exactly 1/2 -> the 41st (25th) smallest other report, 0.41 (0.25).
    for n, want in ((83, 0.41), (51, 0.25)):
        s = np.concatenate([[0.0], np.arange(1, n) / 100]).astype(F32)
        assert float(voting.weighted_medians(s)[0]) == F32(want)
    # n = 42, voter 0 reports 0.5 above all others: weight 0.5/41 on each other, the 41 others
    # (all below 0.5) hold exactly 1/2 -> the largest other report, 0.41, not its own 0.5.
    s = np.concatenate([[0.5], np.arange(1, 42) / 100]).astype(F32)
    assert float(voting.weighted_medians(s)[0]) == F32(0.41)
    for s in (s, s[::-1].copy()):
        np.testing.assert_array_equal(voting.weighted_medians(s), voting.weighted_medians_dense(s))


def test_care_graph():
    c = voting.care_graph(np.array([0.1, 0.2, 0.9], F32))
    np.testing.assert_allclose(c, [[0.1, 0.45, 0.45], [0.4, 0.2, 0.4], [0.05, 0.05, 0.9]], rtol=1e-6)
    np.testing.assert_allclose(c.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("mechanism", voting.MECHANISMS)
def test_all_equal_returns_value(mechanism):
    values = np.array([0.0, 0.37, 1.0], F32)
    for n in [1, 7]:
        sigma = np.repeat(values[:, None], n, axis=1)  # batch of 3 all-equal electorates
        np.testing.assert_allclose(voting.vote(sigma, mechanism), values, atol=1e-7)


@pytest.mark.parametrize("mechanism", voting.MECHANISMS)
def test_jit_vmap_batch(mechanism):
    s = np.random.default_rng(7).uniform(0.0, 1.0, (3, 7)).astype(F32)
    batched = voting.vote(s, mechanism)
    assert batched.shape == (3,)
    loop = np.stack([voting.vote(s[i], mechanism) for i in range(3)])
    vm = jax.jit(jax.vmap(lambda x: voting.vote(x, mechanism)))(s)
    np.testing.assert_allclose(batched, loop, rtol=1e-6)
    np.testing.assert_allclose(vm, loop, rtol=1e-6)
    # Votes stay within the range of the reports.
    assert np.all(batched >= s.min(-1) - 1e-7) and np.all(batched <= s.max(-1) + 1e-7)


def test_vote_to_p():
    assert float(voting.vote_to_p(1.0)) == pytest.approx(1.0)  # utilitarian
    assert float(voting.vote_to_p(math.exp(-1))) == pytest.approx(0.0, abs=1e-6)  # Nash
    assert float(voting.vote_to_p(0.0)) == -math.inf  # egalitarian, exactly
    np.testing.assert_allclose(voting.vote_to_p(np.array([0.5, 0.25], F32)), np.log([0.5, 0.25]) + 1, rtol=1e-6)


def test_unknown_mechanism():
    with pytest.raises(ValueError, match="mechanism"):
        voting.vote(np.ones(3, F32), "borda")
