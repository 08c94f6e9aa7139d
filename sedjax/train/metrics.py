"""Training metrics on the host: ``metrics.jsonl`` records, the final summary, and what they mean.

Metric definitions (each averaged over the chunk's Principal iterations, then over seeds; the main
ones, :data:`MAIN_METRICS`, are also kept per seed under ``<name>_per_seed``):

* ``env_steps``: environment steps per seed so far (each step moves all agents).
* ``sps``: environment steps per second over all seeds during the chunk (compile time excluded);
  ``agent_sps`` = ``sps`` x number of agents.
* ``agent_return``: mean per-agent reward per step x the voting-round length
  (``tax.period_len x voting.periods_per_round``), i.e. an agent's (undiscounted) return over one
  voting round at the current rate of reward.
* ``apples_per_agent_step``: raw apples collected per agent per step;
  ``productivity`` = apples per env step (all agents) = ``apples_per_agent_step x num_agents``.
* ``objective``: the Principal's objective per tax period (its reward); ``tax_rates``: the mean rate
  per bracket; ``tax_rates_earning`` (``mean_tax_rate_earning``): the same over the periods in which
  someone earns, the only periods where a rate taxes anything; ``voted``: the voted objective
  parameter (eta or p); ``apples_alive``: apples on the map (mean over steps).
* ``equality``: mean 1 - Gini of post-tax period income over the periods in which someone earns
  (NaN if none did in the chunk); ``zero_income_share``: the share of periods in which nobody earns.
  A collapsed commons shows as a high ``zero_income_share``, never as perfect equality.
* ``objective_first_round`` / ``objective_last_round`` and ``agent_return_first_round`` /
  ``agent_return_last_round``: the same over the periods of an episode's first and last voting round
  (equal when an episode is one round).
* everything else the program's chunk reports (losses, ``transfer_scale``, ``income`` per agent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# Metrics also kept per seed in metrics.jsonl (``<name>_per_seed``) and summarised at the end.
PHASE_METRICS = ("objective_first_round", "objective_last_round", "agent_return_first_round",
                 "agent_return_last_round")
MAIN_METRICS = ("objective", "agent_return", "apples_per_agent_step", "productivity", "apples_alive",
                "equality", "zero_income_share", "voted", "tax_rates", "tax_rates_earning") + PHASE_METRICS
SUMMARY_METRICS = ("objective", "agent_return", "productivity", "apples_per_agent_step", "apples_alive",
                   "equality", "zero_income_share", "voted", "mean_tax_rate", "mean_tax_rate_earning") + PHASE_METRICS
TIMING_METRICS = ("sps", "agent_sps", "chunk_time", "wall_time")


def _to_py(x):
    """numpy -> JSON-able Python (lists for arrays, floats for scalars)."""
    a = np.asarray(x)
    if a.ndim == 0:
        v = a.item()
        return float(v) if isinstance(v, (float, np.floating)) or a.dtype.kind == "f" else v
    return a.tolist()


def chunk_record(metrics: dict, *, chunk: int, num_chunks: int, env_steps: int, num_agents: int,
                 round_len: int) -> dict:
    """One ``metrics.jsonl`` object from a vmapped chunk's metrics (leaves ``(seeds, iters, ...)``).

    Every metric is averaged over the chunk's iterations (per seed), then over seeds; scalars become
    floats and vectors (``tax_rates``, ``income``) lists. Adds the derived ``agent_return`` and
    ``productivity``, and ``<name>_per_seed`` for :data:`MAIN_METRICS`.
    """
    per_seed = {k: np.asarray(v, np.float64).mean(axis=1) for k, v in metrics.items() if not k.startswith("ratio/")}
    # Ratios: numerators and denominators summed over the chunk's iterations, then divided (NaN
    # where the chunk holds no period to average over, e.g. no period in which anyone earns).
    for k in metrics:
        if k.startswith("ratio/") and k.endswith("/num"):
            name = k[len("ratio/"):-len("/num")]
            num = np.asarray(metrics[k], np.float64).sum(axis=1)
            den = np.asarray(metrics[f"ratio/{name}/den"], np.float64).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_seed[name] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    for k in list(per_seed):
        if k.startswith("agent_reward"):
            per_seed["agent_return" + k[len("agent_reward"):]] = per_seed[k] * round_len
    if "apples_per_agent_step" in per_seed:
        per_seed["productivity"] = per_seed["apples_per_agent_step"] * num_agents
    rec: dict[str, Any] = {"chunk": int(chunk), "num_chunks": int(num_chunks), "env_steps": int(env_steps)}
    for k, v in per_seed.items():
        rec[k] = _to_py(v.mean(axis=0))
    if "tax_rates" in per_seed:
        rec["mean_tax_rate"] = float(per_seed["tax_rates"].mean())
        rec["mean_tax_rate_per_seed"] = _to_py(per_seed["tax_rates"].mean(axis=-1))
    if "tax_rates_earning" in per_seed:  # NaN for a seed whose chunk had no earning period
        r = per_seed["tax_rates_earning"]
        rec["mean_tax_rate_earning"] = float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")
        rec["mean_tax_rate_earning_per_seed"] = _to_py(r.mean(axis=-1))
    for k in MAIN_METRICS:
        if k in per_seed:
            rec[f"{k}_per_seed"] = _to_py(per_seed[k])
    return rec


def read_metrics(out_dir) -> list[dict]:
    """The records of ``out_dir/metrics.jsonl``."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_metrics(out_dir, records: list[dict]) -> None:
    with open(Path(out_dir) / "metrics.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def append_metrics(out_dir, record: dict) -> None:
    with open(Path(out_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def summarize(records: list[dict]) -> dict:
    """Key metrics of the last record: ``{name: {"mean", "std", "per_seed"}}`` over seeds."""
    if not records:
        return {}
    last = records[-1]
    out = {}
    for k in SUMMARY_METRICS:
        vals = last.get(f"{k}_per_seed")
        if vals is None:
            if k not in last or not isinstance(last[k], (int, float)):
                continue
            vals = [last[k]]
        a = np.asarray(vals, np.float64)
        out[k] = {"mean": float(a.mean()), "std": float(a.std()), "per_seed": a.tolist()}
    if "tax_rates_per_seed" in last:
        a = np.asarray(last["tax_rates_per_seed"], np.float64)  # (seeds, B)
        for b in range(a.shape[-1]):
            out[f"tax_rate_{b}"] = {"mean": float(a[:, b].mean()), "std": float(a[:, b].std()),
                                    "per_seed": a[:, b].tolist()}
    return out


def format_summary(summary: dict, num_seeds: int) -> str:
    if not summary:
        return "(no metrics)"
    w = max(len(k) for k in summary)
    head = f"{'metric':<{w}}  {'mean':>12}  {'± std':>10}"
    lines = [f"Final metrics (last chunk, over {num_seeds} seed{'s' if num_seeds > 1 else ''})", head, "-" * len(head)]
    for k, v in summary.items():
        lines.append(f"{k:<{w}}  {v['mean']:>12.4f}  {'± ' + format(v['std'], '.4f'):>10}")
    return "\n".join(lines)
