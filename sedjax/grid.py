"""Compatibility module: the apple grid now lives in :mod:`sedjax.apple_grid` (one folder)."""

from sedjax.apple_grid import *  # noqa: F401,F403
from sedjax.apple_grid import __all__  # noqa: F401
from sedjax.apple_grid.types import ATE_SHIFT, DENSE_RESOLVE_MAX_AGENTS, FACING_SHIFT, STAY  # noqa: F401
