"""Shared helpers for the benchmarks: environment info, timing, JSON results, markdown tables.

Every benchmark script records *where* it ran (:func:`env_info`), times compiled JAX functions the
same way (:func:`time_compiled`: compile time separately, then the median of several steady-state
calls, each ended by ``block_until_ready``), writes ``benchmarks/results/<name>.json``
(:func:`write_json`) and prints markdown tables (:func:`markdown_table`).

Timings on a shared CPU are noisy: report medians (and keep the raw repeats in the JSON).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit, read from ``.git`` files (no ``git`` subprocess); ``None`` if unknown.

    Handles a detached HEAD, loose refs and ``packed-refs``; a ``.git`` *file* (worktrees) is
    followed to its ``gitdir``.
    """
    try:
        git = root / ".git"
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (root / text.split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        # Worktrees keep refs in the common dir.
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            loose = base / ref
            if loose.is_file():
                return loose.read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref) and not line.startswith(("#", "^")):
                        return line.split()[0]
    except OSError:
        return None
    return None


def env_info() -> dict[str, Any]:
    """Versions and hardware: jax/jaxlib versions, backend platform, device kind, CPU count, python,
    git commit, and any XLA/JAX flags set in the environment (they change timings)."""
    import jaxlib

    dev = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", None),
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "jax_default_prng_impl": str(jax.config.jax_default_prng_impl),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def block(tree):
    """``block_until_ready`` on every array leaf of a pytree; returns the tree."""
    return jax.block_until_ready(tree)


def time_compiled(
    fn: Callable,
    args: tuple,
    repeats: int = 5,
    warmup: int = 1,
    feed: Callable[[Any, tuple], tuple] | None = None,
) -> dict[str, Any]:
    """Compile ``jax.jit(fn)`` for ``args`` and time it.

    * ``compile_s``: ``lower(...).compile()`` wall time (tracing + XLA compilation).
    * ``first_call_s``: first execution of the compiled program (includes one-off allocation work).
    * ``times_s``: ``repeats`` steady-state calls after ``warmup`` calls, each timed until
      ``block_until_ready``; ``median_s`` / ``min_s`` summarise them.

    ``feed(out, args) -> args``: build the next call's arguments from the previous output (e.g. carry
    the environment state on, so repeats continue one trajectory instead of replaying its start).
    ``fn`` must already be a ``jax.jit``-wrapped function (so the caller chooses donation etc.).
    """
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def call(a):
        t = time.perf_counter()
        out = block(compiled(*a))
        return out, time.perf_counter() - t

    out, first_call_s = call(args)
    args = feed(out, args) if feed else args
    for _ in range(warmup):
        out, _ = call(args)
        args = feed(out, args) if feed else args
    times = []
    for _ in range(repeats):
        out, dt = call(args)
        times.append(dt)
        args = feed(out, args) if feed else args
    return {
        "compile_s": compile_s,
        "first_call_s": first_call_s,
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "last_output": out,
    }


def write_json(name: str, payload: dict[str, Any], out: str | os.PathLike | None = None) -> Path:
    """Write ``payload`` to ``out`` (default ``benchmarks/results/<name>.json``) atomically."""
    path = Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    return str(o)


def fmt_num(x: float, digits: int = 3) -> str:
    """Human-friendly number: thousands separators for big values, ``digits`` significant otherwise."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; numbers go through :func:`fmt_num`, right-aligned."""
    cells = [[fmt_num(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else str(c) for c in r]
             for r in rows]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows) if rows else False
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(vals):
        out = []
        for v, w, num in zip(vals, widths, numeric):
            out.append(v.rjust(w) if num else v.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join((("-" * (w + 1)) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def env_info_line(info: dict[str, Any]) -> str:
    """One-line summary of :func:`env_info` for a printed report."""
    return (f"jax {info['jax_version']} / jaxlib {info['jaxlib_version']} on {info['platform']} "
            f"({info['device_kind']}, {info['cpu_count']} CPUs), python {info['python_version']}, "
            f"commit {(info['git_commit'] or 'unknown')[:12]}")
