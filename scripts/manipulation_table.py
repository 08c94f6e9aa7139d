"""How manipulable is the vote? A table over electorates of the default setting (SPEC §5).

For ``--electorates`` populations of each ``--agents`` size with σ drawn from the config's type
distribution (default: 7 agents, σ ~ U(0, 1), the paper's setting), and each voting mechanism:

* the gain of an agent's best misreport while the others report truthfully
  (:func:`sedjax.voting.manipulation`, gain = reduction of |outcome − σ_i|), alone and in
  coalitions of 2 and 3: its mean over agents and electorates, the share of agents who gain
  (> 1e-6) and the largest gain;
* strategic reports (:func:`sedjax.voting.strategic_reports`, ``voting.reports=strategic``):
  the share of electorates whose iterated best responses reach a fixed point within
  ``voting.report_iters`` rounds, the mean rounds, and how far the outcome moves from the
  truthful one (mean |Δ outcome|).

Prints a markdown table and writes ``benchmarks/results/manipulation.json`` (with the jax
version, the device and the settings). ``python scripts/manipulation_table.py [--electorates N]
[--agents 7,8] [--seed S] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedjax import population, voting
from sedjax.config import compose_config
from sedjax.envs import from_config

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "manipulation.json"
GAIN_TOL = 1e-6


def measure(electorates: int, agents: int, seed: int, grid: int, report_iters: int) -> dict:
    cfg = compose_config([f"env.num_agents={agents}", "env.map=procedural"])
    env, params = from_config(cfg)
    keys = jax.random.split(jax.random.key(seed), electorates)
    sigma = jax.vmap(lambda k: population.sample_types(k, params.sigma_dist, agents, env.static.sigma_family))(keys)
    rows = {}
    for mech in voting.MECHANISMS:
        row = {}
        for k in (1, 2, 3):
            g = np.asarray(voting.manipulation(sigma, mech, coalition_size=k, grid=grid))
            row[f"gain_k{k}"] = float(g.mean())
            row[f"share_gaining_k{k}"] = float((g > GAIN_TOL).mean())
            row[f"max_gain_k{k}"] = float(g.max())
        t0 = time.perf_counter()
        reports, iters, ok = jax.block_until_ready(voting.strategic_reports(sigma, mech, grid, report_iters))
        row["strategic_time_s"] = time.perf_counter() - t0
        truthful = np.asarray(voting.vote(sigma, mech))
        strategic = np.asarray(voting.vote(reports, mech))
        row["converged_share"] = float(np.asarray(ok).mean())
        row["mean_rounds"] = float(np.asarray(iters).mean())
        row["outcome_shift"] = float(np.abs(strategic - truthful).mean())
        row["extreme_report_share"] = float(np.isin(np.asarray(reports), (0.0, 1.0)).mean())
        rows[mech] = row
    return rows


def table(rows: dict) -> str:
    head = ("| mechanism | mean gain, alone | agents gaining, alone | max gain, alone | mean gain, k=2 | mean gain, k=3 "
            "| strategic: converged | rounds | outcome shift | reports at 0 or 1 |")
    lines = [head, "|" + "---|" * 10]
    for mech, r in rows.items():
        lines.append(f"| {mech} | {r['gain_k1']:.4f} | {100 * r['share_gaining_k1']:.1f} % | {r['max_gain_k1']:.3f} "
                     f"| {r['gain_k2']:.4f} | {r['gain_k3']:.4f} | {100 * r['converged_share']:.1f} % "
                     f"| {r['mean_rounds']:.2f} | {r['outcome_shift']:.4f} | {100 * r['extreme_report_share']:.1f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--electorates", type=int, default=2000)
    ap.add_argument("--agents", default="7,8", help="electorate sizes, comma-separated (7: the paper's; 8: an even one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", type=int, default=101, help="report levels searched (voting.report_grid)")
    ap.add_argument("--report-iters", type=int, default=20, help="best-response rounds (voting.report_iters)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    sizes = [int(x) for x in str(a.agents).split(",")]
    if a.electorates < 1 or min(sizes) < 3:
        raise SystemExit("--electorates must be >= 1 and every --agents >= 3 (coalitions of 3)")
    t0 = time.perf_counter()
    rows = {str(n): measure(a.electorates, n, a.seed, a.grid, a.report_iters) for n in sizes}
    out = {
        "jax": jax.__version__, "python": platform.python_version(), "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "config": {"electorates": a.electorates, "agents": sizes, "seed": a.seed, "sigma": "config default (uniform)",
                   "grid": a.grid, "report_iters": a.report_iters, "gain_tol": GAIN_TOL},
        "wall_s": time.perf_counter() - t0, "by_agents": rows,
    }
    for n, r in rows.items():
        print(f"Manipulability of the vote: {a.electorates} electorates of {n} agents, sigma ~ U(0, 1)\n")
        print(table(r) + "\n")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
