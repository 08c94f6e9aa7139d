"""The bare POMG (SPEC §2): ``n`` agents harvesting apples on a grid. No taxes, no votes."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sedjax import spaces
from sedjax.apple_grid import dynamics, observation
from sedjax.apple_grid.layout import build_layout
from sedjax.apple_grid.types import DEFAULT_REGROWTH_PROBS, GridParams, GridState, GridStatic, check_grid_params, make_grid_params
from sedjax.environment import Environment, is_concrete
from sedjax.maps import GridMap, default_map


class AppleGrid(Environment):
    """The apple-picking commons as a gymnax-style multi-agent env.

    Static settings (constructor, see :class:`GridStatic`): the map, ``num_agents``, the view
    window, ``zap`` and its beam, the regrowth radius, ``max_steps``, observation options. Traced
    settings: :class:`GridParams` (``regrowth_probs``, ``zap_timeout``, ``zap_cooldown``; the
    constructor's values are the ``default_params``).
    ``action``: int array ``(num_agents,)``; ``reward``: apples each agent collected this step.
    """

    name = "apple_grid"

    def __init__(self, grid_map: GridMap | None = None, num_agents: int = 7, view_ahead: int = 9,
                 view_behind: int = 1, view_side: int = 5, zap: bool = False, zap_range: int = 3,
                 zap_width: int = 1, regrowth_radius: float = 2.0, regrowth_probs=DEFAULT_REGROWTH_PROBS,
                 max_steps: int = 1000, zap_timeout: int = 4, zap_cooldown: int = 2, obs_facing: bool = False,
                 obs_mode: str = "symbolic"):
        self.static = GridStatic(num_agents=num_agents, view_ahead=view_ahead, view_behind=view_behind,
                                 view_side=view_side, zap=zap, zap_range=zap_range, zap_width=zap_width,
                                 regrowth_radius=regrowth_radius, max_steps=max_steps, obs_facing=obs_facing,
                                 obs_mode=obs_mode)
        self._params = make_grid_params(regrowth_probs, zap_timeout, zap_cooldown)
        self.map = grid_map if grid_map is not None else default_map()
        self.layout = build_layout(self.map, self.static)

    # Static facts, for callers (the trainer, the renderer, the benchmarks).
    num_agents = property(lambda self: self.static.num_agents)
    zap = property(lambda self: self.static.zap)
    max_steps = property(lambda self: self.static.max_steps)
    num_actions = property(lambda self: self.layout.num_actions)
    num_channels = property(lambda self: self.layout.num_channels)
    num_apple_cells = property(lambda self: self.layout.num_apple_cells)
    num_cells = property(lambda self: self.layout.num_cells)
    view_shape = property(lambda self: self.layout.view_shape)
    obs_mode = property(lambda self: self.static.obs_mode)

    @property
    def default_params(self) -> GridParams:
        return self._params

    def check_params(self, params: GridParams) -> None:
        if is_concrete(params):
            check_grid_params(params.regrowth_probs, params.zap_timeout, params.zap_cooldown)

    def action_space(self, params: GridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions, shape=(self.num_agents,))

    def observation_space(self, params: GridParams | None = None) -> spaces.Box:
        h, w = self.view_shape
        if self.obs_mode == "rgb":
            from sedjax.render import CELL_PX

            return spaces.Box(0, 255, (self.num_agents, h * CELL_PX, w * CELL_PX, 3), jnp.uint8)
        return spaces.Box(0, 1, (self.num_agents, h, w, self.num_channels), jnp.uint8)

    def reset_env(self, key: jax.Array, params: GridParams):
        """Agents 0..q-1 on the Q cells, the others on distinct random P cells, random facings; all
        apples alive."""
        L, n = self.layout, self.num_agents
        k_perm, k_face = jax.random.split(key)
        perm = jax.random.permutation(k_perm, L.spawn_rc.shape[0])[: n - L.num_q]
        state = GridState(
            pos=jnp.concatenate([L.q_rc, L.spawn_rc[perm]], 0).astype(jnp.int32),
            facing=jax.random.randint(k_face, (n,), 0, 4, jnp.int32),
            apples=jnp.ones((L.num_apple_cells,), bool),
            on_map=jnp.ones((n,), bool),
            removed_for=jnp.zeros((n,), jnp.int32),
            cooldown=jnp.zeros((n,), jnp.int32),
            t=jnp.zeros((), jnp.int32),
        )
        return self.get_obs(state), state

    def step_env(self, key: jax.Array, state: GridState, action: jax.Array, params: GridParams | None = None):
        """One joint action without auto-reset (``done`` is the time limit: a truncation)."""
        params = self.default_params if params is None else params
        state, ate = dynamics.transition(key, state, action, self.layout, params)
        obs, codes = observation.observe(state, self.layout, ate)
        apples = ate.astype(jnp.float32)
        info = {
            "apples_collected": apples,
            "apples_alive": state.apples.sum(),
            "collected_in_view": observation.collected_in_view(codes, self.layout),
        }
        return obs, state, apples, state.t >= self.max_steps, info

    def get_obs(self, state: GridState):
        return observation.observe(state, self.layout)[0]

    def world_codes(self, state: GridState, ate=None) -> jax.Array:
        return observation.world_codes(state, self.layout, ate)
