"""sedjax: Social Environment Design in JAX.

``sedjax.make("apple_grid")`` is the bare commons POMG; ``sedjax.make("sed")`` the full game with
votes, a tax-setting Principal and typed agents. See README.md.
"""

from sedjax import apple_grid, maps, population, render, spaces, tax, voting, welfare
from sedjax.apple_grid import AppleGrid, GridParams, GridState
from sedjax.environment import Environment
from sedjax.envs import ENVS, make
from sedjax.sed import SED, SEDParams, SEDState

__version__ = "0.1.0"
__all__ = [
    "make", "ENVS", "Environment", "AppleGrid", "GridParams", "GridState", "SED", "SEDParams", "SEDState",
    "apple_grid", "maps", "population", "render", "spaces", "tax", "voting", "welfare",
]
