"""Training plots from ``metrics.jsonl`` records (matplotlib, Agg backend: no display needed).

* :func:`training_curves`: objective, agent return, apples alive, equality and productivity vs env
  steps; with several seeds, the mean over seeds with a band of ± one standard deviation (and the
  min-max range, lighter).
* :func:`tax_schedule`: the mean tax rate of each bracket vs env steps (same bands over seeds).
* :func:`plot_run`: both, from a run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.ticker
import numpy as np
# Figures are built without pyplot, so plotting never changes the process's backend (a notebook
# keeps its inline backend) and needs no display.
from matplotlib.figure import Figure

CURVES = (
    ("objective", "Principal objective (per period)"),
    ("agent_return", "agent return (per voting round)"),
    ("apples_alive", "apples alive"),
    ("equality", "equality (1 - Gini, periods with income)"),
    ("productivity", "productivity (apples / env step)"),
)


def _series(records: Sequence[dict], key: str):
    """``(x, values (chunks, seeds, ...))`` for ``key`` (per seed when available), or None."""
    rows, xs = [], []
    for r in records:
        v = r.get(f"{key}_per_seed")
        if v is None:
            v = r.get(key)
            if v is None:
                continue
            v = [v]
        rows.append(np.asarray(v, np.float64))
        xs.append(r["env_steps"])
    if not rows:
        return None
    return np.asarray(xs), np.stack(rows)


def _steps_axis(ax):
    """Env steps as 0, 200k, 1.5M, ...: full numbers overlap on a narrow panel."""
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))


def _band(ax, x, vals, color=None, label=None):
    """Mean over seeds (axis 1) ± std, with the min-max range lighter."""
    mean = vals.mean(1)
    (line,) = ax.plot(x, mean, color=color, label=label, marker="." if len(x) < 30 else None)
    if vals.shape[1] > 1:
        c = line.get_color()
        ax.fill_between(x, vals.min(1), vals.max(1), color=c, alpha=0.1, linewidth=0)
        ax.fill_between(x, mean - vals.std(1), mean + vals.std(1), color=c, alpha=0.25, linewidth=0)
    return line


def training_curves(records: Sequence[dict], path, title: str | None = None) -> Path:
    """Save the training curves of ``records`` to ``path`` (PNG)."""
    fig = Figure(figsize=(15, 8), constrained_layout=True)
    axes = fig.subplots(2, 3)
    axes = axes.ravel()
    num_seeds = 1
    for ax, (key, label) in zip(axes, CURVES):
        s = _series(records, key)
        ax.set_title(label)
        _steps_axis(ax)
        ax.grid(alpha=0.3)
        if s is None:
            ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            continue
        x, v = s
        num_seeds = max(num_seeds, v.shape[1])
        _band(ax, x, v)
    # The last panel: mean tax rate, for context.
    ax = axes[len(CURVES)]
    s = _series(records, "mean_tax_rate")
    ax.set_title("mean tax rate")
    _steps_axis(ax)
    ax.grid(alpha=0.3)
    if s is not None:
        _band(ax, *s)
        ax.set_ylim(-0.02, 1.02)
    spread = f" (mean ± std over {num_seeds} seeds; light: min-max)" if num_seeds > 1 else ""
    fig.suptitle((title or "sedjax training") + spread)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def tax_schedule(records: Sequence[dict], path, title: str | None = None) -> Path:
    """Save the tax rate per bracket vs env steps to ``path`` (PNG)."""
    fig = Figure(figsize=(8, 5), constrained_layout=True)
    ax = fig.subplots()
    s = _series(records, "tax_rates")
    if s is None:
        ax.text(0.5, 0.5, "no tax rates", ha="center", va="center", transform=ax.transAxes)
    else:
        x, v = s  # (chunks, seeds, B)
        if v.ndim == 2:  # single seed without per-seed values
            v = v[:, None, :]
        for b in range(v.shape[-1]):
            _band(ax, x, v[..., b], label=f"bracket {b}")
        ax.legend()
        ax.set_ylim(-0.02, 1.02)
    _steps_axis(ax)
    ax.set_ylabel("tax rate")
    ax.grid(alpha=0.3)
    ax.set_title(title or "tax schedule (mean rate per bracket)")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def plot_run(run_dir) -> list[Path]:
    """Both plots from ``run_dir/metrics.jsonl`` into ``run_dir``."""
    from sedjax.train.metrics import read_metrics

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    return [training_curves(records, run_dir / "training_curves.png"),
            tax_schedule(records, run_dir / "tax_schedule.png")]
