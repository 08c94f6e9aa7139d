"""Environment throughput: env-steps/s and agent-steps/s of ``sedjax.make("sed")`` (SPEC §7).

What is timed: ``jax.jit`` of a ``lax.scan`` over ``steps`` steps of ``jax.vmap(env.step)`` over
``num_envs`` environments (with auto-reset), random actions every step, and the observations of
every step *consumed* (summed into an accumulator carried by the scan, so XLA cannot drop them).
The environment state is carried from one timed call to the next, so the repeats walk along one
long trajectory (tax periods, voting rounds and, for long runs, episode resets included) rather
than replaying its first steps.

Two tables:

1. **Throughput** of the default config (7 agents, the default map) for several ``num_envs``, for
   the full game ``sed`` *and* the bare ``apple_grid`` (which does less work, so it must not be
   slower: a fusion problem once made it 2.6-3.7x slower, unseen while only ``sed`` was timed),
   with the grid/sed ratio per size.
2. **Per-agent-step cost** on procedural maps at constant density
   (``sedjax.maps.procedural_map_for_agents(n)``) for several agent counts ``n``, with
   ``num_envs = max(1, total_agents // n)`` (default ``total_agents = 4096``) so every row moves
   about the same number of agents per step; reported as ns per agent-step and as the ratio to the
   smallest ``n``.

Compile time is reported separately (``jit(...).lower(...).compile()`` wall time); throughput is the
median of ``--repeats`` steady-state calls after a warm-up call, each ended by
``block_until_ready``. Raw timings go to ``benchmarks/results/env_throughput.json`` (or ``--out``).

Action sampling (``--sampler``): ``space`` (default) draws each environment's action with
``env.action_space(params).sample`` under ``vmap`` (one key split per env per step); ``batched``
draws one ``randint``/``uniform`` per action leaf for all environments at once: the same
distribution (independent uniform actions), fewer PRNG calls. ``--prng-impl`` switches JAX's
default PRNG (``threefry2x32``, JAX's default; ``rbg``/``unsafe_rbg`` are much cheaper on CPU) for
this process only: it changes the random streams, not the environment's semantics.

Usage::

    python benchmarks/env_throughput.py                  # full run (a few minutes on 2 CPUs)
    python benchmarks/env_throughput.py --quick          # tiny sizes, seconds (smoke test)
    python benchmarks/env_throughput.py --num-envs 1024 --agents 7 4096 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from sedjax.scaling.cost import batched_actions, consume  # noqa: E402 - shared with sedjax-scaling

NAME = "env_throughput"


# ----------------------------------------------------------------------------------- actions
def make_sampler(env, params, num_envs: int, kind: str):
    space = env.action_space(params)
    if kind == "space":
        return lambda key: jax.vmap(space.sample)(jax.random.split(key, num_envs))
    if kind == "batched":
        return lambda key: batched_actions(space, key, num_envs)
    raise ValueError(f"--sampler must be 'space' or 'batched', got {kind!r}")


# ----------------------------------------------------------------------------------- rollout
def make_rollout(env, num_envs: int, steps: int, sampler: str):
    """``jit``-ed ``rollout(carry, params) -> carry`` with ``carry = (state, key, acc)``."""
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(carry, params):
        sample = make_sampler(env, params, num_envs, sampler)

        def body(c, _):
            state, key, acc = c
            key, k_act, k_step = jax.random.split(key, 3)
            action = sample(k_act)
            obs, state, reward, done, info = v_step(jax.random.split(k_step, num_envs), state, action, params)
            acc = acc + consume(obs) + consume(reward) + jnp.sum(done, dtype=jnp.float32)
            return (state, key, acc), None

        carry, _ = jax.lax.scan(body, carry, None, length=steps)
        return carry

    # Donate the carried state: the scan updates it in place instead of copying it each call.
    return jax.jit(rollout, donate_argnums=(0,))


def init_carry(env, params, num_envs: int, seed: int):
    key = jax.random.key(seed)
    k_reset, k_run = jax.random.split(key)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(k_reset, num_envs), params)
    return (state, k_run, jnp.zeros((), jnp.float32))


def measure(env, num_envs: int, steps: int, repeats: int, sampler: str, seed: int = 0) -> dict:
    params = env.default_params
    rollout = make_rollout(env, num_envs, steps, sampler)
    carry = init_carry(env, params, num_envs, seed)
    res = common.time_compiled(rollout, (carry, params), repeats=repeats, warmup=1,
                               feed=lambda out, args: (out, args[1]))
    acc = float(res.pop("last_output")[2])
    if not np.isfinite(acc):
        raise RuntimeError(f"non-finite accumulator {acc}: the rollout produced NaN/inf")
    n = env.num_agents
    env_steps = steps * num_envs
    med = res["median_s"]
    return {
        "num_envs": num_envs,
        "num_agents": n,
        "steps_per_call": steps,
        "env_steps_per_call": env_steps,
        "compile_s": res["compile_s"],
        "first_call_s": res["first_call_s"],
        "times_s": res["times_s"],
        "median_s": med,
        "min_s": res["min_s"],
        "env_steps_per_s": env_steps / med,
        "agent_steps_per_s": env_steps * n / med,
        "us_per_env_step": 1e6 * med / env_steps,
        "ns_per_agent_step": 1e9 * med / (env_steps * n),
    }


def auto_steps(units_per_step: int, budget: int, lo: int, hi: int) -> int:
    """Steps per timed call: about ``budget`` units (env-steps or agent-steps) per call, clipped."""
    return int(np.clip(budget // max(units_per_step, 1), lo, hi))


# ----------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["sed", "apple_grid"], choices=("sed", "apple_grid"),
                   help="environments of the throughput table (default both); the agents table times the first")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 4096],
                   help="batch sizes for the throughput table (default 1 64 1024 4096)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per timed call (default: ~2^18 env-steps per call, clipped to [50, 1000]; "
                        "for the agents table ~2^19 agent-steps per call, clipped to [20, 500])")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after warm-up; the median is reported")
    p.add_argument("--agents", type=int, nargs="*", default=[7, 64, 512, 4096],
                   help="agent counts for the per-agent-step table (procedural maps); empty: skip it")
    p.add_argument("--total-agents", type=int, default=4096,
                   help="agents moved per step in the agents table: num_envs = max(1, total // n)")
    p.add_argument("--sampler", default="space", choices=("space", "batched"),
                   help="action sampling: vmapped action_space.sample (default) or one draw per leaf")
    p.add_argument("--prng-impl", default=None, choices=("threefry2x32", "rbg", "unsafe_rbg"),
                   help="set jax_default_prng_impl for this run (default: JAX's own, threefry2x32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (smoke test)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/env_throughput.json)")
    p.add_argument("--no-write", action="store_true", help="print tables only, write no JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.num_envs = [1, 8]
        args.agents = [7, 16]
        args.total_agents = 32
        args.steps = args.steps or 5
        args.repeats = min(args.repeats, 2)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.prng_impl:
        jax.config.update("jax_default_prng_impl", args.prng_impl)
    import sedjax
    from sedjax.maps import procedural_map_for_agents

    info = common.env_info()
    print(f"# {NAME}: {', '.join(args.envs)}, " + common.env_info_line(info))
    print(f"sampler={args.sampler}, prng={info['jax_default_prng_impl']}, repeats={args.repeats}\n")

    # Table 1: throughput of the default config, every env at every size.
    throughput = []
    for name in args.envs:
        env = sedjax.make(name)
        for ne in args.num_envs:
            steps = args.steps or auto_steps(ne, 2**18, 50, 1000)
            r = measure(env, ne, steps, args.repeats, args.sampler, args.seed)
            r["env"] = name
            throughput.append(r)
            print(f"  {name:10s} num_envs={ne:5d}: {r['env_steps_per_s']:12,.0f} env-steps/s  "
                  f"(compile {r['compile_s']:.1f}s)", flush=True)
    by = {(r["env"], r["num_envs"]): r for r in throughput}
    rows = []
    for r in throughput:
        sed_r = by.get(("sed", r["num_envs"]))
        ratio = r["env_steps_per_s"] / sed_r["env_steps_per_s"] if sed_r else float("nan")
        r["ratio_to_sed"] = ratio
        rows.append([r["env"], r["num_envs"], r["steps_per_call"], r["compile_s"], 1e3 * r["median_s"],
                     r["env_steps_per_s"], r["agent_steps_per_s"], r["us_per_env_step"], ratio])
    t1 = common.markdown_table(
        ["env", "num_envs", "steps/call", "compile s", "median ms/call", "env-steps/s", "agent-steps/s",
         "us/env-step", "ratio to sed"], rows)
    print(f"\n## default config ({env.num_agents} agents), random actions\n\n{t1}\n", flush=True)
    args.env = args.envs[0]

    # Table 2: per-agent-step cost at constant density.
    scaling = []
    for n in args.agents:
        ne = max(1, args.total_agents // n)
        grid_map = procedural_map_for_agents(n, seed=args.seed)
        env_n = sedjax.make(args.env, map=grid_map, num_agents=n)
        steps = args.steps or auto_steps(ne * n, 2**19, 20, 500)
        r = measure(env_n, ne, steps, args.repeats, args.sampler, args.seed)
        grid = env_n.grid if args.env == "sed" else env_n
        r["map"] = {"name": grid_map.name, "height": grid_map.height, "width": grid_map.width,
                    "apple_cells": grid_map.num_apples, "padded_cells": grid.num_cells}
        scaling.append(r)
        print(f"  agents={n:5d} x envs={ne:4d}: {r['ns_per_agent_step']:8.1f} ns/agent-step "
              f"(compile {r['compile_s']:.1f}s)", flush=True)
    if scaling:
        base = scaling[0]["ns_per_agent_step"]
        for r in scaling:
            r["cost_ratio_to_first"] = r["ns_per_agent_step"] / base
        rows = [[r["num_agents"], r["num_envs"], f"{r['map']['height']}x{r['map']['width']}",
                 r["map"]["apple_cells"], r["steps_per_call"], r["compile_s"], r["agent_steps_per_s"],
                 r["ns_per_agent_step"], r["cost_ratio_to_first"]] for r in scaling]
        t2 = common.markdown_table(
            ["agents", "num_envs", "map", "apple cells", "steps/call", "compile s", "agent-steps/s",
             "ns/agent-step", f"ratio to {scaling[0]['num_agents']}"], rows)
        print(f"\n## {args.env}, procedural maps at constant density (num_envs = max(1, {args.total_agents} // agents))"
              f"\n\n{t2}\n", flush=True)

    payload = {
        "benchmark": NAME,
        "env_info": info,
        "config": {k: v for k, v in vars(args).items()},
        "throughput": throughput,
        "scaling": scaling,
        "summary": {
            "env_steps_per_s": {f"{r['env']}/{r['num_envs']}": r["env_steps_per_s"] for r in throughput},
            "apple_grid_to_sed": {str(r["num_envs"]): r["ratio_to_sed"] for r in throughput if r["env"] == "apple_grid"},
            "ns_per_agent_step": {str(r["num_agents"]): r["ns_per_agent_step"] for r in scaling},
            "cost_ratio_last_to_first": (scaling[-1]["ns_per_agent_step"] / scaling[0]["ns_per_agent_step"]
                                         if scaling else None),
        },
    }
    if not args.no_write:
        path = common.write_json(NAME, payload, args.out)
        print(f"wrote {os.path.relpath(path)}")
    return payload


if __name__ == "__main__":
    main()
