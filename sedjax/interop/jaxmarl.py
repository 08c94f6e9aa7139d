"""The full game (:class:`sedjax.SED`) as a JaxMARL ``MultiAgentEnv``.

:class:`SEDMultiAgentEnv` wraps one ``SED`` env (and one ``SEDParams``) so that code written for
JaxMARL environments, e.g. its IPPO/MAPPO baselines and ``jaxmarl.wrappers.baselines.LogWrapper``,
runs on sedjax unchanged::

    from sedjax.interop.jaxmarl import SEDMultiAgentEnv

    env = SEDMultiAgentEnv.make(num_agents=7, rates=[0.0, 0.2, 0.4])  # sedjax.make("sed", ...) keywords
    obs, state = env.reset(key)                      # obs: {"agent_0": (D,) float32, ...}
    obs, state, reward, done, info = env.step(key, state, {a: 0 for a in env.agents})
    done["__all__"]                                   # the episode's time limit; the env auto-resets

**Agents.** ``agent_0 ... agent_{n-1}`` are the followers (the apple pickers), in the order of the
wrapped env's agent axis: ``reward["agent_i"] == SED reward["agents"][i]``. The Principal is either

* ``principal="fixed"`` (default): not an agent. The adapter plays the fixed schedule ``rates``
  (one rate in [0, 1] per bracket, default ``0``: no tax) as the Principal's action on every tax
  period's first step: the followers' game under a given mechanism, or
* ``principal="agent"``: an extra agent ``"principal"`` (last in ``env.agents``), observing the
  wrapped env's principal observation ``(2n + B + 4,)`` and acting with ``MultiDiscrete([L] * B)``
  rate levels (or ``Box(0, 1, (B,))`` rates with ``continuous=True``). As in ``SED``, its action
  takes effect only on a tax period's first step (the step after one whose info has
  ``period_end``, and an episode's first step); on other steps it is ignored. Its reward is the
  objective of the period, on a period's last step (0 elsewhere).

**Observations** (``obs="flat"``, default: usable by MLP baselines such as ``ippo_ff_*`` unchanged):
each follower gets one float32 vector ``(H * W * C + E,)``: its egocentric view
(``SED`` observation ``"agents"[i]``, ``(H, W, C)``, flattened row-major; ``obs_mode="rgb"`` views
are divided by 255) followed by ``E`` extra features:

* ``observe_mechanism=True`` (default): :meth:`sedjax.SED.mechanism_obs` ``[i]``, ``2B + 3``
  floats: the rates in effect at the step about to be played, thresholds / 10, the position in
  the tax period and in the voting round, the agent's raw apples so far this period / 10. With the
  fixed schedule the followers see the period's rates from its first step on (the Principal moves
  first, as in sedjax's trainer); with ``principal="agent"`` the Principal's action is simultaneous
  with the followers', so on a period's first step they see the rates in effect before it (the
  previous period's) and the new rates from the period's second step on.
* ``observe_types=True`` (default off): the agent's own ``(sigma, beta)``.

``obs="image"`` (for CNN baselines, e.g. ``ippo_cnn_overcooked``): float32 ``(H, W, C + E)``, the
view with each extra feature broadcast as one constant channel. The Principal's observation is
always the ``SED`` principal vector. ``world_state_in_obs=True`` adds ``obs["world_state"]``
(see :meth:`SEDMultiAgentEnv.world_state`), as SMAX does for MAPPO's centralised critic.

**Dones** are the episode's time limit (``SED.episode_len`` steps; a truncation, reported as done,
as JaxMARL's baselines expect): ``done[a]`` for every agent and ``done["__all__"]``, all equal.
:meth:`SEDMultiAgentEnv.step` auto-resets there (``obs``/``state`` are the next episode's,
``reward``/``info`` the finished step's) with ``SED.reset_keeping``: the agents' types carry over
unless ``resample_on_reset``, exactly as ``SED.step`` does (same keys: ``step(key)`` of the
adapter and ``SED.step(key)`` give the same state). ``reset_state=`` resets to a given state
instead, as in JaxMARL.

**Info** (``info="per_agent"``, default): every leaf has shape ``(num_agents,)`` so that JaxMARL's
baselines can ``info.reshape(NUM_ACTORS)``: per-follower ``apples_collected``, ``period_raw``,
``income``, ``extrinsic``; broadcast ``apples_alive``, ``voted``, ``objective``,
``principal_reward``, ``period_end``, ``round_end`` and ``rate_0 ... rate_{B-1}`` (the rates this
step was taxed at). With a ``"principal"`` agent its entry of per-follower leaves is 0.
``info="raw"``: the wrapped env's info dict unchanged.

Everything is pure: ``reset``/``step`` are jitted (like JaxMARL's envs) and ``vmap``-able over keys.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

try:
    from jaxmarl.environments import spaces as jm_spaces
    from jaxmarl.environments.multi_agent_env import MultiAgentEnv
except ImportError as e:  # pragma: no cover - exercised by a test that hides jaxmarl
    raise ImportError(
        "sedjax.interop.jaxmarl needs JaxMARL, an optional dependency: pip install 'sedjax[jaxmarl]'"
    ) from e

from sedjax import tax
from sedjax.environment import is_concrete
from sedjax.sed import INCOME_SCALE, SED, SEDParams, SEDState

PRINCIPAL = "principal"
PRINCIPAL_MODES = ("fixed", "agent")
OBS_FORMATS = ("flat", "image")
INFO_MODES = ("per_agent", "raw")
_PER_FOLLOWER_INFO = ("apples_collected", "period_raw", "income", "extrinsic")
_SHARED_INFO = ("apples_alive", "voted", "objective", "period_end", "round_end")


def _choice(value, field, options):
    if value not in options:
        raise ValueError(f"{field} must be one of {options}, got {value!r}")
    return value


def _select(pred, a, b):
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


class SEDMultiAgentEnv(MultiAgentEnv):
    """``SED`` as a JaxMARL ``MultiAgentEnv`` (see the module docstring for the formats).

    Args:
      env: the wrapped :class:`sedjax.SED`.
      params: its ``SEDParams`` (concrete, one env's; default ``env.default_params``). They are
        fixed for this adapter (JaxMARL's API has no params argument).
      principal: ``"fixed"`` (the schedule ``rates``) or ``"agent"`` (an extra agent ``"principal"``).
      rates: the fixed Principal's rates, one in [0, 1] per bracket (default: all 0, no tax).
      obs: ``"flat"`` (float32 vectors) or ``"image"`` (float32 ``(H, W, C + E)``).
      observe_mechanism / observe_types: the followers' extra features.
      world_state_in_obs: add ``obs["world_state"]`` (MAPPO's centralised critic).
      info: ``"per_agent"`` (every leaf ``(num_agents,)``) or ``"raw"`` (the ``SED`` info).
    """

    def __init__(self, env: SED, params: SEDParams | None = None, *, principal: str = "fixed", rates=None,
                 obs: str = "flat", observe_mechanism: bool = True, observe_types: bool = False,
                 world_state_in_obs: bool = False, info: str = "per_agent"):
        if not isinstance(env, SED):
            raise TypeError(f"SEDMultiAgentEnv wraps a sedjax.SED (sedjax.make('sed', ...)), got {type(env).__name__}")
        self.principal_mode = _choice(principal, "principal", PRINCIPAL_MODES)
        self.obs_format = _choice(obs, "obs", OBS_FORMATS)
        self.info_mode = _choice(info, "info", INFO_MODES)
        self.observe_mechanism, self.observe_types = bool(observe_mechanism), bool(observe_types)
        self.world_state_in_obs = bool(world_state_in_obs)
        params = env.default_params if params is None else params
        if not is_concrete(params):
            raise ValueError("params must be concrete arrays (the adapter holds one env's params), not traced ones")
        if np.ndim(params.thresholds) != 1:
            raise ValueError(f"params must be one env's (thresholds of shape (B,)), got a batch of shape "
                             f"{np.shape(params.thresholds)}")
        env.check_params(params)
        self.env, self.params = env, params

        n, B, L = env.num_agents, env.num_brackets, env.rate_levels
        super().__init__(num_agents=n + (principal == "agent"))
        self.followers = [f"agent_{i}" for i in range(n)]
        self.agents = self.followers + ([PRINCIPAL] if principal == "agent" else [])
        self.num_followers, self.num_brackets = n, B

        if principal == "agent":
            if rates is not None:
                raise ValueError("rates is the fixed Principal's schedule; with principal='agent' the "
                                 "'principal' agent's actions set the rates")
            self.rates = None
        else:
            _, r = tax.check_brackets(np.asarray(params.thresholds), np.zeros(B) if rates is None else rates,
                                      rates_field="rates")
            if r.shape != (B,):
                raise ValueError(f"rates must have one entry per bracket ({B}), got shape {r.shape}")
            self.rates = jnp.asarray(r, jnp.float32)

        # Shapes and bounds of the followers' observations.
        gspace = env.grid.observation_space()
        self.view_shape = tuple(gspace.shape[1:])  # (H, W, C)
        self._view_scale = 1.0 / 255.0 if env.grid.obs_mode == "rgb" else 1.0
        P = env.period_len
        lo, hi = [], []
        if self.observe_mechanism:
            th = np.asarray(params.thresholds, np.float32) / INCOME_SCALE
            lo += [0.0] * (2 * B + 3)
            hi += [1.0] * B + list(th) + [1.0, 1.0, P / INCOME_SCALE]
        if self.observe_types:
            lo += [0.0, 0.0]
            hi += [1.0, 1.0]
        self.num_extra_features = len(lo)
        H, W, C = self.view_shape
        V = H * W * C
        if self.obs_format == "flat":
            f_lo = np.concatenate([np.zeros(V), lo]).astype(np.float32)
            f_hi = np.concatenate([np.ones(V), hi]).astype(np.float32)
        else:
            f_lo = np.concatenate([np.zeros((H, W, C)), np.broadcast_to(np.float32(lo), (H, W, len(lo)))], -1)
            f_hi = np.concatenate([np.ones((H, W, C)), np.broadcast_to(np.float32(hi), (H, W, len(hi)))], -1)
            f_lo, f_hi = f_lo.astype(np.float32), f_hi.astype(np.float32)
        follower_obs = jm_spaces.Box(jnp.asarray(f_lo), jnp.asarray(f_hi), f_lo.shape, jnp.float32)
        follower_act = jm_spaces.Discrete(env.grid.num_actions)
        self.observation_spaces = {a: follower_obs for a in self.followers}
        self.action_spaces = {a: follower_act for a in self.followers}
        if principal == "agent":
            self.observation_spaces[PRINCIPAL] = self._principal_obs_space()
            self.action_spaces[PRINCIPAL] = (jm_spaces.Box(0.0, 1.0, (B,), jnp.float32) if env.continuous_rates
                                             else jm_spaces.MultiDiscrete([L] * B))
        # The centralised critic's input: every follower's flat view + mechanism features, the
        # Principal's observation and the types.
        M = env.mechanism_obs_dim
        self.state_size = n * (V + M) + env.principal_obs_dim + 2 * n

    # ------------------------------------------------------------------ construction
    @classmethod
    def make(cls, *, principal: str = "fixed", rates=None, obs: str = "flat", observe_mechanism: bool = True,
             observe_types: bool = False, world_state_in_obs: bool = False, info: str = "per_agent",
             **sed_kwargs: Any) -> "SEDMultiAgentEnv":
        """The adapter over ``sedjax.make("sed", **sed_kwargs)`` (the config's leaf names:
        ``num_agents``, ``map``, ``period_len``, ``thresholds``, ...) with its default params."""
        import sedjax

        return cls(sedjax.make("sed", **sed_kwargs), principal=principal, rates=rates, obs=obs,
                   observe_mechanism=observe_mechanism, observe_types=observe_types,
                   world_state_in_obs=world_state_in_obs, info=info)

    @classmethod
    def from_config(cls, cfg, **kwargs: Any) -> "SEDMultiAgentEnv":
        """The adapter over the game of a sedjax config (:func:`sedjax.envs.from_config`)."""
        from sedjax.envs import from_config

        env, params = from_config(cfg)
        return cls(env, params, **kwargs)

    def _principal_obs_space(self):
        env = self.env
        n, B, P = env.num_agents, env.num_brackets, env.period_len
        lo = np.zeros(env.principal_obs_dim, np.float32)
        hi = np.ones(env.principal_obs_dim, np.float32)
        hi[:n] = P / INCOME_SCALE  # last period's raw apples
        hi[n:2 * n] = (n + 1) * P / INCOME_SCALE  # its post-tax incomes (at most the period's total)
        if env.objective == "pmean":
            lo[2 * n + 1 + B] = -1.0  # clip(p, -10, 1) / 10
        return jm_spaces.Box(jnp.asarray(lo), jnp.asarray(hi), lo.shape, jnp.float32)

    # ------------------------------------------------------------------ the JaxMARL API
    @property
    def name(self) -> str:
        return "SED"

    @property
    def agent_classes(self) -> dict:
        classes = {"followers": list(self.followers)}
        if self.principal_mode == "agent":
            classes["principal"] = [PRINCIPAL]
        return classes

    def observation_space(self, agent: str | None = None):
        """The space of ``agent``'s observation (default: a follower's)."""
        return self.observation_spaces[self.agents[0] if agent is None else agent]

    def action_space(self, agent: str | None = None):
        """The space of ``agent``'s action (default: a follower's)."""
        return self.action_spaces[self.agents[0] if agent is None else agent]

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array):
        env_obs, state = self.env.reset_env(key, self.params)
        return self._observe(env_obs, state), state

    @partial(jax.jit, static_argnums=(0,))
    def step(self, key: jax.Array, state: SEDState, actions: dict, reset_state: SEDState | None = None):
        """One step with auto-reset at the episode's end (JaxMARL's ``step``); without
        ``reset_state`` the new episode is ``SED.reset_keeping``'s (types kept), else ``reset_state``."""
        key, key_reset = jax.random.split(key)
        env_obs, new_state, reward, done, info = self._env_step(key, state, actions)
        if reset_state is None:
            env_obs, new_state = self.env.reset_where(done, key_reset, env_obs, new_state, self.params)
        else:
            env_obs = _select(done, self._env_obs(reset_state), env_obs)
            new_state = _select(done, reset_state, new_state)
        return self._observe(env_obs, new_state), new_state, *self._outputs(reward, done, info)

    def step_env(self, key: jax.Array, state: SEDState, actions: dict):
        """One step without auto-reset (``SED.step_env`` with the adapter's action and formats)."""
        env_obs, new_state, reward, done, info = self._env_step(key, state, actions)
        return self._observe(env_obs, new_state), new_state, *self._outputs(reward, done, info)

    def get_obs(self, state: SEDState) -> dict:
        """The observations of a state (as returned by ``reset``/``step`` for it)."""
        return self._observe(self._env_obs(state), state)

    @partial(jax.jit, static_argnums=(0,))
    def get_avail_actions(self, state: SEDState) -> dict:
        """Every action is always available (a mask of ones per agent; the Principal's per bracket)."""
        out = {a: jnp.ones((self.action_spaces[a].n,), bool) for a in self.followers}
        if self.principal_mode == "agent":
            space = self.action_spaces[PRINCIPAL]
            shape = (self.num_brackets,) if isinstance(space, jm_spaces.Box) else (self.num_brackets, self.env.rate_levels)
            out[PRINCIPAL] = jnp.ones(shape, bool)
        return out

    def world_state(self, state: SEDState) -> jax.Array:
        """A global state for centralised critics (MAPPO), float32 ``(state_size,)``: for each
        follower its flat view and :meth:`sedjax.SED.mechanism_obs` row, then the Principal's
        observation, then the types (sigma ``(n,)``, beta ``(n,)``)."""
        return self._world_state(self._env_obs(state), state)

    get_world_state = world_state

    # ------------------------------------------------------------------ the pieces
    def env_action(self, actions: dict) -> dict:
        """The wrapped env's action for a JaxMARL action dict. A follower's action may be a scalar
        or of shape ``(1,)`` (what the baselines' ``unbatchify`` gives)."""
        a = jnp.stack([jnp.reshape(jnp.asarray(actions[k]), ()) for k in self.followers]).astype(jnp.int32)
        if self.principal_mode == "fixed":
            p = self.rates
        else:
            p = jnp.reshape(jnp.asarray(actions[PRINCIPAL]), (self.num_brackets,))
            p = p.astype(jnp.float32 if self.env.continuous_rates else jnp.int32)
        return {"agents": a, "principal": p}

    def _env_step(self, key, state, actions):
        return self.env.step_env(key, state, self.env_action(actions), self.params)

    def _env_obs(self, state: SEDState) -> dict:
        return {"agents": self.env.grid.get_obs(state.grid), "principal": self.env.principal_obs(state, self.params)}

    def _mechanism(self, state):
        # What the followers observe of the mechanism at the step about to be played: the fixed
        # schedule moves first; a Principal agent's move is simultaneous (the current rates).
        return self.env.mechanism_obs(state, self.rates, self.params)

    def _views(self, env_obs):
        return env_obs["agents"].astype(jnp.float32) * self._view_scale  # (n, H, W, C)

    def _observe(self, env_obs: dict, state: SEDState) -> dict:
        n = self.num_followers
        views = self._views(env_obs)
        extra = []
        if self.observe_mechanism:
            extra.append(self._mechanism(state))
        if self.observe_types:
            extra.append(jnp.stack([state.sigma, state.beta], -1))
        extra = jnp.concatenate(extra, -1) if extra else jnp.zeros((n, 0), jnp.float32)
        if self.obs_format == "flat":
            feats = jnp.concatenate([views.reshape(n, -1), extra], -1)
        else:
            H, W, _ = self.view_shape
            feats = jnp.concatenate([views, jnp.broadcast_to(extra[:, None, None, :], (n, H, W, extra.shape[-1]))], -1)
        obs = {a: feats[i] for i, a in enumerate(self.followers)}
        if self.principal_mode == "agent":
            obs[PRINCIPAL] = env_obs["principal"]
        if self.world_state_in_obs:
            obs["world_state"] = self._world_state(env_obs, state)
        return obs

    def _world_state(self, env_obs, state):
        n = self.num_followers
        per_agent = jnp.concatenate([self._views(env_obs).reshape(n, -1), self._mechanism(state)], -1)
        return jnp.concatenate([per_agent.ravel(), env_obs["principal"], state.sigma, state.beta]).astype(jnp.float32)

    def _outputs(self, reward, done, info):
        rewards = {a: reward["agents"][i] for i, a in enumerate(self.followers)}
        if self.principal_mode == "agent":
            rewards[PRINCIPAL] = reward["principal"]
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        return rewards, dones, (info if self.info_mode == "raw" else self._per_agent_info(reward, info))

    def _per_agent_info(self, reward, info) -> dict:
        N, n = self.num_agents, self.num_followers

        def follower(x):
            return jnp.pad(x, (0, N - n))

        def shared(x):
            return jnp.broadcast_to(x, (N,))

        out = {k: follower(info[k]) for k in _PER_FOLLOWER_INFO}
        out.update({k: shared(info[k]) for k in _SHARED_INFO})
        out["principal_reward"] = shared(reward["principal"])
        out.update({f"rate_{b}": shared(info["rates"][b]) for b in range(self.num_brackets)})
        return out
