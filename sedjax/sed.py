"""The full SED game (SPEC §1-5) as one environment: vote -> Principal sets tax rates -> agents play.

Time structure (``t`` = steps since the episode began):

* a **tax period** is ``period_len`` steps. On its first step (``t % period_len == 0``) the
  Principal's action sets the rates (optionally within the divergence bound). On its last step the
  period's raw apples ``w`` are taxed by brackets, the pool is split equally, and the net transfer
  ``scale * (post_tax - w)`` reaches the agents' extrinsic reward as a lump sum; the Principal gets
  the objective ``O(W)`` of the period's outcomes as its reward on that step (0 on other steps).
* a **voting round** is ``periods_per_round`` periods. A vote on the agents' (truthful) reports of
  sigma picks the objective's parameter (eta, or p = ln(m) + 1) when a round starts; the world
  carries over from one round to the next.
* an **episode** is ``rounds_per_episode`` rounds; then the world resets (types are kept unless
  ``resample_types``). The episode end is a time limit (truncation).

Action: ``{"agents": int (n,), "principal": int (B,) rate levels 0..10}`` (or float rates in
[0, 1] with ``continuous_rates=True``). The Principal's action is read only on a period's first
step; pass anything valid on the others.
Observation: ``{"agents": (n, 11, 11, C) uint8, "principal": (d,) float32}``.
Reward: ``{"agents": (n,), "principal": ()}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from sedjax import spaces, tax, voting, welfare
from sedjax.autoreset import make_maybe_reset
from sedjax.grid import AppleGrid, GridParams, GridState
from sedjax.population import is_beta, sample_types

OBJECTIVES = ("eta", "pmean")
WELFARE_OF = ("raw", "post_tax")
SOCIAL_SCOPES = ("view", "all")
INCOME_SCALE = 10.0  # period incomes are divided by this in the Principal's observation


@struct.dataclass
class SEDParams:
    """Traced parameters of the full game (change them without recompiling)."""

    grid: GridParams
    thresholds: jax.Array  # (B,) bracket lower bounds, starting at 0
    transfer_scale: jax.Array  # curriculum factor on the delivered transfer (1 = full tax)
    max_rate_change: jax.Array  # divergence bound |phi - phi_prev|_inf <= delta (inf: off)
    period_len: jax.Array
    periods_per_round: jax.Array
    rounds_per_episode: jax.Array
    sigma_dist: jax.Array  # [low, high, a, b], see sedjax.population
    beta_dist: jax.Array
    resample_types: jax.Array  # bool: draw new types at every episode reset
    objective_param: jax.Array  # fixed eta or p overriding the vote; NaN: use the vote


@struct.dataclass
class SEDState:
    grid: GridState
    t: jax.Array  # steps since the episode began
    rates: jax.Array  # (B,) current tax rates
    period_raw: jax.Array  # (n,) raw apples collected so far in this period
    last_raw: jax.Array  # (n,) raw apples of the last completed period
    last_income: jax.Array  # (n,) post-tax income of the last completed period
    voted: jax.Array  # the voted eta (objective 'eta') or p (objective 'pmean')
    sigma: jax.Array  # (n,) selfishness
    beta: jax.Array  # (n,) trust


class SED:
    """Static settings: the wrapped :class:`AppleGrid`, the objective family, who W is measured on,
    the vote mechanism, the social scope, discrete (11 levels) or continuous rates, the number of
    brackets. Traced ones: :class:`SEDParams`."""

    def __init__(
        self,
        grid: AppleGrid,
        thresholds=(0.0, 10.0, 20.0),
        objective: str = "eta",
        welfare_of: str = "raw",
        vote_mechanism: str = "mean",
        social_scope: str = "view",
        continuous_rates: bool = False,
        rate_levels: int = 11,
        period_len: int = 50,
        periods_per_round: int = 20,
        rounds_per_episode: int = 4,
        transfer_scale: float = 1.0,
        max_rate_change: float = float("inf"),
        sigma_dist=(0.0, 1.0, 1.0, 1.0),
        beta_dist=(0.0, 1.0, 1.0, 1.0),
        resample_types: bool = False,
        objective_param: float = float("nan"),
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective.kind must be one of {OBJECTIVES}, got {objective!r}")
        if welfare_of not in WELFARE_OF:
            raise ValueError(f"objective.welfare_of must be one of {WELFARE_OF}, got {welfare_of!r}")
        if vote_mechanism not in voting.MECHANISMS:
            raise ValueError(f"voting.mechanism must be one of {voting.MECHANISMS}, got {vote_mechanism!r}")
        if social_scope not in SOCIAL_SCOPES:
            raise ValueError(f"types.social_scope must be one of {SOCIAL_SCOPES}, got {social_scope!r}")
        if int(rate_levels) < 2:
            raise ValueError(f"tax.rate_levels must be >= 2, got {rate_levels}")
        for name, v in (("tax.period_len", period_len), ("voting.periods_per_round", periods_per_round),
                        ("env.rounds_per_episode", rounds_per_episode)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if not (0.0 <= float(transfer_scale) <= 1.0):
            raise ValueError(f"tax.transfer_scale must lie in [0, 1], got {transfer_scale}")
        if not float(max_rate_change) >= 0.0:
            raise ValueError(f"tax.max_rate_change must be >= 0 (inf: no bound), got {max_rate_change}")
        tax.check_brackets(thresholds)
        self.grid = grid
        self.num_agents = grid.num_agents
        self.num_brackets = len(thresholds)
        self.objective, self.welfare_of = objective, welfare_of
        self.vote_mechanism, self.social_scope = vote_mechanism, social_scope
        self.continuous_rates, self.rate_levels = bool(continuous_rates), int(rate_levels)
        self._defaults = dict(
            thresholds=thresholds, transfer_scale=transfer_scale, max_rate_change=max_rate_change,
            period_len=period_len, periods_per_round=periods_per_round, rounds_per_episode=rounds_per_episode,
            sigma_dist=sigma_dist, beta_dist=beta_dist, resample_types=resample_types,
            objective_param=objective_param,
        )
        # The time structure is static (it fixes scan lengths in the trainer): derived here, once.
        self.period_len = int(period_len)
        self.periods_per_round = int(periods_per_round)
        self.rounds_per_episode = int(rounds_per_episode)
        self.round_len = self.period_len * self.periods_per_round
        self.episode_len = self.round_len * self.rounds_per_episode
        self.principal_obs_dim = 2 * self.num_agents + self.num_brackets + 4
        # Static: which type distributions need the (compile-heavy) Beta sampler.
        self._beta_sampler = (is_beta(sigma_dist), is_beta(beta_dist))
        self._maybe_reset = make_maybe_reset(self._reset_keep_types)
        # Re-vote only on steps where a voting round starts. Under vmap a plain jnp.where would
        # vote on every step (a batched select evaluates both sides; the O(n^2) weighted median
        # then cost ~70% of a step at 7 agents); make_maybe_reset turns the batch of flags into one
        # scalar cond on any(new_round), so the vote costs something only at round starts.
        self._maybe_revote = make_maybe_reset(lambda _key, params, old: (old[0], self._vote(old[0], params)))

    @property
    def name(self) -> str:
        return "sed"

    @property
    def default_params(self) -> SEDParams:
        d = self._defaults
        f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
        return SEDParams(
            grid=self.grid.default_params,
            thresholds=f32(d["thresholds"]),
            transfer_scale=f32(d["transfer_scale"]),
            max_rate_change=f32(d["max_rate_change"]),
            period_len=i32(d["period_len"]),
            periods_per_round=i32(d["periods_per_round"]),
            rounds_per_episode=i32(d["rounds_per_episode"]),
            sigma_dist=f32(d["sigma_dist"]),
            beta_dist=f32(d["beta_dist"]),
            resample_types=jnp.asarray(d["resample_types"], bool),
            objective_param=f32(d["objective_param"]),
        )

    def reset_where(self, done, key, obs, state, params: SEDParams):
        """``(obs, state)`` of a new episode where ``done`` (types kept unless resampled), the given
        pair elsewhere. Under ``vmap`` it costs a reset only on steps where some env is done."""
        return self._maybe_reset(done, key, obs, state, params)

    # ------------------------------------------------------------------ spaces
    def principal_action_space(self, params=None):
        if self.continuous_rates:
            return spaces.Box(0.0, 1.0, (self.num_brackets,), jnp.float32)
        return spaces.Discrete(self.rate_levels, shape=(self.num_brackets,))

    def action_space(self, params=None) -> spaces.Dict:
        return spaces.Dict({"agents": self.grid.action_space(), "principal": self.principal_action_space()})

    def observation_space(self, params=None) -> spaces.Dict:
        return spaces.Dict({
            "agents": self.grid.observation_space(),
            "principal": spaces.Box(-jnp.inf, jnp.inf, (self.principal_obs_dim,), jnp.float32),
        })

    def rates_from_action(self, principal_action) -> jax.Array:
        """Integer actions are rate levels (0..rate_levels-1); float actions are rates in [0, 1]
        (continuous rates, or off-grid fixed schedules such as [0.1, 0.25, 0.37])."""
        principal_action = jnp.asarray(principal_action)
        if self.continuous_rates or jnp.issubdtype(principal_action.dtype, jnp.floating):
            return jnp.clip(principal_action.astype(jnp.float32), 0.0, 1.0)
        return tax.levels_to_rates(principal_action, self.rate_levels)

    # ------------------------------------------------------------------ reset / step
    def _vote(self, sigma, params: SEDParams):
        m = voting.vote(sigma, self.vote_mechanism)
        voted = m if self.objective == "eta" else voting.vote_to_p(m)
        # A configured objective parameter (objective.eta / objective.p) overrides the vote.
        return jnp.where(jnp.isnan(params.objective_param), voted, params.objective_param)

    def _new_episode(self, key, params: SEDParams, sigma, beta):
        grid_obs, gstate = self.grid.reset(key, params.grid)
        n, B = self.num_agents, self.num_brackets
        zeros = jnp.zeros((n,), jnp.float32)
        state = SEDState(
            grid=gstate, t=jnp.zeros((), jnp.int32), rates=jnp.zeros((B,), jnp.float32),
            period_raw=zeros, last_raw=zeros, last_income=zeros, voted=self._vote(sigma, params),
            sigma=sigma, beta=beta,
        )
        return {"agents": grid_obs, "principal": self.principal_obs(state, params)}, state

    def _sample_types(self, key, params):
        k_s, k_b = jax.random.split(key)
        n = self.num_agents
        return (sample_types(k_s, params.sigma_dist, n, self._beta_sampler[0]),
                sample_types(k_b, params.beta_dist, n, self._beta_sampler[1]))

    def reset(self, key: jax.Array, params: SEDParams | None = None):
        params = self.default_params if params is None else params
        k_types, k_world = jax.random.split(key)
        sigma, beta = self._sample_types(k_types, params)
        return self._new_episode(k_world, params, sigma, beta)

    def _reset_keep_types(self, key, params, old):
        _, old_state = old
        k_types, k_world = jax.random.split(key)
        sigma, beta = self._sample_types(k_types, params)
        sigma = jnp.where(params.resample_types, sigma, old_state.sigma)
        beta = jnp.where(params.resample_types, beta, old_state.beta)
        return self._new_episode(k_world, params, sigma, beta)

    def step(self, key, state: SEDState, action, params: SEDParams | None = None):
        """One step with auto-reset at the episode's time limit (reward/info are the finished step's)."""
        params = self.default_params if params is None else params
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, done, info = self.step_env(k_step, state, action, params)
        obs, state = self._maybe_reset(done, k_reset, obs, state, params)
        return obs, state, reward, done, info

    def step_env(self, key, state: SEDState, action, params: SEDParams | None = None):
        """One step without auto-reset; ``done`` marks the episode's time limit (a truncation)."""
        params = self.default_params if params is None else params
        # Principal: its action takes effect on a tax period's first step.
        period_start = state.t % params.period_len == 0
        proposed = tax.apply_divergence_bound(state.rates, self.rates_from_action(action["principal"]),
                                              params.max_rate_change)
        rates = jnp.where(period_start, proposed, state.rates)
        # The world.
        gstate, ate, codes = self.grid.transition(key, state.grid, action["agents"], params.grid)
        a = ate.astype(jnp.float32)
        period_raw = state.period_raw + a
        t = state.t + 1
        # Tax settlement at the period's end.
        period_end = t % params.period_len == 0
        post_tax = tax.redistribute(period_raw, rates, params.thresholds)
        income = period_raw + params.transfer_scale * (post_tax - period_raw)
        extrinsic = a + jnp.where(period_end, income - period_raw, 0.0)
        W = period_raw if self.welfare_of == "raw" else income
        obj = welfare.objective(W, self.objective, state.voted)
        # Agents' rewards (SPEC §4): r = beta * e + (1 - beta) * (sigma * a + (1 - sigma) * S).
        if self.social_scope == "view":
            S = self.grid._collected_in_view(codes, ate)
        else:
            S = a.sum() - a
        r_int = state.sigma * a + (1.0 - state.sigma) * S
        r_agents = state.beta * extrinsic + (1.0 - state.beta) * r_int
        # A new voting round starts: vote on the agents' current reports (their types).
        round_len = params.period_len * params.periods_per_round
        new_round = t % round_len == 0
        _, voted = self._maybe_revote(new_round, key, state.sigma, state.voted, params)
        done = t >= self.episode_len
        new_state = SEDState(
            grid=gstate, t=t, rates=rates,
            period_raw=jnp.where(period_end, 0.0, period_raw),
            last_raw=jnp.where(period_end, period_raw, state.last_raw),
            last_income=jnp.where(period_end, income, state.last_income),
            voted=voted,
            sigma=state.sigma, beta=state.beta,
        )
        obs = {"agents": self.grid._decode_obs(codes, gstate), "principal": self.principal_obs(new_state, params)}
        reward = {"agents": r_agents, "principal": jnp.where(period_end, obj, 0.0)}
        info = {
            "apples_collected": a,  # raw apples this step
            "period_raw": period_raw,  # raw apples so far this period (complete at period_end)
            "income": income,  # post-tax income of the period (meaningful at period_end)
            "extrinsic": extrinsic,
            "rates": rates,
            "voted": state.voted,
            "objective": obj,  # the period objective (meaningful at period_end)
            "apples_alive": gstate.apples.sum(),
            "period_end": period_end,
            "round_end": new_round,
        }
        return obs, new_state, reward, done, info

    def principal_obs(self, state: SEDState, params: SEDParams) -> jax.Array:
        """Compact summary: last period's raw and post-tax income per agent, apples alive, current
        rates, the voted parameter, position in the round and in the episode."""
        round_len = params.period_len * params.periods_per_round
        voted = state.voted if self.objective == "eta" else jnp.clip(state.voted, -10.0, 1.0) / 10.0
        return jnp.concatenate([
            state.last_raw / INCOME_SCALE,
            state.last_income / INCOME_SCALE,
            jnp.stack([
                state.grid.apples.mean() if self.grid.num_apple_cells else jnp.float32(0),
            ]),
            state.rates,
            jnp.stack([
                voted,
                (state.t % round_len) / round_len,
                state.t / self.episode_len,
            ]).astype(jnp.float32),
        ]).astype(jnp.float32)
