"""Behaviour tests of the scaling-law fits (sedjax.scaling.fits): pure numpy/scipy, no JAX."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

pytest.importorskip("scipy")

from sedjax.scaling import fits as F  # noqa: E402


def _plain(obj):
    """True when obj is built only from plain Python JSON types and has no NaN/inf (np.float64
    subclasses float, so json.dumps alone would not catch a numpy scalar)."""
    if obj is None or type(obj) in (bool, int, str):
        return True
    if type(obj) is float:
        return math.isfinite(obj)
    if type(obj) is list:
        return all(_plain(v) for v in obj)
    if type(obj) is dict:
        return all(type(k) is str and _plain(v) for k, v in obj.items())
    return False


# ---------------------------------------------------------------------------- loglog_slope
def test_loglog_slope_exact_linear():
    x = np.array([1.0, 2.0, 5.0, 10.0, 50.0])
    r = F.loglog_slope(x, 3.0 * x)
    assert r["slope"] == pytest.approx(1.0, abs=1e-12)
    assert r["intercept"] == pytest.approx(math.log(3.0), abs=1e-12)
    assert r["ci_low"] <= 1.0 <= r["ci_high"]
    assert r["ci_high"] - r["ci_low"] < 1e-9
    assert r["r2"] == pytest.approx(1.0)
    assert r["n"] == 5
    assert _plain(r)


def test_loglog_slope_noisy_ci_contains_truth():
    rng = np.random.default_rng(0)
    x = np.logspace(0, 3, 20)
    y = 0.5 * x**2 * np.exp(rng.normal(0.0, 0.1, x.size))
    r = F.loglog_slope(x, y)
    assert r["ci_low"] < 2.0 < r["ci_high"]
    assert abs(r["slope"] - 2.0) < 0.05
    assert 0 < r["ci_high"] - r["ci_low"] < 0.2  # a real, non-degenerate interval
    assert r["r2"] > 0.99


def test_loglog_slope_two_points_and_errors():
    r = F.loglog_slope([1.0, 10.0], [2.0, 20.0])
    assert r["slope"] == pytest.approx(1.0)
    assert r["ci_low"] is None and r["ci_high"] is None
    with pytest.raises(ValueError, match=r"\bx\b"):
        F.loglog_slope([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\by\b"):
        F.loglog_slope([1.0, 2.0, 3.0], [1.0, -2.0, 3.0])
    with pytest.raises(ValueError):
        F.loglog_slope([1.0], [1.0])


# ---------------------------------------------------------------------------- power_law_offset
X = 1e6 * 2.0 ** np.arange(6)  # 6 budgets
X0 = float(np.exp(np.log(X).mean()))


def test_power_law_offset_recovers_decreasing():
    rng = np.random.default_rng(1)
    y = 0.2 + 1.5 * (X / X0) ** -0.7 + rng.normal(0.0, 0.01, (5, X.size))  # 5 seeds
    fit = F.power_law_offset(X, y, direction="decreasing")
    assert fit["x0"] == pytest.approx(X0)
    assert fit["a"] == pytest.approx(1.5, abs=0.05)
    assert fit["b"] == pytest.approx(0.7, abs=0.03)
    assert fit["c"] == pytest.approx(0.2, abs=0.03)
    lo, hi = fit["ci"]["b"]
    assert lo <= 0.7 <= hi
    for k in "abc":
        lo, hi = fit["ci"][k]
        assert math.isfinite(lo) and math.isfinite(hi) and lo <= fit[k] <= hi
    assert (fit["n_points"], fit["n_seeds"], fit["n_boot"], fit["n_failed"]) == (6, 5, 200, 0)
    assert fit["rmse"] < 0.01
    assert _plain(fit)
    json.dumps(fit, allow_nan=False)
    # predict reproduces the model and the seed mean.
    np.testing.assert_allclose(F.predict(fit, X), y.mean(axis=0), atol=0.02)
    assert F.predict(fit, [X0])[0] == pytest.approx(fit["c"] + fit["a"])


def test_power_law_offset_recovers_increasing_with_nans():
    rng = np.random.default_rng(2)
    y = 2.0 - 1.5 * (X / X0) ** -0.5 + rng.normal(0.0, 0.01, (5, X.size))
    y[0, 2] = np.nan  # a missing entry is ignored, not propagated
    fit = F.power_law_offset(X, y, direction="increasing", n_boot=100)
    assert fit["direction"] == "increasing"
    assert fit["n_points"] == 6 and fit["n_seeds"] == 5  # the column with a NaN keeps 4 seeds
    assert fit["a"] == pytest.approx(1.5, abs=0.05)
    assert fit["b"] == pytest.approx(0.5, abs=0.03)
    assert fit["c"] == pytest.approx(2.0, abs=0.03)
    assert fit["ci"]["b"][0] <= 0.5 <= fit["ci"]["b"][1]
    assert all(all(math.isfinite(v) for v in fit["ci"][k]) for k in "abc")
    assert _plain(fit)
    json.dumps(fit, allow_nan=False)
    # The same data fitted as "decreasing" cannot follow a rising curve (a >= 0).
    wrong = F.power_law_offset(X, y, direction="decreasing", n_boot=0)
    assert wrong["rmse"] > 10 * fit["rmse"]


def test_power_law_offset_one_seed_and_bad_input():
    y = 0.2 + 1.5 * (X / X0) ** -0.7
    fit = F.power_law_offset(X, y[None, :], direction="decreasing")
    assert fit["ci"] == {"a": None, "b": None, "c": None}
    assert fit["n_seeds"] == 1
    assert fit["b"] == pytest.approx(0.7, abs=1e-4)
    json.dumps(fit, allow_nan=False)
    with pytest.raises(ValueError):
        F.power_law_offset(X, y, direction="up")
    with pytest.raises(ValueError):
        F.power_law_offset(-X, y, direction="decreasing")


def test_missing_scipy_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # makes `import scipy.optimize` fail
    with pytest.raises(ImportError, match=r"pip install 'sedjax\[scaling\]'"):
        F.loglog_slope([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------- monotone
# Seed offsets +-0.1 in every column: std(ddof=1) = 0.1155, se = 0.0577, and the noise allowed on a
# difference is sqrt(2) * se = 0.0816 (times tol_se).
OFFSETS = np.array([0.1, -0.1, 0.1, -0.1])[:, None]


def test_monotone_increasing_and_decreasing():
    base = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    x = np.arange(5.0)
    assert F.monotone(x, base + OFFSETS) == {"monotone": True, "direction": "increasing", "violations": []}
    assert F.monotone(x, -base + OFFSETS) == {"monotone": True, "direction": "decreasing", "violations": []}


def test_monotone_big_reversal_reported():
    x = np.arange(5.0)
    r = F.monotone(x, np.array([1.0, 2.0, 3.0, 1.5, 5.0]) + OFFSETS)
    assert r == {"monotone": False, "direction": "increasing", "violations": [2]}


def test_monotone_small_reversal_within_noise():
    x = np.arange(5.0)
    # A dip of 0.075 < 0.0816 (it would not be within 0.0707, the allowance with ddof=0 std).
    y = np.array([1.0, 2.0, 3.0, 2.925, 5.0]) + OFFSETS
    assert F.monotone(x, y)["monotone"] is True
    # ...but not when the tolerance is below the dip (0.5 * 0.0816 = 0.041), nor with one seed (se 0).
    assert F.monotone(x, y, tol_se=0.5)["violations"] == [2]
    assert F.monotone(x, y[:1])["violations"] == [2]


def test_monotone_flat_is_not_monotone():
    r = F.monotone([1.0, 2.0, 3.0], np.array([[1.0, 1.0, 1.0]]))
    assert r["monotone"] is False and r["direction"] == "flat"


# ---------------------------------------------------------------------------- frontier
def test_frontier_hand_example():
    compute = [8, 1, 2, 4, 2, 16, 8]
    metric = [0.9, 0.1, 0.5, 0.4, 0.3, 0.9, 0.9]
    # 1 (c=1): nothing cheaper -> on.     2 (c=2, .5): cheaper/equal are 1 (.1), 4 (.3) -> on.
    # 4 (c=2, .3): 2 has c=2 and .5 > .3 -> off.   3 (c=4, .4): 2 has c=2 and .5 > .4 -> off.
    # 0 and 6 (c=8, .9): the best metric; each other's tie is not strictly cheaper -> both on.
    # 5 (c=16, .9): 0 has the same metric with less compute -> off.
    # Sorted by compute: [1, 2, 0, 6].
    assert F.frontier(compute, metric) == [1, 2, 0, 6]
    # The same runs scored by a lower-is-better metric (1 - metric) give the same frontier.
    assert F.frontier(compute, [1 - m for m in metric], higher_is_better=False) == [1, 2, 0, 6]
    # ...and reading that lower-is-better metric as higher-is-better flips it: point 1 is cheapest
    # (on), and the others all have more compute and a worse (lower) value -> [1].
    assert F.frontier(compute, [1 - m for m in metric]) == [1]
    assert all(type(i) is int for i in F.frontier(compute, metric))


# ---------------------------------------------------------------------------- saturation / crossing
def test_saturation_hand_example():
    x = [1, 2, 4, 8, 16]
    tp = [10.0, 40.0, 85.0, 95.0, 100.0]
    # 0.9 * 100 = 90: the first throughput >= 90 is 95 at x = 8.
    r = F.saturation(x, tp)
    assert r == {"x": 8, "frac": 0.9, "max": 100.0, "x_at_max": 16}
    assert type(r["x"]) is int
    # 0.8 * 100 = 80: 85 at x = 4.
    assert F.saturation(x, tp, frac=0.8)["x"] == 4


def test_first_crossing_hand_examples():
    steps = [0, 10, 20, 30]
    # max 10, target 9: crossed between (20, 6) and (30, 10): 20 + (9 - 6) / (10 - 6) * 10 = 27.5.
    assert F.first_crossing(steps, [0.0, 2.0, 6.0, 10.0]) == pytest.approx(27.5)
    # The first point already reaches the target (0.9 * 5 = 4.5): its step.
    assert F.first_crossing(steps, [5.0, 4.0, 3.0, 2.0]) == 0.0
    # Non-positive max -2: target -2 - 0.1 * 2 = -2.2, between (10, -5) and (20, -2):
    # 10 + (-2.2 + 5) / 3 * 10 = 19.333...
    assert F.first_crossing([0, 10, 20], [-10.0, -5.0, -2.0]) == pytest.approx(10 + 28 / 3)
    # NaN points are skipped: (10, nan) drops out and the crossing lies between (0, 0) and (20, 10):
    # target 9 -> 0 + 9 / 10 * 20 = 18.
    assert F.first_crossing([0, 10, 20], [0.0, np.nan, 10.0]) == pytest.approx(18.0)
    assert F.first_crossing(steps, [np.nan] * 4) is None
    assert type(F.first_crossing(steps, [0.0, 2.0, 6.0, 10.0])) is float


# ---------------------------------------------------------------------------- bootstrap_ci
def test_bootstrap_ci():
    rng = np.random.default_rng(3)
    s = rng.normal(3.0, 1.0, 50)
    ci = F.bootstrap_ci(s)
    assert type(ci) is list and len(ci) == 2 and all(type(v) is float for v in ci)
    assert ci[0] < s.mean() < ci[1]
    # Width ~ 2 * 1.96 * std / sqrt(n), the normal-theory interval of a mean.
    assert ci[1] - ci[0] == pytest.approx(2 * 1.96 * s.std() / math.sqrt(s.size), rel=0.2)
    assert F.bootstrap_ci(s, stat=np.median, seed=1) != ci
    assert F.bootstrap_ci([1.0]) is None
    assert F.bootstrap_ci([1.0, np.nan]) is None


def test_predict_band_brackets_the_fit():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    x0 = np.exp(np.log(x).mean())
    rng = np.random.default_rng(3)
    y = 0.2 + 1.5 * (x / x0) ** -0.7 + rng.normal(0, 0.02, size=(5, x.size))
    fit = F.power_law_offset(x, y, direction="decreasing", n_boot=100, seed=0)
    xx = np.geomspace(1, 32, 20)
    lo, hi = F.predict_band(fit, xx)
    mid = F.predict(fit, xx)
    assert np.all(lo <= hi)
    assert np.mean((lo <= mid) & (mid <= hi)) >= 0.9  # the point fit lies inside its band
    assert np.all(hi - lo < 0.2)  # and the band is not vacuous at this noise
    one = F.power_law_offset(x, y[:1], direction="decreasing", n_boot=100)
    assert F.predict_band(one, xx) is None
