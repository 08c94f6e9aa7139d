"""``sedjax.make``: build an environment by name with keyword overrides, validated up front; and
``from_config``: the full game from a config's ``env``/``tax``/``types``/``objective``/``voting``
groups, whose leaf names *are* the keywords (no renames).
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sedjax.apple_grid import AppleGrid
from sedjax.maps import GridMap, load_map, procedural_map_for_agents
from sedjax.sed import SED

ENVS = ("apple_grid", "sed")
GRID_KEYS = tuple(k for k in inspect.signature(AppleGrid).parameters if k != "grid_map") + ("map", "map_seed")
SED_KEYS = tuple(k for k in inspect.signature(SED).parameters if k != "grid")
# The config groups read by from_config, and their keys that belong to the trainer, not the env.
CONFIG_GROUPS = ("env", "tax", "types", "objective", "voting")
TRAINER_KEYS = {"tax": ("anneal_start", "anneal_fraction"), "types": ("per_env",)}  # batch-level, not one env's


def resolve_map(value: Any, num_agents: int, seed: int) -> GridMap:
    """``env.map``: None (the default map), a built-in name, an ASCII file, ``"procedural"``
    (sized for ``num_agents``), or a ``GridMap``."""
    if value is None:
        return load_map("commons_harvest_open")
    if isinstance(value, GridMap):
        return value
    if value == "procedural":
        return procedural_map_for_agents(num_agents, seed=seed)
    return load_map(str(value))


def make(name: str, **overrides: Any):
    """``make("apple_grid", **kw)`` -> :class:`AppleGrid`; ``make("sed", **kw)`` -> :class:`SED`.

    Keywords are the config's leaf names. Grid: ``map`` (built-in name, ASCII file path,
    ``"procedural"`` or a ``GridMap``), ``map_seed``, ``num_agents``, ``zap``, ``zap_range``,
    ``zap_width``, ``zap_timeout``, ``zap_cooldown``, ``regrowth_probs``, ``regrowth_radius``,
    ``max_steps``, ``view_ahead``/``view_behind``/``view_side``, ``obs_facing``, ``obs_mode``.
    SED (see :data:`sedjax.sed.FIELDS`): ``thresholds``, ``period_len``, ``rate_levels``,
    ``continuous``, ``max_rate_change``, ``transfer_scale``, ``sigma``, ``beta`` (a number,
    ``"uniform"`` or ``{dist: beta, a, b}``), ``social_scope``, ``resample_on_reset``, ``kind``,
    ``eta``, ``p``, ``welfare_of``, ``mechanism``, ``periods_per_round``, ``rounds_per_episode``.
    Unknown keywords raise ``ValueError`` naming them.
    """
    if name not in ENVS:
        raise ValueError(f"env name must be one of {ENVS}, got {name!r}")
    kw = dict(overrides)
    unknown = set(kw) - set(GRID_KEYS) - (set(SED_KEYS) if name == "sed" else set())
    if unknown:
        raise ValueError(f"unknown keyword(s) for {name}: {sorted(unknown)}")
    map_value, map_seed = kw.pop("map", None), kw.pop("map_seed", 0)
    grid_kw = {k: kw.pop(k) for k in list(kw) if k in GRID_KEYS}
    grid = AppleGrid(resolve_map(map_value, int(grid_kw.get("num_agents", 7)), int(map_seed)), **grid_kw)
    return grid if name == "apple_grid" else SED(grid, **kw)


def config_keywords(cfg) -> dict:
    """The env keywords of a config: every leaf of its env groups except the trainer's."""
    kw, where = {}, {}
    for group in CONFIG_GROUPS:
        if group not in cfg:
            continue
        node = cfg[group]
        node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        for k, v in node.items():
            if k in TRAINER_KEYS.get(group, ()):
                continue
            if k in kw:
                raise ValueError(f"config key {group}.{k} clashes with {where[k]}.{k}")
            kw[k], where[k] = v, group
    return kw


def from_config(cfg) -> tuple[SED, Any]:
    """``(env, params)`` for the full game described by ``cfg`` (validated by the constructors)."""
    env = make("sed", **config_keywords(cfg))
    return env, env.default_params


# Older names (the config module used to hold these).
build_env = from_config
