"""The apple grid (SPEC §2), one folder: ``types`` (constants, static settings, traced params,
state), ``layout`` (the map's lookup tables, built once), ``dynamics`` (moves, eating, zap and
respawn, regrowth), ``observation`` (egocentric windows), ``env`` (:class:`AppleGrid`, the pipeline).
"""

from sedjax.apple_grid.env import AppleGrid
from sedjax.apple_grid.layout import Layout, build_layout
from sedjax.apple_grid.types import (
    ACTION_NAMES, BACKWARD, CHANNELS, CODE_AGENT, CODE_APPLE, CODE_WALL, DIRS, FACING_CHANNELS, FORWARD, NOOP,
    STEP_LEFT, STEP_RIGHT, TURN_LEFT, TURN_RIGHT, ZAP, GridParams, GridState, GridStatic, check_grid_params,
    make_grid_params,
)

__all__ = [
    "AppleGrid", "GridParams", "GridState", "GridStatic", "Layout", "build_layout", "check_grid_params",
    "make_grid_params", "ACTION_NAMES", "CHANNELS", "FACING_CHANNELS", "DIRS", "NOOP", "FORWARD", "BACKWARD",
    "STEP_LEFT", "STEP_RIGHT", "TURN_LEFT", "TURN_RIGHT", "ZAP", "CODE_WALL", "CODE_APPLE", "CODE_AGENT",
]
