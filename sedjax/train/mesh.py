"""The devices of a run: a ``jax.make_mesh`` mesh with two named axes, and the shardings on it.

* ``runs``: the vmapped runs (seeds x sweep configurations). Runs never talk to each other, so
  splitting them costs no communication: devices go to this axis first.
* ``envs``: each run's batch of ``train.num_envs`` environments. The env state and observations
  are split along it; the learners' parameters and optimiser states are replicated on it.

The compiled chunk is ``jax.jit`` of the vmapped program with these shardings on its input and
output (:func:`RunMesh.runner_shardings`); XLA's SPMD partitioner splits every step of the envs
and inserts the collectives. A PPO loss is a mean over a minibatch of the *global* batch, so its
gradient is the average of the devices' partial gradients (an all-reduce over ``envs``) and the
minibatch shuffle is the same permutation as on one device: a sharded run computes what the
unsharded one does, up to the order of floating-point sums (``tests/test_mesh.py``). The price
is that a minibatch gathers rows from every device; on accelerators that all-reduce and gather
are small next to the rollout (``benchmarks/device_scaling.py``).

Settings (``train.mesh``): ``devices`` (null: every device, of every process in a multi-host
run) and ``runs`` (null: the largest count dividing both the devices and the runs). The rest of
the devices split the envs, so ``train.num_envs`` must be a multiple of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from sedjax.train.config import positive_int

RUNS, ENVS = "runs", "envs"


def auto_mesh(shape, names, devices) -> jax.sharding.Mesh:
    """``jax.make_mesh`` with every axis ``Auto`` (XLA propagates the shardings through the
    program): newer jax makes axes ``Explicit`` by default, which the env's gathers do not support."""
    axis_type = getattr(jax.sharding, "AxisType", None)
    types = None if axis_type is None else (axis_type.Auto,) * len(shape)
    return jax.make_mesh(tuple(shape), tuple(names), axis_types=types, devices=list(devices))


@dataclass(frozen=True)
class RunMesh:
    mesh: jax.sharding.Mesh
    runs: int  # devices on the runs axis
    envs: int  # devices on the envs axis

    @property
    def num_devices(self) -> int:
        return self.runs * self.envs

    @property
    def description(self) -> str:
        kind = self.mesh.devices.flat[0].device_kind
        procs = jax.process_count()
        where = f", {procs} processes" if procs > 1 else ""
        return (f"mesh: {self.num_devices} device{'s' if self.num_devices != 1 else ''} "
                f"(runs={self.runs} x envs={self.envs}; {kind}{where})")

    def as_dict(self) -> dict:
        """What ``summary.json`` records."""
        return {"devices": self.num_devices, "runs": self.runs, "envs": self.envs,
                "processes": jax.process_count(), "device_kind": self.mesh.devices.flat[0].device_kind,
                "description": self.description}

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def runner_shardings(self, runner):
        """The shardings of a vmapped :class:`~sedjax.train.program.Runner` (or its
        ``jax.eval_shape``): env state and observations ``(runs, envs, ...)`` split on both axes,
        everything else (parameters, optimiser states, keys, traced settings) on ``runs`` only."""
        by_runs = NamedSharding(self.mesh, P(RUNS))
        by_envs = NamedSharding(self.mesh, P(RUNS, ENVS))
        shard = runner.replace(env_state=None, obs=None)  # structure of the rest
        out = jax.tree.map(lambda _: by_runs, shard)
        return out.replace(env_state=jax.tree.map(lambda _: by_envs, runner.env_state),
                           obs=jax.tree.map(lambda _: by_envs, runner.obs))

    def put_replicated(self, tree):
        """Global arrays, replicated on every device, from the same host value on every process
        (the keys and traced settings a run starts from)."""
        sharding = self.replicated

        def put(x):
            if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                impl = jax.random.key_impl(x)
                return jax.random.wrap_key_data(put(np.asarray(jax.random.key_data(x))), impl=impl)
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))

        return jax.tree.map(put, tree)


def _setting(cfg, name):
    mesh = cfg.train.get("mesh") if "train" in cfg else None
    return None if mesh is None else mesh.get(name)


def _count(cfg, name: str) -> int | None:
    """``train.mesh.<name>``: null, or a positive integer (the config's own check)."""
    return None if _setting(cfg, name) is None else positive_int(cfg, f"train.mesh.{name}")


def make_run_mesh(cfg, num_runs: int, num_envs: int, devices=None) -> RunMesh:
    """The mesh of a run of ``num_runs`` vmapped runs of ``num_envs`` envs each, from
    ``cfg.train.mesh`` (``devices``: default ``jax.devices()``, all processes'). ``ValueError``
    naming the key when the devices cannot split the runs or the envs evenly."""
    available = list(jax.devices() if devices is None else devices)
    want, runs = _count(cfg, "devices"), _count(cfg, "runs")
    if want is not None and want > len(available):
        raise ValueError(f"train.mesh.devices={want}, but only {len(available)} device(s) are visible "
                         f"({available[0].platform})")
    n = len(available) if want is None else want
    if jax.process_count() > 1 and n != len(available):
        raise ValueError(f"train.mesh.devices={n}: a multi-host run uses every device of every process "
                         f"({len(available)}); leave train.mesh.devices null")
    if runs is None:
        runs = math.gcd(n, int(num_runs))
    elif n % runs:
        raise ValueError(f"train.mesh.runs={runs} does not divide the mesh's {n} devices")
    elif num_runs % runs:
        raise ValueError(f"train.mesh.runs={runs} does not divide the {num_runs} runs (train.num_seeds x "
                         f"sweep configurations)")
    envs = n // runs
    if num_envs % envs:
        raise ValueError(
            f"train.num_envs={num_envs} cannot be split over the mesh's envs axis of {envs} devices "
            f"({n} devices, runs={runs}): make train.num_envs a multiple of {envs}, or set "
            f"train.mesh.devices / train.mesh.runs")
    mesh = auto_mesh((runs, envs), (RUNS, ENVS), available[:n])
    return RunMesh(mesh, runs, envs)
