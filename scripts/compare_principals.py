"""Learned Principal vs fixed tax schedules in the paper's setting.

7 agents on commons_harvest_open, sigma, beta ~ U(0, 1), eta voted each round as the mean of the
reported sigma, objective on raw apples (SPEC defaults). For each Principal: PPO, no tax, random
rates, and the fixed schedules [0,0,0], [.1,.25,.37], [0,.6,1], [.5,.5,.5], [1,1,1], agents and
Principal are trained together for ``--steps`` env steps on ``--seeds`` seeds (vmapped), and the
metrics of the last ``--tail`` of training are averaged: objective (per tax period; also over the
episode's first and last voting round), productivity (apples per env step), equality (1 - Gini of
post-tax period income over the periods in which someone earns), the share of periods in which
nobody earns, apples alive, agent return, mean rate.

    python scripts/compare_principals.py --steps 200000 --seeds 3
Writes ``benchmarks/results/compare_principals.json`` and prints a markdown table (mean ± std over
seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sedjax.train import make_train  # noqa: E402
from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.loop import run_chunks  # noqa: E402
from sedjax.train.metrics import chunk_record  # noqa: E402
from sedjax.train.program import seed_keys  # noqa: E402

PRINCIPALS = [
    ("ppo", ["principal=ppo"]),
    ("none", ["principal=none"]),
    ("random", ["principal=random"]),
    ("fixed [0, 0, 0]", ["principal=fixed", "principal.rates=[0,0,0]"]),
    ("fixed [.1, .25, .37]", ["principal=fixed", "principal.rates=[0.1,0.25,0.37]"]),
    ("fixed [0, .6, 1]", ["principal=fixed", "principal.rates=[0,0.6,1]"]),
    ("fixed [.5, .5, .5]", ["principal=fixed", "principal.rates=[0.5,0.5,0.5]"]),
    ("fixed [1, 1, 1]", ["principal=fixed", "principal.rates=[1,1,1]"]),
]
METRICS = ("objective", "objective_first_round", "objective_last_round", "productivity", "equality",
           "zero_income_share", "apples_alive", "agent_return", "mean_rate")
HEADERS = ("objective", "obj. 1st round", "obj. last round", "productivity (apples/step)",
           "equality (earning periods)", "zero-income periods", "apples alive", "agent return", "mean rate")


def run_one(overrides, seeds: int, tail: float):
    cfg = compose_config(overrides)
    program = make_train(cfg)
    S = program.schedule
    runner = jax.jit(jax.vmap(program.init))(seed_keys(int(cfg.seed), seeds))
    history = []
    for c, runner, m, _ in run_chunks(jax.jit(jax.vmap(program.chunk)), runner, 0, S.num_chunks):
        # The run's own per-seed chunk averages (productivity = apples per env step, all agents).
        rec = chunk_record(m, chunk=c, num_chunks=S.num_chunks, env_steps=(c + 1) * S.steps_per_chunk,
                           num_agents=S.num_agents, round_len=S.round_len)
        h = {m: np.asarray(rec[f"{m}_per_seed"], np.float64) for m in METRICS if m != "mean_rate"}
        h["mean_rate"] = np.asarray(rec["mean_tax_rate_per_seed"])
        h["tax_rates"] = np.asarray(rec["tax_rates_per_seed"])
        history.append(h)
    k = max(1, int(round(tail * len(history))))
    last = history[-k:]
    # per seed; nanmean: equality is NaN in a chunk where nobody earned
    out = {key: np.nanmean([h[key] for h in last], 0) for key in METRICS}
    out["tax_rates"] = np.mean([h["tax_rates"] for h in last], 0)
    out["curve_objective"] = [h["objective"].tolist() for h in history]
    return out, S.total_env_steps


def plot(payload: dict, path: str) -> None:
    """Two panels: the objective per tax period during training (mean over seeds, band ± std) for
    each Principal, and the final metrics side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = payload["results"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.5), constrained_layout=True)
    steps = payload["steps_per_seed"]
    for name, r in results.items():
        curve = np.asarray(r["curve_objective"])  # (chunks, seeds)
        x = steps * np.arange(1, len(curve) + 1) / len(curve)
        m, sd = curve.mean(1), curve.std(1)
        (line,) = ax.plot(x, m, marker=".", label=name, lw=2.5 if name == "ppo" else 1.2)
        ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.12, linewidth=0)
    ax.set_xlabel("env steps per seed")
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    ax.set_ylabel("objective per tax period")
    ax.set_title("Principal objective during training (each point: one episode's average)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names = list(results)
    metrics = [("objective", "objective"), ("productivity", "apples / env step"), ("equality", "equality"),
               ("apples_alive", "apples alive / 64")]
    width = 0.8 / len(metrics)
    for j, (m, label) in enumerate(metrics):
        vals = np.asarray([np.mean(results[n][m]) for n in names])
        errs = np.asarray([np.std(results[n][m]) for n in names])
        norm = 64.0 if m == "apples_alive" else max(float(np.max(np.abs(vals))), 1e-9)
        bx.bar(np.arange(len(names)) + (j - 1.5) * width, vals / norm, width, yerr=errs / norm,
               label=label + ("" if m == "apples_alive" else f" (/ {norm:.3g})"))
    bx.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    bx.set_title(f"end of training (last {int(round(100 * payload['tail']))} %, mean ± std over seeds), scaled")
    bx.grid(alpha=0.3, axis="y")
    bx.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200_000, help="env steps per seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tail", type=float, default=0.2, help="fraction of training averaged at the end")
    ap.add_argument("--only", nargs="*", default=None, help="names of principals to run")
    ap.add_argument("--out", default="benchmarks/results/compare_principals.json")
    ap.add_argument("--plot", default="docs/compare_principals.png", help="figure path ('' for none)")
    ap.add_argument("--replot", action="store_true", help="only redraw the figure from --out's JSON")
    ap.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    args = ap.parse_args(argv)
    if args.replot:
        os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
        with open(args.out) as f:
            plot(json.load(f), args.plot)
        print(f"wrote {args.plot}")
        return
    base = [f"train.total_env_steps={args.steps}", "train.chunks=10"] + list(args.overrides)
    results = {}
    for name, ov in PRINCIPALS:
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        res, steps = run_one(base + ov, args.seeds, args.tail)
        results[name] = res
        print(f"{name:22s} objective {res['objective'].mean():7.3f} ± {res['objective'].std():.3f}  "
              f"({time.time() - t0:.0f} s)", flush=True)
    header = "| Principal | " + " | ".join(HEADERS) + " |"
    lines = [header, "|---|" + "---:|" * len(HEADERS)]
    for name, r in results.items():
        cells = [f"{r[m].mean():.3f} ± {r[m].std():.3f}" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(f"\n{args.seeds} seeds x {steps:,} env steps each; metrics averaged over the last "
          f"{int(args.tail * 100)} % of training; mean ± std over seeds\n")
    print(table)
    payload = {
        "steps_per_seed": steps, "seeds": args.seeds, "tail": args.tail, "overrides": base,
        "jax_version": jax.__version__, "device": str(jax.devices()[0].device_kind),
        "results": {k: {m: np.asarray(v).tolist() for m, v in r.items()} for k, r in results.items()},
        "table": table,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {args.out}")
    if args.plot:
        os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
        plot(payload, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
