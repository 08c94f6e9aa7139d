"""``sedjax.make``: build an environment by name with keyword overrides, validated up front."""

from __future__ import annotations

import inspect
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sedjax import tax
from sedjax.grid import AppleGrid
from sedjax.maps import GridMap, load_map, procedural_map_for_agents
from sedjax.population import parse_type_dist
from sedjax.sed import SED

ENVS = ("apple_grid", "sed")
_GRID_KEYS = set(inspect.signature(AppleGrid).parameters) - {"grid_map"}
_SED_KEYS = set(inspect.signature(SED).parameters) - {"grid", "sigma_dist", "beta_dist"}


def _resolve_map(value: Any, num_agents: int, seed: int) -> GridMap:
    if value is None:
        return load_map("commons_harvest_open")
    if isinstance(value, GridMap):
        return value
    if value == "procedural":
        return procedural_map_for_agents(num_agents, seed=seed)
    return load_map(str(value))


def make(name: str, **overrides: Any):
    """``make("apple_grid", **kw)`` -> :class:`AppleGrid`; ``make("sed", **kw)`` -> :class:`SED`.

    Grid keywords: ``map`` (built-in name, ASCII file path, ``"procedural"`` or a ``GridMap``),
    ``map_seed``, ``num_agents``, ``zap``, ``regrowth_probs``, ``regrowth_radius``, ``max_steps``,
    ``view_ahead``/``view_behind``/``view_side``, ``obs_facing``, ``obs_mode``, ...
    SED keywords: ``thresholds``, ``objective``, ``welfare_of``, ``vote_mechanism``,
    ``social_scope``, ``continuous_rates``, ``period_len``, ``periods_per_round``,
    ``rounds_per_episode``, ``transfer_scale``, ``max_rate_change``, ``sigma``, ``beta`` (a number,
    ``"uniform"`` or ``{dist: beta, a, b}``), ``resample_types``.
    Unknown keywords raise ``ValueError`` naming them.
    """
    if name not in ENVS:
        raise ValueError(f"env name must be one of {ENVS}, got {name!r}")
    kw = dict(overrides)
    map_value, map_seed = kw.pop("map", None), int(kw.pop("map_seed", 0))
    grid_kw = {k: kw.pop(k) for k in list(kw) if k in _GRID_KEYS}
    num_agents = int(grid_kw.get("num_agents", 7))
    grid = AppleGrid(_resolve_map(map_value, num_agents, map_seed), **grid_kw)
    if name == "apple_grid":
        if kw:
            raise ValueError(f"unknown keyword(s) for apple_grid: {sorted(kw)}")
        return grid
    if "sigma" in kw:
        kw["sigma_dist"] = parse_type_dist(kw.pop("sigma"), "types.sigma")
    if "beta" in kw:
        kw["beta_dist"] = parse_type_dist(kw.pop("beta"), "types.beta")
    unknown = set(kw) - _SED_KEYS - {"sigma_dist", "beta_dist"}
    if unknown:
        raise ValueError(f"unknown keyword(s) for sed: {sorted(unknown)}")
    return SED(grid, **kw)


# ----------------------------------------------------------------------------- from a config
def _get(cfg, path: str):
    node = cfg
    for part in path.split("."):
        if part not in node:
            raise ValueError(f"config is missing the key {path}")
        node = node[part]
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig,)) or OmegaConf.is_list(node) else node


def _positive_int(cfg, path):
    v = _get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{path} must be a positive integer, got {v!r}")
    return v


def _number(cfg, path, lo=-math.inf, hi=math.inf, allow_none=False):
    v = _get(cfg, path)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi) or math.isnan(v):
        raise ValueError(f"{path} must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def from_config(cfg) -> tuple[Any, Any]:
    """``(env, params)`` for the full game described by ``cfg`` (validated)."""
    thresholds = _get(cfg, "tax.thresholds")
    tax.check_brackets(thresholds)
    kind = _get(cfg, "objective.kind")
    fixed = _get(cfg, "objective.eta") if kind == "eta" else _get(cfg, "objective.p")
    if kind == "eta" and fixed is not None:
        fixed = _number(cfg, "objective.eta", 0.0, 1.0)
    elif kind == "pmean" and fixed is not None:
        v = _get(cfg, "objective.p")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ValueError(f"objective.p must be a number (may be +-inf) or null, got {v!r}")
        fixed = float(v)
    max_change = _number(cfg, "tax.max_rate_change", 0.0, 1.0, allow_none=True)
    env = make(
        "sed",
        map=_get(cfg, "env.map"),
        map_seed=_get(cfg, "env.map_seed"),
        num_agents=_positive_int(cfg, "env.num_agents"),
        zap=bool(_get(cfg, "env.zap")),
        regrowth_probs=_get(cfg, "env.regrowth_probs"),
        regrowth_radius=_number(cfg, "env.regrowth_radius", 0.0),
        view_ahead=_get(cfg, "env.view_ahead"),
        view_behind=_get(cfg, "env.view_behind"),
        view_side=_get(cfg, "env.view_side"),
        obs_facing=bool(_get(cfg, "env.obs_facing")),
        max_steps=1,  # unused by sed: its episode is rounds x periods x period_len
        thresholds=thresholds,
        objective=kind,
        welfare_of=_get(cfg, "objective.welfare_of"),
        vote_mechanism=_get(cfg, "voting.mechanism"),
        social_scope=_get(cfg, "types.social_scope"),
        continuous_rates=bool(_get(cfg, "tax.continuous")),
        rate_levels=_positive_int(cfg, "tax.rate_levels"),
        period_len=_positive_int(cfg, "tax.period_len"),
        periods_per_round=_positive_int(cfg, "voting.periods_per_round"),
        rounds_per_episode=_positive_int(cfg, "env.rounds_per_episode"),
        transfer_scale=1.0,
        max_rate_change=math.inf if max_change is None else max_change,
        sigma=_get(cfg, "types.sigma"),
        beta=_get(cfg, "types.beta"),
        resample_types=bool(_get(cfg, "types.resample_on_reset")),
        objective_param=math.nan if fixed is None else fixed,
    )
    return env, env.default_params
