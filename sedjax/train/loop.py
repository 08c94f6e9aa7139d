"""The host-side training loop: seeds in parallel, logging, checkpoints, resume, plots.

``run(cfg, out_dir)`` trains ``cfg.train.num_seeds`` seeds at once (``jax.vmap`` over keys derived
from ``cfg.seed``) with the :class:`~sedjax.train.program.Program` of ``make_train(cfg)``, one
compiled **chunk** (``schedule.iters_per_chunk`` Principal iterations) at a time
(:func:`run_chunks`). Everything host-side (logging, checkpointing) happens between chunks, never
inside compiled code. It is callable without Hydra (``run(compose_config([...]), "runs/x")``);
``sedjax-train`` (:mod:`sedjax.train.cli`) is the Hydra front end.

Files written to ``out_dir``:

* ``config.yaml``: the resolved config (at start).
* ``metrics.jsonl``: one JSON object per chunk (:func:`sedjax.train.metrics.chunk_record`; the
  metric definitions are in :mod:`sedjax.train.metrics`).
* ``checkpoint/``: an Orbax checkpoint of the (vmapped over seeds) runner state after each chunk
  (latest only), plus the chunk index and the metrics so far (``cfg.train.checkpoint``;
  :mod:`sedjax.train.checkpoint`).
* ``training_curves.png``, ``tax_schedule.png`` at the end (``cfg.train.plots``).
* ``summary.json``: the final summary (what :func:`run` returns, without the runner).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import jax
import numpy as np
from omegaconf import OmegaConf

from sedjax.train.checkpoint import CHECKPOINT_DIR, load_checkpoint, manager, save_checkpoint
from sedjax.train.metrics import append_metrics, chunk_record, format_summary, summarize, write_metrics
from sedjax.train.program import Program, make_train, seed_keys

# Keys of the config that may change between a run and its resumption.
_RESUME_FREE_KEYS = {"train.resume", "train.plots", "train.checkpoint"}


# ----------------------------------------------------------------------------- helpers
def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _flat_config(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def config_differences(a, b, ignore=_RESUME_FREE_KEYS) -> list[str]:
    """Dotted keys whose values differ between configs ``a`` and ``b`` (except ``ignore``)."""
    fa, fb = _flat_config(a), _flat_config(b)
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k, "<missing>") != fb.get(k, "<missing>"))


def quiet_libraries() -> None:
    """Keep the console for sedjax's own lines: Orbax logs every checkpoint step at INFO through
    absl, and Hydra sends INFO records of every library to the terminal."""
    for name in ("absl", "jax", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- compiled programs
_PROGRAMS: OrderedDict[str, dict] = OrderedDict()
_PROGRAMS_KEPT = 2


def _program_key(cfg) -> str:
    """What determines the compiled programs: the config except the seed and host-side options."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("seed", None)
    c["train"] = {k: v for k, v in c.get("train", {}).items() if k not in ("resume", "plots", "checkpoint")}
    return json.dumps(c, sort_keys=True, default=str)


def _programs(cfg, program: Program) -> dict:
    """The jitted ``init`` and compiled ``chunk`` (filled in by :func:`run`) of this config, shared
    by the runs of one process with the same program (e.g. a run and its resumption, or several
    seeds' runs in a notebook), so they are compiled once. ``program`` must be ``make_train(cfg)``."""
    key = _program_key(cfg)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    progs = {"init": jax.jit(jax.vmap(program.init))}
    _PROGRAMS[key] = progs
    while len(_PROGRAMS) > _PROGRAMS_KEPT:
        _PROGRAMS.popitem(last=False)
    return progs


def run_chunks(chunk_fn, runner, start: int, end: int) -> Iterator[tuple[int, object, dict, float]]:
    """Chunks ``start .. end-1`` of a vmapped runner: yields ``(chunk index, runner after it, its
    metrics on the host (leaves (seeds, iters, ...)), seconds)``. ``chunk_fn``: the jitted (or
    compiled) ``jax.vmap(program.chunk)``. The one chunk loop of the run and of the scripts."""
    for c in range(start, end):
        t0 = time.perf_counter()
        runner, metrics = chunk_fn(runner)
        metrics = jax.device_get(metrics)  # blocks until the chunk is done
        yield c, runner, metrics, time.perf_counter() - t0


def _progress_line(rec: dict, num_chunks: int, total_steps: int, eta: float) -> str:
    def g(k, fmt="{:.3f}"):
        v = rec.get(k)
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    return (f"[chunk {rec['chunk'] + 1}/{num_chunks}] steps {rec['env_steps']:,}/{total_steps:,} | "
            f"{rec['sps']:,.0f} env-steps/s ({rec['agent_sps']:,.0f} agent-steps/s) | ETA {_fmt_time(eta)} | "
            f"objective {g('objective')} | tax {g('mean_tax_rate', '{:.3f}')} | "
            f"apples alive {g('apples_alive', '{:.1f}')} | agent return {g('agent_return', '{:.2f}')}")


# ----------------------------------------------------------------------------- the run
def run(cfg, out_dir, *, max_chunks: int | None = None, verbose: bool = True) -> dict:
    """Train as configured by ``cfg`` (a composed config, e.g. :func:`sedjax.train.config.compose_config`),
    writing everything to ``out_dir``; returns a summary dict.

    ``max_chunks``: stop after this many chunks in this call (the run can be continued with
    ``train.resume=true``; used to test resumption). ``verbose``: print progress.

    Returns ``{"out_dir", "num_seeds", "num_chunks", "chunks_done", "total_env_steps",
    "env_steps", "compile_time", "train_time", "wall_time", "final" (see
    :func:`~sedjax.train.metrics.summarize`), "last" (the last metrics record), "runner" (the
    vmapped runner state)}``.
    """
    t_start = time.perf_counter()
    quiet_libraries()
    say = (lambda *a: print(*a, flush=True)) if verbose else (lambda *a: None)
    out_dir = Path(out_dir)
    program = make_train(cfg)  # validates the config (ValueError naming the key) before any compile
    S = program.schedule
    tc = cfg.train
    num_seeds = int(tc.num_seeds)
    num_chunks, n = S.num_chunks, S.num_agents
    resume, use_ckpt, make_plots = bool(tc.resume), bool(tc.checkpoint), bool(tc.plots)

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = out_dir / "config.yaml"
    if resume and cfg_path.exists():
        diff = config_differences(OmegaConf.load(cfg_path), cfg)
        if diff:
            say(f"warning: resuming with a config that differs from {cfg_path} in: {', '.join(diff)}")
    OmegaConf.save(cfg, cfg_path, resolve=True)

    keys = seed_keys(int(cfg.seed), num_seeds)
    programs = _programs(cfg, program)
    runner = programs["init"](keys)
    start_chunk, records = 0, []
    if resume:
        loaded = load_checkpoint(out_dir, runner)
        if loaded is None:
            say(f"train.resume: no checkpoint in {out_dir / CHECKPOINT_DIR}, starting from scratch")
        else:
            runner, meta = loaded
            start_chunk, records = int(meta["chunk"]), list(meta.get("metrics", []))
            say(f"resumed from {out_dir / CHECKPOINT_DIR} after chunk {start_chunk}/{num_chunks}")
    elif (out_dir / CHECKPOINT_DIR).exists():
        shutil.rmtree(out_dir / CHECKPOINT_DIR)  # a fresh run replaces an old one's checkpoint
    write_metrics(out_dir, records)  # consistent with the checkpoint (drops lines written after it)

    say(f"sedjax: {num_seeds} seed(s) x {S.total_env_steps:,} env steps, {num_chunks} chunks of "
        f"{S.iters_per_chunk} Principal iterations ({S.steps_per_chunk:,} env steps), "
        f"{n} agents, principal={cfg.principal.kind} -> {out_dir}")
    end_chunk = num_chunks if max_chunks is None else min(num_chunks, start_chunk + int(max_chunks))
    compile_time = 0.0
    chunk_fn = None
    if start_chunk < end_chunk:
        t0 = time.perf_counter()
        if "chunk" not in programs:
            programs["chunk"] = jax.jit(jax.vmap(program.chunk)).lower(runner).compile()
        chunk_fn = programs["chunk"]
        compile_time = time.perf_counter() - t0
        say(f"compiled in {compile_time:.1f}s")

    mngr = manager(out_dir / CHECKPOINT_DIR) if use_ckpt and start_chunk < end_chunk else None
    train_time, chunk_times = 0.0, []
    try:
        for c, runner, metrics, dt in run_chunks(chunk_fn, runner, start_chunk, end_chunk):
            train_time += dt
            chunk_times.append(dt)
            rec = chunk_record(metrics, chunk=c, num_chunks=num_chunks, env_steps=(c + 1) * S.steps_per_chunk,
                               num_agents=n, round_len=S.round_len)
            rec["sps"] = num_seeds * S.steps_per_chunk / dt
            rec["agent_sps"] = rec["sps"] * n
            rec["chunk_time"] = dt
            rec["wall_time"] = time.perf_counter() - t_start
            records.append(rec)
            append_metrics(out_dir, rec)
            if mngr is not None:
                mngr.wait_until_finished()  # the previous save
                save_checkpoint(mngr, c + 1, runner, {"chunk": c + 1, "num_chunks": num_chunks, "metrics": records})
            eta = float(np.mean(chunk_times)) * (num_chunks - c - 1)
            say(_progress_line(rec, num_chunks, S.total_env_steps, eta))
    finally:
        if mngr is not None:
            mngr.wait_until_finished()
            mngr.close()

    chunks_done = max(start_chunk, end_chunk)
    if make_plots and records:
        from sedjax.train import plots

        plots.training_curves(records, out_dir / "training_curves.png")
        plots.tax_schedule(records, out_dir / "tax_schedule.png")
    final = summarize(records)
    say(format_summary(final, num_seeds))
    summary = {
        "out_dir": str(out_dir),
        "num_seeds": num_seeds,
        "num_chunks": num_chunks,
        "chunks_done": chunks_done,
        "total_env_steps": S.total_env_steps,
        "env_steps": records[-1]["env_steps"] if records else 0,
        "compile_time": compile_time,
        "train_time": train_time,
        "wall_time": time.perf_counter() - t_start,
        "final": final,
        "last": records[-1] if records else {},
    }
    with open(out_dir / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    summary["runner"] = runner
    return summary
