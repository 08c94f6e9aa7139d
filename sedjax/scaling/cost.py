"""S1, the cost of simulating: throughput, FLOPs, bytes, memory and compile time of ``sed``.

One *point* is one configuration of the environment (``num_envs`` x ``num_agents`` on one or more
devices), measured the way ``benchmarks/env_throughput.py`` does: ``jax.jit`` of a ``lax.scan``
over ``steps`` vmapped ``env.step`` calls with uniformly random actions, every observation
consumed (summed into the carry, so XLA cannot drop it), the env state carried from one timed
call to the next (a call continues the trajectory); compile time apart; the median of
``repeats`` calls after a warm-up, each ended by ``block_until_ready``.

Besides time, each point records what XLA says about one step: ``flops`` and ``bytes accessed``
from the compiled rollout's ``cost_analysis()`` (XLA counts a loop body once whatever its trip
count, so that is one step of the batch, plus a key split), and the program's memory (arguments + outputs + temporaries) from ``compiled.memory_analysis()``; plus the device's
peak memory where the runtime reports it (GPU/TPU ``memory_stats``), else the process's peak RSS
(CPU: it only grows, so it is an upper bound for the points measured so far).

On the agent axis the env uses procedural maps at constant density
(:func:`sedjax.maps.procedural_map_for_agents`, 50 interior cells per agent) and, so that every
timed call includes the per-period bracket tax and a vote, ``tax.period_len`` short and one period
per voting round with the weighted-median vote (the costliest mechanism); those settings are
recorded with each point. The vote alone is timed on its own axis (``vote_point``).

The devices axis is weak scaling (``num_envs`` per device fixed) with the env batch split over a
``jax.make_mesh`` mesh. On CPU with fewer devices than asked, :func:`devices_points` measures them in
a child process with ``--xla_force_host_platform_device_count`` (host devices share the same cores:
that measures overhead, not speed-up).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The agent axis's settings: every call of >= PERIOD_LEN steps ends a tax period and a round.
AGENT_AXIS_SED = {"period_len": 10, "periods_per_round": 1, "mechanism": "weighted_median"}


def consume(tree) -> jax.Array:
    """Every leaf summed (float32) into one scalar, so XLA computes all of ``tree``."""
    return sum(jnp.sum(x, dtype=jnp.float32) for x in jax.tree.leaves(tree))


def batched_actions(space, key, num_envs: int):
    """Independent uniform actions for ``num_envs`` envs, one PRNG draw per leaf: the distribution
    of ``vmap(space.sample)`` without a key split per env (also ``benchmarks/env_throughput.py``'s
    ``--sampler batched``)."""
    from sedjax import spaces

    if isinstance(space, spaces.Dict):
        keys = jax.random.split(key, len(space.spaces))
        return {k: batched_actions(s, kk, num_envs) for (k, s), kk in zip(space.spaces.items(), keys)}
    shape = (num_envs,) + tuple(space.shape)
    if isinstance(space, spaces.Discrete):
        return jax.random.randint(key, shape, 0, space.n, dtype=space.dtype)
    if isinstance(space, spaces.Box):
        if jnp.issubdtype(space.dtype, jnp.integer):
            return jax.random.randint(key, shape, space.low, space.high + 1, dtype=space.dtype)
        return jax.random.uniform(key, shape, space.dtype, space.low, space.high)
    raise TypeError(f"unsupported space {space!r}")


def _peak_memory() -> tuple[int | None, str]:
    """(bytes, source): the first device's peak (GPU/TPU), else this process's peak RSS."""
    try:
        stats = jax.devices()[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    except Exception:  # noqa: BLE001 - backends without memory stats
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(rss) * 1024, "process peak RSS (cumulative)"


def xla_cost(compiled) -> dict:
    """flops / bytes accessed (XLA's cost analysis) and memory (memory analysis) of a program."""
    out: dict[str, Any] = {"flops": None, "bytes_accessed": None, "xla_memory_bytes": None}
    try:
        ca = compiled.cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        if ca:
            out["flops"] = float(ca.get("flops", 0.0))
            out["bytes_accessed"] = float(ca.get("bytes accessed", 0.0))
    except Exception:  # noqa: BLE001 - not every backend implements it
        pass
    try:
        m = compiled.memory_analysis()
        if m is not None:
            out["xla_memory_bytes"] = int(m.argument_size_in_bytes + m.output_size_in_bytes
                                          + m.temp_size_in_bytes - m.alias_size_in_bytes)
    except Exception:  # noqa: BLE001
        pass
    return out


def make_env(num_agents: int, agent_axis: bool, map_seed: int = 0):
    """The default ``sed`` (7 agents, the default map) or, on the agent axis, a procedural map at
    constant density with :data:`AGENT_AXIS_SED`."""
    import sedjax
    from sedjax.maps import procedural_map_for_agents

    if not agent_axis:
        return sedjax.make("sed", num_agents=int(num_agents))
    grid_map = procedural_map_for_agents(int(num_agents), seed=map_seed)
    return sedjax.make("sed", map=grid_map, num_agents=int(num_agents), **AGENT_AXIS_SED)


def env_point(num_envs: int, num_agents: int = 7, *, steps: int = 32, repeats: int = 3,
              devices: int = 1, agent_axis: bool = False, seed: int = 0) -> dict:
    """Measure one configuration (see the module docstring); returns a JSON-able record."""
    num_envs, num_agents, devices = int(num_envs), int(num_agents), int(devices)
    if devices > jax.device_count():
        raise ValueError(f"s1.devices: {devices} devices asked, {jax.device_count()} available")
    if num_envs % devices:
        raise ValueError(f"num_envs={num_envs} is not a multiple of devices={devices}")
    t0 = time.perf_counter()
    env = make_env(num_agents, agent_axis, seed)
    params = env.default_params
    build_s = time.perf_counter() - t0
    space = env.action_space(params)
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_reset = jax.vmap(env.reset, in_axes=(0, None))

    sharding = None
    if devices > 1:
        from jax.sharding import NamedSharding, PartitionSpec as P

        from sedjax.train.mesh import auto_mesh

        mesh = auto_mesh((devices,), ("envs",), jax.devices()[:devices])
        sharding = NamedSharding(mesh, P("envs"))

    def step_once(state, key):
        k_act, k_step = jax.random.split(key)
        action = batched_actions(space, k_act, num_envs)
        obs, state, reward, done, _ = v_step(jax.random.split(k_step, num_envs), state, action, params)
        return state, consume(obs) + consume(reward) + jnp.sum(done, dtype=jnp.float32)

    def rollout(carry):
        def body(c, _):
            state, key, acc = c
            key, k = jax.random.split(key)
            state, a = step_once(state, k)
            return (state, key, acc + a), None

        carry, _ = jax.lax.scan(body, carry, None, length=steps)
        return carry

    key = jax.random.key(seed)
    k_reset, k_run = jax.random.split(key)
    _, state = jax.jit(v_reset)(jax.random.split(k_reset, num_envs), params)
    if sharding is not None:
        state = jax.device_put(state, sharding)
    carry = (state, k_run, jnp.zeros((), jnp.float32))

    t0 = time.perf_counter()
    compiled = jax.jit(rollout, donate_argnums=(0,)).lower(carry).compile()
    compile_s = time.perf_counter() - t0
    # XLA's cost analysis counts a loop body once, whatever its trip count, so the scan's count is
    # one step's (plus the carry's key split): the same for 8 and 32 steps (tests/test_scaling.py).
    cost = xla_cost(compiled)
    times = []
    for i in range(repeats + 1):  # the first call is the warm-up
        t = time.perf_counter()
        carry = jax.block_until_ready(compiled(carry))
        if i:
            times.append(time.perf_counter() - t)
    acc = float(carry[2])
    if not np.isfinite(acc):
        raise RuntimeError(f"non-finite accumulator {acc} at num_envs={num_envs}, num_agents={num_agents}")
    peak, peak_src = _peak_memory()
    med = statistics.median(times)
    env_steps = steps * num_envs
    per_env_step = num_envs * num_agents
    rec = {
        "num_envs": num_envs, "num_agents": num_agents, "devices": devices,
        "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
        "map": {"name": env.grid.map.name, "height": int(env.grid.map.height), "width": int(env.grid.map.width),
                "apple_cells": int(env.grid.map.num_apples), "padded_cells": int(env.grid.num_cells)},
        "settings": dict(AGENT_AXIS_SED) if agent_axis else "default",
        "steps_per_call": steps, "repeats": repeats, "times_s": times, "median_s": med,
        "compile_s": compile_s, "build_s": build_s,
        "env_steps_per_s": env_steps / med, "agent_steps_per_s": env_steps * num_agents / med,
        "ns_per_agent_step": 1e9 * med / (env_steps * num_agents),
        "flops_per_step": cost["flops"], "bytes_per_step": cost["bytes_accessed"],
        "flops_per_agent_step": cost["flops"] / per_env_step if cost["flops"] is not None else None,
        "bytes_per_agent_step": cost["bytes_accessed"] / per_env_step if cost["bytes_accessed"] is not None else None,
        "xla_memory_bytes": cost["xla_memory_bytes"], "peak_memory_bytes": peak, "peak_memory_source": peak_src,
    }
    return rec


def vote_point(num_voters: int, *, repeats: int = 5, mechanism: str = "weighted_median", dense: bool = False,
               seed: int = 0) -> dict:
    """Time the vote alone over ``num_voters`` reports: ``sedjax.voting.vote(sigma, mechanism)``,
    or with ``dense`` the O(n^2) reference of the weighted-median vote
    (``voting.weighted_medians_dense``, an n x n weight matrix)."""
    from sedjax import voting

    sigma = jax.random.uniform(jax.random.key(seed), (int(num_voters),))
    if dense:
        mechanism = "weighted_median_dense"
        fn = jax.jit(lambda s: jnp.median(voting.weighted_medians_dense(s), axis=-1))
    else:
        fn = jax.jit(lambda s: voting.vote(s, mechanism))
    t0 = time.perf_counter()
    compiled = fn.lower(sigma).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(sigma))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(sigma))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"num_voters": int(num_voters), "mechanism": mechanism, "times_s": times, "median_s": med,
            "compile_s": compile_s, "ns_per_voter": 1e9 * med / int(num_voters), **xla_cost(compiled)}


# ------------------------------------------------------------------------- the devices axis
def devices_points(counts, num_envs_per_device: int, *, steps: int, repeats: int) -> list[dict]:
    """Weak scaling over device counts. Measured in this process when it has the devices; on CPU
    with fewer, in a child process with forced host devices (XLA_FLAGS must be set before jax
    starts, so the child is a fresh interpreter)."""
    counts = [int(c) for c in counts]
    if max(counts) <= jax.device_count():
        return [dict(env_point(c * num_envs_per_device, steps=steps, repeats=repeats, devices=c),
                     forced_host_devices=False) for c in counts]
    if jax.devices()[0].platform != "cpu":
        raise ValueError(f"s1.devices: {max(counts)} devices asked, {jax.device_count()} available")
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={max(counts)}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    spec = json.dumps({"counts": counts, "per_device": num_envs_per_device, "steps": steps, "repeats": repeats})
    out = subprocess.run([sys.executable, "-m", "sedjax.scaling.cost", spec], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"the devices child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    recs = json.loads(out.stdout.strip().splitlines()[-1])
    for r in recs:
        r["forced_host_devices"] = True
    return recs


def _child(spec: str) -> None:
    s = json.loads(spec)
    recs = [env_point(c * s["per_device"], steps=s["steps"], repeats=s["repeats"], devices=c) for c in s["counts"]]
    print(json.dumps(recs))


if __name__ == "__main__":
    _child(sys.argv[1])
