"""S2 (learning vs compute) and S3 (population size): training runs measured for the scaling laws.

Each point is one :func:`sedjax.train.loop.run` with its seeds vmapped (one compiled program for
all of them). **Each budget is its own run**: the agents' and the Principal's learning rates anneal
to 0 at the end of a run (and the tax curriculum over its first fraction), so the state of a long
run after B steps is not what a run of budget B ends with.

Compute. ``C = agent-steps x (F_fwd + epochs x F_train)``, where ``F_fwd`` is the agents' network's
forward pass per agent-step (the rollout) and ``F_train`` its forward + backward pass per sample
(each sample is seen ``agents.epochs`` times), both read from XLA's ``cost_analysis()`` of the
compiled network on one env's agents. The environment's own FLOPs (S1) and the Principal's
network (a few hundred parameters, once per tax period) are left out: they do not change with
the agents' width.

Settings (the game the metrics are read in):

* ``known_optimum``: eta = 0 on post-tax income with beta = 0, low brackets ``[0, 2, 4]``: taxes
  cannot change production, so the egalitarian optimum is 100 % on every bracket
  (``tests/test_learning.py``). The Principal's **regret** is the distance to it,
  ``1 - mean rate`` over brackets.
* ``paper``: the default game (objective on raw apples, eta voted as mean sigma).

Metrics are each run's last chunk (``summarize``: mean over the chunk's Principal iterations), per
seed, so a profile with ``chunks: 4`` reads the last quarter of training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SETTINGS: dict[str, list[str]] = {
    "known_optimum": ["objective.kind=eta", "objective.eta=0", "objective.welfare_of=post_tax",
                      "types.beta=0", "tax.thresholds=[0,2,4]"],
    "paper": [],
}

# The quiet, file-light settings of every scaling run.
RUN_OVERRIDES = ["train.plots=false", "train.checkpoint=false"]


def setting_overrides(name: str) -> list[str]:
    if name not in SETTINGS:
        raise ValueError(f"s2.settings: unknown setting {name!r}; known: {sorted(SETTINGS)}")
    return list(SETTINGS[name])


def network_flops(program) -> dict:
    """Per agent-step FLOPs of the agents' network (forward; forward + backward), from XLA's cost
    analysis of the network compiled on one env's agents. Shapes only: nothing is executed."""
    from sedjax.scaling.cost import xla_cost

    policy = program.policy
    obs, state = jax.eval_shape(lambda k: program.reset_envs(k, 1), jax.random.key(0))
    a_params, _ = jax.eval_shape(policy.init, jax.random.key(1), jax.random.key(2), obs)
    inputs = jax.eval_shape(lambda s: jax.tree.map(lambda x: x[0], policy.agent_inputs(s, None, program.params)),
                            state)
    agent_obs = jax.ShapeDtypeStruct(obs["agents"].shape[1:], obs["agents"].dtype)
    n = agent_obs.shape[0]

    def forward(p, o, i):
        logits, value = policy.agent_forward(p, o, i)
        return jnp.sum(logits) + jnp.sum(value)

    def flops(fn) -> float:
        f = xla_cost(jax.jit(fn).lower(a_params, agent_obs, inputs).compile())["flops"]
        return float("nan") if f is None else f

    f_fwd, f_train = flops(forward), flops(jax.grad(forward))
    params = int(sum(np.prod(x.shape) for x in jax.tree.leaves(a_params)))
    return {"fwd_flops_per_agent_step": f_fwd / n, "train_flops_per_sample": f_train / n, "params": params}


def _record(study, extra, overrides, out_dir, cfg, num_agents, env_steps, per_agent_step, params, final, records, *,
            compile_s, train_s, wall_s) -> dict:
    per_seed = {k: v["per_seed"] for k, v in final.items() if isinstance(v, dict) and "per_seed" in v}
    agent_steps = int(env_steps) * int(num_agents)
    rec: dict[str, Any] = {
        "study": study, **(extra or {}),
        "overrides": list(overrides), "out_dir": str(out_dir),
        "num_agents": int(num_agents), "num_seeds": int(cfg.train.num_seeds), "width": int(cfg.agents.hidden),
        "network": str(cfg.agents.network),
        "env_steps": int(env_steps), "agent_steps": agent_steps,
        "flops_per_agent_step": per_agent_step, "compute_flops": agent_steps * per_agent_step,
        "agent_params": int(params),
        "compile_s": compile_s, "train_s": train_s, "wall_s": wall_s,
        "per_seed": per_seed,
        "curve": [{"env_steps": r["env_steps"],
                   **{k: r[f"{k}_per_seed"] for k in ("objective", "agent_return", "mean_tax_rate")
                      if f"{k}_per_seed" in r}} for r in records],
    }
    if "mean_tax_rate" in per_seed and (extra or {}).get("setting") == "known_optimum":
        # The analytic optimum is 100 % on every bracket: the regret is the mean distance to it.
        rec["per_seed"]["regret"] = [1.0 - float(x) for x in per_seed["mean_tax_rate"]]
    return rec


class Prepared(NamedTuple):
    """One compiled-program's worth of runs: a config and its budgets (see :func:`budget_runs`)."""

    cfg: Any
    program: Any
    budgets: list[int]
    schedules: dict  # budget -> Schedule
    keys: jax.Array
    lowered: dict  # "init", "chunk": jax.stages.Lowered (then Compiled, after compile_all)
    flops: dict  # network_flops(program)


def _with_total(cfg, total: int, chunk_steps: int):
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    c["train"]["total_env_steps"] = int(total)
    c["train"]["chunks"] = max(1, int(total) // int(chunk_steps))
    return OmegaConf.create(c)


def schedules_for(cfg, budgets, chunk_steps: int, field: str = "budgets") -> dict:
    """``{budget: Schedule}``, each budget checked to be whole chunks of ``chunk_steps`` env steps
    (``ValueError`` naming ``field`` otherwise). Cheap: builds the env, compiles nothing."""
    from sedjax.envs import from_config
    from sedjax.train.schedule import make_schedule

    env, _ = from_config(cfg)
    schedules = {}
    for b in (int(x) for x in budgets):
        S_b = make_schedule(_with_total(cfg, b, chunk_steps), env)
        if S_b.steps_per_chunk != chunk_steps or S_b.total_env_steps != b:
            raise ValueError(
                f"{field}: {b} env steps is not a whole number of chunks of {chunk_steps} env steps made of "
                f"whole Principal iterations ({S_b.env_steps_per_iter} env steps each)")
        schedules[b] = S_b
    return schedules


def prepare(cfg, budgets, chunk_steps: int, field: str = "budgets") -> Prepared:
    """Validate the budgets, build the program and lower (not compile) its init and chunk."""
    from sedjax.train.program import make_train, seed_keys

    budgets = [int(b) for b in budgets]
    schedules = schedules_for(cfg, budgets, chunk_steps, field)
    program = make_train(_with_total(cfg, max(budgets), chunk_steps))
    seeds = int(cfg.train.num_seeds)
    keys = seed_keys(int(cfg.seed), seeds)
    hypers = _seed_hypers(program, schedules[budgets[0]], seeds)
    init = jax.jit(jax.vmap(program.init)).lower(keys, hypers)
    runner = jax.eval_shape(jax.vmap(program.init), keys, hypers)
    chunk = jax.jit(jax.vmap(program.chunk)).lower(runner)
    return Prepared(cfg, program, budgets, schedules, keys, {"init": init, "chunk": chunk}, network_flops(program))


def _seed_hypers(program, S_b, seeds: int):
    from sedjax.train.program import budget_of

    hypers = program.hypers.replace(budget=budget_of(S_b))
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (seeds,) + jnp.shape(x)), hypers)


def compile_all(prepared: list[Prepared], workers: int | None = None) -> dict:
    """Compile every lowered program, ``workers`` at a time (XLA compiles outside the GIL, one core
    each; default: the CPU count). The runs themselves are then timed one at a time. Returns
    ``{index: compile seconds of that Prepared's programs}``."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i, name) for i, p in enumerate(prepared) for name in ("init", "chunk")]

    def compile_one(job):
        i, name = job
        t0 = time.perf_counter()
        compiled = prepared[i].lowered[name].compile()
        return i, name, compiled, time.perf_counter() - t0

    seconds: dict[int, float] = {}
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for i, name, compiled, dt in pool.map(compile_one, jobs):
            prepared[i].lowered[name] = compiled
            seconds[i] = seconds.get(i, 0.0) + dt
    return seconds


def execute(prep: Prepared, out: Path | None = None) -> list[dict]:
    """Run every budget of ``prep`` (compiled by :func:`compile_all`)."""
    from sedjax.train.metrics import chunk_record, summarize, write_metrics

    S = prep.program.schedule
    init, chunk = prep.lowered["init"], prep.lowered["chunk"]
    seeds = int(prep.cfg.train.num_seeds)
    results = []
    for b in prep.budgets:
        S_b = prep.schedules[b]
        t0 = time.perf_counter()
        runner = init(prep.keys, _seed_hypers(prep.program, S_b, seeds))
        records = []
        for c in range(S_b.num_chunks):
            runner, metrics = chunk(runner)
            records.append(chunk_record(jax.device_get(metrics), chunk=c, num_chunks=S_b.num_chunks,
                                        env_steps=(c + 1) * S.steps_per_chunk, num_agents=S.num_agents,
                                        round_len=S.round_len))
        train_s = time.perf_counter() - t0
        if out is not None:
            d = Path(out) / f"b{b}"
            d.mkdir(parents=True, exist_ok=True)
            write_metrics(d, records)
        results.append({"budget": b, "records": records, "final": summarize(records), "train_s": train_s,
                        "runner": runner})
    return results


def budget_runs(cfg, budgets: list[int], chunk_steps: int, out: Path | None = None) -> list[dict]:
    """Train ``cfg`` (its ``train.num_seeds`` seeds vmapped) once per budget in ``budgets``, all
    on **one compiled program**: a run's length is traced (:class:`sedjax.train.program.Budget`:
    the learning-rate decays and the tax curriculum end with *its* budget), so every budget runs
    ``budget / chunk_steps`` calls of the same compiled chunk. Each result is what a separate run
    with ``train.total_env_steps=budget`` and chunks of ``chunk_steps`` computes
    (``tests/test_scaling.py``). Returns per budget ``{"budget", "records", "final", "train_s",
    "runner"}`` (records as in ``metrics.jsonl``, written to ``out/b<budget>/`` when given)."""
    prep = prepare(cfg, budgets, chunk_steps)
    compile_all([prep], workers=1)
    return execute(prep, out)


def s2_jobs(p2, base: list[str], compose: Callable) -> list[tuple]:
    jobs = []
    for setting in p2.settings:
        for width in p2.widths:
            ov = base + setting_overrides(setting) + RUN_OVERRIDES + [
                f"agents.hidden={int(width)}", f"train.num_seeds={int(p2.seeds)}"]
            jobs.append(({"setting": setting}, ov, compose(ov), list(p2.budgets), int(p2.chunk_steps),
                         Path("runs") / "s2" / setting / f"w{width}"))
    return jobs


def s3_jobs(p3, base: list[str], compose: Callable) -> list[tuple]:
    jobs = []
    for n in p3.num_agents:
        ov = base + setting_overrides(p3.setting) + RUN_OVERRIDES + [
            "env.map=procedural", f"env.num_agents={int(n)}", f"train.num_seeds={int(p3.seeds)}"]
        jobs.append(({"setting": p3.setting}, ov, compose(ov), [int(p3.budget)],
                     int(p3.budget) // int(p3.chunks), Path("runs") / "s3" / f"n{n}"))
    return jobs


def check_jobs(jobs, field: str) -> None:
    """Every job's budgets against its schedule, before anything compiles (``ValueError`` naming
    ``field``)."""
    for _, _, cfg, budgets, steps, _ in jobs:
        schedules_for(cfg, budgets, steps, field)


def run_jobs(jobs, out: Path, log: Callable[[dict], None], study: str) -> list[dict]:
    """Run a study's ``jobs`` (from :func:`s2_jobs` / :func:`s3_jobs`: ``(extra, overrides, cfg,
    budgets, chunk_steps, folder)``; S2: one program per (setting, width), every budget on it; S3:
    one per population size). All of them are prepared and compiled concurrently first
    (:func:`compile_all`), then run and logged one at a time."""
    preps = [prepare(cfg, budgets, steps) for _, _, cfg, budgets, steps, _ in jobs]
    compile_s = compile_all(preps)
    recs = []
    for i, ((extra, ov, cfg, _, _, folder), prep) in enumerate(zip(jobs, preps)):
        t1 = time.perf_counter()
        results = execute(prep, out / folder)
        nf = prep.flops
        per_agent_step = nf["fwd_flops_per_agent_step"] + int(cfg.agents.epochs) * nf["train_flops_per_sample"]
        for r in results:
            rec = _record(study, {**extra, "budget": r["budget"]}, ov, out / folder, cfg,
                          prep.program.schedule.num_agents, r["budget"], per_agent_step, nf["params"], r["final"],
                          r["records"], compile_s=compile_s.get(i), train_s=r["train_s"],
                          wall_s=time.perf_counter() - t1)
            log(rec)
            recs.append(rec)
    return recs
