"""The learned Principal against no tax, random rates, the SPEC's fixed schedules and the best
fixed schedule an exhaustive search finds.

For each Principal (PPO, no tax, random rates; the SPEC's schedules [0,0,0], [.1,.25,.37], [0,.6,1],
[.5,.5,.5], [1,1,1]; and the best of ``sedjax-search`` over ``--search-levels``), agents (and the
Principal) are trained together for ``--steps`` env steps on ``--seeds`` seeds, and the metrics of
the last ``--tail`` of training are averaged per seed: objective (per tax period; also over the
episode's first and last voting round), productivity (apples per env step), equality (1 - Gini of
post-tax period income over the periods in which someone earns), the share of periods in which
nobody earns, apples alive, agent return, mean rate. Cells: mean over seeds [95 % Student-t
interval]. The fixed schedules are one vectorised sweep (one compile), the search another; every
run of a seed uses the same PRNG keys (common random numbers).

    python scripts/compare_principals.py --steps 128000 --seeds 3 --search-levels 0 1
    python scripts/compare_principals.py ... objective.eta=0 objective.welfare_of=post_tax types.beta=1

Writes ``--out`` (JSON), ``--plot`` and prints a markdown table, and the command of the full
11-level (1,331-schedule) search for an accelerator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sedjax.train import loop  # noqa: E402
from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.search import mean_ci, search, tail_means  # noqa: E402

LEARNED = [("ppo", ["principal=ppo"]), ("none", ["principal=none"]), ("random", ["principal=random"])]
SPEC_SCHEDULES = [[0, 0, 0], [0.1, 0.25, 0.37], [0, 0.6, 1], [0.5, 0.5, 0.5], [1, 1, 1]]
METRICS = ("objective", "objective_first_round", "objective_last_round", "productivity", "equality",
           "zero_income_share", "apples_alive", "agent_return", "mean_rate")
HEADERS = ("objective", "obj. 1st round", "obj. last round", "productivity (apples/step)",
           "equality (earning periods)", "zero-income periods", "apples alive", "agent return", "mean rate")
QUIET = ["train.plots=false", "train.checkpoint=false"]


def summarise(records: list[dict], tail: float) -> dict:
    """Per seed, each metric's mean over the last ``round(tail * chunks)`` chunks (at least one;
    :func:`sedjax.train.search.tail_means` over them); plus the objective curve."""
    k = max(1, int(round(tail * len(records))))
    keys = {m: "mean_tax_rate" if m == "mean_rate" else m for m in METRICS}
    means = tail_means(records[-k:], 1.0, [*keys.values(), "tax_rates"])
    out = {m: means[key] for m, key in keys.items()}
    out["tax_rates"] = means["tax_rates"]
    out["curve_objective"] = [r["objective_per_seed"] for r in records]
    return out


def label(rates) -> str:
    return "[" + ", ".join(f"{x:g}".lstrip("0") if 0 < x < 1 else f"{x:g}" for x in rates) + "]"


def plot(payload: dict, path: str) -> None:
    """Two panels: the objective per tax period during training (mean over seeds, band ± std) for
    each Principal, and the final metrics side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = payload["results"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.5), constrained_layout=True)
    steps = payload["steps_per_seed"]
    if min(len(r["curve_objective"]) for r in results.values()) < 2:
        # One chunk per run (e.g. one episode): no curve to draw; the objective per voting round instead.
        names = list(results)
        for j, (m, lab) in enumerate((("objective_first_round", "first voting round"),
                                      ("objective_last_round", "last voting round"))):
            vals = [np.mean(results[n][m]) for n in names]
            errs = [np.std(results[n][m]) for n in names]
            ax.bar(np.arange(len(names)) + (j - 0.5) * 0.4, vals, 0.4, yerr=errs, label=lab)
        ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("objective per tax period")
        ax.set_title(f"objective in an episode's first and last voting round ({steps:,} env steps, mean ± std)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
        results = {}  # the curve loop below has nothing to draw
    for name, r in results.items():
        curve = np.asarray(r["curve_objective"])  # (chunks, seeds)
        x = steps * np.arange(1, len(curve) + 1) / len(curve)
        m, sd = curve.mean(1), curve.std(1)
        (line,) = ax.plot(x, m, marker=".", label=name, lw=2.5 if name == "ppo" else 1.2)
        ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.12, linewidth=0)
    if results:
        ax.set_xlabel("env steps per seed")
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
        ax.set_ylabel("objective per tax period")
        ax.set_title("Principal objective during training (each point: one chunk's average)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    results = payload["results"]
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
    ap.add_argument("--steps", type=int, default=128_000, help="env steps per seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tail", type=float, default=0.5, help="fraction of training averaged at the end")
    ap.add_argument("--search-levels", type=float, nargs="*", default=[0.0, 0.5, 1.0],
                    help="rates per bracket of the schedule search (none: no search row)")
    ap.add_argument("--only", nargs="*", default=None, help="rows to run: ppo none random fixed search")
    ap.add_argument("--runs-dir", default=None, help="where the sweeps' run folders go (default: a temp dir)")
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
    runs = args.runs_dir or tempfile.mkdtemp(prefix="sedjax_compare_")
    base = [f"train.total_env_steps={args.steps}", "train.chunks=10", f"train.num_seeds={args.seeds}"] + QUIET \
        + list(args.overrides)
    wanted = set(args.only or ["ppo", "none", "random", "fixed", "search"])
    results, timings = {}, {}
    for name, ov in LEARNED:
        if name in wanted:
            t0 = time.time()
            summary = loop.run(compose_config(base + ov), os.path.join(runs, name), verbose=False)
            results[name] = summarise(summary["records"], args.tail)
            timings[name] = time.time() - t0
            steps = summary["total_env_steps"]
            print(f"{name:22s} objective {results[name]['objective'].mean():7.3f}  ({timings[name]:.0f} s)", flush=True)
    best, found = None, None
    if "search" in wanted and args.search_levels:
        t0 = time.time()
        levels = "[" + ",".join(str(x) for x in args.search_levels) + "]"
        found = search(compose_config(base + [f"search.levels={levels}", f"search.tail={args.tail}"]),
                       os.path.join(runs, "search"), verbose=False)
        timings["search"] = time.time() - t0
        best = found["best"]
        steps = best["total_env_steps"]
        print(f"search over {len(found['schedules'])} schedules: best {best['schedule']} "
              f"({timings['search']:.0f} s; folder {found['out_dir']})", flush=True)
    if "fixed" in wanted:
        # The SPEC's schedules; those the search already trained are taken from it (same keys).
        in_search = {} if found is None else {s: i for i, s in enumerate(found["schedules"])}
        todo = [r for r in SPEC_SCHEDULES if tuple(float(x) for x in r) not in in_search]
        fixed_records = {}
        if todo:
            t0 = time.time()
            rates = "[" + ",".join("[" + ",".join(str(x) for x in r) + "]" for r in todo) + "]"
            summary = loop.run(compose_config(base + ["principal=fixed", f"+sweep.principal.rates={rates}"]),
                               os.path.join(runs, "fixed"), verbose=False)
            timings["fixed"] = time.time() - t0
            steps = summary["total_env_steps"]
            fixed_records = {tuple(float(x) for x in r): recs for r, recs in zip(todo, summary["records"])}
            print(f"{len(todo)} fixed schedules ({timings['fixed']:.0f} s)", flush=True)
        for r in SPEC_SCHEDULES:
            key = tuple(float(x) for x in r)
            recs = fixed_records[key] if key in fixed_records else found["records"][in_search[key]]
            name = f"fixed {label(r)}" + (" (= none)" if not any(r) else "")
            results[name] = summarise(recs, args.tail)
    if best is not None:
        i = found["schedules"].index(tuple(best["schedule"]))
        results[f"best of search {label(best['schedule'])}"] = summarise(found["records"][i], args.tail)
    header = "| Principal | " + " | ".join(HEADERS) + " |"
    lines = [header, "|---|" + "---:|" * len(HEADERS)]
    for name, r in results.items():
        cells = []
        for m in METRICS:
            mean, lo, hi = mean_ci(r[m])
            cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(f"\n{args.seeds} seeds x {steps:,} env steps each; metrics averaged over the last "
          f"{int(args.tail * 100)} % of training; mean over seeds [95 % t-interval]\n")
    print(table)
    full = ("sedjax-search search.levels=[0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0] "
            f"train.total_env_steps={args.steps} train.num_seeds={args.seeds} train.chunks=10 search.tail={args.tail} "
            + " ".join(o for o in args.overrides) + " hydra.run.dir=runs/search_1331")
    print(f"\nThe full search (1,331 schedules x {args.seeds} seeds) on an accelerator:\n  {full.strip()}")
    payload = {
        "steps_per_seed": steps, "seeds": args.seeds, "tail": args.tail, "overrides": base,
        "search_levels": args.search_levels, "best_schedule": best, "timings_s": timings,
        "jax_version": jax.__version__, "device": str(jax.devices()[0].device_kind),
        "results": {k: {m: np.asarray(v).tolist() for m, v in r.items()} for k, r in results.items()},
        "table": table, "full_search_command": full.strip(),
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
