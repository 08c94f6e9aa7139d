"""``sedjax.make``: build an environment by name with keyword overrides, validated up front."""

from __future__ import annotations

import inspect
from typing import Any

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
