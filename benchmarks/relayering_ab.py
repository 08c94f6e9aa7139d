"""Before/after throughput of a refactor, in ONE process with interleaved timed calls, so the shared
machine's drift (2x over minutes here) cancels out.

Usage: make the old tree importable as ``sedjax_old`` (copy its ``sedjax/`` folder to
``<dir>/sedjax_old`` and rename the package in its imports, e.g.
``grep -rl sedjax sedjax_old | xargs sed -i 's/\\bsedjax\\b/sedjax_old/g'``), then
``python benchmarks/relayering_ab.py <dir>``. Writes benchmarks/results/relayering_ab.json.
"""
import sys, time, json
from pathlib import Path
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import jax, jax.numpy as jnp, numpy as np
import sedjax, sedjax_old
from sedjax.maps import procedural_map_for_agents
from sedjax_old.maps import procedural_map_for_agents as pm_old
from benchmarks import env_throughput as b
def prep(env, ne, steps):
    params = env.default_params
    f = b.make_rollout(env, ne, steps, "space")
    carry = b.init_carry(env, params, ne, 0)
    c = jax.block_until_ready(f(carry, params))
    return [f, c, params]
cases = {}
for tag, mod, pm in [("before", sedjax_old, pm_old), ("after", sedjax, procedural_map_for_agents)]:
    cases[f"sed 1024 envs [{tag}]"] = (prep(mod.make("sed"), 1024, 128), 1024 * 128)
    cases[f"apple_grid 1024 envs [{tag}]"] = (prep(mod.make("apple_grid"), 1024, 128), 1024 * 128)
    cases[f"sed 4096 agents x 1 env [{tag}]"] = (prep(mod.make("sed", map=pm(4096, seed=0), num_agents=4096), 1, 64), 64)
times = {k: [] for k in cases}
for rep in range(7):
    for k, (st, n) in cases.items():
        f, c, p = st
        t0 = time.perf_counter(); c = jax.block_until_ready(f(c, p)); times[k].append(time.perf_counter() - t0); st[1] = c
out = {}
for k, (st, n) in cases.items():
    med = float(np.median(times[k])); out[k] = {"env_steps_per_s": n / med, "median_s": med, "times_s": times[k]}
    print(f"{k:34s} {n/med:12,.0f} env-steps/s")
json.dump({"jax": jax.__version__, "device": str(jax.devices()[0].device_kind), "repeats": 7, "interleaved": True, "results": out},
          open(Path(__file__).resolve().parent / "results" / "relayering_ab.json", "w"), indent=1)
