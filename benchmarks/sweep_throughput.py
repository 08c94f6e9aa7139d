"""Sweep throughput: a K-configuration vectorised sweep (one compiled program) vs K separate runs.

For K in (1, 8, 27, 81) fixed tax schedules (``principal=fixed``, one seed each; schedules from
the 11 rate levels per bracket), the training chunk of the K-configuration sweep is compiled once
and timed (median of ``--repeats`` chunks after a warm-up, ``block_until_ready``); one chunk = one
Principal iteration of every configuration. "K separate runs" is K times the measured time of the
1-configuration program (its compile + its chunks): sequential runs of one configuration each, as
Hydra's ``-m`` runs them, each compiling its own program (``make_train`` builds new closures).

Reported per K: steady-state agent-steps/s of the sweep and of the separate runs, the ratio, and
the end-to-end ratios including compile for runs of ``--iterations`` Principal iterations (default
20 = one episode per env, as in a short search, and 200 = the default run). Also XLA's measured memory of the compiled sweep (``memory_analysis``) beside the sweep's
pre-compile estimate (:func:`sedjax.train.loop.memory_estimate`).

    python benchmarks/sweep_throughput.py                   # K = 1, 8, 27, 81 on the default config
    python benchmarks/sweep_throughput.py --quick           # seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import env_info, env_info_line, markdown_table, time_compiled, write_json  # noqa: E402
from sedjax.train import loop, sweep  # noqa: E402
from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.program import make_train, seed_keys  # noqa: E402
from sedjax.train.schedule import env_steps_per_iteration  # noqa: E402


def schedules(k: int, num_brackets: int = 3):
    levels = [i / 10 for i in range(11)]
    return [list(s) for s in itertools.islice(itertools.product(levels, repeat=num_brackets), k)]


class _Precompiled:
    """Hands an already compiled program to ``time_compiled`` (compiled once: its memory analysis
    and its timing are of the same executable)."""

    def __init__(self, compiled):
        self.compiled = compiled

    def lower(self, *args):
        return self

    def compile(self):
        return self.compiled


def measure(base, k: int, repeats: int):
    rates = schedules(k)
    cfg = compose_config(base + ["principal=fixed", f"+sweep.principal.rates={rates}".replace(" ", "")])
    swept = sweep.expand(cfg)
    program = make_train(sweep.base_config(cfg))
    hypers = sweep.repeat_runs(swept.hypers, 1)
    keys = sweep.tile_keys(seed_keys(0, 1), k)
    init = jax.jit(jax.vmap(program.init))
    estimate = loop.memory_estimate(program, k)
    runner = init(keys, hypers)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(program.chunk)).lower(runner).compile()
    compile_s = time.perf_counter() - t0
    measured = loop.compiled_memory(compiled)
    res = time_compiled(_Precompiled(compiled), (runner,), repeats=repeats, warmup=1, feed=lambda out, args: (out[0],))
    steps = k * program.schedule.steps_per_chunk
    n = program.schedule.num_agents
    return {
        "configs": k, "compile_s": compile_s, "chunk_median_s": res["median_s"], "chunk_times_s": res["times_s"],
        "env_steps_per_chunk": steps, "agent_steps_per_s": steps * n / res["median_s"],
        "memory_estimate_bytes": estimate, "memory_measured_bytes": measured,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, nargs="+", default=[1, 8, 27, 81])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, nargs="+", default=[20, 200],
                    help="run lengths (Principal iterations) the end-to-end ratios are for (default config: "
                         "20 = one episode per env, 200 = the default run)")
    ap.add_argument("--from-json", default=None, help="only re-render the table from a saved JSON")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/sweep_throughput.json)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra-style config overrides")
    args = ap.parse_args(argv)
    base = list(args.overrides)
    if args.quick:
        args.configs, args.repeats = [1, 3], 1
        base += ["train.num_envs=2", "train.rollout_len=50", "voting.periods_per_round=2", "env.rounds_per_episode=1",
                 "principal.update_every=1", "agents.minibatches=2", "env.map=procedural", "env.num_agents=3"]
    if 1 not in args.configs:
        args.configs = [1] + list(args.configs)
    per_iter = env_steps_per_iteration(compose_config(base))
    base += ["train.chunks=1", f"train.total_env_steps={per_iter}"]  # one chunk = one Principal iteration
    info = env_info()
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        results = {r["configs"]: r for r in saved["results"]}
        info, args.repeats = saved["env"], saved["repeats"]
        args.configs = sorted(results)
    else:
        results = {}
        for k in args.configs:
            results[k] = measure(base, k, args.repeats)
            print(f"K={k}: {results[k]['agent_steps_per_s']:,.0f} agent-steps/s, compile {results[k]['compile_s']:.1f}s",
                  flush=True)
    one = results[1]
    rows, out = [], []
    for k in args.configs:
        r = results[k]
        sep_sps = one["agent_steps_per_s"]  # K separate runs: K x the time of one, same steps
        ratio = r["agent_steps_per_s"] / sep_sps
        r.update(separate_agent_steps_per_s=sep_sps, steady_ratio=ratio, end_to_end={})
        cells = []
        for iters in args.iterations:
            sweep_total = r["compile_s"] + iters * r["chunk_median_s"]
            sep_total = k * (one["compile_s"] + iters * one["chunk_median_s"])
            r["end_to_end"][str(iters)] = {"sweep_s": sweep_total, "separate_s": sep_total,
                                          "ratio": sep_total / sweep_total}
            cells.append(f"{sep_total / sweep_total:.2f}x")
        out.append(r)
        rows.append([k, r["agent_steps_per_s"], sep_sps, f"{ratio:.2f}x", r["compile_s"], k * one["compile_s"], *cells,
                     f"{r['memory_estimate_bytes'] / 2**20:.0f}",
                     "-" if r["memory_measured_bytes"] is None else f"{r['memory_measured_bytes'] / 2**20:.0f}"])
    steps_per_iter = one["env_steps_per_chunk"]
    table = markdown_table(
        ["configs K", "sweep agent-steps/s", "K separate agent-steps/s", "steady ratio", "sweep compile (s)",
         "K separate compiles (s)"]
        + [f"end-to-end ratio, {i} iterations ({i * steps_per_iter // 1000}k env steps)" for i in args.iterations]
        + ["memory est. (MiB)", "XLA memory (MiB)"], rows)
    print()
    print(f"Sweep throughput ({env_info_line(info)}); medians of {args.repeats} chunks; one seed per configuration")
    print(table)
    cfg = compose_config(base)
    path = write_json("sweep_throughput", {
        "env": info, "overrides": base, "repeats": args.repeats, "iterations": args.iterations, "results": out,
        "table": table,
        "config": {"num_envs": int(cfg.train.num_envs), "num_agents": int(cfg.env.num_agents),
                   "rollout_len": int(cfg.train.rollout_len), "principal": "fixed", "seeds_per_config": 1},
    }, args.out)
    print(f"wrote {path}")
    return {"results": out, "table": table}


if __name__ == "__main__":
    main()
