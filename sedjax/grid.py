"""The induced economy: the apple-picking commons (SPEC §2), as a gymnax-style multi-agent env.

Layout conventions: positions are (row, col); facing 0..3 = N, E, S, W. The world lives in a
*padded* flat array (``pad`` wall cells around the map) so that observation windows and zap beams
are plain gathers with no bounds checks and out-of-map cells read as wall.

Per step: turns and moves (conflicts resolved with a uniformly random winner) -> eating (an apple is
eaten only by an agent *entering* its cell) -> zap beams (option) -> respawn of removed agents ->
regrowth -> observations. Cell contents are encoded as bit fields in one uint8 per cell (see
``CODE_*``); an observation is 11 row slices of 11 codes per agent (from the world rotated to
the agent's facing), decoded into symbolic channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sedjax import spaces
from sedjax.autoreset import make_maybe_reset
from sedjax.maps import GridMap, default_map

# Actions (relative to facing).
NOOP, FORWARD, BACKWARD, STEP_LEFT, STEP_RIGHT, TURN_LEFT, TURN_RIGHT, ZAP = range(8)
ACTION_NAMES = ("NOOP", "FORWARD", "BACKWARD", "STEP_LEFT", "STEP_RIGHT", "TURN_LEFT", "TURN_RIGHT", "ZAP")
# Unit vectors (d_row, d_col) for N, E, S, W.
DIRS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)
# Direction of travel for each action, as a rotation of the facing (-1: no move).
_MOVE_ROT = np.array([-1, 0, 2, 3, 1, -1, -1, -1], np.int32)
_TURN = np.array([0, 0, 0, 0, 0, 3, 1, 0], np.int32)  # added to facing, mod 4

# Cell code bits.
CODE_WALL, CODE_APPLE, CODE_AGENT = 1, 2, 4
FACING_SHIFT, ATE_SHIFT = 3, 5  # bits 3-4: the agent's facing; bit 5: it ate an apple this step

# Move resolution: priority of an agent holding its cell (above every mover's random priority),
# and the largest population resolved with pairwise tests instead of cells-sized scatters.
STAY = np.iinfo(np.int32).max
DENSE_RESOLVE_MAX_AGENTS = 32  # measured: dense wins clearly at 7 agents, ties at 64

CHANNELS = ("wall", "apple", "self", "other_agent")
FACING_CHANNELS = ("other_facing_ahead", "other_facing_right", "other_facing_back", "other_facing_left")


@struct.dataclass
class GridParams:
    """Traced parameters: change them freely under ``jit``/``vmap`` without recompiling."""

    regrowth_probs: jax.Array  # (K,) p(k) for k = 0..K-2 live neighbours; the last entry for k >= K-1
    max_steps: jax.Array  # episode length (time limit) of the bare grid
    zap_timeout: jax.Array  # steps a zapped agent stays off the map
    zap_cooldown: jax.Array  # steps before an agent may zap again


@struct.dataclass
class GridState:
    pos: jax.Array  # (n, 2) int32, (row, col) in map coordinates (stale while removed)
    facing: jax.Array  # (n,) int32
    apples: jax.Array  # (num_apple_cells,) bool, live apples
    on_map: jax.Array  # (n,) bool; False while removed by a zap
    removed_for: jax.Array  # (n,) int32, steps left off the map
    cooldown: jax.Array  # (n,) int32, steps left before the agent may zap again
    t: jax.Array  # int32, steps since the episode began


def _view_offsets(ahead: int, behind: int, side: int) -> np.ndarray:
    """(4, V*V') (d_row, d_col) offsets of the egocentric window for each facing.

    Window row 0 is the farthest cell ahead, column 0 the leftmost; the agent sits at row ``ahead``,
    column ``side``. Rotating the offsets with the facing makes an apple straight ahead land on the
    same window cell whatever the facing.
    """
    rows = ahead + behind + 1
    cols = 2 * side + 1
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (ahead - i).ravel()  # distance ahead
    lat = (j - side).ravel()  # offset to the right
    out = []
    for f in range(4):
        fwd, right = DIRS[f], DIRS[(f + 1) % 4]
        out.append(a[:, None] * fwd + lat[:, None] * right)
    return np.stack(out).astype(np.int32)


class AppleGrid:
    """The bare POMG: ``n`` agents harvesting apples on a grid. No taxes, no votes.

    Static settings (constructor): the map, ``num_agents``, the view window, ``zap``, the regrowth
    radius, observation options. Traced settings: :class:`GridParams`.
    ``action``: int array ``(num_agents,)``; ``reward``: apples each agent collected this step.
    """

    def __init__(
        self,
        grid_map: GridMap | None = None,
        num_agents: int = 7,
        view_ahead: int = 9,
        view_behind: int = 1,
        view_side: int = 5,
        zap: bool = False,
        zap_range: int = 3,
        zap_width: int = 1,
        regrowth_radius: float = 2.0,
        regrowth_probs=(0.0, 0.0025, 0.005, 0.025),
        max_steps: int = 1000,
        zap_timeout: int = 4,
        zap_cooldown: int = 2,
        obs_facing: bool = False,
        obs_mode: str = "symbolic",
    ):
        self.map = grid_map if grid_map is not None else default_map()
        self.map.check_agents(num_agents)
        for name, v in (("view_ahead", view_ahead), ("view_behind", view_behind), ("view_side", view_side)):
            if int(v) < 0:
                raise ValueError(f"env.{name} must be >= 0, got {v}")
        if obs_mode not in ("symbolic", "rgb"):
            raise ValueError(f"env.obs_mode must be 'symbolic' or 'rgb', got {obs_mode!r}")
        if regrowth_radius < 0:
            raise ValueError(f"env.regrowth_radius must be >= 0, got {regrowth_radius}")
        if zap and len(self.map.spawn) == 0:
            # A zapped agent respawns on a free P cell; with none it could never come back.
            raise ValueError(f"env.zap=True needs at least one P spawn cell on map '{self.map.name}' "
                             "(zapped agents respawn on free P cells)")
        if int(num_agents).bit_length() > 24:
            raise ValueError(f"env.num_agents={num_agents} is too large for the move priorities (at most 2**24 - 1)")
        self.num_agents = int(num_agents)
        self.view = (int(view_ahead), int(view_behind), int(view_side))
        self.zap, self.zap_range, self.zap_width = bool(zap), int(zap_range), int(zap_width)
        self.obs_facing, self.obs_mode = bool(obs_facing), obs_mode
        self.regrowth_radius = float(regrowth_radius)
        self._defaults = dict(
            regrowth_probs=regrowth_probs, max_steps=max_steps, zap_timeout=zap_timeout, zap_cooldown=zap_cooldown
        )
        check_grid_params(**self._defaults)
        self._build_tables()

    # ------------------------------------------------------------------ static tables
    def _build_tables(self):
        m = self.map
        ahead, behind, side = self.view
        pad = max(ahead, behind, side, self.zap_range + 1, self.zap_width + 1, 1)
        self.pad = pad
        self.Hp, self.Wp = m.height + 2 * pad, m.width + 2 * pad
        self.num_cells = self.Hp * self.Wp
        walls_p = np.ones((self.Hp, self.Wp), bool)
        walls_p[pad : pad + m.height, pad : pad + m.width] = m.walls
        self._base_code = jnp.asarray(walls_p.ravel().astype(np.uint8) * CODE_WALL)
        self._walls_flat = jnp.asarray(walls_p.ravel())
        apple_rc = np.argwhere(m.apples).astype(np.int32)
        self.num_apple_cells = len(apple_rc)
        A = self.num_apple_cells
        self._apple_flat = jnp.asarray((apple_rc[:, 0] + pad) * self.Wp + apple_rc[:, 1] + pad)
        slot = np.full(self.num_cells + 1, A, np.int32)  # +1: sentinel cell for removed agents
        slot[np.asarray(self._apple_flat)] = np.arange(A)
        self._apple_slot = jnp.asarray(slot)
        # Regrowth neighbourhood: other apple cells within Euclidean distance <= radius.
        r = self.regrowth_radius
        if A:
            d2 = ((apple_rc[:, None, :] - apple_rc[None, :, :]) ** 2).sum(-1)
            nb = (d2 <= r * r) & ~np.eye(A, dtype=bool)
            K = max(int(nb.sum(1).max()), 1)
            table = np.full((A, K), A, np.int32)  # A = sentinel slot, always dead
            for a in range(A):
                idx = np.flatnonzero(nb[a])
                table[a, : len(idx)] = idx
        else:
            table = np.zeros((0, 1), np.int32)
        self._neighbours = jnp.asarray(table)
        # Observation window and zap beam offsets, as flat offsets in the padded array.
        off = _view_offsets(ahead, behind, side)
        self.view_shape = (ahead + behind + 1, 2 * side + 1)
        self._center = ahead * self.view_shape[1] + side
        self._build_window_rows(off)
        beams = []
        for f in range(4):
            fwd, right = DIRS[f], DIRS[(f + 1) % 4]
            lanes = []
            for lane in range(-self.zap_width, self.zap_width + 1):
                lanes.append([d * fwd + lane * right for d in range(1, self.zap_range + 1)])
            beams.append(lanes)
        beams = np.asarray(beams, np.int32)  # (4, lanes, depth, 2)
        self._beam_off = jnp.asarray(beams[..., 0] * self.Wp + beams[..., 1])
        self._spawn_rc = jnp.asarray(m.spawn.reshape(-1, 2))
        self._q_rc = jnp.asarray(m.inside_spawn[: self.num_agents].reshape(-1, 2))
        self.num_q = int(self._q_rc.shape[0])
        self._spawn_flat = (self._spawn_rc[:, 0] + pad) * self.Wp + self._spawn_rc[:, 1] + pad
        self.num_actions = 8 if self.zap else 7
        self.num_channels = len(CHANNELS) + (len(FACING_CHANNELS) if self.obs_facing else 0)
        self._maybe_reset = make_maybe_reset(lambda key, params, _old: self.reset(key, params))

    def _build_window_rows(self, off):
        """Tables for :meth:`_window_codes`: windows as row slices of the rotated world.

        Row ``f`` of ``rotated`` (``(4, Hp * Wp)``) is ``rot90(world, f)`` flattened. There, each
        row of a facing-``f`` window is a contiguous run of ``cols`` cells; window row ``i`` starts
        at ``start0[f] + r_coef[f] * row + c_coef[f] * col + i * stride[f]`` for an agent at padded
        ``(row, col)``.
        """
        ahead, _, side = self.view
        Hp, Wp = self.Hp, self.Wp
        H1, W1 = Hp - 1, Wp - 1
        # World cell (row, col) sits at (row, col), (W1 - col, row), (H1 - row, W1 - col) and
        # (col, H1 - row) in rot90(world, f) for f = 0..3, whose rows are Wp, Hp, Wp, Hp cells
        # wide; a window's first row is ``ahead`` rows up and starts ``side`` cells to the left.
        table = np.array([  # (start0, r_coef, c_coef, stride) per facing
            [-ahead * Wp - side, Wp, 1, Wp],
            [(W1 - ahead) * Hp - side, 1, -Hp, Hp],
            [(H1 - ahead) * Wp + W1 - side, -Wp, -1, Wp],
            [-ahead * Hp + H1 - side, -1, Hp, Hp],
        ], np.int64)
        # Self-check against the per-cell window offsets (host side, once).
        rows, cols = self.view_shape
        world = np.arange(Hp * Wp).reshape(Hp, Wp)
        r, c = self.pad + self.map.height // 2, self.pad + self.map.width // 2
        for f in range(4):
            s0, a, b, stride = table[f]
            start = s0 + a * r + b * c + stride * np.arange(rows)[:, None] + np.arange(cols)
            expect = r * Wp + c + off[f, :, 0] * Wp + off[f, :, 1]
            assert np.array_equal(np.rot90(world, f).ravel()[start].ravel(), expect), f
        self._win_rows = jnp.asarray(table.astype(np.int32))

    # ------------------------------------------------------------------ gymnax API
    @property
    def name(self) -> str:
        return "apple_grid"

    @property
    def default_params(self) -> GridParams:
        d = self._defaults
        return GridParams(
            regrowth_probs=jnp.asarray(d["regrowth_probs"], jnp.float32),
            max_steps=jnp.asarray(d["max_steps"], jnp.int32),
            zap_timeout=jnp.asarray(d["zap_timeout"], jnp.int32),
            zap_cooldown=jnp.asarray(d["zap_cooldown"], jnp.int32),
        )

    def action_space(self, params: GridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions, shape=(self.num_agents,))

    def observation_space(self, params: GridParams | None = None) -> spaces.Box:
        if self.obs_mode == "rgb":
            from sedjax.render import CELL_PX

            h, w = self.view_shape
            return spaces.Box(0, 255, (self.num_agents, h * CELL_PX, w * CELL_PX, 3), jnp.uint8)
        return spaces.Box(0, 1, (self.num_agents, *self.view_shape, self.num_channels), jnp.uint8)

    def reset(self, key: jax.Array, params: GridParams | None = None):
        """Agents 0..q-1 on the Q cells, the others on distinct random P cells, random facings; all
        apples alive."""
        n = self.num_agents
        k_perm, k_face = jax.random.split(key)
        n_p = n - self.num_q
        perm = jax.random.permutation(k_perm, self._spawn_rc.shape[0])[:n_p]
        pos = jnp.concatenate([self._q_rc, self._spawn_rc[perm]], 0)
        state = GridState(
            pos=pos.astype(jnp.int32),
            facing=jax.random.randint(k_face, (n,), 0, 4, jnp.int32),
            apples=jnp.ones((self.num_apple_cells,), bool),
            on_map=jnp.ones((n,), bool),
            removed_for=jnp.zeros((n,), jnp.int32),
            cooldown=jnp.zeros((n,), jnp.int32),
            t=jnp.zeros((), jnp.int32),
        )
        codes = self._window_codes(state, jnp.zeros((n,), bool))
        return self._decode_obs(codes, state), state

    def step(self, key: jax.Array, state: GridState, action: jax.Array, params: GridParams | None = None):
        """One joint action; auto-resets when the episode's time limit is reached (the returned obs
        and state are then the new episode's; ``reward`` and ``info`` belong to the finished step)."""
        params = self.default_params if params is None else params
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, done, info = self.step_env(k_step, state, action, params)
        obs, state = self._maybe_reset(done, k_reset, obs, state, params)
        return obs, state, reward, done, info

    def step_env(self, key: jax.Array, state: GridState, action: jax.Array, params: GridParams | None = None):
        """One joint action without auto-reset (``done`` is the time limit: a truncation)."""
        params = self.default_params if params is None else params
        state, ate, codes = self.transition(key, state, action, params)
        obs = self._decode_obs(codes, state)
        done = state.t >= params.max_steps
        info = {
            "apples_collected": ate.astype(jnp.float32),
            "apples_alive": state.apples.sum(),
            "collected_in_view": self._collected_in_view(codes, ate),
        }
        return obs, state, ate.astype(jnp.float32), done, info

    # ------------------------------------------------------------------ dynamics
    def _flat(self, pos):
        return (pos[:, 0] + self.pad) * self.Wp + pos[:, 1] + self.pad

    def transition(self, key, state: GridState, action, params: GridParams):
        """Advance the world one step. Returns ``(state, ate, window_codes)``; ``window_codes`` are
        the agents' egocentric window codes after the step (removed agents: zeros)."""
        n, A = self.num_agents, self.num_apple_cells
        # One draw of random bits serves the move priorities and the regrowth coins: each threefry
        # call is a loop of its own on CPU, and their fixed cost dominates at small batch sizes.
        k_zap = None
        if self.zap:
            key, k_zap = jax.random.split(key)
        bits = jax.random.bits(key, (n + A,), jnp.uint32)
        action = jnp.asarray(action, jnp.int32)
        act = jnp.where(state.on_map, action, NOOP)
        facing = (state.facing + jnp.asarray(_TURN)[act]) % 4
        # --- movement
        rot = jnp.asarray(_MOVE_ROT)[act]
        move_dir = (state.facing + rot) % 4
        wants = rot >= 0
        cur = jnp.where(state.on_map, self._flat(state.pos), self.num_cells)  # removed: sentinel cell
        step_off = jnp.asarray(DIRS[:, 0] * self.Wp + DIRS[:, 1])[move_dir]
        target = jnp.where(wants, cur + step_off, cur)
        blocked = self._walls_flat[jnp.minimum(target, self.num_cells - 1)] & wants
        moving = wants & ~blocked
        new_flat = self._resolve_moves(self._move_priority(bits[:n]), cur, jnp.where(moving, target, cur), moving)
        moved = new_flat != cur
        pos = state.pos + jnp.where(moved[:, None], jnp.asarray(DIRS)[move_dir], 0)
        # --- eating: only by entering a cell that holds a live apple
        alive_ext = jnp.concatenate([state.apples, jnp.zeros((1,), bool)])
        slot = self._apple_slot[new_flat]
        ate = moved & alive_ext[slot]
        alive_ext = alive_ext.at[jnp.where(ate, slot, A)].set(False)
        on_map, removed_for, cooldown = state.on_map, state.removed_for, jnp.maximum(state.cooldown - 1, 0)
        if self.zap:
            on_map, removed_for, cooldown, pos, facing = self._zap_and_respawn(
                k_zap, act, new_flat, pos, facing, on_map, removed_for, cooldown, params
            )
        # --- regrowth: p(k), k = live apples among the other apple cells within the radius
        alive = alive_ext[:A]
        k_live = alive_ext[self._neighbours].sum(-1)
        probs = params.regrowth_probs
        p = probs[jnp.minimum(k_live, probs.shape[0] - 1)]
        u = (bits[n:] >> 8).astype(jnp.float32) * (2.0**-24)  # uniform in [0, 1), 24-bit resolution
        regrow = ~alive & (u < p)
        state = GridState(
            pos=pos,
            facing=facing,
            apples=alive | regrow,
            on_map=on_map,
            removed_for=removed_for,
            cooldown=cooldown,
            t=state.t + 1,
        )
        return state, ate, self._window_codes(state, ate)

    def _move_priority(self, bits):
        """Move priorities from ``n`` random uint32 ``bits``: a uniformly random strict order of the
        agents (the highest claimant wins a contested cell), int32 in ``[0, STAY)``.

        Random bits in the high part, the agent's index in the low ``b`` bits (``2**b > n``): the
        priorities are distinct by construction (one winner per cell, always), and the order is
        uniform except when two agents draw the same ``31 - b`` random bits (probability
        ``2**-(31 - b)`` per pair; the higher index then wins), the same kind of tie rule as
        ``jax.random.permutation`` (a stable sort on random 32-bit keys) without its sort, which
        cost ~10% of a step on CPU.
        """
        n = self.num_agents
        b = n.bit_length()  # <= 24 (checked in __init__): >= 7 random bits per priority
        return ((bits >> (b + 1)) << b).astype(jnp.int32) | jnp.arange(n, dtype=jnp.int32)

    def _resolve_moves(self, prio, cur, target, moving):
        """Simultaneous moves with a uniformly random winner per contested cell. Agents that stay (or
        lose) hold their cell with top priority; losing can cascade (a loser blocks whoever wanted
        its cell), so rounds repeat until nothing changes. Two agents trying to swap cells both fail.

        Each round is O(n + cells) for large n (scatters into a cells-sized array), or, for at most
        ``DENSE_RESOLVE_MAX_AGENTS`` agents, O(n^2) pairwise tests, which for a handful of agents is
        far cheaper than touching every cell of the map (7 agents: 49 comparisons vs. 1.5k cells on
        the default map). Both give the same result; the choice is static.
        """
        n = self.num_agents
        dense = n <= DENSE_RESOLVE_MAX_AGENTS
        if dense:
            # swap[i]: i's target holds an agent j whose target is i's cell (j != i since i moves).
            swap = jnp.any((target[:, None] == cur[None, :]) & (target[None, :] == cur[:, None]), axis=1)
        else:
            size = self.num_cells + 1
            occ = jnp.full((size,), -1, jnp.int32).at[cur].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
            other = occ[target]
            swap = (other >= 0) & (other != jnp.arange(n)) & (target[jnp.maximum(other, 0)] == cur)
        moving = moving & ~swap

        def contest(moving):
            t = jnp.where(moving, target, cur)
            p = jnp.where(moving, prio, STAY)  # stayers outrank every mover for their own cell
            if dense:
                beaten = jnp.any((t[None, :] == t[:, None]) & (p[None, :] > p[:, None]), axis=1)
                return moving & ~beaten
            best = jnp.full((size,), -1, jnp.int32).at[t].max(p)
            return moving & (best[t] == p)

        def cond(c):
            moving, new = c
            return jnp.any(moving != new)

        def body(c):
            _, new = c
            return new, contest(new)

        moving, _ = jax.lax.while_loop(cond, body, (moving, contest(moving)))
        return jnp.where(moving, target, cur)

    def _zap_and_respawn(self, key, act, new_flat, pos, facing, on_map, removed_for, cooldown, params):
        n = self.num_agents
        k_spawn, k_face = jax.random.split(key)
        occ = jnp.full((self.num_cells + 1,), -1, jnp.int32).at[jnp.where(on_map, new_flat, self.num_cells)].set(
            jnp.arange(n, dtype=jnp.int32)
        )
        occ = occ.at[self.num_cells].set(-1)
        zapper = (act == ZAP) & on_map & (cooldown == 0)
        beam = new_flat[:, None, None] + self._beam_off[facing]  # (n, lanes, depth)
        who = occ[beam]
        stop = self._walls_flat[beam] | (who >= 0)
        # A lane is stopped by walls and by the first agent it hits.
        before = jnp.cumsum(stop, axis=-1) - stop
        hit_cell = (who >= 0) & (before == 0) & zapper[:, None, None]
        hit = jnp.zeros((n + 1,), bool).at[jnp.where(hit_cell, who, n)].set(True)[:n]
        cooldown = jnp.where(zapper, params.zap_cooldown, cooldown)
        # Removed agents count down; a hit agent leaves the map for zap_timeout steps.
        removed_for = jnp.where(on_map, 0, jnp.maximum(removed_for - 1, 0))
        on_map = on_map & ~hit
        removed_for = jnp.where(hit, params.zap_timeout, removed_for)
        # Respawn on free P cells: rank free cells randomly, give the r-th returning agent the r-th.
        back = ~on_map & ~hit & (removed_for == 0)
        taken = jnp.zeros((self.num_cells + 1,), bool).at[jnp.where(on_map, new_flat, self.num_cells)].set(True)
        free = ~taken[self._spawn_flat]
        score = jnp.where(free, jax.random.uniform(k_spawn, free.shape), 2.0)
        order = jnp.argsort(score)
        rank = jnp.cumsum(back) - 1
        ok = back & (rank < free.sum())
        cell = self._spawn_rc[order[jnp.clip(rank, 0, free.shape[0] - 1)]]
        pos = jnp.where(ok[:, None], cell, pos)
        facing = jnp.where(ok, jax.random.randint(k_face, (n,), 0, 4, jnp.int32), facing)
        on_map = on_map | ok
        return on_map, removed_for, cooldown, pos, facing

    # ------------------------------------------------------------------ observations
    def world_codes(self, state: GridState, ate=None) -> jax.Array:
        """The padded world as uint8 bit codes, flat ``(Hp * Wp,)``."""
        n = self.num_agents
        ate = jnp.zeros((n,), bool) if ate is None else ate
        code = self._base_code.at[self._apple_flat].add(state.apples.astype(jnp.uint8) * CODE_APPLE)
        agent_code = (
            CODE_AGENT + (state.facing.astype(jnp.uint8) << FACING_SHIFT) + (ate.astype(jnp.uint8) << ATE_SHIFT)
        )
        where = jnp.where(state.on_map, self._flat(state.pos), self.num_cells)
        return code.at[where].add(agent_code, mode="drop")

    def _window_codes(self, state: GridState, ate) -> jax.Array:
        """(n, V) codes of each agent's egocentric window (removed agents: zeros).

        Gathered as ``rows`` slices of ``cols`` contiguous cells from the rotation of the world
        that matches the agent's facing (see :meth:`_build_window_rows`) rather than as ``V``
        single cells: on CPU, a vmapped per-cell gather was the most expensive op of a step
        (~40% of it at 1024 envs); the slices cost several times less, rotations included.
        """
        rows, cols = self.view_shape
        code = self.world_codes(state, ate).reshape(self.Hp, self.Wp)
        rotated = jnp.stack([jnp.rot90(code, f).ravel() for f in range(4)])  # (4, Hp * Wp)
        s0, r_coef, c_coef, stride = self._win_rows[state.facing].T  # (n,) each
        r, c = state.pos[:, 0] + self.pad, state.pos[:, 1] + self.pad
        starts = (s0 + r_coef * r + c_coef * c)[:, None] + stride[:, None] * jnp.arange(rows, dtype=jnp.int32)
        facing = jnp.broadcast_to(state.facing[:, None], starts.shape)
        win = jax.vmap(lambda f, s: jax.lax.dynamic_slice(rotated, (f, s), (1, cols)))(facing.ravel(), starts.ravel())
        return jnp.where(state.on_map[:, None], win.reshape(self.num_agents, rows * cols), 0)

    def _decode_obs(self, codes, state: GridState):
        """Window codes -> (n, rows, cols, C) uint8 symbolic channels (or RGB views)."""
        one = jnp.uint8(1)
        chans = [
            codes & one,
            (codes >> 1) & one,
            jnp.zeros_like(codes).at[:, self._center].set(state.on_map.astype(jnp.uint8)),
            ((codes >> 2) & one).at[:, self._center].set(0),
        ]
        if self.obs_facing:
            rel = (((codes >> FACING_SHIFT) & 3).astype(jnp.int32) - state.facing[:, None]) % 4
            other = chans[3]
            chans += [other * (rel == k).astype(jnp.uint8) for k in range(4)]
        obs = jnp.stack(chans, -1).reshape(self.num_agents, *self.view_shape, len(chans))
        if self.obs_mode == "rgb":
            from sedjax.render import render_view

            obs = jax.vmap(render_view)(obs)
        return obs

    def _collected_in_view(self, codes, ate):
        """Apples collected this step by the *other* agents inside each agent's window."""
        # float32 sums are exact here (at most V ones) and much faster than int32 ones on CPU.
        ate_in_window = ((codes >> ATE_SHIFT) & 1).sum(-1, dtype=jnp.float32)
        return ate_in_window - (codes[:, self._center] >> ATE_SHIFT & 1).astype(jnp.float32)

    def get_obs(self, state: GridState):
        return self._decode_obs(self._window_codes(state, jnp.zeros((self.num_agents,), bool)), state)


def check_grid_params(regrowth_probs, max_steps, zap_timeout, zap_cooldown):
    """Host-side validation; raises ``ValueError`` naming the field."""
    p = np.asarray(regrowth_probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"env.regrowth_probs must be a non-empty list, got {regrowth_probs!r}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"env.regrowth_probs must lie in [0, 1], got {list(p)}")
    if int(max_steps) < 1:
        raise ValueError(f"env.max_steps must be >= 1, got {max_steps}")
    if int(zap_timeout) < 1:
        raise ValueError(f"env.zap_timeout must be >= 1, got {zap_timeout}")
    if int(zap_cooldown) < 0:
        raise ValueError(f"env.zap_cooldown must be >= 0, got {zap_cooldown}")
