"""The run config: composition without Hydra's CLI, and the training-side validation, once.

``compose_config(overrides)`` gives the same config as the command line (for tests, notebooks and
scripts). ``validate_train(cfg, env)`` checks every learning setting and returns the run's
:class:`~sedjax.train.schedule.Schedule` (whose construction holds the time-alignment checks):
every problem raises ``ValueError`` naming the config key as the user types it
(``principal.rates``, ``train.rollout_len``, ...), before anything is compiled. The env's own keys
(``env.*``, ``tax.thresholds``, ``voting.*``, ...) are validated where the env is built
(:func:`sedjax.envs.from_config`).

Hydra is imported inside :func:`compose_config` only, so the traced modules may import this one.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

PRINCIPAL_KINDS = ("ppo", "none", "fixed", "random")
NETWORKS = ("cnn", "mlp")
RATE_HEADS = ("ordinal", "categorical")
POLICY_INPUTS = ("state", "objective")
PPO_GROUPS = ("agents", "principal")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The run config with Hydra-style overrides (``["train.num_envs=8", "principal=fixed"]``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sedjax.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# ----------------------------------------------------------------------------- reading keys
def plain(v: Any) -> Any:
    """``v`` with NumPy scalars / arrays as Python numbers / lists, so messages read ``2.0``, not
    ``np.float64(2.0)``."""
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def get(cfg, path: str) -> Any:
    """The value at dotted ``path`` (lists and groups as plain Python containers)."""
    node = cfg
    for part in path.split("."):
        if part not in node:
            raise ValueError(f"config is missing the key {path}")
        node = node[part]
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def positive_int(cfg, path: str) -> int:
    v = get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{path} must be a positive integer, got {plain(v)!r}")
    return int(v)


def number(cfg, path: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    v = get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or math.isnan(v) or not (lo <= v <= hi):
        raise ValueError(f"{path} must be a number in [{lo:g}, {hi:g}], got {plain(v)!r}")
    return float(v)


def boolean(cfg, path: str) -> bool:
    v = get(cfg, path)
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{path} must be true or false, got {plain(v)!r}")
    return bool(v)


def one_of(cfg, path: str, choices: Sequence[str]) -> str:
    v = get(cfg, path)
    if v not in choices:
        raise ValueError(f"{path} must be one of {tuple(choices)}, got {plain(v)!r}")
    return v


# ----------------------------------------------------------------------------- validation
def check_rates(rates: Any, num_brackets: int, path: str = "principal.rates") -> np.ndarray:
    """A fixed schedule: ``num_brackets`` finite rates in [0, 1] (errors name ``path``)."""
    try:
        r = np.asarray(rates, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} must be a list of numbers, got {plain(rates)!r}") from e
    if r.ndim != 1 or r.size != num_brackets:
        raise ValueError(f"{path} needs {num_brackets} rates (one per bracket of tax.thresholds), "
                         f"got {plain(rates)!r}")
    if not np.all(np.isfinite(r)) or np.any((r < 0.0) | (r > 1.0)):
        raise ValueError(f"{path} must be rates in [0, 1], got {r.tolist()}")
    return r.astype(np.float32)


def validate_train(cfg, env):
    """Check the learning settings of ``cfg`` against ``env`` (built from ``cfg``); return the run's
    :class:`~sedjax.train.schedule.Schedule`. Raises ``ValueError`` naming the bad key."""
    from sedjax.train.schedule import make_schedule  # the alignment checks live with the numbers

    for key in ("train.num_envs", "train.rollout_len", "train.total_env_steps", "train.num_seeds",
                "train.chunks", "principal.update_every"):
        positive_int(cfg, key)
    for key in ("train.resume", "train.checkpoint", "train.plots", "agents.observe_mechanism", "types.per_env",
                "principal.shared_head", "principal.factored_ratio"):
        boolean(cfg, key)
    if get(cfg, "agents.use_types") is not None:
        boolean(cfg, "agents.use_types")
    for group in PPO_GROUPS:
        number(cfg, f"{group}.lr", 0.0)
        boolean(cfg, f"{group}.anneal_lr")
        number(cfg, f"{group}.gamma", 0.0, 1.0)
        number(cfg, f"{group}.gae_lambda", 0.0, 1.0)
        for name in ("clip_eps", "ent_coef", "vf_coef", "max_grad_norm"):
            number(cfg, f"{group}.{name}", 0.0)
        for name in ("epochs", "minibatches", "hidden"):
            positive_int(cfg, f"{group}.{name}")
    one_of(cfg, "agents.network", NETWORKS)
    one_of(cfg, "principal.rate_head", RATE_HEADS)
    one_of(cfg, "principal.policy_input", POLICY_INPUTS)
    one_of(cfg, "principal.adv_norm", ("running", "batch"))
    if number(cfg, "principal.bracket_scale", 0.0, 1.0) <= 0.0:
        raise ValueError("principal.bracket_scale must be in (0, 1] (the per-bracket part must be able to learn)")
    if one_of(cfg, "principal.kind", PRINCIPAL_KINDS) == "fixed":
        check_rates(get(cfg, "principal.rates"), env.num_brackets)
    number(cfg, "tax.anneal_start", 0.0, 1.0)
    number(cfg, "tax.anneal_fraction", 0.0, 1.0)
    return make_schedule(cfg, env)


def fixed_rates(cfg) -> np.ndarray:
    """``principal.rates`` as float32 (validated by :func:`validate_train`)."""
    return np.asarray(get(cfg, "principal.rates"), np.float32)
