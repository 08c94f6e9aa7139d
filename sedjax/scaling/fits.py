"""Fits for the scaling-law suite: plain numpy/scipy, no JAX, JSON-ready results.

Every function returns plain Python (``float``/``int``/``bool``/``list``/``dict``/``None``), never
numpy scalars and never NaN (an undefined quantity is ``None``), so results go straight into
``json.dumps``. scipy is an optional dependency (``pip install 'sedjax[scaling]'``) and is imported
only inside the functions that need it.

What the fits mean
------------------
* ``loglog_slope``: ordinary least squares of ``log y`` on ``log x``. The slope is the exponent of a
  pure power law ``y ~ x^slope`` (e.g. throughput against device count: slope 1 is linear scaling).
* ``power_law_offset``: ``y = c + s*a*(x/x0)^(-b)``, a power law that approaches an asymptote ``c``
  as the budget ``x`` grows, as used for RL "intrinsic performance" curves by Hilton et al. (2023,
  "Scaling laws for single-agent reinforcement learning"). ``s = +1`` for a metric that falls toward
  a floor (regret, loss), ``s = -1`` for one that rises toward a ceiling (return, welfare). ``x0``,
  the geometric mean of the budgets, only normalises ``x`` so that ``a`` is the gap to the asymptote
  at a typical budget and the fit is well conditioned. Confidence intervals come from bootstrapping
  the seeds, the unit of independent replication.
* ``frontier``: the compute-efficient (Pareto) frontier, the runs that no other run beats with no
  more compute. Scaling laws are read off this envelope, not off every (possibly mistuned) run.
* ``monotone``: a power law with offset is monotone in ``x``, so fitting one to a metric that is not
  monotone in the budget (beyond seed noise) would report a trend the data do not have; the suite
  checks this first and fits only metrics that pass.
* ``saturation``: the smallest size (e.g. ``num_envs``) that reaches a fraction of peak throughput.
* ``first_crossing``: sample efficiency, the first step at which a learning curve reaches a fraction
  of its best value (interpolated between logged steps).
* ``bootstrap_ci``: a percentile bootstrap interval of a statistic of a 1-D sample.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "loglog_slope",
    "power_law_offset",
    "predict",
    "monotone",
    "frontier",
    "saturation",
    "first_crossing",
    "bootstrap_ci",
]

MODEL = "y = c + s*a*(x/x0)^(-b)"
_SIGN = {"decreasing": 1.0, "increasing": -1.0}
_B_MAX = 10.0


def _scipy():
    """(scipy.optimize, scipy.stats), imported lazily because scipy is optional."""
    try:
        import scipy.optimize
        import scipy.stats
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the scaling fits need scipy: pip install 'sedjax[scaling]'") from e
    return scipy.optimize, scipy.stats


def _f(v):
    """A plain float, or None where the value is undefined (NaN/inf)."""
    v = float(v)
    return v if math.isfinite(v) else None


def _check_level(level):
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _percentile_ci(values, level):
    lo, hi = np.percentile(values, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return [float(lo), float(hi)]


def _as_2d(y, m, name="y"):
    """y as (seeds, m) floats; a 1-D y is one seed."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] != m:
        raise ValueError(f"{name} must have shape (seeds, {m}), got {np.shape(y)}")
    return y


def _seed_stats(y):
    """Per-column mean and standard error over the finite seeds (NaN seeds are ignored)."""
    ok = np.isfinite(y)
    k = ok.sum(axis=0)
    z = np.where(ok, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = z.sum(axis=0) / k  # NaN where a column has no finite seed
        var = np.where(ok, (y - mean) ** 2, 0.0).sum(axis=0) / np.maximum(k - 1, 1)
    se = np.where(k > 1, np.sqrt(var / np.maximum(k, 1)), 0.0)
    return mean, se, k


# ---------------------------------------------------------------------------- log-log slope
def loglog_slope(x, y, level=0.95) -> dict:
    """OLS of ln(y) on ln(x).

    Returns ``{"slope", "intercept", "ci_low", "ci_high", "r2", "n"}``: the slope's two-sided
    t-interval (n-2 dof) at ``level``; with n == 2 the interval (and a residual variance) does not
    exist, so ci_low/ci_high are None. r2 is None when ln(y) is constant.
    """
    _check_level(level)
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    n = x.size
    if n < 2:
        raise ValueError(f"loglog_slope needs at least 2 points, got {n}")
    if not np.all(np.isfinite(x) & (x > 0)):
        raise ValueError("loglog_slope needs every x > 0 (and finite)")
    if not np.all(np.isfinite(y) & (y > 0)):
        raise ValueError("loglog_slope needs every y > 0 (and finite)")
    _, stats = _scipy()
    lx, ly = np.log(x), np.log(y)
    mx, my = lx.mean(), ly.mean()
    sxx = float(np.sum((lx - mx) ** 2))
    if sxx == 0.0:
        raise ValueError("loglog_slope needs at least two distinct x values")
    slope = float(np.sum((lx - mx) * (ly - my)) / sxx)
    intercept = float(my - slope * mx)
    resid = ly - (intercept + slope * lx)
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((ly - my) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None
    ci_low = ci_high = None
    if n > 2:
        se = math.sqrt(ss_res / (n - 2) / sxx)
        half = float(stats.t.ppf(0.5 * (1.0 + level), n - 2)) * se
        ci_low, ci_high = slope - half, slope + half
    return {
        "slope": slope,
        "intercept": intercept,
        "ci_low": _f(ci_low) if ci_low is not None else None,
        "ci_high": _f(ci_high) if ci_high is not None else None,
        "r2": _f(r2) if r2 is not None else None,
        "n": int(n),
    }


# ---------------------------------------------------------------------------- power law with offset
def _model(x, a, b, c, s, x0):
    return c + s * a * (x / x0) ** (-b)


def _jac(x, a, b, c, s, x0):
    r = (x / x0) ** (-b)
    return np.stack([s * r, -s * a * r * np.log(x / x0), np.ones_like(x)], axis=-1)


def _curve_fit(optimize, x, mean, s, x0, p0):
    """One bounded curve_fit from p0; None on failure or a non-finite result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OptimizeWarning (covariance) and overflow noise
        try:
            p, _ = optimize.curve_fit(
                lambda xx, a, b, c: _model(xx, a, b, c, s, x0),
                x,
                mean,
                p0=p0,
                jac=lambda xx, a, b, c: _jac(xx, a, b, c, s, x0),
                bounds=([0.0, 0.0, -np.inf], [np.inf, _B_MAX, np.inf]),
                maxfev=20000,
            )
        except (RuntimeError, ValueError, FloatingPointError, np.linalg.LinAlgError):
            return None
    return p if np.all(np.isfinite(p)) else None


def _fit_mean(x, mean, s, x0, optimize, start=None):
    """Least-squares (a, b, c) of the model to one mean curve; None if every start fails.

    ``start`` (the full-data estimate, for bootstrap refits) is tried alone first since a resample
    is a small perturbation of the data; otherwise, or if it fails, a few starting exponents are
    tried and the lowest-SSE fit kept: with a handful of budgets the b/c trade-off has shallow
    valleys and a single start occasionally stalls in one.
    """
    ok = np.isfinite(mean)
    x, mean = x[ok], mean[ok]
    if x.size < 3:  # three parameters
        return None
    order = np.argsort(x)
    x, mean = x[order], mean[order]
    if start is not None:
        p0 = np.clip(start, [1e-12, 1e-6, -np.inf], [np.inf, _B_MAX - 1e-6, np.inf])  # interior
        p = _curve_fit(optimize, x, mean, s, x0, p0)
        if p is not None:
            return p
    # c starts at the mean of the largest budget, nudged past it toward the asymptote; a from the
    # remaining gap at the smallest budget.
    span = float(np.ptp(mean)) or max(abs(float(mean[-1])), 1.0)
    c0 = float(mean[-1]) - s * 0.1 * span
    best, best_sse = None, math.inf
    for b0 in (0.5, 0.2, 1.5):
        gap = s * (float(mean[0]) - c0)
        a0 = max(gap, 1e-3 * span) / (x[0] / x0) ** (-b0)
        p = _curve_fit(optimize, x, mean, s, x0, [a0, b0, c0])
        if p is None:
            continue
        sse = float(np.sum((_model(x, *p, s, x0) - mean) ** 2))
        if math.isfinite(sse) and sse < best_sse:
            best, best_sse = p, sse
    return best


def power_law_offset(x, y, *, direction, n_boot=200, seed=0, level=0.95) -> dict:
    """Fit ``y = c + s*a*(x/x0)^(-b)`` to the seed mean of ``y`` (seeds, m) over budgets ``x`` (m,).

    ``direction="decreasing"`` (s = +1): y falls toward the floor c; ``"increasing"`` (s = -1): y
    rises toward the ceiling c. a >= 0, 0 <= b <= 10, x0 = geometric mean of the fitted budgets.
    NaN entries of y are ignored (a budget with no finite seed is dropped). CIs are percentile
    intervals at ``level`` from ``n_boot`` resamples of the seed rows; ``n_failed`` counts resamples
    whose refit failed. With one seed (or n_boot == 0) every CI is None.

    Returns ``{"model", "direction", "x0", "a", "b", "c", "ci": {"a": [lo, hi] | None, "b": ...,
    "c": ...}, "n_boot", "n_failed", "rmse", "n_points", "n_seeds"}``. Raises RuntimeError if the
    fit to the full mean fails and ValueError on bad input (fewer than 3 usable budgets).
    """
    if direction not in _SIGN:
        raise ValueError(f"direction must be 'decreasing' or 'increasing', got {direction!r}")
    _check_level(level)
    s = _SIGN[direction]
    x = np.asarray(x, dtype=float).ravel()
    if not np.all(np.isfinite(x) & (x > 0)):
        raise ValueError("power_law_offset needs every x > 0 (and finite)")
    y = _as_2d(y, x.size)
    n_seeds = y.shape[0]
    optimize, _ = _scipy()

    mean, _, _ = _seed_stats(y)
    used = np.isfinite(mean)
    if used.sum() < 3:
        raise ValueError(f"power_law_offset needs at least 3 budgets with data, got {int(used.sum())}")
    x0 = float(np.exp(np.mean(np.log(x[used]))))
    p = _fit_mean(x, mean, s, x0, optimize)
    if p is None:
        raise RuntimeError(f"power_law_offset: curve_fit failed on the seed mean ({direction})")
    a, b, c = (float(v) for v in p)
    rmse = float(np.sqrt(np.mean((_model(x[used], a, b, c, s, x0) - mean[used]) ** 2)))

    ci = {"a": None, "b": None, "c": None}
    n_failed = 0
    boot: list = []
    if n_seeds > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(int(n_boot)):
            rows = y[rng.integers(0, n_seeds, size=n_seeds)]
            m_boot, _, _ = _seed_stats(rows)
            pb = _fit_mean(x, m_boot, s, x0, optimize, start=p)  # same x0: comparable parameters
            if pb is None:
                n_failed += 1
            else:
                draws.append(pb)
        if len(draws) >= 2:
            draws = np.asarray(draws)
            ci = {k: _percentile_ci(draws[:, i], level) for i, k in enumerate("abc")}
            boot = [[float(v) for v in d] for d in draws]

    return {
        "model": MODEL,
        "direction": direction,
        "x0": x0,
        "a": a,
        "b": b,
        "c": c,
        "ci": ci,
        "n_boot": int(n_boot),
        "n_failed": int(n_failed),
        "rmse": _f(rmse),
        "n_points": int(used.sum()),
        "n_seeds": int(n_seeds),
        "level": float(level),
        "boot": boot,  # the bootstrap fits' (a, b, c): the band of predict_band
    }


def predict_band(fit, x):
    """The pointwise ``fit["level"]`` band of the bootstrap fits at ``x``: ``(lo, hi)`` arrays, or
    None without bootstrap fits (one seed)."""
    boot = fit.get("boot") or []
    if len(boot) < 2:
        return None
    s = _SIGN[fit["direction"]]
    x = np.asarray(x, dtype=float)
    preds = np.stack([_model(x, a, b, c, s, fit["x0"]) for a, b, c in boot])
    q = (1.0 - fit.get("level", 0.95)) / 2.0
    return np.quantile(preds, q, axis=0), np.quantile(preds, 1.0 - q, axis=0)


def predict(fit, x):
    """The fitted model of ``power_law_offset`` evaluated at ``x`` (numpy array)."""
    s = _SIGN[fit["direction"]]
    return _model(np.asarray(x, dtype=float), fit["a"], fit["b"], fit["c"], s, fit["x0"])


# ---------------------------------------------------------------------------- monotonicity
def monotone(x, y, tol_se=1.0) -> dict:
    """Is the seed mean of ``y`` (seeds, m; columns in increasing ``x``) monotone in x?

    The trend is sign(mean[-1] - mean[0]). Difference i -> i+1 of the means is a violation unless it
    has the trend's sign or is within noise, |d| <= tol_se * sqrt(se_i^2 + se_{i+1}^2) (se = standard
    error over the finite seeds, 0 with one seed). A flat series (mean[-1] == mean[0]) has no trend
    and is never monotone. Returns ``{"monotone": bool, "direction": "increasing" | "decreasing" |
    "flat", "violations": [i, ...]}``.
    """
    x = np.asarray(x, dtype=float).ravel()
    if x.size < 2:
        raise ValueError("monotone needs at least 2 points")
    if np.any(np.diff(x) <= 0):
        raise ValueError("monotone needs x strictly increasing (order the columns of y by x)")
    y = _as_2d(y, x.size)
    mean, se, k = _seed_stats(y)
    if np.any(k == 0):
        raise ValueError(f"monotone: columns {np.flatnonzero(k == 0).tolist()} have no finite values")
    trend = float(np.sign(mean[-1] - mean[0]))
    d = np.diff(mean)
    noise = tol_se * np.sqrt(se[:-1] ** 2 + se[1:] ** 2)
    bad = (np.sign(d) != trend) & (np.abs(d) > noise)
    direction = {1.0: "increasing", -1.0: "decreasing", 0.0: "flat"}[trend]
    violations = [int(i) for i in np.flatnonzero(bad)]
    return {"monotone": bool(trend != 0.0 and not violations), "direction": direction, "violations": violations}


# ---------------------------------------------------------------------------- compute frontier
def frontier(compute, metric, *, higher_is_better=True) -> list[int]:
    """Indices of the compute-efficient (Pareto) frontier, sorted by compute (ties by index).

    Point i is on it unless another point j has compute_j <= compute_i and a strictly better metric,
    or the same metric with strictly less compute. Points with a NaN compute or metric are ignored.
    """
    c = np.asarray(compute, dtype=float).ravel()
    m = np.asarray(metric, dtype=float).ravel()
    if c.shape != m.shape:
        raise ValueError(f"compute and metric must have the same length, got {c.size} and {m.size}")
    if not higher_is_better:
        m = -m  # one comparison direction below
    ok = np.isfinite(c) & np.isfinite(m)
    idx = np.flatnonzero(ok)
    on = []
    for i in idx:
        others = idx[idx != i]
        le = c[others] <= c[i]
        dominated = np.any(le & (m[others] > m[i])) or np.any((c[others] < c[i]) & (m[others] == m[i]))
        if not dominated:
            on.append(int(i))
    return sorted(on, key=lambda i: (c[i], i))


# ---------------------------------------------------------------------------- throughput / curves
def _target(peak, frac):
    """frac of a positive peak; for a non-positive peak, (1 - frac)*|peak| below it (so the target
    stays at or below the peak and the best point always qualifies)."""
    return frac * peak if peak > 0 else peak - (1.0 - frac) * abs(peak)


def _check_frac(frac):
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac}")


def saturation(x, throughput, frac=0.9) -> dict:
    """Smallest size ``x`` (increasing) whose throughput reaches ``frac`` of the maximum.

    Returns ``{"x", "frac", "max", "x_at_max"}``; x values keep their Python type (int sizes stay
    int). NaN throughputs are ignored; a non-positive maximum uses the rule of ``first_crossing``.
    """
    _check_frac(frac)
    xs = np.asarray(x).ravel()
    t = np.asarray(throughput, dtype=float).ravel()
    if xs.shape != t.shape:
        raise ValueError(f"x and throughput must have the same length, got {xs.size} and {t.size}")
    ok = np.isfinite(t)
    if not ok.any():
        raise ValueError("saturation: throughput has no finite values")
    peak = float(t[ok].max())
    target = _target(peak, frac)
    i = int(np.flatnonzero(ok & (t >= target))[0])
    j = int(np.flatnonzero(ok & (t == peak))[0])
    return {"x": xs[i].item(), "frac": float(frac), "max": peak, "x_at_max": xs[j].item()}


def first_crossing(steps, curve, frac=0.9):
    """First step at which ``curve`` reaches ``frac`` of its maximum, linearly interpolated.

    Target = frac * max(curve) for a positive max; for a non-positive max (e.g. negative returns)
    frac of it would lie above the max, so the target is max - (1 - frac)*|max| instead. The answer
    is interpolated between the last point below the target and the first point at or above it; it
    is the first step itself if that already qualifies. NaN points are skipped; None if all are NaN.
    """
    _check_frac(frac)
    s = np.asarray(steps, dtype=float).ravel()
    v = np.asarray(curve, dtype=float).ravel()
    if s.shape != v.shape:
        raise ValueError(f"steps and curve must have the same length, got {s.size} and {v.size}")
    ok = np.isfinite(v)
    if not ok.any():
        return None
    s, v = s[ok], v[ok]
    target = _target(float(v.max()), frac)
    i = int(np.flatnonzero(v >= target)[0])
    if i == 0:
        return float(s[0])
    s0, s1, v0, v1 = s[i - 1], s[i], v[i - 1], v[i]  # v0 < target <= v1
    return float(s0 + (target - v0) / (v1 - v0) * (s1 - s0))


# ---------------------------------------------------------------------------- bootstrap
def bootstrap_ci(samples, stat=np.mean, n_boot=1000, seed=0, level=0.95):
    """Percentile bootstrap interval ``[lo, hi]`` of ``stat`` over the finite entries of a 1-D
    sample; None with fewer than 2 finite samples (no resampling variability to measure)."""
    _check_level(level)
    a = np.asarray(samples, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(int(n_boot), a.size))
    vals = np.array([float(stat(a[row])) for row in idx])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    return _percentile_ci(vals, level)
