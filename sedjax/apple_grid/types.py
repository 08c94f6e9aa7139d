"""Types and constants of the apple grid: actions, cell codes, the static settings
(:class:`GridStatic`), the traced parameters (:class:`GridParams`) and the state (:class:`GridState`).

Conventions: positions are (row, col); facing 0..3 = N, E, S, W. Static settings select code or fix
shapes (changing them recompiles); traced parameters only scale numbers (sweep them freely under
``jit``/``vmap``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sedjax import _checks

# Actions (relative to facing).
NOOP, FORWARD, BACKWARD, STEP_LEFT, STEP_RIGHT, TURN_LEFT, TURN_RIGHT, ZAP = range(8)
ACTION_NAMES = ("NOOP", "FORWARD", "BACKWARD", "STEP_LEFT", "STEP_RIGHT", "TURN_LEFT", "TURN_RIGHT", "ZAP")
# Unit vectors (d_row, d_col) for N, E, S, W.
DIRS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)
# Direction of travel for each action, as a rotation of the facing (-1: no move).
MOVE_ROT = np.array([-1, 0, 2, 3, 1, -1, -1, -1], np.int32)
TURN = np.array([0, 0, 0, 0, 0, 3, 1, 0], np.int32)  # added to facing, mod 4

# Cell code bits (one uint8 per cell).
CODE_WALL, CODE_APPLE, CODE_AGENT = 1, 2, 4
FACING_SHIFT, ATE_SHIFT = 3, 5  # bits 3-4: the agent's facing; bit 5: it ate an apple this step

# Move resolution: priority of an agent holding its cell (above every mover's random priority),
# and the largest population resolved with pairwise tests instead of cells-sized scatters.
STAY = np.iinfo(np.int32).max
DENSE_RESOLVE_MAX_AGENTS = 32  # measured: dense wins clearly at 7 agents, ties at 64

CHANNELS = ("wall", "apple", "self", "other_agent")
FACING_CHANNELS = ("other_facing_ahead", "other_facing_right", "other_facing_back", "other_facing_left")
OBS_MODES = ("symbolic", "rgb")
DEFAULT_REGROWTH_PROBS = (0.0, 0.0025, 0.005, 0.025)


@dataclasses.dataclass(frozen=True)
class GridStatic:
    """Static settings of the grid (besides the map): validated when built, errors name ``env.*``."""

    num_agents: int = 7
    view_ahead: int = 9
    view_behind: int = 1
    view_side: int = 5
    zap: bool = False
    zap_range: int = 3
    zap_width: int = 1
    regrowth_radius: float = 2.0
    max_steps: int = 1000  # the bare grid's episode length (a time limit); SED has its own
    obs_facing: bool = False
    obs_mode: str = "symbolic"

    def __post_init__(self):
        ints = dict(num_agents=1, view_ahead=0, view_behind=0, view_side=0, zap_range=1, zap_width=0, max_steps=1)
        for name, lo in ints.items():
            object.__setattr__(self, name, _checks.integer(getattr(self, name), f"env.{name}", lo))
        object.__setattr__(self, "zap", _checks.flag(self.zap, "env.zap"))
        object.__setattr__(self, "obs_facing", _checks.flag(self.obs_facing, "env.obs_facing"))
        object.__setattr__(self, "regrowth_radius", _checks.number(self.regrowth_radius, "env.regrowth_radius", 0.0))
        _checks.choice(self.obs_mode, "env.obs_mode", OBS_MODES)
        if self.num_agents.bit_length() > 24:
            raise ValueError(f"env.num_agents={self.num_agents} is too large for the move priorities (at most 2**24 - 1)")


def _f32(v):
    return dataclasses.field(default_factory=lambda: jnp.asarray(v, jnp.float32))


def _i32(v):
    return dataclasses.field(default_factory=lambda: jnp.asarray(v, jnp.int32))


@struct.dataclass
class GridParams:
    """Traced parameters: change them freely under ``jit``/``vmap`` without recompiling (the length
    of ``regrowth_probs`` is a shape: a different length recompiles)."""

    regrowth_probs: jax.Array = _f32(DEFAULT_REGROWTH_PROBS)  # p(k), k = 0..K-2 live neighbours; last: k >= K-1
    zap_timeout: jax.Array = _i32(4)  # steps a zapped agent stays off the map
    zap_cooldown: jax.Array = _i32(2)  # steps an agent waits after zapping (zaps at most every cooldown+1 steps)


def make_grid_params(regrowth_probs=DEFAULT_REGROWTH_PROBS, zap_timeout=4, zap_cooldown=2) -> GridParams:
    """Validated :class:`GridParams` from config values."""
    check_grid_params(regrowth_probs, zap_timeout, zap_cooldown)
    return GridParams(regrowth_probs=jnp.asarray(regrowth_probs, jnp.float32),
                      zap_timeout=jnp.asarray(zap_timeout, jnp.int32),
                      zap_cooldown=jnp.asarray(zap_cooldown, jnp.int32))


def check_grid_params(regrowth_probs, zap_timeout, zap_cooldown) -> None:
    """Host-side validation of (possibly batched) values; raises ``ValueError`` naming the field."""
    p = np.asarray(regrowth_probs, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"env.regrowth_probs must be a non-empty list, got {_checks.plain(regrowth_probs)!r}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"env.regrowth_probs must lie in [0, 1], got {_checks.plain(p)}")
    for name, v, lo in (("zap_timeout", zap_timeout, 1), ("zap_cooldown", zap_cooldown, 0)):
        a = np.asarray(v)
        if not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"env.{name} must be an integer, got {_checks.plain(a)}")
        if np.any(a < lo):
            raise ValueError(f"env.{name} must be >= {lo}, got {_checks.plain(a)}")


@struct.dataclass
class GridState:
    pos: jax.Array  # (n, 2) int32, (row, col) in map coordinates (stale while removed)
    facing: jax.Array  # (n,) int32
    apples: jax.Array  # (num_apple_cells,) bool, live apples
    on_map: jax.Array  # (n,) bool; False while removed by a zap
    removed_for: jax.Array  # (n,) int32, steps left off the map
    cooldown: jax.Array  # (n,) int32, steps left before the agent may zap again
    t: jax.Array  # int32, steps since the episode began: the game's one clock
