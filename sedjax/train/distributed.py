"""Process-level setup of a run: multi-host JAX (``jax.distributed``) and the persistent
compilation cache. Both must happen before JAX starts its backend, so :func:`sedjax.train.loop.run`
calls :func:`setup` first.

Multi-host (``distributed.*``): every process runs the same command; ``jax.distributed.initialize``
joins them, after which ``jax.devices()`` lists every process's devices and the run's mesh
(:mod:`sedjax.train.mesh`) spans them. Each process computes the shards of the global arrays that
live on its devices; logging, plots and run files are written by process 0 only, checkpoints by
all of them together (Orbax's multi-host save), and resuming works with the same process count.
On CPU the processes talk through gloo collectives.

``distributed.initialize``: ``auto`` (default) joins when a coordinator is configured
(``distributed.coordinator_address`` or ``$JAX_COORDINATOR_ADDRESS``) or a SLURM job has more
than one task; ``true`` always calls ``jax.distributed.initialize`` (which detects TPU pods, SLURM,
Open MPI, ... itself when the addresses are null); ``false`` never.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

MODES = ("auto", "true", "false")


def _mode(cfg) -> str:
    node = cfg.get("distributed") or {}
    mode = node.get("initialize", "auto")
    mode = {True: "true", False: "false"}.get(mode, mode)
    if str(mode) not in MODES:
        raise ValueError(f"distributed.initialize must be one of auto, true, false (got {mode!r})")
    return str(mode)


def _cluster_detected(node) -> bool:
    if node.get("coordinator_address") or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    try:
        return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ
    except ValueError:
        return False


def initialize(cfg) -> bool:
    """Join the processes of a multi-host run as ``cfg.distributed`` says; True if this process is
    part of one (already joined counts)."""
    mode = _mode(cfg)
    if jax.distributed.is_initialized():
        return True
    node = cfg.get("distributed") or {}
    if mode == "false" or (mode == "auto" and not _cluster_detected(node)):
        return False
    # CPU processes need a collectives implementation to talk; accelerators ignore this setting.
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    ids = node.get("local_device_ids")
    ids = None if ids is None else ([int(ids)] if isinstance(ids, (int, str)) else [int(i) for i in ids])
    jax.distributed.initialize(
        coordinator_address=node.get("coordinator_address") or None,
        num_processes=None if node.get("num_processes") is None else int(node["num_processes"]),
        process_id=None if node.get("process_id") is None else int(node["process_id"]),
        local_device_ids=ids)
    return True


def cache_dir() -> Path:
    """``$SEDJAX_CACHE_DIR`` (default ``~/.cache/sedjax``)."""
    root = os.environ.get("SEDJAX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sedjax")
    return Path(root)


def enable_compilation_cache(cfg) -> str | None:
    """JAX's persistent compilation cache in ``cache_dir()/jax`` when ``train.compilation_cache``
    (default true), unless the user already chose a directory (``$JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config``). Programs that compile in over a second are kept, so the jobs of a Hydra sweep
    (and a rerun) load them instead of compiling again. Returns the directory in use."""
    from sedjax.train.config import boolean

    value = boolean(cfg, "train.compilation_cache") if "compilation_cache" in cfg.train else True
    current = jax.config.jax_compilation_cache_dir
    if current or not value:
        return current or None
    path = cache_dir() / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time, nothing else lost
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def setup(cfg) -> None:
    """Everything a run needs before JAX's backend starts: the cache, then the processes."""
    enable_compilation_cache(cfg)
    initialize(cfg)


def is_main_process() -> bool:
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (a no-op in a single-process run): a sum over one value
    per device, fetched, which no process can finish alone."""
    if jax.process_count() == 1:
        return
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from sedjax.train.mesh import auto_mesh

    mesh = auto_mesh((jax.device_count(),), ("all",), jax.devices())
    ones = jax.make_array_from_process_local_data(NamedSharding(mesh, P("all")),
                                                  np.ones(jax.local_device_count(), np.int32))
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(ones)
    if int(total) != jax.device_count():
        raise RuntimeError(f"barrier {name!r}: {int(total)} of {jax.device_count()} devices answered")
