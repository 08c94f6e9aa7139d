"""``sedjax-eval <run folder> [--episodes N] [--seed S] [--gif-steps K] [--rates R0,R1,...] [--agents-from DIR]``:
play a trained run.

Loads ``config.yaml`` and the checkpoint of a run folder written by ``sedjax-train`` (training seed
``--train-seed``, default 0, of the vmapped runner), and plays ``N`` full episodes (in parallel,
``jax.vmap``) with the trained policies: the agents sample from their shared policy; the Principal
acts at the start of each tax period, both exactly as in training: each tax period is the trainer's
own ``play_period`` (:mod:`sedjax.train.policy`), one jitted ``lax.scan`` of ``env.step_env`` over
its steps, vmapped over the episodes (the host loops over periods only). The agents play with the
population they were trained with (``types.per_env=false``: the run's one type vector; with
``types.per_env=true`` every episode draws its own, as in training).

``--rates 0,0.5,1`` replaces the run's Principal by that fixed schedule (one rate per bracket), so
one sees how the trained agents respond to a schedule (same outputs; pass ``--out`` to keep the
Principal's).

``--agents-from OTHER_RUN [--agents-train-seed S] [--types-from agents|principal]``: a held-out
population. The Principal, the game (env, tax, voting, objective) and the time structure come from
the run folder; the agents' network parameters from the run folder ``OTHER_RUN`` (its own config
and checkpoint, its training seed ``S``, default 0): agents trained elsewhere (another seed,
another type distribution, under another Principal, e.g. ``principal=none``). The population's
types (``--types-from``):

* ``agents`` (the default): those the agents were trained with, since a held-out population is
  agents *and* their types: ``OTHER_RUN``'s one type vector (seed ``S``) when it was trained with
  ``types.per_env=false``; with ``types.per_env=true`` there is no one vector, so every episode
  draws its own types from ``OTHER_RUN``'s type distribution (``types.sigma`` / ``types.beta``),
  as in its training.
* ``principal``: the Principal's run's population: its one type vector, or (``types.per_env=true``)
  a draw per episode from its distribution, exactly as without ``--agents-from``.

Which case applies depends only on the ``types.per_env`` of the run the types come from (the
Principal's game is reset with the chosen types either way). The agents play with the network of
the Principal's game (:func:`~sedjax.train.policy.make_policy` of its config) and the other run's
parameters, so that network must fit. This is checked from the two configs before anything is
loaded or compiled (``ValueError`` naming each key that differs and both values):
``env.num_agents``, ``agents.network``, ``agents.hidden``, ``agents.observe_mechanism``,
``agents.use_types`` (resolved: ``null`` means ``types.per_env``), ``env.view_ahead`` /
``view_behind`` / ``view_side``, ``env.obs_facing``, ``env.obs_mode``, ``env.zap`` (the action count), the number of
brackets (``len(tax.thresholds)``) when the agents observe the mechanism, and the observation
shapes these give; then the loaded parameters' shapes against the Principal's game's network.
Everything else may differ (map, regrowth, thresholds' values, period length, ...): that is the
held-out test; the summary lists the game keys that differ from the agents' training. ``--rates``
composes with it (the held-out agents under a fixed schedule). ``--agents-from RUN`` (the run
itself) plays exactly as without it.

:func:`load_run` (a run folder -> its config, program and runner of one seed) and
:func:`make_reset` (episodes played by a chosen population) are the pieces, for other tools.

Writes, into the run folder (or ``--out``):

* ``eval.csv``: one row per (episode, tax period) with the columns ``episode, period,
  rate_0 … rate_{B-1}`` (the period's rates), ``raw_0 … raw_{n-1}`` (raw apples of the period),
  ``income_0 … income_{n-1}`` (post-tax income), ``objective`` (the Principal's period objective),
  ``apples_alive`` (at the period's end).
* ``eval.gif``: the first ``K`` steps of the first episode, one frame per step, with the step,
  the period and the current tax rates written under the grid (``--gif-steps 0``: no GIF).

and prints a short summary table.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from sedjax import welfare
from sedjax.train.checkpoint import CHECKPOINT_DIR, load_checkpoint
from sedjax.train.program import Program, make_train, seed_keys, seed_slice

GIF_MIN_WIDTH = 384  # frames narrower than this are upscaled (nearest neighbour)


def csv_columns(num_brackets: int, num_agents: int) -> list[str]:
    return (["episode", "period"] + [f"rate_{b}" for b in range(num_brackets)]
            + [f"raw_{i}" for i in range(num_agents)] + [f"income_{i}" for i in range(num_agents)]
            + ["objective", "apples_alive"])


def make_period_fn(program):
    """``period(agent_params, principal_params, carry) -> (carry, out, frames)``, jitted: one tax
    period of every episode through the trainer's :func:`~sedjax.train.policy` ``play_period``
    (``carry = (obs, state, key)``, ``obs`` / ``state`` batched over episodes). ``out``: the
    period's rates, raw apples, income, objective, apples alive and voted parameter per episode;
    ``frames``: the grid state after each step of episode 0 (for the GIF), its rates and step
    counts."""
    keep = ("rates", "period_raw", "income", "objective", "apples_alive", "voted")

    def record(s):
        first = lambda x: x[0]  # noqa: E731  (episode 0, for the GIF)
        return ({k: s.info[k] for k in keep}, jax.tree.map(first, s.next_state.grid), s.next_state.t[0])

    @jax.jit
    def period(a_params, p_params, carry):
        carry, _, (infos, grids, ts) = program.policy.play_period(a_params, p_params, carry, program.params, record)
        last = jax.tree.map(lambda x: x[-1], infos)  # the period's last step: settlement
        out = {"rates": last["rates"], "raw": last["period_raw"], "income": last["income"],
               "objective": last["objective"], "apples_alive": last["apples_alive"], "voted": last["voted"]}
        return carry, out, (grids, infos["rates"][:, 0], ts)

    return period


def _frames_to_gif(env, grids, rates, ts, period_len, path: Path, duration_ms: int = 100) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from sedjax.render import render_world

    imgs = np.asarray(jax.jit(jax.vmap(lambda g: render_world(env, g)))(grids))  # (K, H, W, 3)
    h, w = imgs.shape[1:3]
    scale = max(1, math.ceil(GIF_MIN_WIDTH / w))
    font = ImageFont.load_default()
    band = 34
    frames = []
    for img, r, t in zip(imgs, np.asarray(rates), np.asarray(ts)):
        t = int(t)  # steps done (the frame shows the world after step t)
        im = Image.fromarray(img).resize((w * scale, h * scale), Image.NEAREST)
        canvas = Image.new("RGB", (im.width, im.height + band), (0, 0, 0))
        canvas.paste(im, (0, 0))
        d = ImageDraw.Draw(canvas)
        d.text((4, im.height + 3), f"step {t}  period {(t - 1) // period_len}", fill=(255, 255, 255), font=font)
        d.text((4, im.height + 18), "tax rates " + " ".join(f"{x:.2f}" for x in r), fill=(255, 220, 120), font=font)
        frames.append(canvas)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)


def parse_rates(text) -> list[float]:
    """``"0,0.5,1"`` (or a sequence of numbers) -> ``[0.0, 0.5, 1.0]``."""
    if isinstance(text, str):
        try:
            return [float(x) for x in text.replace(" ", "").split(",") if x != ""]
        except ValueError:
            raise ValueError(f"--rates must be comma-separated numbers in [0, 1], got {text!r}") from None
    return [float(x) for x in text]


# ----------------------------------------------------------------------------- run folders
class LoadedRun(NamedTuple):
    """A trained run folder, loaded: :func:`load_run`."""

    run_dir: Path
    cfg: Any  # the config the program was built from (config.yaml, after cfg_override)
    program: Program  # make_train(cfg)
    runner: Any  # the checkpoint's runner, seed ``train_seed`` (not vmapped)
    meta: dict  # the checkpoint's meta ({"chunk", "num_chunks", "metrics", ...})
    train_seed: int


class RunFolderError(FileNotFoundError, ValueError):
    """``run_dir`` is not a sedjax-train run folder with a checkpoint (a ``FileNotFoundError`` and a
    ``ValueError``, so callers catching either see it)."""


# Config keys added after run folders were written with them absent, and the value those runs used.
RUN_CONFIG_BEFORE = {"principal.policy_input": "state"}


def read_run_config(run_dir):
    """The ``config.yaml`` of a run folder written by ``sedjax-train`` (:class:`RunFolderError`
    otherwise)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunFolderError(f"{cfg_path} not found: is {run_dir} a sedjax-train run folder?")
    cfg = OmegaConf.load(cfg_path)
    for key, value in RUN_CONFIG_BEFORE.items():  # keys added since: what runs without them used
        group = key.rsplit(".", 1)[0]
        if OmegaConf.select(cfg, group) is not None and OmegaConf.select(cfg, key, default=None) is None:
            OmegaConf.update(cfg, key, value)
    return cfg


def _apply_override(cfg, cfg_override):
    if cfg_override is None:
        return cfg
    if callable(cfg_override):
        return cfg_override(cfg.copy())
    if isinstance(cfg_override, (list, tuple)):  # ["key=value", ...]
        cfg_override = OmegaConf.from_dotlist(list(cfg_override))
    return OmegaConf.merge(cfg, cfg_override)


def load_run(run_dir, train_seed: int = 0, cfg_override=None, *, cfg=None, program: Program | None = None,
             seed_name: str = "train_seed") -> LoadedRun:
    """Load a run folder written by ``sedjax-train``: its ``config.yaml``, the training
    :class:`~sedjax.train.program.Program` of it and the checkpoint's runner of seed ``train_seed``
    (of the run's ``train.num_seeds`` vmapped seeds). The program is traced, not compiled.

    ``cfg_override``: the config to build the program from, relative to the run's: a callable
    ``cfg -> cfg`` (given a copy), a dict / ``DictConfig`` merged over it, or a list of
    ``"key=value"`` overrides. It must keep the runner's structure (the checkpoint is read into the
    tree of ``program.init``: a shape that differs raises ``ValueError``); e.g.
    ``principal.kind=fixed`` keeps it (the Principal's parameters are then loaded and ignored).
    ``cfg``: the run's config if already read (default: read from ``run_dir``). ``program``: the
    program of that config if already built (default: ``make_train(cfg)``). ``seed_name``:
    how error messages name ``train_seed``. Raises :class:`RunFolderError` (no config or no
    checkpoint) and ``ValueError`` (bad seed, or a checkpoint that does not fit the config).
    """
    run_dir = Path(run_dir)
    cfg = _apply_override(read_run_config(run_dir) if cfg is None else cfg, cfg_override)
    num_seeds = int(cfg.train.num_seeds)
    if not 0 <= int(train_seed) < num_seeds:
        raise ValueError(f"{seed_name} must be in [0, {num_seeds}) ({run_dir} trained {num_seeds} seed(s)), "
                         f"got {train_seed}")
    program = make_train(cfg) if program is None else program
    like = jax.eval_shape(jax.vmap(program.init), seed_keys(int(cfg.seed), num_seeds))
    loaded = load_checkpoint(run_dir, like)
    if loaded is None:
        raise RunFolderError(f"no checkpoint in {run_dir / CHECKPOINT_DIR} (was it trained with train.checkpoint=false?)")
    runner, meta = loaded
    return LoadedRun(run_dir, cfg, program, seed_slice(runner, int(train_seed)), meta, int(train_seed))


# ----------------------------------------------------------------------------- held-out agents
GAME_PREFIXES = ("env.", "tax.", "types.", "objective.", "voting.")


def _agent_facts(cfg) -> list[tuple[str, Any]]:
    """What the agents' network depends on, as ``(name, value)``: the config keys, then the shapes
    they give (a backstop should a shape depend on something else)."""
    from sedjax.envs import from_config
    from sedjax.train.policy import resolve_use_types

    get = lambda k: OmegaConf.select(cfg, k, default="<missing>")  # noqa: E731
    observe = bool(get("agents.observe_mechanism"))
    facts = [(k, get(k)) for k in ("env.num_agents", "agents.network", "agents.hidden",
                                   "agents.observe_mechanism")]
    facts.append(("agents.use_types (resolved)", resolve_use_types(cfg)))
    facts += [(k, get(k)) for k in ("env.view_ahead", "env.view_behind", "env.view_side", "env.obs_facing",
                                    "env.zap")]
    facts.append(("env.obs_mode", OmegaConf.select(cfg, "env.obs_mode", default="symbolic")))
    if observe:
        facts.append(("number of brackets (len(tax.thresholds), seen by agents.observe_mechanism)",
                      len(get("tax.thresholds"))))
    env, _ = from_config(cfg)
    facts.append(("the agents' observation shape", tuple(env.observation_space()["agents"].shape)))
    facts.append(("the agents' action count", int(env.grid.num_actions)))
    if observe:
        facts.append(("the agents' mechanism observation size", int(env.mechanism_obs_dim)))
    return facts


def agents_fit_differences(principal_cfg, agents_cfg) -> list[str]:
    """Why the agents of the run with ``agents_cfg`` cannot play the game of ``principal_cfg``: one
    ``"key: value (Principal's run) vs value (agents' run)"`` per setting of the agents' network
    that differs (empty: they fit). Host-side, from the configs only."""
    fa = _agent_facts(principal_cfg)
    fb = dict(_agent_facts(agents_cfg))
    out = []
    for k, v in fa:
        w = fb.get(k, "<missing>")
        if v != w:
            out.append(f"{k}: {v!r} (Principal's run) vs {w!r} (agents' run)")
    return out


def check_params_fit(expected, params) -> None:
    """``ValueError`` unless ``params`` has the tree structure and leaf shapes of ``expected``
    (e.g. the Principal's run's agent parameters, or their ``jax.eval_shape``)."""
    ea, ta = jax.tree_util.tree_flatten_with_path(expected)
    eb, tb = jax.tree_util.tree_flatten_with_path(params)
    if ta != tb:
        pa = {jax.tree_util.keystr(k) for k, _ in ea}
        pb = {jax.tree_util.keystr(k) for k, _ in eb}
        raise ValueError("the agents' parameters do not fit the Principal's game's agent network: "
                         f"missing {sorted(pa - pb)}, unexpected {sorted(pb - pa)}")
    bad = [f"{jax.tree_util.keystr(k)}: {tuple(y.shape)} (agents' run) vs {tuple(x.shape)} (expected)"
           for (k, x), (_, y) in zip(ea, eb) if tuple(x.shape) != tuple(y.shape)]
    if bad:
        raise ValueError("the agents' parameters do not fit the Principal's game's agent network: " + "; ".join(bad))


def _flat(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def game_differences(principal_cfg, agents_cfg) -> list[str]:
    """The game's keys (``env``, ``tax``, ``types``, ``objective``, ``voting``) whose values differ
    between the two runs: where the agents play a game other than the one they were trained in."""
    fa, fb = _flat(principal_cfg), _flat(agents_cfg)
    return sorted(k for k in set(fa) | set(fb) if k.startswith(GAME_PREFIXES)
                  and fa.get(k, "<missing>") != fb.get(k, "<missing>"))


def make_reset(program: Program, types_run: LoadedRun):
    """``(reset, population)``: ``reset(key, num_episodes, population) -> (obs, state)``, fresh
    episodes of ``program``'s game (its env and params) played by the population of ``types_run``:
    ``population = (sigma, beta)``, its one type vector (seed ``types_run.train_seed``) when it was
    trained with ``types.per_env=false``; else ``population = None`` and every episode draws its
    own types from ``types_run``'s type distribution. The key use is the trainer's ``reset_envs``,
    so with ``types_run`` the program's own run the episodes are exactly those of
    ``program.reset_envs`` (and of ``sedjax-eval`` without ``--agents-from``)."""
    env, params = program.env, program.params
    if not bool(types_run.cfg.types.per_env):
        population = (types_run.runner.env_state.sigma[0], types_run.runner.env_state.beta_init[0])
        v_reset = jax.vmap(env.reset_with_types, in_axes=(0, None, None, None))

        def reset(key, num_episodes: int, population):
            _, k_env = jax.random.split(key)
            return v_reset(jax.random.split(k_env, num_episodes), params, *population)

        return reset, population
    t_env, t_params = types_run.program.env, types_run.program.params

    def one(k, p):  # env.reset_env's key use, with the types drawn from types_run's distribution
        k_types, _ = jax.random.split(k)
        return env.reset_with_types(k, p, *t_env.sample_types(k_types, t_params))

    v_one = jax.vmap(one, in_axes=(0, None))

    def reset(key, num_episodes: int, population=None):
        _, k_env = jax.random.split(key)
        return v_one(jax.random.split(k_env, num_episodes), params)

    return reset, None


# ----------------------------------------------------------------------------- evaluation
def evaluate(run_dir, episodes: int = 2, seed: int = 0, gif_steps: int = 200, train_seed: int = 0,
             out_dir=None, verbose: bool = True, rates=None, agents_from=None, agents_train_seed: int = 0,
             types_from: str = "agents") -> dict:
    """Play ``episodes`` episodes of the trained run in ``run_dir``; write ``eval.csv`` and
    ``eval.gif`` to ``out_dir`` (default ``run_dir``); return a summary dict. ``rates`` (one per
    bracket, or ``"0,0.5,1"``): play the trained agents under that fixed schedule instead of the
    run's Principal.

    ``agents_from`` (a run folder): a held-out population: ``run_dir``'s Principal and game with the
    agents of that run (its seed ``agents_train_seed``); ``types_from``: ``"agents"`` (default: the
    types those agents were trained with) or ``"principal"`` (``run_dir``'s population). See the
    module docstring; ``ValueError`` (naming the keys) when the agents' network does not fit the game.
    """
    say = print if verbose else (lambda *a, **k: None)
    run_dir = Path(run_dir)
    out_dir = run_dir if out_dir is None else Path(out_dir)
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if types_from not in ("agents", "principal"):
        raise ValueError(f"--types-from must be agents or principal, got {types_from!r}")
    cfg = read_run_config(run_dir)
    override = None
    if rates is not None:
        # The trained agents under a fixed schedule: the same program with principal.kind=fixed
        # (the checkpoint's Principal parameters are loaded and ignored).
        from sedjax.train.config import check_rates

        num_brackets = len(cfg.tax.thresholds)  # one rate per bracket (the thresholds are checked by make_train)
        rates = check_rates(parse_rates(rates), num_brackets, path="--rates").tolist()

        def override(c):
            c.principal.kind, c.principal.rates = "fixed", rates
            return c

    a_cfg, game_diff = None, []
    if agents_from is not None:
        agents_from = Path(agents_from)
        a_cfg = read_run_config(agents_from)
        diff = agents_fit_differences(cfg, a_cfg)  # before anything is built or compiled
        if diff:
            raise ValueError(f"the agents of {agents_from} do not fit the game of {run_dir}: " + "; ".join(diff))
        game_diff = game_differences(cfg, a_cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = load_run(run_dir, train_seed, override, cfg=cfg, seed_name="--train-seed")
    cfg, program, runner, meta = run.cfg, run.program, run.runner, run.meta
    env, S = program.env, program.schedule
    if agents_from is None:
        a_run = run
    else:
        a_run = load_run(agents_from, agents_train_seed, cfg=a_cfg, seed_name="--agents-train-seed")
        check_params_fit(runner.agents.params, a_run.runner.agents.params)
    a_params, p_params = a_run.runner.agents.params, runner.principal.params
    types_run = a_run if types_from == "agents" else run

    n, B = env.num_agents, env.num_brackets
    P, periods = S.period_len, S.periods_per_episode
    who = f"fixed rates {rates}" if rates is not None else f"principal={cfg.principal.kind}"
    line = (f"sedjax-eval: {run_dir} (after chunk {meta.get('chunk')}/{meta.get('num_chunks')}, training seed "
            f"{train_seed}), {episodes} episode(s) x {periods} periods x {P} steps, {who}")
    if agents_from is not None:
        per_env = bool(types_run.cfg.types.per_env)
        types_desc = (f"types of {types_run.run_dir} ("
                      + ("drawn per episode from its distribution" if per_env
                         else f"its population, training seed {types_run.train_seed}") + ")")
        line += (f"; agents of {agents_from} (after chunk {a_run.meta.get('chunk')}/{a_run.meta.get('num_chunks')}, "
                 f"training seed {agents_train_seed}, principal={a_run.cfg.principal.kind}), {types_desc}")
    say(line)
    if game_diff:
        say(f"note: the agents were trained in a game that differs in: {', '.join(game_diff)}")

    k_reset, k_play = jax.random.split(jax.random.key(int(seed)))
    # The population: the run's one type vector (seed train_seed, all its envs share it), or with
    # agents_from the one types_from names (make_reset).
    reset, population = make_reset(program, types_run)
    obs, state = jax.jit(reset, static_argnums=1)(k_reset, episodes, population)
    # Committed like the period's outputs (and the loaded params), so the period compiles once,
    # not once for the first period and again for the rest.
    carry = jax.device_put((obs, state, k_play), jax.tree.leaves(p_params)[0].sharding)
    period_fn = make_period_fn(program)

    rows, gif_parts, kept = [], [], 0
    outs = []
    for p in range(periods):
        carry, out, (grids, g_rates, ts) = period_fn(a_params, p_params, carry)
        out = jax.device_get(out)
        outs.append(out)
        if kept < gif_steps:
            take = min(P, gif_steps - kept)
            gif_parts.append(jax.tree.map(lambda x: x[:take], (grids, g_rates, ts)))
            kept += take
    for e in range(episodes):
        for p, out in enumerate(outs):
            rows.append([e, p] + [float(x) for x in out["rates"][e]] + [float(x) for x in out["raw"][e]]
                        + [float(x) for x in out["income"][e]] + [float(out["objective"][e]), float(out["apples_alive"][e])])

    csv_path = out_dir / "eval.csv"
    with open(csv_path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(csv_columns(B, n))
        for r in rows:
            wr.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in r])

    gif_path = None
    if gif_steps > 0 and gif_parts:
        grids, g_rates, ts = jax.tree.map(lambda *xs: jnp.concatenate(xs), *gif_parts)
        gif_path = out_dir / "eval.gif"
        _frames_to_gif(env, grids, g_rates, ts, P, gif_path)

    # Summary over episodes x periods.
    stack = {k: np.stack([o[k] for o in outs], 1) for k in outs[0]}  # (episodes, periods, ...)
    ep_apples = stack["raw"].sum((1, 2))  # raw apples per episode (all agents)
    ep_objective = stack["objective"].mean(1)
    eq = welfare.equality_stats(stack["income"], axis=1)  # per episode, over its earning periods
    equality = np.asarray(eq.equality)
    top = stack["raw"].max(-1)  # (episodes, periods): the largest pre-tax period income
    earning = np.asarray(welfare.earning(stack["income"]))  # the training metric's test
    thresholds = [float(t) for t in cfg.tax.thresholds]
    summary = {
        "episodes": episodes, "periods": periods, "rows": len(rows),
        "objective": (float(ep_objective.mean()), float(ep_objective.std())),
        "apples_per_episode": (float(ep_apples.mean()), float(ep_apples.std())),
        "apples_per_agent_step": float(stack["raw"].mean() / P),
        "equality": (float(equality.mean()), float(equality.std())),
        "zero_income_share": float(np.asarray(eq.zero_income_share).mean()),
        "rates_fixed": rates,
        "apples_alive": (float(stack["apples_alive"].mean()), float(stack["apples_alive"].std())),
        "voted": float(stack["voted"].mean()),
        "tax_rates": stack["rates"].mean((0, 1)).tolist(),
        # Where the rates act: a rate taxes nothing in a period nobody earns, and a bracket's rate
        # nothing in a period no agent's income reaches it.
        "tax_rates_earning": _masked_mean(stack["rates"], earning[..., None]),
        "bracket_reached": [float((top > t).mean()) for t in thresholds],
        "max_period_income": float(top.max()),
        "csv": str(csv_path), "gif": None if gif_path is None else str(gif_path),
        "principal_from": str(run_dir), "train_seed": int(train_seed),
        "agents_from": str(a_run.run_dir), "agents_train_seed": a_run.train_seed,
        "types_from": str(types_run.run_dir),
        "population": None if population is None else [np.asarray(x).tolist() for x in population],
        "agents_game_differences": game_diff,
    }
    say(format_eval_summary(summary))
    return summary


def _masked_mean(x, mask) -> list:
    """The mean of ``x (..., B)`` over the leading axes where ``mask`` holds (NaN where it never does)."""
    mask = np.broadcast_to(mask, x.shape)
    den = mask.sum(tuple(range(x.ndim - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(mask, x, 0.0).sum(tuple(range(x.ndim - 1))) / den).tolist()


def format_eval_summary(s: dict) -> str:
    lines = [f"Evaluation: {s['episodes']} episode(s) x {s['periods']} tax periods (mean ± std over episodes)",
             f"{'metric':<24}  value", "-" * 44]

    def pm(v):
        return f"{v[0]:.4f} ± {v[1]:.4f}"

    lines += [
        f"{'objective (per period)':<24}  {pm(s['objective'])}",
        f"{'apples per episode':<24}  {pm(s['apples_per_episode'])}",
        f"{'apples per agent-step':<24}  {s['apples_per_agent_step']:.4f}",
        f"{'equality (1 - Gini)':<24}  {pm(s['equality'])}  (periods in which someone earns)",
        f"{'zero-income periods':<24}  {s['zero_income_share']:.4f}",
        f"{'apples alive':<24}  {pm(s['apples_alive'])}",
        f"{'voted parameter':<24}  {s['voted']:.4f}",
        f"{'mean tax rates':<24}  " + " ".join(f"{r:.3f}" for r in s["tax_rates"]),
        f"{'  where someone earns':<24}  " + " ".join(f"{r:.3f}" for r in s["tax_rates_earning"]),
        f"{'bracket reached':<24}  " + " ".join(f"{r:.3f}" for r in s["bracket_reached"])
        + f"  (share of periods; the largest period income: {s['max_period_income']:g})",
        f"wrote {s['csv']}" + (f" and {s['gif']}" if s["gif"] else ""),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="sedjax-eval", description="Play a trained sedjax run: eval.csv + eval.gif.")
    ap.add_argument("run_dir", help="a run folder written by sedjax-train (config.yaml + checkpoint/)")
    ap.add_argument("--episodes", type=int, default=2, help="episodes to play (in parallel); default 2")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed of the evaluation episodes; default 0")
    ap.add_argument("--gif-steps", type=int, default=200,
                    help="steps of the first episode in eval.gif, one frame each (0: no GIF); default 200")
    ap.add_argument("--train-seed", type=int, default=0, help="which of the run's seeds to load; default 0")
    ap.add_argument("--out", default=None, help="output folder (default: the run folder)")
    ap.add_argument("--rates", default=None,
                    help="a fixed schedule, one rate per bracket (e.g. 0,0.5,1), instead of the run's Principal")
    ap.add_argument("--agents-from", default=None, metavar="DIR",
                    help="a held-out population: play the run's Principal (and game) with the agents trained "
                         "in this other run folder")
    ap.add_argument("--agents-train-seed", type=int, default=0,
                    help="which of --agents-from's seeds to load the agents from; default 0")
    ap.add_argument("--types-from", choices=("agents", "principal"), default="agents",
                    help="with --agents-from: the population's types are the agents' run's (default) or "
                         "the Principal's run's")
    a = ap.parse_args(argv)
    try:
        evaluate(a.run_dir, episodes=a.episodes, seed=a.seed, gif_steps=a.gif_steps, train_seed=a.train_seed,
                 out_dir=a.out, rates=a.rates, agents_from=a.agents_from, agents_train_seed=a.agents_train_seed,
                 types_from=a.types_from)
    except (FileNotFoundError, ValueError) as e:
        print(f"sedjax-eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
