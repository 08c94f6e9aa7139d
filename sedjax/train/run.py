"""The host-side training loop: seeds in parallel, logging, checkpoints, resume, plots.

``run(cfg, out_dir)`` trains ``cfg.train.num_seeds`` seeds at once (``jax.vmap`` over keys derived
from ``cfg.seed``) with the compiled program of :func:`sedjax.train.ppo.make_train`, one compiled
**chunk** (``train.iters_per_chunk`` Principal iterations) at a time. Everything host-side (logging,
checkpointing) happens between chunks, never inside compiled code. It is callable without Hydra
(``run(compose_config([...]), "runs/x")``); ``sedjax-train`` (:mod:`sedjax.train.cli`) is the
Hydra front end.

Files written to ``out_dir``:

* ``config.yaml``: the resolved config (at start).
* ``metrics.jsonl``: one JSON object per chunk (see :func:`chunk_record` for the keys).
* ``checkpoint/``: an Orbax checkpoint of the (vmapped over seeds) runner state after each chunk
  (latest only), plus the chunk index and the metrics so far (``cfg.train.checkpoint``).
* ``training_curves.png``, ``tax_schedule.png`` at the end (``cfg.train.plots``).
* ``summary.json``: the final summary (what :func:`run` returns, without the runner).

Metric definitions (each averaged over the chunk's Principal iterations, then over seeds; the main
ones are also kept per seed under ``<name>_per_seed``):

* ``env_steps``: environment steps per seed so far (each step moves all agents).
* ``sps``: environment steps per second over all seeds during the chunk (compile time excluded);
  ``agent_sps`` = ``sps`` x number of agents.
* ``agent_return``: mean per-agent reward per step x the voting-round length
  (``tax.period_len x voting.periods_per_round``), i.e. an agent's (undiscounted) return over one
  voting round at the current rate of reward.
* ``apples_per_agent_step``: raw apples collected per agent per step;
  ``productivity`` = apples per env step (all agents) = ``apples_per_agent_step x num_agents``.
* ``objective``: the Principal's objective per tax period (its reward); ``tax_rates``: the mean rate
  per bracket; ``equality``: 1 - Gini of the period's post-tax income; ``voted``: the voted
  objective parameter (eta or p); ``apples_alive``: apples on the map (mean over steps).
* everything else ``make_train``'s chunk reports (losses, ``transfer_scale``, ``income`` per agent).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from sedjax.train.ppo import make_train

# Metrics also kept per seed in metrics.jsonl (``<name>_per_seed``) and summarised at the end.
MAIN_METRICS = ("objective", "agent_return", "apples_per_agent_step", "productivity", "apples_alive",
                "equality", "voted", "tax_rates")
SUMMARY_METRICS = ("objective", "agent_return", "productivity", "apples_per_agent_step", "apples_alive",
                   "equality", "voted", "mean_tax_rate")
CHECKPOINT_DIR = "checkpoint"
# Keys of the config that may change between a run and its resumption.
_RESUME_FREE_KEYS = {"train.resume", "train.plots", "train.checkpoint"}


# ----------------------------------------------------------------------------- helpers
def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """The per-seed PRNG keys of a run (seed ``i`` of a run is reproducible on its own only through
    these keys; they depend on ``num_seeds``)."""
    return jax.random.split(jax.random.key(int(seed)), int(num_seeds))


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _to_py(x):
    """numpy -> JSON-able Python (lists for arrays, floats for scalars)."""
    a = np.asarray(x)
    if a.ndim == 0:
        v = a.item()
        return float(v) if isinstance(v, (float, np.floating)) or a.dtype.kind == "f" else v
    return a.tolist()


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


# ----------------------------------------------------------------------------- metrics
def chunk_record(metrics: dict, *, chunk: int, num_chunks: int, env_steps: int, num_agents: int,
                 round_len: int) -> dict:
    """One ``metrics.jsonl`` object from a vmapped chunk's metrics (leaves ``(seeds, iters, ...)``).

    Every metric is averaged over the chunk's iterations (per seed), then over seeds; scalars become
    floats and vectors (``tax_rates``, ``income``) lists. Adds the derived ``agent_return`` and
    ``productivity``, and ``<name>_per_seed`` for :data:`MAIN_METRICS`.
    """
    per_seed = {k: np.asarray(v, np.float64).mean(axis=1) for k, v in metrics.items()}
    if "agent_reward" in per_seed:
        per_seed["agent_return"] = per_seed["agent_reward"] * round_len
    if "apples_per_agent_step" in per_seed:
        per_seed["productivity"] = per_seed["apples_per_agent_step"] * num_agents
    rec: dict[str, Any] = {"chunk": int(chunk), "num_chunks": int(num_chunks), "env_steps": int(env_steps)}
    for k, v in per_seed.items():
        rec[k] = _to_py(v.mean(axis=0))
    if "tax_rates" in per_seed:
        rec["mean_tax_rate"] = float(per_seed["tax_rates"].mean())
        rec["mean_tax_rate_per_seed"] = _to_py(per_seed["tax_rates"].mean(axis=-1))
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


def _write_metrics(out_dir: Path, records: list[dict]) -> None:
    with open(out_dir / "metrics.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _append_metrics(out_dir: Path, record: dict) -> None:
    with open(out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


# ----------------------------------------------------------------------------- checkpoints
def _to_saveable(tree):
    """Flatten ``tree`` to ``{"0000": leaf, ...}``, PRNG key leaves as raw ``key_data``."""
    leaves = jax.tree.leaves(tree)
    return {f"{i:05d}": (jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}


def _key_impl(ref):
    """The PRNG implementation of a key array, or of an abstract one (ShapeDtypeStruct)."""
    try:
        return jax.random.key_impl(ref)
    except TypeError:
        return getattr(ref.dtype, "_impl", None)  # None: the default implementation


def _from_saved(saved: dict, like):
    """Inverse of :func:`_to_saveable` with the structure (and key types) of ``like``."""
    leaves, treedef = jax.tree.flatten(like)
    out = []
    for i, ref in enumerate(leaves):
        x = saved[f"{i:05d}"]
        if _is_key(ref):
            x = jax.random.wrap_key_data(jnp.asarray(x), impl=_key_impl(ref))
        else:
            x = jnp.asarray(x, dtype=ref.dtype)
        if x.shape != ref.shape:
            raise ValueError(f"checkpoint leaf {i} has shape {x.shape}, expected {ref.shape}: "
                             "was it written with a different config?")
        out.append(x)
    return jax.tree.unflatten(treedef, out)


def _manager(ckpt_dir: Path):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    return ocp.CheckpointManager(ckpt_dir.absolute(), options=options)


def save_checkpoint(mngr, step: int, runner, meta: dict) -> None:
    """Save the runner (any pytree) and the JSON ``meta`` as checkpoint ``step`` (asynchronously)."""
    import orbax.checkpoint as ocp

    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_saveable(runner)), meta=ocp.args.JsonSave(meta)))


def load_checkpoint(out_dir, like) -> tuple[Any, dict] | None:
    """``(runner, meta)`` from the latest checkpoint in ``out_dir/checkpoint`` (``like``: a runner
    of the same structure, e.g. from ``jax.vmap(train.init)``, or its ``jax.eval_shape``), or None if
    there is none. ``meta``: ``{"chunk": chunks done, "metrics": [...], ...}``."""
    import orbax.checkpoint as ocp

    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return None
    mngr = _manager(ckpt_dir)
    try:
        step = mngr.latest_step()
        if step is None:
            return None
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
                  for k, v in jax.eval_shape(_to_saveable, like).items()}
        restored = mngr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    finally:
        mngr.close()
    return _from_saved(dict(restored["state"]), like), dict(restored["meta"])


def seed_slice(runner, i: int = 0):
    """Seed ``i`` of a vmapped runner."""
    return jax.tree.map(lambda x: x[i], runner)


# ----------------------------------------------------------------------------- the run
_PROGRAMS: OrderedDict[str, dict] = OrderedDict()
_PROGRAMS_KEPT = 2


def _program_key(cfg) -> str:
    """What determines the compiled programs: the config except the seed and host-side options."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("seed", None)
    c["train"] = {k: v for k, v in c.get("train", {}).items() if k not in ("resume", "plots", "checkpoint")}
    return json.dumps(c, sort_keys=True, default=str)


def _programs(cfg, train) -> dict:
    """The jitted ``init`` and compiled ``chunk`` (filled in by :func:`run`) of this config, shared
    by the runs of one process with the same program (e.g. a run and its resumption, or several
    seeds' runs in a notebook), so they are compiled once. ``train`` must be ``make_train(cfg)``."""
    key = _program_key(cfg)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    progs = {"init": jax.jit(jax.vmap(train.init))}
    _PROGRAMS[key] = progs
    while len(_PROGRAMS) > _PROGRAMS_KEPT:
        _PROGRAMS.popitem(last=False)
    return progs


def _progress_line(rec: dict, num_chunks: int, total_steps: int, eta: float) -> str:
    def g(k, fmt="{:.3f}"):
        v = rec.get(k)
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    return (f"[chunk {rec['chunk'] + 1}/{num_chunks}] steps {rec['env_steps']:,}/{total_steps:,} | "
            f"{rec['sps']:,.0f} env-steps/s ({rec['agent_sps']:,.0f} agent-steps/s) | ETA {_fmt_time(eta)} | "
            f"objective {g('objective')} | tax {g('mean_tax_rate', '{:.3f}')} | "
            f"apples alive {g('apples_alive', '{:.1f}')} | agent return {g('agent_return', '{:.2f}')}")


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


def quiet_libraries() -> None:
    """Keep the console for sedjax's own lines: Orbax logs every checkpoint step at INFO through
    absl, and Hydra sends INFO records of every library to the terminal."""
    for name in ("absl", "jax", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(cfg, out_dir, *, max_chunks: int | None = None, verbose: bool = True) -> dict:
    """Train as configured by ``cfg`` (a composed config, e.g. :func:`sedjax.config.compose_config`),
    writing everything to ``out_dir``; returns a summary dict.

    ``max_chunks``: stop after this many chunks in this call (the run can be continued with
    ``train.resume=true``; used to test resumption). ``verbose``: print progress.

    Returns ``{"out_dir", "num_seeds", "num_chunks", "chunks_done", "total_env_steps",
    "env_steps", "compile_time", "train_time", "wall_time", "final" (see :func:`summarize`),
    "last" (the last metrics record), "runner" (the vmapped runner state)}``.
    """
    t_start = time.perf_counter()
    quiet_libraries()
    say = (lambda *a: print(*a, flush=True)) if verbose else (lambda *a: None)
    out_dir = Path(out_dir)
    train = make_train(cfg)  # validates the config (ValueError naming the field) before any compile
    tc = cfg.train
    num_seeds = int(tc.num_seeds)
    num_chunks = train.num_chunks
    n = train.env.num_agents
    round_len = int(cfg.tax.period_len) * int(cfg.voting.periods_per_round)
    resume, use_ckpt, make_plots = bool(tc.resume), bool(tc.checkpoint), bool(tc.plots)

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = out_dir / "config.yaml"
    if resume and cfg_path.exists():
        diff = config_differences(OmegaConf.load(cfg_path), cfg)
        if diff:
            say(f"warning: resuming with a config that differs from {cfg_path} in: {', '.join(diff)}")
    OmegaConf.save(cfg, cfg_path, resolve=True)

    keys = seed_keys(int(cfg.seed), num_seeds)
    programs = _programs(cfg, train)
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
    _write_metrics(out_dir, records)  # consistent with the checkpoint (drops lines written after it)

    say(f"sedjax: {num_seeds} seed(s) x {train.total_env_steps:,} env steps, {num_chunks} chunks of "
        f"{train.iters_per_chunk} Principal iterations ({train.steps_per_chunk:,} env steps), "
        f"{n} agents, principal={cfg.principal.kind} -> {out_dir}")
    end_chunk = num_chunks if max_chunks is None else min(num_chunks, start_chunk + int(max_chunks))
    compile_time = 0.0
    if start_chunk < end_chunk:
        t0 = time.perf_counter()
        if "chunk" not in programs:
            programs["chunk"] = jax.jit(jax.vmap(train.chunk)).lower(runner).compile()
        chunk_fn = programs["chunk"]
        compile_time = time.perf_counter() - t0
        say(f"compiled in {compile_time:.1f}s")

    mngr = _manager(out_dir / CHECKPOINT_DIR) if use_ckpt and start_chunk < end_chunk else None
    train_time, chunk_times = 0.0, []
    try:
        for c in range(start_chunk, end_chunk):
            t0 = time.perf_counter()
            runner, metrics = chunk_fn(runner)
            metrics = jax.device_get(metrics)  # blocks until the chunk is done
            dt = time.perf_counter() - t0
            train_time += dt
            chunk_times.append(dt)
            rec = chunk_record(metrics, chunk=c, num_chunks=num_chunks, env_steps=(c + 1) * train.steps_per_chunk,
                               num_agents=n, round_len=round_len)
            rec["sps"] = num_seeds * train.steps_per_chunk / dt
            rec["agent_sps"] = rec["sps"] * n
            rec["chunk_time"] = dt
            rec["wall_time"] = time.perf_counter() - t_start
            records.append(rec)
            _append_metrics(out_dir, rec)
            if mngr is not None:
                mngr.wait_until_finished()  # the previous save
                save_checkpoint(mngr, c + 1, runner, {"chunk": c + 1, "num_chunks": num_chunks, "metrics": records})
            eta = float(np.mean(chunk_times)) * (num_chunks - c - 1)
            say(_progress_line(rec, num_chunks, train.total_env_steps, eta))
    finally:
        if mngr is not None:
            mngr.wait_until_finished()
            mngr.close()

    chunks_done = max(start_chunk, end_chunk)
    if make_plots and records:
        from sedjax import plots

        plots.training_curves(records, out_dir / "training_curves.png")
        plots.tax_schedule(records, out_dir / "tax_schedule.png")
    final = summarize(records)
    say(format_summary(final, num_seeds))
    summary = {
        "out_dir": str(out_dir),
        "num_seeds": num_seeds,
        "num_chunks": num_chunks,
        "chunks_done": chunks_done,
        "total_env_steps": train.total_env_steps,
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
