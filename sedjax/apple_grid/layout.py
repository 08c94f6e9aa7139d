"""The frozen layout of a map: every lookup table the dynamics and observations need, built once
on the host from a :class:`~sedjax.maps.GridMap` and the :class:`GridStatic` settings.

The world lives in a *padded* flat array (``pad`` wall cells around the map) so that observation
windows and zap beams are plain gathers with no bounds checks and out-of-map cells read as wall.
A :class:`Layout` is a closure constant of the jitted functions (not a pytree): its arrays are
baked into the compiled program, its ints fix shapes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sedjax.apple_grid.types import CHANNELS, CODE_WALL, DIRS, FACING_CHANNELS, GridStatic
from sedjax.maps import GridMap


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    map: GridMap
    static: GridStatic
    pad: int
    Hp: int  # padded height and width
    Wp: int
    num_cells: int  # Hp * Wp; index num_cells is a sentinel cell (removed agents)
    num_apple_cells: int
    base_code: jax.Array  # (num_cells,) uint8: walls of the padded world
    walls_flat: jax.Array  # (num_cells,) bool
    apple_flat: jax.Array  # (A,) flat padded index of each apple cell (row-major order)
    apple_slot: jax.Array  # (num_cells + 1,) apple slot of each cell, A where none
    neighbours: jax.Array  # (A, K) regrowth neighbours' slots, padded with the dead sentinel slot A
    view_shape: tuple[int, int]
    center: int  # the agent's own cell in a flattened window
    win_rows: jax.Array  # (4, 4) per facing: (start0, r_coef, c_coef, stride), see window_row_table
    beam_off: jax.Array  # (4, lanes, depth) flat offsets of the zap beam cells per facing
    spawn_rc: jax.Array  # (k, 2) P cells
    spawn_flat: jax.Array  # (k,) their flat padded indices
    q_rc: jax.Array  # (q, 2) the Q cells used (agents 0..q-1)
    num_q: int
    num_actions: int
    num_channels: int

    @property
    def num_agents(self) -> int:
        return self.static.num_agents


def view_offsets(ahead: int, behind: int, side: int) -> np.ndarray:
    """(4, V, 2) (d_row, d_col) offsets of the egocentric window's cells for each facing.

    Window row 0 is the farthest cell ahead, column 0 the leftmost; the agent sits at row ``ahead``,
    column ``side``. Rotating the offsets with the facing makes an apple straight ahead land on the
    same window cell whatever the facing.
    """
    rows, cols = ahead + behind + 1, 2 * side + 1
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (ahead - i).ravel()  # distance ahead
    lat = (j - side).ravel()  # offset to the right
    out = []
    for f in range(4):
        fwd, right = DIRS[f], DIRS[(f + 1) % 4]
        out.append(a[:, None] * fwd + lat[:, None] * right)
    return np.stack(out).astype(np.int32)


def window_row_table(ahead: int, side: int, Hp: int, Wp: int) -> np.ndarray:
    """Windows as row slices of the rotated world: ``(4, 4)`` int rows ``(start0, r_coef, c_coef,
    stride)`` per facing.

    Row ``f`` of the rotated world (``(4, Hp * Wp)``) is ``rot90(world, f)`` flattened. There, each
    row of a facing-``f`` window is a contiguous run of ``cols`` cells; window row ``i`` starts at
    ``start0[f] + r_coef[f] * row + c_coef[f] * col + i * stride[f]`` for an agent at padded
    ``(row, col)``. World cell (row, col) sits at (row, col), (W1 - col, row), (H1 - row, W1 - col)
    and (col, H1 - row) in rot90(world, f) for f = 0..3, whose rows are Wp, Hp, Wp, Hp cells wide;
    a window's first row is ``ahead`` rows up and starts ``side`` cells to the left. (Checked
    against :func:`view_offsets` in the tests.)
    """
    H1, W1 = Hp - 1, Wp - 1
    return np.array([
        [-ahead * Wp - side, Wp, 1, Wp],
        [(W1 - ahead) * Hp - side, 1, -Hp, Hp],
        [(H1 - ahead) * Wp + W1 - side, -Wp, -1, Wp],
        [-ahead * Hp + H1 - side, -1, Hp, Hp],
    ], np.int64)


def regrowth_neighbours(apple_rc: np.ndarray, radius: float) -> np.ndarray:
    """(A, K) slots of the *other* apple cells within Euclidean distance ``radius`` of each apple
    cell, in increasing slot order, padded with the sentinel slot ``A`` (always dead); K = the
    largest neighbourhood (>= 1). Built from the offsets within ``radius`` (O(A x offsets), not the
    O(A^2) distance matrix, which needs terabytes at a million agents' map)."""
    A = len(apple_rc)
    if A == 0:
        return np.zeros((0, 1), np.int32)
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    near = (dy**2 + dx**2 <= radius * radius) & ((dy != 0) | (dx != 0))
    offsets = np.stack([dy[near], dx[near]], -1)  # (O, 2)
    if len(offsets) == 0:
        return np.full((A, 1), A, np.int32)
    lo = apple_rc.min(0) - r
    shape = apple_rc.max(0) + r - lo + 1
    index = np.full(tuple(shape), A, np.int64)  # slot of each apple cell, A elsewhere
    index[tuple((apple_rc - lo).T)] = np.arange(A)
    cand = apple_rc[:, None, :] - lo + offsets[None, :, :]  # (A, O, 2), always inside ``index``
    table = np.sort(index[cand[..., 0], cand[..., 1]], axis=1)  # the sentinel A sorts last
    k = max(int((table < A).sum(1).max()), 1)
    return table[:, :k].astype(np.int32)


def build_layout(m: GridMap, static: GridStatic) -> Layout:
    """Every table of the map, once. Raises ``ValueError`` (naming the field) if the map cannot
    serve these settings."""
    n = static.num_agents
    m.check_agents(n)
    if static.zap and len(m.spawn) == 0:
        # A zapped agent respawns on a free P cell; with none it could never come back.
        raise ValueError(f"env.zap=True needs at least one P spawn cell on map '{m.name}' "
                         "(zapped agents respawn on free P cells)")
    ahead, behind, side = static.view_ahead, static.view_behind, static.view_side
    pad = max(ahead, behind, side, static.zap_range + 1, static.zap_width + 1, 1)
    Hp, Wp = m.height + 2 * pad, m.width + 2 * pad
    num_cells = Hp * Wp
    walls_p = np.ones((Hp, Wp), bool)
    walls_p[pad : pad + m.height, pad : pad + m.width] = m.walls
    apple_rc = np.argwhere(m.apples).astype(np.int32)
    A = len(apple_rc)
    apple_flat = (apple_rc[:, 0] + pad) * Wp + apple_rc[:, 1] + pad
    slot = np.full(num_cells + 1, A, np.int32)  # +1: sentinel cell for removed agents
    slot[apple_flat] = np.arange(A)
    beams = np.asarray([[[d * DIRS[f] + lane * DIRS[(f + 1) % 4] for d in range(1, static.zap_range + 1)]
                         for lane in range(-static.zap_width, static.zap_width + 1)] for f in range(4)], np.int32)
    spawn_rc = m.spawn.reshape(-1, 2).astype(np.int32)
    q_rc = m.inside_spawn[:n].reshape(-1, 2).astype(np.int32)
    view_shape = (ahead + behind + 1, 2 * side + 1)
    return Layout(
        map=m, static=static, pad=pad, Hp=Hp, Wp=Wp, num_cells=num_cells, num_apple_cells=A,
        base_code=jnp.asarray(walls_p.ravel().astype(np.uint8) * CODE_WALL),
        walls_flat=jnp.asarray(walls_p.ravel()),
        apple_flat=jnp.asarray(apple_flat.astype(np.int32)),
        apple_slot=jnp.asarray(slot),
        neighbours=jnp.asarray(regrowth_neighbours(apple_rc, static.regrowth_radius)),
        view_shape=view_shape,
        center=ahead * view_shape[1] + side,
        win_rows=jnp.asarray(window_row_table(ahead, side, Hp, Wp).astype(np.int32)),
        beam_off=jnp.asarray(beams[..., 0] * Wp + beams[..., 1]),
        spawn_rc=jnp.asarray(spawn_rc),
        spawn_flat=jnp.asarray((spawn_rc[:, 0] + pad) * Wp + spawn_rc[:, 1] + pad),
        q_rc=jnp.asarray(q_rc),
        num_q=int(q_rc.shape[0]),
        num_actions=8 if static.zap else 7,
        num_channels=len(CHANNELS) + (len(FACING_CHANNELS) if static.obs_facing else 0),
    )


def flat_index(layout: Layout, pos) -> jax.Array:
    """(n, 2) map positions -> flat indices in the padded world."""
    return (pos[:, 0] + layout.pad) * layout.Wp + pos[:, 1] + layout.pad
