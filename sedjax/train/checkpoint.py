"""Orbax checkpoints of a (vmapped over seeds) runner, with its PRNG keys.

A runner is saved as its flat list of leaves (``{"00000": leaf, ...}``), PRNG key leaves as their
raw ``key_data`` (Orbax stores plain arrays), next to a JSON ``meta`` (chunks done, the metrics so
far, ...). Loading needs a runner of the same structure (``like``) to rebuild the tree and re-wrap
the keys with their implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

CHECKPOINT_DIR = "checkpoint"


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    """Flatten ``tree`` to ``{"00000": leaf, ...}``, PRNG key leaves as raw ``key_data``."""
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


def _target_shardings(like) -> list:
    """Where each restored leaf goes: the sharding of ``like``'s leaf (a run's mesh: every process
    reads the shards on its devices), or the first device for an abstract ``like``."""
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    out = []
    for x in jax.tree.leaves(like):
        s = getattr(x, "sharding", None)
        if not isinstance(s, jax.sharding.Sharding):
            s = default
        elif _is_key(x) and isinstance(s, jax.sharding.NamedSharding):
            s = jax.sharding.NamedSharding(s.mesh, s.spec)  # key_data adds a trailing, unsplit axis
        out.append(s)
    return out


def manager(ckpt_dir: Path):
    """An Orbax ``CheckpointManager`` keeping the latest checkpoint only."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    return ocp.CheckpointManager(Path(ckpt_dir).absolute(), options=options)


def save_checkpoint(mngr, step: int, runner, meta: dict) -> None:
    """Save the runner (any pytree) and the JSON ``meta`` as checkpoint ``step`` (asynchronously)."""
    import orbax.checkpoint as ocp

    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_saveable(runner)), meta=ocp.args.JsonSave(meta)))


def load_checkpoint(out_dir, like) -> tuple[Any, dict] | None:
    """``(runner, meta)`` from the latest checkpoint in ``out_dir/checkpoint`` (``like``: a runner
    of the same structure, e.g. from ``jax.vmap(program.init)``, or its ``jax.eval_shape``), or None
    if there is none. ``meta``: ``{"chunk": chunks done, "metrics": [...], ...}``."""
    import orbax.checkpoint as ocp

    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return None
    mngr = manager(ckpt_dir)
    try:
        step = mngr.latest_step()
        if step is None:
            return None
        target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s)
                  for (k, v), s in zip(jax.eval_shape(_to_saveable, like).items(), _target_shardings(like))}
        restored = mngr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    finally:
        mngr.close()
    return _from_saved(dict(restored["state"]), like), dict(restored["meta"])
