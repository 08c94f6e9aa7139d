"""The full SED game (SPEC §1-5) as one environment: vote -> Principal sets tax rates -> agents play.

Time structure (static; ``t`` = the grid's clock, steps since the episode began):

* a **tax period** is ``period_len`` steps. On its first step (``t % period_len == 0``) the
  Principal's action sets the rates (optionally within the divergence bound). On its last step the
  period is settled (:func:`sedjax.tax.settle_period`): the period's raw apples ``w`` are taxed by
  brackets, the pool is split equally, and the net transfer reaches the agents' extrinsic reward as
  a lump sum; the Principal gets the objective ``O(W)`` of the period's outcomes as its reward on
  that step (0 on other steps).
* a **voting round** is ``periods_per_round`` periods. A vote on the agents' (truthful) reports of
  sigma picks the objective's parameter (eta, or p = ln(m) + 1) when a round starts; the world
  carries over from one round to the next.
* an **episode** is ``rounds_per_episode`` rounds; then the world resets (types are kept unless
  ``resample_on_reset``). The episode end is a time limit (truncation).

Action: ``{"agents": int (n,), "principal": int (B,) rate levels 0..10}`` (or float rates in
[0, 1] with ``continuous=True``). The Principal's action is read only on a period's first step;
pass anything valid on the others.
Observation: ``{"agents": (n, 11, 11, C) uint8, "principal": (d,) float32}``.
Reward: ``{"agents": (n,), "principal": ()}``.

Constructor keywords are the config's leaf names (``tax.period_len`` -> ``period_len``, ``voting.mechanism``
-> ``mechanism``, ``objective.kind`` -> ``kind``, ...): see :data:`FIELDS`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sedjax import _checks, population, spaces, tax, voting, welfare
from sedjax.apple_grid import AppleGrid, GridParams, GridState
from sedjax.environment import Environment, is_concrete
from sedjax.where import apply_where

OBJECTIVES = ("eta", "pmean")
REPORTS = ("truthful", "strategic")
PRINCIPAL_OBS = ("summary", "world")
WORLD_CHANNELS = ("wall", "apple", "agent")  # the Principal's map channels (``principal_obs="world"``)
WELFARE_OF = ("raw", "post_tax")
SOCIAL_SCOPES = ("view", "all")
INCOME_SCALE = 10.0  # period incomes are divided by this in the Principal's observation

# The config field of every SED keyword (for error messages; keywords are the leaf names).
FIELDS = {
    "thresholds": "tax.thresholds", "period_len": "tax.period_len", "rate_levels": "tax.rate_levels",
    "continuous": "tax.continuous", "max_rate_change": "tax.max_rate_change", "transfer_scale": "tax.transfer_scale",
    "sigma": "types.sigma", "beta": "types.beta", "social_scope": "types.social_scope",
    "resample_on_reset": "types.resample_on_reset",
    "kind": "objective.kind", "eta": "objective.eta", "p": "objective.p", "welfare_of": "objective.welfare_of",
    "mechanism": "voting.mechanism", "periods_per_round": "voting.periods_per_round",
    "reports": "voting.reports", "report_grid": "voting.report_grid", "report_iters": "voting.report_iters",
    "dynamic_trust": "types.dynamic_trust", "trust_rate": "types.trust_rate", "trust_ref": "types.trust_ref", "trust_scale": "types.trust_scale",
    "rounds_per_episode": "env.rounds_per_episode", "principal_obs": "env.principal_obs",
}


@dataclasses.dataclass(frozen=True)
class SEDStatic:
    """Static settings of the game (they select code or fix shapes and scan lengths)."""

    num_brackets: int = 3
    kind: str = "eta"  # objective family
    welfare_of: str = "raw"
    mechanism: str = "mean"
    social_scope: str = "view"
    continuous: bool = False
    rate_levels: int = 11
    period_len: int = 50
    periods_per_round: int = 20
    rounds_per_episode: int = 4
    sigma_family: str = "uniform"  # type-distribution families (select the sampler)
    beta_family: str = "uniform"
    reports: str = "truthful"  # what the agents report to the vote
    report_grid: int = 101  # strategic reports: levels of the best-response search in [0, 1]
    report_iters: int = 20  # strategic reports: at most this many best-response rounds per vote
    principal_obs: str = "summary"  # summary, or "world": the summary and the whole map
    dynamic_trust: bool = False  # trust moves at each vote (SEDParams.trust_*); off: no code for it

    def __post_init__(self):
        f = FIELDS
        _checks.choice(self.kind, f["kind"], OBJECTIVES)
        _checks.choice(self.welfare_of, f["welfare_of"], WELFARE_OF)
        _checks.choice(self.mechanism, f["mechanism"], voting.MECHANISMS)
        _checks.choice(self.social_scope, f["social_scope"], SOCIAL_SCOPES)
        object.__setattr__(self, "continuous", _checks.flag(self.continuous, f["continuous"]))
        object.__setattr__(self, "rate_levels", _checks.integer(self.rate_levels, f["rate_levels"], 2))
        for k in ("period_len", "periods_per_round", "rounds_per_episode"):
            object.__setattr__(self, k, _checks.integer(getattr(self, k), f[k], 1))
        _checks.choice(self.sigma_family, "types.sigma (family)", population.FAMILIES)
        _checks.choice(self.beta_family, "types.beta (family)", population.FAMILIES)
        _checks.choice(self.reports, f["reports"], REPORTS)
        object.__setattr__(self, "report_grid", _checks.integer(self.report_grid, f["report_grid"], 2))
        object.__setattr__(self, "report_iters", _checks.integer(self.report_iters, f["report_iters"], 1))
        _checks.choice(self.principal_obs, f["principal_obs"], PRINCIPAL_OBS)
        object.__setattr__(self, "dynamic_trust", _checks.flag(self.dynamic_trust, f["dynamic_trust"]))

    @property
    def round_len(self) -> int:
        return self.period_len * self.periods_per_round

    @property
    def episode_len(self) -> int:
        return self.round_len * self.rounds_per_episode


def _f32(v):
    return dataclasses.field(default_factory=lambda: jnp.asarray(v, jnp.float32))


@struct.dataclass
class SEDParams:
    """Traced parameters of the full game (change them without recompiling; ``thresholds`` has one
    entry per bracket, a static count)."""

    grid: GridParams = dataclasses.field(default_factory=GridParams)
    thresholds: jax.Array = _f32(tax.DEFAULT_THRESHOLDS)  # (B,) bracket lower bounds, starting at 0
    transfer_scale: jax.Array = _f32(1.0)  # curriculum factor on the delivered transfer (1 = full tax)
    max_rate_change: jax.Array = _f32(math.inf)  # divergence bound |phi - phi_prev|_inf <= delta (inf: off)
    sigma_dist: jax.Array = _f32((0.0, 1.0, 1.0, 1.0))  # [low, high, a, b] within the static family
    beta_dist: jax.Array = _f32((0.0, 1.0, 1.0, 1.0))
    resample_on_reset: jax.Array = dataclasses.field(default_factory=lambda: jnp.asarray(False))
    objective_param: jax.Array = _f32(math.nan)  # fixed eta or p overriding the vote; NaN: use the vote
    # Dynamic trust (SPEC §4's beta, moved at each vote by the Principal's last round):
    # beta <- clip(beta + trust_rate * (O_round - trust_ref) / trust_scale, 0, 1); trust_rate 0: off.
    trust_rate: jax.Array = _f32(0.0)
    trust_ref: jax.Array = _f32(0.0)
    trust_scale: jax.Array = _f32(1.0)


@struct.dataclass
class SEDState:
    grid: GridState  # the world; its ``t`` is the game's one clock
    rates: jax.Array  # (B,) current tax rates
    period_raw: jax.Array  # (n,) raw apples collected so far in this period
    last_raw: jax.Array  # (n,) raw apples of the last completed period
    last_income: jax.Array  # (n,) post-tax income of the last completed period
    voted: jax.Array  # the voted eta (objective 'eta') or p (objective 'pmean')
    sigma: jax.Array  # (n,) selfishness
    beta: jax.Array  # (n,) trust (moves at each vote with dynamic trust)
    beta_init: jax.Array  # (n,) the population's trust at the episode's start (episodes start from it)
    round_objective: jax.Array  # sum of this voting round's period objectives so far
    vote_iterations: jax.Array  # int32: best-response rounds of the last vote (0: truthful reports)

    @property
    def t(self) -> jax.Array:
        """Steps since the episode began (the grid's clock)."""
        return self.grid.t


def _objective_param(kind, eta, p) -> float:
    if kind == "eta":
        if p is not None:
            raise ValueError("objective.p is set but objective.kind is eta (set objective.eta, or kind=pmean)")
        return math.nan if eta is None else _checks.number(eta, FIELDS["eta"], 0.0, 1.0)
    if eta is not None:
        raise ValueError("objective.eta is set but objective.kind is pmean (set objective.p, or kind=eta)")
    return math.nan if p is None else _checks.number(p, FIELDS["p"], allow_inf=True)


class SED(Environment):
    """Static settings: the wrapped :class:`AppleGrid` and :class:`SEDStatic`; traced ones:
    :class:`SEDParams` (the constructor's values are the ``default_params``)."""

    name = "sed"

    def __init__(self, grid: AppleGrid, thresholds=tax.DEFAULT_THRESHOLDS, period_len: int = 50,
                 rate_levels: int = 11, continuous: bool = False, max_rate_change=None, transfer_scale: float = 1.0,
                 sigma="uniform", beta="uniform", social_scope: str = "view", resample_on_reset: bool = False,
                 kind: str = "eta", eta=None, p=None, welfare_of: str = "raw", mechanism: str = "mean",
                 periods_per_round: int = 20, rounds_per_episode: int = 4, reports: str = "truthful",
                 report_grid: int = 101, report_iters: int = 20, dynamic_trust=None, trust_rate: float = 0.0,
                 trust_ref: float = 0.0, trust_scale: float = 1.0, principal_obs: str = "summary"):
        thresholds, _ = tax.check_brackets(thresholds)
        sigma_dist = population.parse_type_dist(sigma, FIELDS["sigma"])
        beta_dist = population.parse_type_dist(beta, FIELDS["beta"])
        self.grid = grid
        self.static = SEDStatic(
            num_brackets=len(thresholds), kind=kind, welfare_of=welfare_of, mechanism=mechanism,
            social_scope=social_scope, continuous=continuous, rate_levels=rate_levels, period_len=period_len,
            periods_per_round=periods_per_round, rounds_per_episode=rounds_per_episode,
            sigma_family=population.family_of(sigma_dist), beta_family=population.family_of(beta_dist),
            reports=reports, report_grid=report_grid, report_iters=report_iters, principal_obs=principal_obs,
            # null: on exactly when the rate is nonzero (static: off compiles no trust code at all)
            dynamic_trust=(trust_rate != 0) if dynamic_trust is None else dynamic_trust)
        delta = math.inf if max_rate_change is None else _checks.number(
            max_rate_change, FIELDS["max_rate_change"], 0.0, math.inf, allow_inf=True)
        self._params = SEDParams(
            grid=grid.default_params,
            thresholds=jnp.asarray(thresholds, jnp.float32),
            transfer_scale=jnp.float32(_checks.number(transfer_scale, FIELDS["transfer_scale"], 0.0, 1.0)),
            max_rate_change=jnp.float32(delta),
            sigma_dist=jnp.asarray(sigma_dist), beta_dist=jnp.asarray(beta_dist),
            resample_on_reset=jnp.asarray(_checks.flag(resample_on_reset, FIELDS["resample_on_reset"])),
            objective_param=jnp.float32(_objective_param(kind, eta, p)),
            trust_rate=jnp.float32(_checks.number(trust_rate, FIELDS["trust_rate"])),
            trust_ref=jnp.float32(_checks.number(trust_ref, FIELDS["trust_ref"])),
            trust_scale=jnp.float32(_checks.number(trust_scale, FIELDS["trust_scale"], 0.0)),
        )
        if not self._params.trust_scale > 0:
            raise ValueError(f"types.trust_scale must be > 0, got {trust_scale}")
        self._check_trust_rate(self._params.trust_rate)
        # Re-vote only on steps where a voting round starts. Under vmap a plain jnp.where would
        # vote on every step (a batched select evaluates both sides; the O(n^2) weighted median
        # then cost ~70% of a step at 7 agents); apply_where turns the batch of flags into one
        # scalar cond on any(new_round), so the vote costs something only at round starts.
        self._revote_where = apply_where(lambda _key, params, old: (old[0], *self.vote_with_iterations(old[0], params)))

    # Static facts, for callers (the trainer, eval, benchmarks).
    num_agents = property(lambda self: self.grid.num_agents)
    num_brackets = property(lambda self: self.static.num_brackets)
    rate_levels = property(lambda self: self.static.rate_levels)
    continuous_rates = property(lambda self: self.static.continuous)
    period_len = property(lambda self: self.static.period_len)
    periods_per_round = property(lambda self: self.static.periods_per_round)
    rounds_per_episode = property(lambda self: self.static.rounds_per_episode)
    round_len = property(lambda self: self.static.round_len)
    episode_len = property(lambda self: self.static.episode_len)
    objective = property(lambda self: self.static.kind)
    welfare_of = property(lambda self: self.static.welfare_of)
    vote_mechanism = property(lambda self: self.static.mechanism)
    social_scope = property(lambda self: self.static.social_scope)

    reports = property(lambda self: self.static.reports)

    @property
    def summary_obs_dim(self) -> int:
        """Length of the Principal's compact summary (:meth:`principal_obs`)."""
        return 2 * self.num_agents + self.num_brackets + 4

    @property
    def voted_obs_index(self) -> int:
        """Where the voted parameter sits in the Principal's observation (:meth:`summary_obs`)."""
        return 2 * self.num_agents + 1 + self.num_brackets

    @property
    def world_shape(self) -> tuple[int, int, int] | None:
        """``(H, W, 3)`` of the map the Principal observes with ``principal_obs="world"``, else None."""
        if self.static.principal_obs != "world":
            return None
        return (self.grid.map.height, self.grid.map.width, len(WORLD_CHANNELS))

    @property
    def principal_obs_dim(self) -> int:
        shape = self.world_shape
        return self.summary_obs_dim + (0 if shape is None else math.prod(shape))

    @property
    def default_params(self) -> SEDParams:
        return self._params

    def check_params(self, params: SEDParams) -> None:
        """Host-side: concrete (possibly batched, e.g. a sweep's) params this env can honour, or a
        ``ValueError`` naming the field. Traced params are not checked here (check before ``jit``)."""
        if not is_concrete(params):
            return
        self.grid.check_params(params.grid)
        th = np.asarray(params.thresholds)
        if th.shape[-1:] != (self.num_brackets,):
            raise ValueError(f"tax.thresholds must have {self.num_brackets} entries (a static count), got shape {th.shape}")
        for row in th.reshape(-1, self.num_brackets):
            tax.check_brackets(row)
        population.check_type_dist(params.sigma_dist, self.static.sigma_family, FIELDS["sigma"])
        population.check_type_dist(params.beta_dist, self.static.beta_family, FIELDS["beta"])
        scale = np.asarray(params.transfer_scale)
        if np.any(~((scale >= 0) & (scale <= 1))):
            raise ValueError(f"tax.transfer_scale must lie in [0, 1], got {_checks.plain(scale)}")
        if np.any(~(np.asarray(params.max_rate_change) >= 0)):
            raise ValueError(f"tax.max_rate_change must be >= 0, got {_checks.plain(params.max_rate_change)}")
        if self.static.kind == "eta":
            op = np.asarray(params.objective_param)
            if np.any(~np.isnan(op) & ~((op >= 0) & (op <= 1))):
                raise ValueError(f"objective.eta must lie in [0, 1], got {_checks.plain(op)}")
        self._check_trust_rate(params.trust_rate)
        for name, ok in (("trust_rate", np.isfinite), ("trust_ref", np.isfinite),
                         ("trust_scale", lambda v: np.isfinite(v) & (v > 0))):
            v = np.asarray(getattr(params, name))
            if np.any(~ok(v)):
                raise ValueError(f"{FIELDS[name]} must be {'> 0 and ' if name == 'trust_scale' else ''}finite, "
                                 f"got {_checks.plain(v)}")

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

    # ------------------------------------------------------------------ the pieces
    def vote(self, sigma, params: SEDParams) -> jax.Array:
        """The objective's parameter for a voting round: the vote on the agents' reports, mapped to
        p for a power mean, unless ``objective_param`` fixes it."""
        return self.vote_with_iterations(sigma, params)[0]

    def reports_of(self, sigma):
        """What the agents report to the vote, and the best-response rounds it took (int32).

        ``truthful``: their selfishness σ (0 rounds). ``strategic``: each agent's ideal outcome is
        its own σ_i and it dislikes the distance to it (single-peaked, utility −|vote − σ_i|); the
        reports are iterated simultaneous best responses to the others' reports on a grid of
        ``report_grid`` levels, from truthful, until no report changes or ``report_iters`` rounds
        (:func:`sedjax.voting.strategic_reports`)."""
        if self.reports == "truthful":
            return sigma, jnp.zeros((), jnp.int32)
        r, iters, _ = voting.strategic_reports(sigma, self.vote_mechanism, self.static.report_grid,
                                               self.static.report_iters)
        return r, iters

    def vote_with_iterations(self, sigma, params: SEDParams):
        """``(voted parameter, best-response rounds of the reports)``: see :meth:`vote`."""
        reports, iters = self.reports_of(sigma)
        m = voting.vote(reports, self.vote_mechanism)
        voted = m if self.objective == "eta" else voting.vote_to_p(m)
        return jnp.where(jnp.isnan(params.objective_param), voted, params.objective_param), iters

    def _check_trust_rate(self, rate) -> None:
        if not self.static.dynamic_trust and np.any(np.asarray(rate) != 0):
            raise ValueError(f"types.trust_rate is {_checks.plain(np.asarray(rate))} but types.dynamic_trust is false "
                             "(a static setting: set types.dynamic_trust=true, e.g. to sweep types.trust_rate)")

    def episode_trust(self, state: SEDState, params: SEDParams) -> jax.Array:
        """The trust a new episode of the same population starts from: with dynamic trust the
        population's trust at the last episode's start (``beta_init``: trust moves within an episode
        only), else the current ``beta`` (so a ``beta`` set by hand is kept, as are the types)."""
        return state.beta_init if self.static.dynamic_trust else state.beta

    def update_trust(self, beta, round_objective, params: SEDParams) -> jax.Array:
        """Dynamic trust at a vote: ``clip(beta + trust_rate * (O_round - trust_ref) / trust_scale,
        0, 1)`` with ``O_round`` the mean period objective of the round just ended; exactly ``beta``
        when ``trust_rate`` is 0 (the default: static types)."""
        O_round = round_objective / self.periods_per_round
        moved = jnp.clip(beta + params.trust_rate * (O_round - params.trust_ref) / params.trust_scale, 0.0, 1.0)
        return jnp.where(params.trust_rate == 0, beta, moved)

    def sample_types(self, key, params: SEDParams):
        k_s, k_b = jax.random.split(key)
        n = self.num_agents
        return (population.sample_types(k_s, params.sigma_dist, n, self.static.sigma_family),
                population.sample_types(k_b, params.beta_dist, n, self.static.beta_family))

    def _new_episode(self, key, params: SEDParams, sigma, beta):
        grid_obs, gstate = self.grid.reset_env(key, params.grid)
        zeros = jnp.zeros((self.num_agents,), jnp.float32)
        voted, iters = self.vote_with_iterations(sigma, params)
        state = SEDState(grid=gstate, rates=jnp.zeros((self.num_brackets,), jnp.float32), period_raw=zeros,
                         last_raw=zeros, last_income=zeros, voted=voted, sigma=sigma, beta=beta, beta_init=beta,
                         round_objective=jnp.zeros((), jnp.float32), vote_iterations=iters)
        return {"agents": grid_obs, "principal": self.principal_obs(state, params)}, state

    def reset_env(self, key: jax.Array, params: SEDParams):
        k_types, k_world = jax.random.split(key)
        return self._new_episode(k_world, params, *self.sample_types(k_types, params))

    def reset_with_types(self, key: jax.Array, params: SEDParams, sigma, beta):
        """A new episode played by the given population (``sigma``, ``beta``: ``(n,)``), e.g. one
        type vector shared by a batch of envs (the trainer's ``types.per_env=false``). Same key
        use as :meth:`reset_env` (the world from the second half of ``split(key)``)."""
        _, k_world = jax.random.split(key)
        return self._new_episode(k_world, params, jnp.asarray(sigma, jnp.float32), jnp.asarray(beta, jnp.float32))

    def reset_keeping(self, key, params: SEDParams, obs, state: SEDState):
        """A new episode that keeps the agents' types unless ``resample_on_reset`` (trust as at the
        last episode's start: dynamic trust moves within an episode only)."""
        k_types, k_world = jax.random.split(key)
        sigma, beta = self.sample_types(k_types, params)
        sigma = jnp.where(params.resample_on_reset, sigma, state.sigma)
        beta = jnp.where(params.resample_on_reset, beta, self.episode_trust(state, params))
        return self._new_episode(k_world, params, sigma, beta)

    # ------------------------------------------------------------------ the step, in the SPEC's order
    def step_env(self, key, state: SEDState, action, params: SEDParams | None = None):
        """One step without auto-reset; ``done`` marks the episode's time limit (a truncation)."""
        params = self.default_params if params is None else params
        P = self.period_len
        # 1. The Principal's action takes effect on a tax period's first step.
        rates = self.rates_in_effect(state, action["principal"], params)
        # 2. The agents act in the world.
        grid_obs, gstate, apples, _, ginfo = self.grid.step_env(key, state.grid, action["agents"], params.grid)
        t = gstate.t
        period_raw = state.period_raw + apples
        # 3. The tax period is settled at its end; the Principal's objective is measured on it.
        period_end = t % P == 0
        income, transfer = tax.settle_period(period_raw, rates, params.thresholds, params.transfer_scale)
        extrinsic = apples + jnp.where(period_end, transfer, 0.0)
        W = period_raw if self.welfare_of == "raw" else income
        obj = welfare.objective(W, self.objective, state.voted)
        # 4. The agents' typed rewards (SPEC §4).
        others = ginfo["collected_in_view"] if self.social_scope == "view" else apples.sum() - apples
        r_agents = population.typed_reward(extrinsic, apples, others, state.sigma, state.beta)
        # 5. A voting round ends: trust moves with the round's objective (dynamic trust), and the new
        #    round votes on the agents' reports of their types.
        new_round = t % self.round_len == 0
        round_objective, beta = state.round_objective, state.beta
        if self.static.dynamic_trust:  # static: off, the default program has no trust code
            round_objective = round_objective + jnp.where(period_end, obj, 0.0)
            beta = jnp.where(new_round, self.update_trust(beta, round_objective, params), beta)
        _, voted, iters = self._revote_where(new_round, key, (state.sigma, state.voted, state.vote_iterations), params)
        new_state = SEDState(
            grid=gstate, rates=rates,
            period_raw=jnp.where(period_end, 0.0, period_raw),
            last_raw=jnp.where(period_end, period_raw, state.last_raw),
            last_income=jnp.where(period_end, income, state.last_income),
            voted=voted, sigma=state.sigma, beta=beta, beta_init=state.beta_init,
            round_objective=jnp.where(new_round, 0.0, round_objective), vote_iterations=iters,
        )
        obs = {"agents": grid_obs, "principal": self.principal_obs(new_state, params)}
        reward = {"agents": r_agents, "principal": jnp.where(period_end, obj, 0.0)}
        info = {
            "apples_collected": apples,  # raw apples this step
            "period_raw": period_raw,  # raw apples so far this period (complete at period_end)
            "income": income,  # post-tax income of the period (meaningful at period_end)
            "extrinsic": extrinsic,
            "rates": rates,
            "voted": state.voted,
            "vote_iterations": iters,  # best-response rounds of the reports at the last vote (0: truthful)
            "beta": beta,  # trust after this step (moves at votes with dynamic trust)
            "objective": obj,  # the period objective (meaningful at period_end)
            "apples_alive": ginfo["apples_alive"],
            "period_end": period_end,
            "round_end": new_round,
        }
        return obs, new_state, reward, t >= self.episode_len, info

    # ------------------------------------------------------------------ what the followers see
    def rates_in_effect(self, state: SEDState, principal_action, params: SEDParams) -> jax.Array:
        """The rates this step is taxed at: on a period's first step the Principal's action (within
        the divergence bound), else the period's current rates. ``principal_action=None``: the
        current rates (what an observer knows before the Principal has moved)."""
        if principal_action is None:
            return state.rates
        proposed = tax.apply_divergence_bound(state.rates, self.rates_from_action(principal_action),
                                              params.max_rate_change)
        return jnp.where(state.t % self.period_len == 0, proposed, state.rates)

    @property
    def mechanism_obs_dim(self) -> int:
        return 2 * self.num_brackets + 3

    def mechanism_obs(self, state: SEDState, principal_action, params: SEDParams) -> jax.Array:
        """What each follower observes of the mechanism at this step, ``(n, 2B + 3)`` float32: the
        rates in effect (:meth:`rates_in_effect`: the Principal moves first, as a Stackelberg
        leader), the bracket thresholds / ``INCOME_SCALE``, the position in the tax period and in the
        voting round (fractions in [0, 1)), and last the agent's own raw apples so far this period /
        ``INCOME_SCALE`` (where it stands in the brackets). Never the types or the vote."""
        n = self.num_agents
        rates = self.rates_in_effect(state, principal_action, params)
        t = state.t
        shared = jnp.concatenate([
            rates, params.thresholds / INCOME_SCALE,
            jnp.stack([(t % self.period_len) / self.period_len, (t % self.round_len) / self.round_len]),
        ]).astype(jnp.float32)
        own = (state.period_raw / INCOME_SCALE)[:, None].astype(jnp.float32)
        return jnp.concatenate([jnp.broadcast_to(shared, (n, shared.shape[0])), own], -1)

    def world_obs(self, state: SEDState) -> jax.Array:
        """The whole map as ``(H, W, 3)`` float32 channels (:data:`WORLD_CHANNELS`: wall, live
        apple, agent), from the grid's bit codes (the agents' views read the same codes)."""
        L = self.grid.layout
        H, W = self.grid.map.height, self.grid.map.width
        code = self.grid.world_codes(state.grid).reshape(L.Hp, L.Wp)[L.pad:L.pad + H, L.pad:L.pad + W]
        bits = jnp.stack([(code >> b) & 1 for b in range(len(WORLD_CHANNELS))], -1)  # CODE_WALL/APPLE/AGENT
        return bits.astype(jnp.float32)

    def principal_obs(self, state: SEDState, params: SEDParams) -> jax.Array:
        """Compact summary: last period's raw and post-tax income per agent, apples alive, current
        rates, the voted parameter, position in the round and in the episode. With
        ``principal_obs="world"`` the whole map follows it, flattened (:meth:`world_obs`; the
        Principal's network reshapes it, :attr:`world_shape`)."""
        summary = self.summary_obs(state)
        if self.world_shape is None:
            return summary
        return jnp.concatenate([summary, self.world_obs(state).reshape(-1)])

    def summary_obs(self, state: SEDState) -> jax.Array:
        voted = state.voted if self.objective == "eta" else jnp.clip(state.voted, -10.0, 1.0) / 10.0
        alive = state.grid.apples.mean() if self.grid.num_apple_cells else jnp.float32(0)
        return jnp.concatenate([
            state.last_raw / INCOME_SCALE,
            state.last_income / INCOME_SCALE,
            jnp.stack([alive]),
            state.rates,
            jnp.stack([voted, (state.t % self.round_len) / self.round_len, state.t / self.episode_len]).astype(jnp.float32),
        ]).astype(jnp.float32)
