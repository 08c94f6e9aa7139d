"""Maps for the apple grid: ASCII loading, the default Melting Pot map, a procedural generator.

Legend (SPEC §2): ``W`` wall, ``A`` apple cell, ``P`` spawn cell, ``Q`` inside-spawn cell (the first
agents spawn there, one each, in reading order), space (or ``.``) floor. Maps are host-side numpy
data: they fix the environment's shapes, so a map is a *static* setting.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources

import numpy as np

LEGEND = {"W": "wall", "A": "apple", "P": "spawn", "Q": "inside spawn", " ": "floor", ".": "floor"}


@dataclasses.dataclass(frozen=True, eq=False)
class GridMap:
    """A parsed map. Boolean grids are (height, width); spawn lists are (k, 2) arrays of (row, col)."""

    walls: np.ndarray
    apples: np.ndarray
    spawn: np.ndarray  # P cells, (k, 2)
    inside_spawn: np.ndarray  # Q cells, (q, 2), in reading order
    name: str = "custom"

    @property
    def height(self) -> int:
        return int(self.walls.shape[0])

    @property
    def width(self) -> int:
        return int(self.walls.shape[1])

    @property
    def num_apples(self) -> int:
        return int(self.apples.sum())

    def to_ascii(self) -> str:
        rows = np.full(self.walls.shape, " ", dtype="<U1")
        rows[self.walls] = "W"
        rows[self.apples] = "A"
        rows[tuple(self.spawn.T)] = "P"
        if len(self.inside_spawn):
            rows[tuple(self.inside_spawn.T)] = "Q"
        return "\n".join("".join(r) for r in rows)

    def check_agents(self, num_agents: int, field: str = "env.num_agents") -> None:
        """Raise if the map cannot seat ``num_agents`` agents at reset."""
        if num_agents < 1:
            raise ValueError(f"{field} must be >= 1, got {num_agents}")
        seats = len(self.inside_spawn) + len(self.spawn)
        if num_agents > seats:
            raise ValueError(
                f"{field}={num_agents} but map '{self.name}' has only {seats} spawn cells "
                f"({len(self.inside_spawn)} Q + {len(self.spawn)} P)"
            )
        if num_agents > len(self.inside_spawn) and len(self.spawn) == 0:
            raise ValueError(f"map '{self.name}' has no P spawn cells for {field}={num_agents}")


def parse_ascii(text: str, name: str = "custom") -> GridMap:
    """Parse an ASCII map. Raises ``ValueError`` (field ``env.map``) on a malformed map."""
    lines = [ln.rstrip("\n").rstrip("\r") for ln in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ValueError(f"env.map '{name}' is empty")
    width = len(lines[0])
    for i, ln in enumerate(lines):
        if len(ln) != width:
            # A ragged map is ambiguous (a missing wall? stripped trailing floor?): refuse it.
            raise ValueError(f"env.map '{name}': row {i} has {len(ln)} characters but row 0 has {width}; "
                             "every row must have the same length (write floor as ' ' or '.')")
    grid = np.array([list(ln) for ln in lines])
    bad = sorted(set(grid.ravel()) - set(LEGEND))
    if bad:
        raise ValueError(f"env.map '{name}' has unknown characters {bad}; legend is {sorted(LEGEND)}")
    if grid.shape[0] < 3 or grid.shape[1] < 3:
        raise ValueError(f"env.map '{name}' must be at least 3x3, got {grid.shape[0]}x{grid.shape[1]}")
    walls = grid == "W"
    apples = grid == "A"
    spawn = np.argwhere(grid == "P").astype(np.int32).reshape(-1, 2)
    inside = np.argwhere(grid == "Q").astype(np.int32).reshape(-1, 2)
    if len(spawn) + len(inside) == 0:
        raise ValueError(f"env.map '{name}' has no spawn cells (P or Q)")
    return GridMap(walls=walls, apples=apples, spawn=spawn, inside_spawn=inside, name=name)


BUILTIN_MAPS = ("commons_harvest_open",)


def load_map(name_or_path: str) -> GridMap:
    """Load a built-in map by name (``commons_harvest_open``) or an ASCII map file by path."""
    if name_or_path in BUILTIN_MAPS:
        text = resources.files("sedjax").joinpath(f"maps/{name_or_path}.txt").read_text()
        return parse_ascii(text, name=name_or_path)
    if not os.path.isfile(name_or_path):
        raise ValueError(
            f"env.map '{name_or_path}' is neither a built-in map {BUILTIN_MAPS} nor an existing file"
        )
    with open(name_or_path) as f:
        return parse_ascii(f.read(), name=os.path.basename(name_or_path))


def default_map() -> GridMap:
    """Melting Pot's ``commons_harvest__open``: 24 x 18, 64 apple cells, 2 Q + 60 P cells."""
    return load_map("commons_harvest_open")


def procedural_map(
    height: int,
    width: int,
    num_agents: int,
    apple_density: float = 0.18,
    patch_radius: int = 2,
    spawn_per_agent: float = 2.0,
    seed: int = 0,
) -> GridMap:
    """A random map for scaling studies.

    Walled border; apple patches are Euclidean discs of ``patch_radius`` (the regrowth radius by
    default, so a fresh patch can regrow) placed at random until ``apple_density`` of the interior
    holds apples; ``spawn_per_agent * num_agents`` spawn (P) cells are scattered over the remaining
    floor. The default density matches the default map (64 apples / 352 interior cells).
    """
    if height < 3 or width < 3:
        raise ValueError(f"procedural map height/width must be >= 3, got {height}x{width}")
    if not 0.0 <= apple_density < 1.0:
        raise ValueError(f"procedural map apple_density must be in [0, 1), got {apple_density}")
    if num_agents < 1:
        raise ValueError(f"env.num_agents must be >= 1, got {num_agents}")
    rng = np.random.default_rng(seed)
    walls = np.zeros((height, width), bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    interior = ~walls
    n_interior = int(interior.sum())
    n_spawn = int(np.ceil(spawn_per_agent * num_agents))
    if n_spawn > n_interior * (1.0 - apple_density):
        raise ValueError(
            f"procedural map {height}x{width} is too small for {num_agents} agents at "
            f"apple_density={apple_density}"
        )
    apples = np.zeros_like(walls)
    target = int(round(apple_density * n_interior))
    r = patch_radius
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dy**2 + dx**2 <= r * r
    offsets = np.stack([dy[disc], dx[disc]], -1)
    placed = 0  # counted as we go: summing the map each time made a 1M-agent map take hours
    while placed < target:
        cy, cx = rng.integers(1, height - 1), rng.integers(1, width - 1)
        cells = offsets + (cy, cx)
        ok = (cells[:, 0] > 0) & (cells[:, 0] < height - 1) & (cells[:, 1] > 0) & (cells[:, 1] < width - 1)
        cells = cells[ok]
        fresh = cells[~apples[cells[:, 0], cells[:, 1]]][:target - placed]
        apples[fresh[:, 0], fresh[:, 1]] = True
        placed += len(fresh)
    free = np.argwhere(interior & ~apples)
    pick = rng.choice(len(free), size=n_spawn, replace=False)
    spawn = free[np.sort(pick)].astype(np.int32)
    return GridMap(
        walls=walls,
        apples=apples,
        spawn=spawn,
        inside_spawn=np.zeros((0, 2), np.int32),
        name=f"procedural_{height}x{width}_n{num_agents}_s{seed}",
    )


def procedural_map_for_agents(num_agents: int, seed: int = 0, cells_per_agent: float = 50.0, **kw) -> GridMap:
    """A square-ish procedural map at constant density: ``cells_per_agent`` interior cells per agent
    (the default map has 352 / 7 ~ 50)."""
    side = int(np.ceil(np.sqrt(cells_per_agent * num_agents))) + 2
    return procedural_map(side, side, num_agents, seed=seed, **kw)
