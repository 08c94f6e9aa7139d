"""The scaling suite's fits, figures and ``summary.md`` from its ``runs.jsonl`` records.

What is fitted (:mod:`sedjax.scaling.fits`):

* **S1** — the cost per agent-step against the number of agents (log-log slope with a t-interval;
  0 means a step's cost grows linearly with the population), the same for XLA's FLOPs and bytes
  per agent-step, the vote's time against the number of voters (fast and O(n^2) reference), and
  where throughput saturates against ``num_envs`` (the smallest batch reaching 90 % of the best).
* **S2** — per setting, metric and width, the metric against compute as a power law with an
  offset (bootstrap CIs over seeds), only for metrics that are monotone in budget (the others
  are listed as such, unfitted); and the compute-efficient frontier over every (width, budget)
  with its own fit.
* **S3** — the compute (FLOPs, and env steps) to reach ``frac`` of the best objective and of the
  best agents' return, per seed, against the number of agents: a log-log slope with its CI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sedjax.scaling import fits as F

# S2: the metrics read in each setting, and whether higher is better.
S2_METRICS = {"known_optimum": {"regret": False, "agent_return": True},
              "paper": {"objective": True, "agent_return": True}}
S3_METRICS = ("objective", "agent_return")


def point_line(rec: dict) -> str:
    """One printed line per measured point."""
    if rec["study"] == "S1":
        if rec["axis"] == "voters":
            return f"S1 vote {rec['mechanism']}: {rec['num_voters']:,} voters {1e3 * rec['median_s']:.3f} ms"
        return (f"S1 {rec['axis']}: envs={rec['num_envs']:,} agents={rec['num_agents']:,} devices={rec['devices']}: "
                f"{rec['agent_steps_per_s']:,.0f} agent-steps/s, {rec['ns_per_agent_step']:.0f} ns/agent-step "
                f"(compile {rec['compile_s']:.1f}s)")
    ps = rec["per_seed"]
    vals = ", ".join(f"{k} {np.mean(ps[k]):.3f}" for k in ("regret", "objective", "agent_return") if k in ps)
    return (f"{rec['study']} {rec.get('setting')}: agents={rec['num_agents']} width={rec['width']} "
            f"steps={rec['env_steps']:,} compute={rec['compute_flops']:.3g} FLOPs: {vals} "
            f"({rec['wall_s']:.0f}s)")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


# ------------------------------------------------------------------------------------ S1
def fit_s1(records: list[dict], level: float) -> dict:
    out: dict[str, Any] = {}
    envs = sorted((r for r in records if r["axis"] == "num_envs"), key=lambda r: r["num_envs"])
    if envs:
        x = [r["num_envs"] for r in envs]
        out["num_envs"] = {
            "saturation": F.saturation(x, [r["env_steps_per_s"] for r in envs], frac=0.9),
            "throughput_slope": F.loglog_slope(x, [r["env_steps_per_s"] for r in envs], level=level),
        }
    agents = sorted((r for r in records if r["axis"] == "num_agents"), key=lambda r: r["num_agents"])
    if agents:
        x = [r["num_agents"] for r in agents]
        out["num_agents"] = {
            "ns_per_agent_step_slope": F.loglog_slope(x, [r["ns_per_agent_step"] for r in agents], level=level),
            "saturation": F.saturation(x, [r["agent_steps_per_s"] for r in agents], frac=0.9),
        }
        for k in ("flops_per_agent_step", "bytes_per_agent_step", "xla_memory_bytes"):
            ys = [r.get(k) for r in agents]
            if all(_finite(y) and y > 0 for y in ys):
                # Memory per agent: the program's bytes over the agents it holds.
                if k == "xla_memory_bytes":
                    ys = [y / (r["num_envs"] * r["num_agents"]) for y, r in zip(ys, agents)]
                    k = "xla_memory_bytes_per_agent"
                out["num_agents"][f"{k}_slope"] = F.loglog_slope(x, ys, level=level)
    for mech in ("weighted_median", "weighted_median_dense"):
        v = sorted((r for r in records if r["axis"] == "voters" and r["mechanism"] == mech),
                   key=lambda r: r["num_voters"])
        if len(v) >= 2:
            out.setdefault("voters", {})[mech] = F.loglog_slope([r["num_voters"] for r in v],
                                                                [r["median_s"] for r in v], level=level)
    devs = sorted((r for r in records if r["axis"] == "devices"), key=lambda r: r["devices"])
    if devs:
        base = devs[0]["env_steps_per_s"] / devs[0]["devices"]
        out["devices"] = {"efficiency": {str(r["devices"]): r["env_steps_per_s"] / (base * r["devices"])
                                         for r in devs},
                          "forced_host_devices": bool(devs[0].get("forced_host_devices"))}
    return out


# ------------------------------------------------------------------------------------ S2
def _with_shape(fit: dict, x, y, level: float) -> dict:
    """Mark a power law with an offset that found no curvature in the range: ``b`` near 0 with
    ``a`` and ``c`` far beyond the data (``c - a (x/x0)^-b ~ (c - a) + a b ln(x/x0)``: the metric is
    still growing like ``log`` compute, and no plateau can be read off). For those, and for every
    positive metric, also the pure power law ``y = k x^alpha`` of the seed means (a log-log slope)."""
    mean = np.nanmean(np.asarray(y, float), 0)
    span = float(np.nanmax(np.abs(mean))) or 1.0
    fit["degenerate"] = bool(fit["b"] < 0.05 or abs(fit["c"]) > 100 * span)
    if np.all(mean > 0):
        fit["loglog"] = F.loglog_slope(x, mean, level=level)
    return fit


def _s2_matrix(recs: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(compute (m,), metric (seeds, m), budgets) of one width's runs, ordered by budget."""
    recs = sorted(recs, key=lambda r: r["budget"])
    x = np.asarray([r["compute_flops"] for r in recs], float)
    y = np.asarray([r["per_seed"][metric] for r in recs], float).T
    return x, y, [r["budget"] for r in recs]


def fit_s2(records: list[dict], n_boot: int, level: float, seed: int) -> dict:
    out: dict[str, Any] = {}
    for setting in sorted({r["setting"] for r in records}):
        rs = [r for r in records if r["setting"] == setting]
        widths = sorted({r["width"] for r in rs})
        for metric, higher in S2_METRICS.get(setting, {}).items():
            if not all(metric in r["per_seed"] for r in rs):
                continue
            entry: dict[str, Any] = {"higher_is_better": higher, "widths": {}}
            for w in widths:
                x, y, budgets = _s2_matrix([r for r in rs if r["width"] == w], metric)
                mono = F.monotone(x, y)
                e: dict[str, Any] = {"budgets": budgets, "compute": x.tolist(),
                                     "mean": np.nanmean(y, 0).tolist(), "std": np.nanstd(y, 0).tolist(),
                                     "monotone": mono}
                improving = mono["monotone"] and (mono["direction"] == "increasing") == higher
                if mono["monotone"]:
                    e["fit"] = _with_shape(F.power_law_offset(x, y, direction=mono["direction"], n_boot=n_boot,
                                                              seed=seed, level=level), x, y, level)
                    e["improves_with_compute"] = improving
                else:
                    e["fit"] = None
                    e["not_fitted"] = "not monotone in budget"
                entry["widths"][str(w)] = e
            # The compute-efficient frontier over every (width, budget).
            pts = sorted(rs, key=lambda r: r["compute_flops"])
            comp = [r["compute_flops"] for r in pts]
            means = [float(np.nanmean(r["per_seed"][metric])) for r in pts]
            idx = F.frontier(comp, means, higher_is_better=higher)
            front = {"points": [{"width": pts[i]["width"], "budget": pts[i]["budget"], "compute": comp[i],
                                 "mean": means[i]} for i in idx]}
            if len(idx) >= 3:
                x = np.asarray([comp[i] for i in idx])
                y = np.asarray([pts[i]["per_seed"][metric] for i in idx], float).T
                mono = F.monotone(x, y)
                front["monotone"] = mono
                front["fit"] = (_with_shape(F.power_law_offset(x, y, direction=mono["direction"], n_boot=n_boot,
                                                               seed=seed, level=level), x, y, level)
                                if mono["monotone"] else None)
            else:
                front["fit"] = None
                front["not_fitted"] = f"{len(idx)} frontier points (a fit needs 3)"
            entry["frontier"] = front
            out[f"{setting}/{metric}"] = entry
    return out


# ------------------------------------------------------------------------------------ S3
def fit_s3(records: list[dict], frac: float, level: float, seed: int) -> dict:
    recs = sorted(records, key=lambda r: r["num_agents"])
    out: dict[str, Any] = {"frac": frac}
    for metric in S3_METRICS:
        if not all(c.get(metric) is not None for r in recs for c in r["curve"]):
            continue
        rows = []
        for r in recs:
            steps = np.asarray([c["env_steps"] for c in r["curve"]], float)
            y = np.asarray([c[metric] for c in r["curve"]], float)  # (chunks, seeds)
            per_step = r["compute_flops"] / max(r["env_steps"], 1)  # FLOPs per env step
            cross = [F.first_crossing(steps, y[:, s], frac=frac) for s in range(y.shape[1])]
            rows.append({"num_agents": r["num_agents"], "env_steps_to_frac": cross,
                         "compute_to_frac": [None if c is None else c * per_step for c in cross]})
        xs, ys = [], []
        for row in rows:
            for c in row["compute_to_frac"]:
                if c is not None and c > 0:
                    xs.append(row["num_agents"])
                    ys.append(c)
            finite = [c for c in row["compute_to_frac"] if c is not None]
            row["ci"] = F.bootstrap_ci(np.asarray(finite, float), seed=seed, level=level) if len(finite) >= 2 else None
        fit = F.loglog_slope(xs, ys, level=level) if len(set(xs)) >= 3 else None
        out[metric] = {"sizes": rows, "fit": fit}
    return out


# ------------------------------------------------------------------------------ figures
def _figure(ncols=1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * ncols, 4.0), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def figures(records: list[dict], fits: dict, out: Path) -> list[str]:
    written = []
    s1 = [r for r in records if r["study"] == "S1"]
    if s1:
        fig, (a0, a1, a2) = _figure(3)
        envs = sorted((r for r in s1 if r["axis"] == "num_envs"), key=lambda r: r["num_envs"])
        if envs:
            a0.loglog([r["num_envs"] for r in envs], [r["env_steps_per_s"] for r in envs], "o-")
            sat = fits.get("S1", {}).get("num_envs", {}).get("saturation")
            if sat and sat.get("x"):
                a0.axvline(sat["x"], ls=":", c="gray", label=f"90 % of max at {sat['x']:,} envs")
                a0.legend(fontsize=8)
        a0.set(xlabel="num_envs (7 agents, default map)", ylabel="env-steps/s", title="S1: throughput vs envs")
        ag = sorted((r for r in s1 if r["axis"] == "num_agents"), key=lambda r: r["num_agents"])
        if ag:
            x = np.asarray([r["num_agents"] for r in ag], float)
            y = np.asarray([r["ns_per_agent_step"] for r in ag], float)
            a1.loglog(x, y, "o", label="measured")
            f = fits.get("S1", {}).get("num_agents", {}).get("ns_per_agent_step_slope")
            if f:
                a1.loglog(x, np.exp(f["intercept"]) * x ** f["slope"], "-",
                          label=f"slope {f['slope']:.2f} [{_fmt(f['ci_low'])}, {_fmt(f['ci_high'])}]")
            a1.legend(fontsize=8)
        a1.set(xlabel="agents (procedural map, constant density)", ylabel="ns per agent-step",
               title="S1: cost per agent-step")
        for mech, style in (("weighted_median", "o-"), ("weighted_median_dense", "s--")):
            v = sorted((r for r in s1 if r["axis"] == "voters" and r["mechanism"] == mech), key=lambda r: r["num_voters"])
            if v:
                f = fits.get("S1", {}).get("voters", {}).get(mech)
                lab = mech + (f" (slope {f['slope']:.2f})" if f else "")
                a2.loglog([r["num_voters"] for r in v], [1e3 * r["median_s"] for r in v], style, label=lab)
        a2.legend(fontsize=8)
        a2.set(xlabel="voters", ylabel="ms per vote", title="S1: the weighted-median vote")
        fig.savefig(out / "s1_cost.png", dpi=110)
        written.append("s1_cost.png")
    s2 = fits.get("S2", {})
    if s2:
        keys = list(s2)
        fig, axes = _figure(len(keys))
        for ax, key in zip(axes, keys):
            e = s2[key]
            for w, we in e["widths"].items():
                x = np.asarray(we["compute"])
                m, sd = np.asarray(we["mean"]), np.asarray(we["std"])
                line = ax.errorbar(x, m, yerr=sd, fmt="o", capsize=2, label=f"width {w}")
                fit = we.get("fit")
                if fit:
                    xx = np.geomspace(x.min(), x.max(), 50)
                    ax.plot(xx, F.predict(fit, xx), "-", c=line[0].get_color())
                    band = F.predict_band(fit, xx)
                    if band is not None:
                        ax.fill_between(xx, band[0], band[1], color=line[0].get_color(), alpha=0.15)
            fr = e["frontier"]["points"]
            ax.plot([p["compute"] for p in fr], [p["mean"] for p in fr], "k:", lw=1, label="frontier")
            ffit = e["frontier"].get("fit")
            if ffit:
                xx = np.geomspace(min(p["compute"] for p in fr), max(p["compute"] for p in fr), 50)
                ax.plot(xx, F.predict(ffit, xx), "k-", lw=1.5, label=f"frontier fit (b={ffit['b']:.2f})")
                band = F.predict_band(ffit, xx)
                if band is not None:
                    ax.fill_between(xx, band[0], band[1], color="k", alpha=0.1)
            ax.set_xscale("log")
            ax.set(xlabel="compute (agents' network FLOPs)", ylabel=key.split("/")[1], title=f"S2: {key}")
            ax.legend(fontsize=7)
        fig.savefig(out / "s2_learning.png", dpi=110)
        written.append("s2_learning.png")
    s3 = fits.get("S3", {})
    metrics = [m for m in S3_METRICS if m in s3]
    if metrics:
        fig, axes = _figure(len(metrics))
        for ax, metric in zip(axes, metrics):
            e = s3[metric]
            for row in e["sizes"]:
                c = [v for v in row["compute_to_frac"] if v is not None]
                ax.scatter([row["num_agents"]] * len(c), c, c="C0", s=14)
            f = e.get("fit")
            if f:
                x = np.asarray([row["num_agents"] for row in e["sizes"]], float)
                ax.plot(x, np.exp(f["intercept"]) * x ** f["slope"], "-",
                        label=f"slope {f['slope']:.2f} [{_fmt(f['ci_low'])}, {_fmt(f['ci_high'])}]")
                ax.legend(fontsize=8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set(xlabel="agents", ylabel=f"FLOPs to {int(100 * s3['frac'])} % of the best",
                   title=f"S3: {metric}")
        fig.savefig(out / "s3_population.png", dpi=110)
        written.append("s3_population.png")
    return written


# ------------------------------------------------------------------------------ summary
def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.{digits}g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _slope(f) -> str:
    if not f:
        return "-"
    return f"{f['slope']:.3f} [{_fmt(f['ci_low'])}, {_fmt(f['ci_high'])}]"


def summary_md(cfg, records: list[dict], fits: dict, manifest: dict | None = None) -> str:
    level = int(round(100 * float(cfg.level)))
    parts = [f"# sedjax-scaling: profile `{cfg.profile.name}`", ""]
    if manifest:
        parts.append(f"{manifest['device_count']} x {manifest['device_kind']} ({manifest['platform']}), "
                     f"jax {manifest['jax_version']}, python {manifest['python_version']}. "
                     f"Intervals: {level} %.")
        parts.append("")
    s1 = [r for r in records if r["study"] == "S1"]
    if s1:
        f1 = fits.get("S1", {})
        parts += ["## S1: simulation cost", ""]
        rows = [[r["axis"], r["num_envs"], r["num_agents"], r["devices"], r["steps_per_call"], r["compile_s"],
                 r["env_steps_per_s"], r["agent_steps_per_s"], r["ns_per_agent_step"], r["flops_per_agent_step"],
                 r["bytes_per_agent_step"], (r["xla_memory_bytes"] or 0) / 2**20]
                for r in s1 if r["axis"] != "voters"]
        parts += [_table(["axis", "envs", "agents", "devices", "steps/call", "compile s", "env-steps/s",
                          "agent-steps/s", "ns/agent-step", "FLOPs/agent-step", "bytes/agent-step",
                          "XLA MiB"], rows), ""]
        v = [r for r in s1 if r["axis"] == "voters"]
        if v:
            parts += [_table(["vote", "voters", "ms", "ns/voter", "compile s"],
                             [[r["mechanism"], r["num_voters"], 1e3 * r["median_s"], r["ns_per_voter"], r["compile_s"]]
                              for r in v]), ""]
        na = f1.get("num_agents", {})
        parts += [f"- cost per agent-step vs agents, log-log slope: {_slope(na.get('ns_per_agent_step_slope'))} "
                  f"(0: a step's cost is linear in the population)",
                  f"- XLA FLOPs per agent-step vs agents: {_slope(na.get('flops_per_agent_step_slope'))}; "
                  f"bytes: {_slope(na.get('bytes_per_agent_step_slope'))}; "
                  f"memory per agent: {_slope(na.get('xla_memory_bytes_per_agent_slope'))}"]
        for mech, f in f1.get("voters", {}).items():
            parts.append(f"- vote time vs voters ({mech}): {_slope(f)}")
        sat = f1.get("num_envs", {}).get("saturation")
        if sat:
            parts.append(f"- throughput vs num_envs reaches 90 % of its maximum ({_fmt(sat['max'])} env-steps/s "
                         f"at {sat['x_at_max']:,} envs) at **{sat['x']:,} envs**")
        sat = na.get("saturation")
        if sat:
            parts.append(f"- agent-steps/s on the agent axis reaches 90 % of its maximum at {sat['x']:,} agents")
        d = f1.get("devices")
        if d:
            eff = ", ".join(f"{k}: {v:.2f}" for k, v in d["efficiency"].items())
            parts.append(f"- weak-scaling efficiency by devices: {eff}"
                         + (" (forced host devices sharing the same CPU cores: overhead, not speed-up)"
                            if d["forced_host_devices"] else ""))
        parts.append("")
    s2 = fits.get("S2", {})
    if s2:
        parts += ["## S2: learning vs compute", "",
                  "Each (width, budget) is its own run (the learning rates anneal to the end of a run); seeds "
                  "vmapped. Fit: `y = c + s*a*(x/x0)^(-b)` on compute x (the agents' network FLOPs), "
                  f"bootstrap {level} % CIs over seeds; only metrics monotone in budget are fitted.", ""]
        rows, unfitted = [], []
        for key, e in s2.items():
            for w, we in e["widths"].items():
                f = we.get("fit")
                if f:
                    rows.append(_fit_row(key, w, f))
                else:
                    unfitted.append(f"{key} width {w} ({we.get('not_fitted')}: means "
                                    + ", ".join(_fmt(m) for m in we["mean"]) + ")")
            fr = e["frontier"]
            f = fr.get("fit")
            if f:
                rows.append(_fit_row(key, "frontier", f))
            else:
                unfitted.append(f"{key} frontier ({fr.get('not_fitted', 'not monotone')})")
        parts += [_table(["setting/metric", "width", "direction", "exponent b", "b CI", "asymptote c", "c CI",
                          "rmse", "log-log slope alpha [CI]"], rows), "",
                  "A fit marked *no plateau* found no curvature in the range (b -> 0, a and c far beyond the "
                  "data): the metric still grows like log compute, so no asymptote can be read off; "
                  "alpha (y ~ x^alpha on the seed means) describes it instead.", ""]
        if unfitted:
            parts += ["Not fitted: " + "; ".join(unfitted) + ".", ""]
        for key, e in s2.items():
            fr = e["frontier"]["points"]
            parts.append(f"- {key} frontier (width@budget): " + ", ".join(f"{p['width']}@{p['budget']:,}" for p in fr))
        parts.append("")
    s3 = fits.get("S3", {})
    if any(m in s3 for m in S3_METRICS):
        parts += ["## S3: population size", "",
                  f"Compute (FLOPs of the agents' network) to reach {int(100 * s3['frac'])} % of the run's best "
                  "chunk, per seed, against the number of agents (procedural maps at the default density).", ""]
        rows = []
        for metric in S3_METRICS:
            if metric not in s3:
                continue
            for row in s3[metric]["sizes"]:
                c = [v for v in row["compute_to_frac"] if v is not None]
                rows.append([metric, row["num_agents"], float(np.mean(c)) if c else None, _ci(row.get("ci")),
                             ", ".join(_fmt(v) for v in row["env_steps_to_frac"])])
        parts += [_table(["metric", "agents", "FLOPs (mean)", "CI", "env steps per seed"], rows), ""]
        for metric in S3_METRICS:
            if metric in s3:
                parts.append(f"- {metric}: compute to {int(100 * s3['frac'])} % vs agents, log-log slope "
                             f"{_slope(s3[metric]['fit'])}")
        parts.append("")
    return "\n".join(parts)


def _fit_row(key, w, f) -> list:
    ci = f.get("ci") or {}
    alpha = _slope(f.get("loglog"))
    if f.get("degenerate"):
        return [key, w, f["direction"], "no plateau", "-", "-", "-", f["rmse"], alpha]
    return [key, w, f["direction"], f["b"], _ci(ci.get("b")), f["c"], _ci(ci.get("c")), f["rmse"], alpha]


def _ci(ci) -> str:
    if not ci or ci[0] is None:
        return "-"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def write_report(cfg, records: list[dict], out) -> dict:
    """fits.json, the figures and summary.md from the records; returns the fits."""
    out = Path(out)
    level, n_boot, seed = float(cfg.level), int(cfg.n_boot), int(cfg.seed)
    fits: dict[str, Any] = {}
    s1 = [r for r in records if r["study"] == "S1"]
    if s1:
        fits["S1"] = fit_s1(s1, level)
    s2 = [r for r in records if r["study"] == "S2"]
    if s2:
        fits["S2"] = fit_s2(s2, n_boot, level, seed)
    s3 = [r for r in records if r["study"] == "S3"]
    if s3:
        fits["S3"] = fit_s3(s3, float(cfg.profile.s3.frac), level, seed)
    (out / "fits.json").write_text(json.dumps(fits, indent=2, allow_nan=False) + "\n")
    fits["figures"] = figures(records, fits, out)
    manifest = None
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
    (out / "summary.md").write_text(summary_md(cfg, records, fits, manifest) + "\n")
    return fits


def refit(folder) -> dict:
    """Rewrite ``fits.json``, the figures and ``summary.md`` of a finished folder from its
    ``manifest.json`` and ``runs.jsonl`` (after changing a fit, or with another ``n_boot``)."""
    from omegaconf import OmegaConf

    folder = Path(folder)
    cfg = OmegaConf.create(json.loads((folder / "manifest.json").read_text())["config"])
    records = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines() if line.strip()]
    return write_report(cfg, records, folder)


if __name__ == "__main__":  # python -m sedjax.scaling.report <folder>
    import sys

    refit(sys.argv[1])
    print(f"rewrote {sys.argv[1]}/fits.json, summary.md and the figures")
