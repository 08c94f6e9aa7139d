"""Vectorised sweeps: a grid over *traced* settings trained as one compiled program.

The ``sweep`` node of the config mirrors the config tree and holds lists of values, e.g.
``+sweep.principal.rates=[[0,0,0],[1,1,1]] '+sweep.agents.lr=[1e-4,3e-4]'``. Their cartesian product
(configurations in row-major order: the first key varies slowest), times ``train.num_seeds``, is one
``vmap`` of the training program over a batch of :class:`~sedjax.train.program.Hypers` (the env's
params and the learners' numbers), so a sweep compiles once. Configuration ``k``, seed ``s`` uses
the same PRNG key as seed ``s`` of the separate run of that configuration, so a sweep is its
separate runs (common random numbers across configurations).

Only keys in :data:`SWEEPABLE` may be swept: those that only scale numbers. A key that selects code
or fixes a shape (``train.num_envs``, ``env.num_agents``, ``principal.kind``, ...) is rejected when
the sweep is expanded, with a pointer to Hydra's ``-m`` (one job, one compile per value). A value
that would change a static setting (a type distribution's family, the number of brackets, the
length of ``env.regrowth_probs``) is rejected the same way.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from typing import Any, NamedTuple

import jax
import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from sedjax.envs import from_config
from sedjax.train.config import plain, validate_train
from sedjax.train.ppo import HYPER_KEYS

# Every key a sweep may hold: traced settings only.
ENV_SWEEPABLE = (
    "env.regrowth_probs",
    "tax.thresholds", "tax.max_rate_change", "tax.anneal_start",
    "types.sigma", "types.beta", "types.resample_on_reset",
    "types.trust_rate", "types.trust_ref", "types.trust_scale",
    "objective.eta", "objective.p",
)
SWEEPABLE = ENV_SWEEPABLE + ("principal.rates",) + tuple(
    f"{group}.{k}" for group in ("agents", "principal") for k in HYPER_KEYS)
_ENV_GROUPS = ("env", "tax", "types", "objective", "voting")


class Sweep(NamedTuple):
    keys: tuple[str, ...]  # the swept keys, in the order of the product
    values: list[tuple]  # one tuple of values per configuration
    configs: list[DictConfig]  # each configuration's resolved config (no sweep node)
    hypers: Any  # the configurations' Hypers, stacked on a leading axis

    @property
    def size(self) -> int:
        return len(self.values)


def has_sweep(cfg) -> bool:
    return "sweep" in cfg and cfg.sweep is not None and len(cfg.sweep) > 0


def base_config(cfg) -> DictConfig:
    """``cfg`` without its ``sweep`` node."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("sweep", None)
    return OmegaConf.create(c)


def sweep_keys(cfg) -> dict[str, list]:
    """The ``sweep`` node as ``{dotted key: list of values}`` (validated: known, traced keys with
    non-empty lists)."""
    out: dict[str, list] = {}

    def walk(node, prefix):
        if isinstance(node, DictConfig):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
            return
        key = prefix
        if key not in SWEEPABLE:
            exists = OmegaConf.select(cfg, key, default="__missing__") != "__missing__"
            if not exists:
                raise ValueError(f"sweep.{key}: {key} is not a config key")
            raise ValueError(
                f"sweep.{key}: {key} is a static setting (it selects code or fixes a shape or scan length), "
                f"so it cannot be swept inside one compiled program; sweep it with Hydra's multirun, one job "
                f"per value: sedjax-train -m {key}=<a>,<b>. Sweepable keys: {', '.join(SWEEPABLE)}")
        if not isinstance(node, ListConfig) or len(node) == 0:
            raise ValueError(f"sweep.{key} must be a non-empty list of values, got {plain(node)!r}")
        out[key] = OmegaConf.to_container(node, resolve=True)

    walk(cfg.sweep, "")
    return out


def _env_key(c) -> str:
    return json.dumps({g: OmegaConf.to_container(c[g], resolve=True) for g in _ENV_GROUPS if g in c},
                      sort_keys=True, default=str)


def expand(cfg) -> Sweep:
    """Every configuration of ``cfg``'s sweep, validated (``ValueError`` naming ``sweep.<key>`` and
    the value), with their traced settings stacked for ``vmap``."""
    from sedjax.train.program import hypers_of  # the program imports this module's users

    spec = sweep_keys(cfg)
    base = base_config(cfg)
    if "principal.rates" in spec and str(base.principal.kind) != "fixed":
        raise ValueError("sweep.principal.rates: the rates act only with principal=fixed "
                         f"(principal.kind is {base.principal.kind!r})")
    base_env, base_params = from_config(base)
    ref = hypers_of(base, base_params, validate_train(base, base_env))  # the shapes the compiled program has
    keys = tuple(spec)
    envs: dict[str, Any] = {}
    values, configs, hypers = [], [], []
    for combo in itertools.product(*(spec[k] for k in keys)):
        c = copy.deepcopy(base)
        for k, v in zip(keys, combo):
            OmegaConf.update(c, k, v, merge=False)
        where = ", ".join(f"sweep.{k}={plain(v)!r}" for k, v in zip(keys, combo))
        try:
            ek = _env_key(c)
            if ek not in envs:
                env, params = from_config(c)
                env.check_params(params)
                if env.static != base_env.static or env.grid.static != base_env.grid.static:
                    raise ValueError("this value changes a static setting of the env (e.g. a type distribution's "
                                     "family or the number of brackets, or types.dynamic_trust, which a nonzero "
                                     "types.trust_rate turns on: set types.dynamic_trust=true to sweep the rate); "
                                     "sweep it with Hydra's -m")
                envs[ek] = (env, params)
            env, params = envs[ek]
            h = hypers_of(c, params, validate_train(c, env))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if jax.tree.structure(h) != jax.tree.structure(ref) or any(
                np.shape(a) != np.shape(b) for a, b in zip(jax.tree.leaves(h), jax.tree.leaves(ref))):
            raise ValueError(f"{where}: this value changes a shape (e.g. the length of env.regrowth_probs or "
                             "tax.thresholds), which is static; sweep it with Hydra's -m")
        values.append(combo)
        configs.append(c)
        hypers.append(h)
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *hypers)
    return Sweep(keys, values, configs, stacked)


def repeat_runs(hypers, num_seeds: int):
    """Configurations ``(K, ...)`` -> runs ``(K * num_seeds, ...)``: run ``k * num_seeds + s`` is
    configuration ``k``, seed ``s``."""
    return jax.tree.map(lambda x: np.repeat(x, num_seeds, axis=0), hypers)


def tile_keys(keys, num_configs: int):
    """Seed keys ``(S,)`` -> ``(K * S,)`` in the order of :func:`repeat_runs`."""
    return jax.numpy.tile(keys, num_configs)


def value_label(v) -> str:
    """A value as a CSV cell / folder-friendly string."""
    v = plain(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def flat_values(keys, values) -> dict[str, Any]:
    """One configuration's swept values as CSV cells: a list value gives one column per entry."""
    out = {}
    for k, v in zip(keys, values):
        v = plain(v)
        if isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
            for i, x in enumerate(v):
                out[f"{k}[{i}]"] = x
        else:
            out[k] = value_label(v)
    return out


def tree_bytes(tree) -> int:
    """Bytes of a pytree of arrays or shapes (a PRNG key counts as its two uint32 words)."""
    def nbytes(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return math.prod(x.shape) * 8
        return math.prod(x.shape) * np.dtype(x.dtype).itemsize
    return int(sum(nbytes(x) for x in jax.tree.leaves(tree)))
