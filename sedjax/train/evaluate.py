"""``sedjax-eval <run folder> [--episodes N] [--seed S] [--gif-steps K] [--rates R0,R1,...]``: play a trained run.

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

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from sedjax import welfare
from sedjax.train.checkpoint import CHECKPOINT_DIR, load_checkpoint
from sedjax.train.program import make_train, seed_keys, seed_slice

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


def evaluate(run_dir, episodes: int = 2, seed: int = 0, gif_steps: int = 200, train_seed: int = 0,
             out_dir=None, verbose: bool = True, rates=None) -> dict:
    """Play ``episodes`` episodes of the trained run in ``run_dir``; write ``eval.csv`` and
    ``eval.gif`` to ``out_dir`` (default ``run_dir``); return a summary dict. ``rates`` (one per
    bracket, or ``"0,0.5,1"``): play the trained agents under that fixed schedule instead of the
    run's Principal."""
    say = print if verbose else (lambda *a, **k: None)
    run_dir = Path(run_dir)
    out_dir = run_dir if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} not found: is {run_dir} a sedjax-train run folder?")
    cfg = OmegaConf.load(cfg_path)
    if rates is not None:
        # The trained agents under a fixed schedule: the same program with principal.kind=fixed
        # (the checkpoint's Principal parameters are loaded and ignored).
        from sedjax.train.config import check_rates

        num_brackets = len(cfg.tax.thresholds)  # one rate per bracket (the thresholds are checked by make_train)
        rates = check_rates(parse_rates(rates), num_brackets, path="--rates").tolist()
        cfg = cfg.copy()
        cfg.principal.kind, cfg.principal.rates = "fixed", rates
    program = make_train(cfg)
    env, params, S = program.env, program.params, program.schedule
    num_seeds = int(cfg.train.num_seeds)
    if not 0 <= train_seed < num_seeds:
        raise ValueError(f"--train-seed must be in [0, {num_seeds}), got {train_seed}")
    like = jax.eval_shape(jax.vmap(program.init), seed_keys(int(cfg.seed), num_seeds))
    loaded = load_checkpoint(run_dir, like)
    if loaded is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / CHECKPOINT_DIR} (was it trained with train.checkpoint=false?)")
    runner, meta = loaded
    runner = seed_slice(runner, train_seed)
    a_params, p_params = runner.agents.params, runner.principal.params

    n, B = env.num_agents, env.num_brackets
    P, periods = S.period_len, S.periods_per_episode
    who = f"fixed rates {rates}" if rates is not None else f"principal={cfg.principal.kind}"
    say(f"sedjax-eval: {run_dir} (after chunk {meta.get('chunk')}/{meta.get('num_chunks')}, training seed "
        f"{train_seed}), {episodes} episode(s) x {periods} periods x {P} steps, {who}")

    k_reset, k_play = jax.random.split(jax.random.key(int(seed)))
    # The trained population: the run's one type vector (seed train_seed, all its envs share it).
    population = (runner.env_state.sigma[0], runner.env_state.beta[0])
    obs, state = jax.jit(program.reset_envs, static_argnums=1)(k_reset, episodes, population)
    carry = (obs, state, k_play)
    period_fn = make_period_fn(program)

    rows, gif_parts, kept = [], [], 0
    outs = []
    for p in range(periods):
        carry, out, (grids, rates, ts) = period_fn(a_params, p_params, carry)
        out = jax.device_get(out)
        outs.append(out)
        if kept < gif_steps:
            take = min(P, gif_steps - kept)
            gif_parts.append(jax.tree.map(lambda x: x[:take], (grids, rates, ts)))
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
        grids, rates, ts = jax.tree.map(lambda *xs: jnp.concatenate(xs), *gif_parts)
        gif_path = out_dir / "eval.gif"
        _frames_to_gif(env, grids, rates, ts, P, gif_path)

    # Summary over episodes x periods.
    stack = {k: np.stack([o[k] for o in outs], 1) for k in outs[0]}  # (episodes, periods, ...)
    ep_apples = stack["raw"].sum((1, 2))  # raw apples per episode (all agents)
    ep_objective = stack["objective"].mean(1)
    eq = welfare.equality_stats(stack["income"], axis=1)  # per episode, over its earning periods
    equality = np.asarray(eq.equality)
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
        "csv": str(csv_path), "gif": None if gif_path is None else str(gif_path),
    }
    say(format_eval_summary(summary))
    return summary


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
    a = ap.parse_args(argv)
    try:
        evaluate(a.run_dir, episodes=a.episodes, seed=a.seed, gif_steps=a.gif_steps, train_seed=a.train_seed,
                 out_dir=a.out, rates=a.rates)
    except (FileNotFoundError, ValueError) as e:
        print(f"sedjax-eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
