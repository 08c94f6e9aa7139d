"""``sedjax-search``: the exhaustive search over fixed tax schedules, the benchmark a learned
Principal must be held against.

Every schedule of ``search.levels`` per bracket (``len(levels) ** B``: 3 levels -> 27 schedules for
B = 3, 11 levels -> 1,331) trains agents under that fixed Principal for ``train.total_env_steps``
(``train.num_seeds`` seeds, common random numbers across schedules), as vectorised sweeps over
``principal.rates`` (:mod:`sedjax.train.sweep`) in batches of ``search.batch`` schedules (``null``:
as many as the device's memory holds, by the sweep's estimate). Batches are padded to equal size, so
one compiled program serves them all.

Each schedule is scored on the metrics of the **last** ``search.tail`` fraction of its training
chunks (at least one chunk): per seed the mean over those chunks, then over seeds the mean and a
95 % Student-t interval (needs ``train.num_seeds >= 2``; NaN otherwise). The objective is the
Principal's reward, i.e. the objective the run's vote picks. Outputs in the run folder:

* ``search.csv``: ``rate_0 .. rate_{B-1}``, ``objective_mean``, ``objective_ci_low``,
  ``objective_ci_high``, then the other metrics' means, ``rank`` (1 = best objective) and ``seeds``;
* ``best.json``: the best schedule, its objective with the interval, and the schedules not
  distinguishable from it (a paired t-test over seeds against the best, p >= ``search.alpha``;
  seeds share their PRNG keys across schedules);
* ``search.png``: heatmaps of the objective over the first two brackets' rates, one panel per rate
  of the third (averaged over any further brackets);
* ``batches/<i>/``: each batch's sweep (``sweep.csv``, ``sweep/<k>/metrics.jsonl``).
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from omegaconf import OmegaConf

from sedjax.train.config import get, plain

METRICS = ("objective", "productivity", "equality", "apples_alive", "agent_return", "zero_income_share")


def schedules(levels: Sequence[float], num_brackets: int) -> list[tuple[float, ...]]:
    """Every schedule with one of ``levels`` per bracket (the first bracket varies slowest)."""
    return [tuple(float(x) for x in s) for s in itertools.product(levels, repeat=num_brackets)]


def check_search(cfg) -> dict:
    """The ``search`` group, validated (``ValueError`` naming the key)."""
    levels = get(cfg, "search.levels")
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"search.levels must be a non-empty list of rates, got {plain(levels)!r}")
    try:
        lv = np.asarray(levels, np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"search.levels must be a list of numbers, got {plain(levels)!r}") from e
    if lv.ndim != 1 or not np.all(np.isfinite(lv)) or np.any((lv < 0) | (lv > 1)):
        raise ValueError(f"search.levels must be rates in [0, 1], got {plain(levels)!r}")
    if len(set(lv.tolist())) != lv.size:
        raise ValueError(f"search.levels has repeated values: {lv.tolist()}")
    tail = get(cfg, "search.tail")
    if isinstance(tail, bool) or not isinstance(tail, (int, float)) or not (0.0 < tail <= 1.0):
        raise ValueError(f"search.tail must be a fraction in (0, 1], got {plain(tail)!r}")
    batch = get(cfg, "search.batch")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"search.batch must be a positive integer or null, got {plain(batch)!r}")
    alpha = get(cfg, "search.alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0.0 < alpha < 1.0):
        raise ValueError(f"search.alpha must be in (0, 1), got {plain(alpha)!r}")
    if "sweep" in cfg and cfg.sweep:
        raise ValueError("sedjax-search sweeps principal.rates itself; remove the sweep node")
    return {"levels": lv.tolist(), "tail": float(tail), "batch": batch, "alpha": float(alpha)}


def tail_means(records: list[dict], tail: float, metrics: Sequence[str] = METRICS) -> dict[str, np.ndarray]:
    """Per seed, each metric's mean over the last ``tail`` fraction of the chunks (>= 1 chunk;
    nanmean: equality is NaN in a chunk where nobody earned)."""
    n = max(1, int(math.ceil(tail * len(records))))
    out = {}
    for m in metrics:
        rows = [r.get(f"{m}_per_seed") for r in records[-n:]]
        if any(v is None for v in rows):
            continue
        a = np.asarray(rows, np.float64)  # (chunks, seeds)
        with np.errstate(invalid="ignore"):
            out[m] = np.nanmean(a, axis=0) if not np.all(np.isnan(a)) else np.full(a.shape[1], np.nan)
    return out


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds (NaN interval for one seed)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def indistinguishable(best: np.ndarray, other: np.ndarray, alpha: float) -> bool:
    """A two-sided paired t-test over seeds does not reject equal means at ``alpha``. Paired: seed
    ``s`` of every schedule uses the same PRNG keys (common random numbers), so the per-seed
    differences carry the comparison; equal samples count as indistinguishable."""
    from scipy import stats

    d = np.asarray(best, np.float64) - np.asarray(other, np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2 or np.allclose(d, 0.0):
        return bool(d.size == 0 or np.allclose(d.mean(), 0.0))
    p = stats.ttest_1samp(d, 0.0).pvalue
    return bool(not np.isfinite(p) or p >= alpha)


def _batch_size(cfg, requested, total: int) -> int:
    """Schedules per compiled sweep: ``search.batch``, or as many as the sweep's memory estimate
    fits in 80 % of the device's memory."""
    if requested is not None:
        return min(int(requested), total)
    from sedjax.train import loop
    from sedjax.train.program import make_train

    per_schedule = loop.memory_estimate(make_train(cfg), int(cfg.train.num_seeds))
    have, _ = loop._device_memory()
    if have is None:
        return total
    return max(1, min(total, int(0.8 * have // max(1, per_schedule))))


def search(cfg, out_dir, *, verbose: bool = True) -> dict:
    """Run the schedule search of ``cfg`` into ``out_dir``; returns ``{"rows", "best", "out_dir",
    "wall_time", "schedules", "records"}`` (``rows``: one dict per schedule, as in ``search.csv``;
    ``records``: each schedule's metrics records)."""
    from sedjax.envs import from_config
    from sedjax.train import loop

    t0 = time.perf_counter()
    say = (lambda *a: print(*a, flush=True)) if verbose else (lambda *a: None)
    sc = check_search(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = copy.deepcopy(cfg)
    OmegaConf.update(base, "principal.kind", "fixed", merge=False)
    env, _ = from_config(base)
    B = env.num_brackets
    scheds = schedules(sc["levels"], B)
    OmegaConf.update(base, "principal.rates", list(scheds[0]), merge=False)
    for k in ("train.plots", "train.checkpoint"):
        OmegaConf.update(base, k, False, merge=False)
    OmegaConf.update(base, "train.resume", False, merge=False)
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    size = _batch_size(base, sc["batch"], len(scheds))
    num_batches = math.ceil(len(scheds) / size)
    seeds = int(cfg.train.num_seeds)
    say(f"sedjax-search: {len(scheds)} schedules ({len(sc['levels'])} levels ^ {B} brackets) x {seeds} seed(s) x "
        f"{int(cfg.train.total_env_steps):,} env steps, in {num_batches} batch(es) of {size} -> {out_dir}")
    per_schedule: list[dict] = []
    records: list[list[dict]] = []
    for b in range(num_batches):
        batch = scheds[b * size:(b + 1) * size]
        padded = batch + [batch[-1]] * (size - len(batch))  # equal sizes: one compiled program
        c = copy.deepcopy(base)
        OmegaConf.update(c, "sweep", {"principal": {"rates": [list(s) for s in padded]}}, merge=False, force_add=True)
        say(f"batch {b + 1}/{num_batches}: schedules {b * size} .. {b * size + len(batch) - 1}")
        summary = loop.run(c, out_dir / "batches" / str(b), verbose=verbose)
        for recs in summary["records"][:len(batch)]:
            per_schedule.append(tail_means(recs, sc["tail"]))
            records.append(recs)

    rows = []
    for s, m in zip(scheds, per_schedule):
        row = {f"rate_{i}": r for i, r in enumerate(s)}
        mean, lo, hi = mean_ci(m["objective"])
        row.update(objective_mean=mean, objective_ci_low=lo, objective_ci_high=hi)
        for name in METRICS[1:]:
            if name in m:
                with np.errstate(invalid="ignore"):
                    row[f"{name}_mean"] = float(np.nanmean(m[name])) if np.any(np.isfinite(m[name])) else math.nan
        row["seeds"] = seeds
        rows.append(row)
    order = sorted(range(len(rows)), key=lambda i: -np.nan_to_num(rows[i]["objective_mean"], nan=-np.inf))
    for rank, i in enumerate(order, 1):
        rows[i]["rank"] = rank
    best_i = order[0]
    best_obj = per_schedule[best_i]["objective"]
    ties = [list(scheds[i]) for i in order[1:]
            if indistinguishable(best_obj, per_schedule[i]["objective"], sc["alpha"])]
    best = {
        "schedule": list(scheds[best_i]),
        "objective_mean": rows[best_i]["objective_mean"],
        "objective_ci_low": rows[best_i]["objective_ci_low"],
        "objective_ci_high": rows[best_i]["objective_ci_high"],
        "objective_per_seed": [float(x) for x in best_obj],
        "indistinguishable": ties,
        "test": f"paired t-test over seeds against the best, p >= {sc['alpha']} ({seeds} seeds)",
        "tail": sc["tail"], "levels": sc["levels"], "num_schedules": len(scheds),
        "total_env_steps": int(records[best_i][-1]["env_steps"]) if records[best_i] else 0, "num_seeds": seeds,
    }
    with open(out_dir / "search.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out_dir / "best.json", "w") as f:
        json.dump(best, f, indent=2)
    plot_search(rows, B, sc["levels"], out_dir / "search.png", best["schedule"])
    wall = time.perf_counter() - t0
    say(f"best schedule {best['schedule']}: objective {best['objective_mean']:.4f} "
        f"[{best['objective_ci_low']:.4f}, {best['objective_ci_high']:.4f}]; "
        f"{len(ties)} schedule(s) not distinguishable from it; {wall:.0f}s -> {out_dir / 'search.csv'}")
    return {"rows": rows, "best": best, "out_dir": str(out_dir), "wall_time": wall, "schedules": scheds,
            "records": records}


def plot_search(rows: list[dict], num_brackets: int, levels, path, best=None) -> None:
    """Heatmaps of ``objective_mean``: rate_0 (rows) x rate_1 (columns), one panel per rate_2
    (brackets beyond the third averaged over); one bracket: a line."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend is left alone

    L = len(levels)
    obj = np.array([r["objective_mean"] for r in rows], np.float64).reshape((L,) * num_brackets)
    if num_brackets == 1:
        fig = Figure(figsize=(4, 3))
        ax = fig.subplots()
        ax.plot(levels, obj, marker="o")
        ax.set(xlabel="rate", ylabel="objective")
    else:
        if num_brackets == 2:
            obj = obj[..., None]
        elif num_brackets > 3:
            obj = np.nanmean(obj, axis=tuple(range(3, num_brackets)))
        panels = obj.shape[2]
        fig = Figure(figsize=(2.6 * panels + 1, 2.9))
        axes = fig.subplots(1, panels, squeeze=False)
        vmin, vmax = np.nanmin(obj), np.nanmax(obj)
        for j in range(panels):
            ax = axes[0, j]
            im = ax.imshow(obj[:, :, j], origin="lower", vmin=vmin, vmax=vmax, cmap="viridis")
            ticks = range(L) if L <= 6 else range(0, L, max(1, L // 5))
            ax.set_xticks(list(ticks), [f"{levels[t]:g}" for t in ticks])
            ax.set_yticks(list(ticks), [f"{levels[t]:g}" for t in ticks])
            ax.set_xlabel("rate, bracket 1")
            if j == 0:
                ax.set_ylabel("rate, bracket 0")
            if num_brackets >= 3:
                ax.set_title(f"bracket 2: {levels[j]:g}", fontsize=9)
            if best is not None and (num_brackets == 2 or abs(best[2] - levels[j]) < 1e-9):
                ax.plot(levels.index(best[1]), levels.index(best[0]), marker="*", color="red", markersize=12)
        fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.9, label="objective (tail mean)")
    fig.suptitle("fixed schedules: objective (mean over seeds; star: best)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    """Hydra front end: ``sedjax-search search.levels=[0,0.5,1] train.num_seeds=3 ...``."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def _main(cfg) -> float:
        return search(cfg, HydraConfig.get().runtime.output_dir)["best"]["objective_mean"]

    _main()


if __name__ == "__main__":
    main()
