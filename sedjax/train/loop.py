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

import hashlib
import json
import logging
import os
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
from sedjax.train import distributed, sweep
from sedjax.train.config import plain
from sedjax.train.mesh import RunMesh, make_run_mesh
from sedjax.train.program import Program, make_train, seed_keys
from sedjax.train.trackers import check_loggers, make_trackers

# Keys of the config that may change between a run and its resumption (train.mesh.used.*: the
# devices the run used, recorded in config.yaml; a resumed run may use others).
_RESUME_FREE_KEYS = {"train.resume", "train.plots", "train.checkpoint", "train.compilation_cache"}
_RESUME_FREE_PREFIXES = ("train.mesh.", "distributed.", "logger", "wandb.")


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
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and not k.startswith(_RESUME_FREE_PREFIXES)
                  and fa.get(k, "<missing>") != fb.get(k, "<missing>"))


def quiet_libraries() -> None:
    """Keep the console for sedjax's own lines: Orbax logs every checkpoint step at INFO through
    absl, and Hydra sends INFO records of every library to the terminal."""
    for name in ("absl", "jax", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- compiled programs
_PROGRAMS: OrderedDict[str, dict] = OrderedDict()
_PROGRAMS_KEPT = 2


def _program_key(cfg, num_runs: int, program: Program | None = None, rmesh: RunMesh | None = None) -> str:
    """What determines the compiled programs: the static config (no seed, no traced values, no
    host-side options), the number of vmapped runs and the mesh's devices."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("seed", None)
    c.pop("sweep", None)
    c.pop("search", None)
    for key in sweep.SWEEPABLE:  # traced: arguments of the compiled program, not part of it
        group, name = key.split(".")
        c.get(group, {}).pop(name, None)
    c["train"] = {k: v for k, v in c.get("train", {}).items()
                  if k not in ("resume", "plots", "checkpoint", "mesh", "compilation_cache")}
    for host_side in ("distributed", "logger", "wandb"):
        c.pop(host_side, None)
    c["_runs"] = int(num_runs)
    if rmesh is not None:
        c["_mesh"] = [rmesh.runs, rmesh.envs, [d.id for d in rmesh.mesh.devices.flat]]
    if program is not None:  # what a traced key's value may still fix (e.g. a type distribution's family)
        c["_static"] = repr((program.env.static, getattr(program.env, "grid", None) and program.env.grid.static))
    return json.dumps(c, sort_keys=True, default=str)


def _programs(cfg, program: Program, num_runs: int, rmesh: RunMesh, keys, hypers) -> dict:
    """The jitted ``init`` and ``chunk`` on the runner's shardings, and the compiled ``chunk`` (filled in by
    :func:`run`) of this config on ``rmesh``, shared by the runs of one process with the same
    program (e.g. a run and its resumption, several seeds' runs in a notebook, the batches of a
    schedule search), so they are compiled once. ``program`` must be ``make_train(cfg)`` (its
    static settings; traced ones are arguments); ``keys``, ``hypers``: example arguments of init."""
    key = _program_key(cfg, num_runs, program, rmesh)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    v_init = jax.vmap(program.init)
    shardings = rmesh.runner_shardings(jax.eval_shape(v_init, keys, hypers))
    progs = {"init": jax.jit(v_init, out_shardings=shardings),
             "chunk_jit": jax.jit(jax.vmap(program.chunk), in_shardings=(shardings,),
                                  out_shardings=(shardings, rmesh.replicated))}
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


def _device_memory() -> tuple[int | None, str]:
    """Bytes of memory of the first device (``bytes_limit`` on accelerators, physical memory on
    CPU), and its name."""
    d = jax.devices()[0]
    try:
        stats = d.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), d.device_kind
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), d.device_kind
    except (ValueError, OSError, AttributeError):
        return None, d.device_kind


TRAJECTORY_COPIES = 7


def memory_estimate(program: Program, num_runs: int) -> int:
    """Bytes a chunk of ``num_runs`` vmapped runs of ``program`` needs, estimated before compiling
    (from shapes only: ``jax.eval_shape`` of the vmapped ``init``, nothing is run): the runner
    state, plus ``TRAJECTORY_COPIES`` times a rollout's trajectory (``rollout_len`` steps of the
    batch's observations and per-step values: the trajectory itself, its shuffled minibatches, the
    network's activations and gradients). The factor is calibrated against XLA's
    ``memory_analysis()`` of the compiled chunk on the default config
    (``benchmarks/sweep_throughput.py``: 2.1x a 3-copy estimate at K = 1 .. 81 configurations)."""
    hypers = sweep.repeat_runs(jax.tree.map(lambda x: np.asarray(x)[None], program.hypers), num_runs)
    runner_shape = jax.eval_shape(jax.vmap(program.init), seed_keys(0, num_runs), hypers)
    per_run = sweep.tree_bytes(runner_shape) // max(1, num_runs)
    step = sweep.tree_bytes(runner_shape.obs) // max(1, num_runs) + 16 * program.schedule.num_envs * program.schedule.num_agents
    return int(num_runs * (per_run + TRAJECTORY_COPIES * program.schedule.rollout_len * step))


def _timing_cache() -> Path:
    """Where measured compile and chunk times are kept, so a sweep's ETA can be given before it
    compiles (``$SEDJAX_CACHE_DIR``, default ``~/.cache/sedjax``)."""
    return distributed.cache_dir() / "timings.json"


def _timing_key(cfg, num_runs: int, program: Program, rmesh: RunMesh | None = None) -> str:
    d = jax.devices()[0]
    text = (f"{_program_key(cfg, num_runs, program, rmesh)}|{d.platform}|{d.device_kind}|{jax.device_count()}|"
            f"{jax.process_count()}|{jax.__version__}")
    return hashlib.sha1(text.encode()).hexdigest()


def _read_timing(key: str) -> dict | None:
    try:
        return json.loads(_timing_cache().read_text()).get(key)
    except (OSError, ValueError):
        return None


def _write_timing(key: str, compile_s: float, chunk_s: float) -> None:
    path = _timing_cache()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = {"compile_s": compile_s, "chunk_s": chunk_s}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    except OSError:
        pass  # a read-only home: no ETA next time, nothing else lost


def eta_before_compile(cfg, program: Program, num_runs: int, chunks: int, rmesh: RunMesh | None = None) -> str:
    """The ETA of a run of ``chunks`` chunks, from an earlier run of the same compiled program on
    this machine (same static config, number of vmapped runs, device and jax), or a statement that
    none is known yet. Nothing short of compiling can time a new program honestly."""
    t = _read_timing(_timing_key(cfg, num_runs, program, rmesh))
    if t is None:
        return "ETA: after the first chunk (no earlier run of this program on this machine)"
    total = t["compile_s"] + chunks * t["chunk_s"]
    return (f"ETA {_fmt_time(total)} (compile {_fmt_time(t['compile_s'])} + {chunks} chunks x "
            f"{t['chunk_s']:.1f}s, measured by an earlier run of this program here)")


def compiled_memory(compiled) -> int | None:
    """Bytes XLA reserves for a compiled program (arguments + outputs + temporaries - aliased)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    if m is None:
        return None
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes)


# ----------------------------------------------------------------------------- the run
def run(cfg, out_dir, *, max_chunks: int | None = None, verbose: bool = True) -> dict:
    """Train as configured by ``cfg`` (a composed config, e.g. :func:`sedjax.train.config.compose_config`),
    writing everything to ``out_dir``; returns a summary dict.

    With a ``sweep`` node (:mod:`sedjax.train.sweep`) every configuration x seed is one vmapped run
    of one compiled program; each configuration's records, config and plots go to
    ``out_dir/sweep/<index>/`` and ``out_dir/sweep.csv`` holds one row per configuration and seed.

    ``max_chunks``: stop after this many chunks in this call (the run can be continued with
    ``train.resume=true``; used to test resumption). ``verbose``: print progress.

    Returns ``{"out_dir", "num_seeds", "num_chunks", "chunks_done", "total_env_steps",
    "env_steps", "compile_time", "train_time", "wall_time", "final" (see
    :func:`~sedjax.train.metrics.summarize`), "last" (the last metrics record), "runner" (the
    vmapped runner state)}``; a sweep adds ``"sweep"``: one ``{"index", "values", "final"}`` per
    configuration, and ``"final"`` / ``"last"`` are configuration 0's. ``"records"``: the
    metrics records (a sweep: one list per configuration).
    """
    t_start = time.perf_counter()
    quiet_libraries()
    distributed.setup(cfg)  # before anything starts JAX's backend
    main = distributed.is_main_process()  # process 0 writes the run's files and talks
    say = (lambda *a: print(*a, flush=True)) if verbose and main else (lambda *a: None)
    out_dir = Path(out_dir)
    swept = sweep.expand(cfg) if sweep.has_sweep(cfg) else None  # validates every configuration
    base = sweep.base_config(cfg) if swept is not None else cfg
    program = make_train(base)  # validates the config (ValueError naming the key) before any compile
    check_loggers(cfg)
    S = program.schedule
    tc = cfg.train
    num_seeds = int(tc.num_seeds)
    K = swept.size if swept is not None else 1
    num_runs = K * num_seeds
    num_chunks, n = S.num_chunks, S.num_agents
    resume, use_ckpt, make_plots = bool(tc.resume), bool(tc.checkpoint), bool(tc.plots)
    rmesh = make_run_mesh(cfg, num_runs, S.num_envs)  # ValueError naming train.mesh.* / train.num_envs
    say(rmesh.description)

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = out_dir / "config.yaml"
    if resume and cfg_path.exists():
        diff = config_differences(OmegaConf.load(cfg_path), cfg)
        if diff:
            say(f"warning: resuming with a config that differs from {cfg_path} in: {', '.join(diff)}")
    run_dirs = [out_dir]
    if swept is not None:
        run_dirs = [out_dir / "sweep" / str(k) for k in range(K)]
    if main:
        OmegaConf.save(with_mesh(cfg, rmesh), cfg_path, resolve=True)
        for d, c in zip(run_dirs, swept.configs) if swept is not None else ():
            d.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(with_mesh(c, rmesh), d / "config.yaml", resolve=True)

    keys = seed_keys(int(cfg.seed), num_seeds)
    configs_hypers = swept.hypers if swept is not None else jax.tree.map(lambda x: np.asarray(x)[None], program.hypers)
    hypers = sweep.repeat_runs(configs_hypers, num_seeds)
    run_keys = sweep.tile_keys(keys, K)
    # Global arrays from the same host values on every process (a no-op copy on one device).
    run_keys, hypers = rmesh.put_replicated((run_keys, hypers))
    programs = _programs(base, program, num_runs, rmesh, run_keys, hypers)
    if swept is not None:
        need = memory_estimate(program, num_runs) // rmesh.num_devices
        have, kind = _device_memory()
        say(f"sweep: {K} configurations ({' x '.join(f'{len(set(map(str, v)))} {k}' for k, v in zip(swept.keys, zip(*swept.values)))})"
            f" x {num_seeds} seed(s) = {num_runs} runs in one program; memory estimate {need / 2**30:.2f} GiB"
            + (" per device" if rmesh.num_devices > 1 else "")
            + (f" of {have / 2**30:.1f} GiB ({kind})" if have else "")
            + "; " + eta_before_compile(base, program, num_runs, (num_chunks if max_chunks is None else max_chunks),
                                        rmesh))
        if have is not None and need > have:
            raise MemoryError(
                f"the sweep needs about {need / 2**30:.1f} GiB per device, more than the device's "
                f"{have / 2**30:.1f} GiB: sweep fewer values, fewer train.num_seeds or train.num_envs, use more "
                f"devices (train.mesh), or split it (sedjax-search splits its schedules into batches: search.batch)")
    runner = programs["init"](run_keys, hypers)
    start_chunk, records = 0, [[] for _ in range(K)]
    if resume:
        loaded = load_checkpoint(out_dir, runner)
        if loaded is None:
            say(f"train.resume: no checkpoint in {out_dir / CHECKPOINT_DIR}, starting from scratch")
        else:
            runner, meta = loaded
            start_chunk = int(meta["chunk"])
            saved = meta.get("metrics", [])
            records = [list(r) for r in saved] if swept is not None else [list(saved)]
            say(f"resumed from {out_dir / CHECKPOINT_DIR} after chunk {start_chunk}/{num_chunks}")
    elif main and (out_dir / CHECKPOINT_DIR).exists():
        shutil.rmtree(out_dir / CHECKPOINT_DIR)  # a fresh run replaces an old one's checkpoint
    distributed.barrier("checkpoint folder")  # nobody opens it while process 0 removes it
    if main:
        for d, r in zip(run_dirs, records):
            write_metrics(d, r)  # consistent with the checkpoint (drops lines written after it)

    say(f"sedjax: {num_seeds} seed(s) x {S.total_env_steps:,} env steps, {num_chunks} chunks of "
        f"{S.iters_per_chunk} Principal iterations ({S.steps_per_chunk:,} env steps), "
        f"{n} agents, principal={cfg.principal.kind}" + (f", {K} configurations" if swept is not None else "")
        + f" -> {out_dir}")
    end_chunk = num_chunks if max_chunks is None else min(num_chunks, start_chunk + int(max_chunks))
    compile_time = 0.0
    chunk_fn = None
    if start_chunk < end_chunk:
        t0 = time.perf_counter()
        if "chunk" not in programs:
            programs["chunk"] = programs["chunk_jit"].lower(runner).compile()
        chunk_fn = programs["chunk"]
        compile_time = time.perf_counter() - t0
        used = compiled_memory(chunk_fn)
        say(f"compiled in {compile_time:.1f}s" + (f"; XLA's memory for a chunk: {used / 2**30:.2f} GiB"
                                                    if swept is not None and used else ""))

    mngr = manager(out_dir / CHECKPOINT_DIR) if use_ckpt and start_chunk < end_chunk else None
    train_time, chunk_times = 0.0, []
    trackers, failed = [], True
    try:
        if start_chunk < end_chunk:  # TensorBoard / W&B (logger=[...]): one run per run folder
            for k, (d, c) in enumerate(zip(run_dirs, swept.configs if swept is not None else [cfg])):
                trackers.append(make_trackers(c, d, enabled=main, name=out_dir.name + (f"/sweep/{k}" if swept else ""),
                                              config_dict=OmegaConf.to_container(with_mesh(c, rmesh), resolve=True)))
        for c, runner, metrics, dt in run_chunks(chunk_fn, runner, start_chunk, end_chunk):
            train_time += dt
            chunk_times.append(dt)
            sps = num_runs * S.steps_per_chunk / dt
            for k in range(K):
                m_k = jax.tree.map(lambda x: x[k * num_seeds:(k + 1) * num_seeds], metrics)
                rec = chunk_record(m_k, chunk=c, num_chunks=num_chunks, env_steps=(c + 1) * S.steps_per_chunk,
                                   num_agents=n, round_len=S.round_len)
                rec["sps"] = sps
                rec["agent_sps"] = sps * n
                rec["chunk_time"] = dt
                rec["wall_time"] = time.perf_counter() - t_start
                records[k].append(rec)
                if main:
                    append_metrics(run_dirs[k], rec)
                    trackers[k].log(rec)
            if mngr is not None:
                mngr.wait_until_finished()  # the previous save
                save_checkpoint(mngr, c + 1, runner, {"chunk": c + 1, "num_chunks": num_chunks,
                                                      "metrics": records if swept is not None else records[0]})
            eta = float(np.mean(chunk_times)) * (num_chunks - c - 1)
            line = _progress_line(records[0][-1], num_chunks, S.total_env_steps, eta)
            say(line if swept is None else line.replace(" | objective", " | configuration 0: objective"))
        failed = False
    finally:
        for t in trackers:
            t.close(failed=failed)
        if mngr is not None:
            mngr.wait_until_finished()
            mngr.close()

    if main and chunk_times and compile_time > 0:
        _write_timing(_timing_key(base, num_runs, program, rmesh), compile_time, float(np.median(chunk_times)))
    chunks_done = max(start_chunk, end_chunk)
    if make_plots and main:
        from sedjax.train import plots

        for d, r in zip(run_dirs, records):
            if r:
                plots.training_curves(r, d / "training_curves.png")
                plots.tax_schedule(r, d / "tax_schedule.png")
    finals = [summarize(r) for r in records]
    if swept is None:
        say(format_summary(finals[0], num_seeds))
    summary = {
        "out_dir": str(out_dir),
        "num_seeds": num_seeds,
        "num_chunks": num_chunks,
        "chunks_done": chunks_done,
        "total_env_steps": S.total_env_steps,
        "env_steps": records[0][-1]["env_steps"] if records[0] else 0,
        "compile_time": compile_time,
        "train_time": train_time,
        "wall_time": time.perf_counter() - t_start,
        "final": finals[0],
        "last": records[0][-1] if records[0] else {},
        "mesh": rmesh.as_dict(),
    }
    if swept is not None:
        summary["sweep"] = [{"index": k, "values": dict(zip(swept.keys, map(plain, v))), "final": f}
                            for k, (v, f) in enumerate(zip(swept.values, finals))]
        if main:
            rows = write_sweep_csv(out_dir / "sweep.csv", swept, finals, num_seeds)
            say(f"sweep: {K} configurations x {num_seeds} seed(s) -> {out_dir / 'sweep.csv'} ({rows} rows)")
            for d, f in zip(run_dirs, finals):
                with open(d / "summary.json", "w") as fh:
                    json.dump({"final": f}, fh, indent=2)
    if main:
        with open(out_dir / "summary.json", "w") as f:
            json.dump(summary, f, indent=2)
    summary["runner"] = runner
    summary["records"] = records if swept is not None else records[0]  # not in summary.json
    return summary


def with_mesh(cfg, rmesh: RunMesh):
    """``cfg`` with ``train.mesh.used``: the devices the run used (recorded in ``config.yaml``)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    used = {k: v for k, v in rmesh.as_dict().items() if k != "description"}
    c.setdefault("train", {}).setdefault("mesh", {})["used"] = used
    return OmegaConf.create(c)


def write_sweep_csv(path, swept, finals: list[dict], num_seeds: int) -> int:
    """``sweep.csv``: one row per configuration and seed: ``config``, ``seed``, the swept values
    (a list value one column per entry), then the final metrics (the last chunk's, as in
    ``summary.json``). Returns the number of rows."""
    import csv

    metrics = [m for m in finals[0] if "per_seed" in finals[0][m]] if finals and finals[0] else []
    rows = []
    for k, (values, final) in enumerate(zip(swept.values, finals)):
        for s in range(num_seeds):
            row = {"config": k, "seed": s, **sweep.flat_values(swept.keys, values)}
            for m in metrics:
                per_seed = final.get(m, {}).get("per_seed", [])
                row[m] = per_seed[s] if s < len(per_seed) else float("nan")
            rows.append(row)
    fields = list(rows[0]) if rows else ["config", "seed"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return len(rows)
