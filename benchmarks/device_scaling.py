"""Throughput against the number of devices: env steps/s of the simulator and agent steps/s of
training, on a mesh of 1, 2, 4, 8 devices (``sedjax.train.mesh``), and the parallel efficiency.

Weak scaling: each device keeps the same share of the batch (``--envs-per-device`` envs for the
env, ``--train-envs-per-device`` for training), so N devices step N times the envs and perfect
scaling is N times the 1-device throughput; ``efficiency = throughput(N) / (N x throughput(1))``.

Each device count runs in its own process. On CPU the devices are forced host devices
(``--xla_force_host_platform_device_count=N``): they share the same cores, so this measures the
overhead of sharding (partitioned programs, collectives), not a speed-up. On a GPU/TPU machine the
children use the first N real devices and the numbers are the scaling.

Compile time is reported apart; steady-state times are medians after warm-up, each call ended by
``block_until_ready``.

    python benchmarks/device_scaling.py                      # 1, 2, 4, 8 devices, default map
    python benchmarks/device_scaling.py --quick              # seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUICK = ["env.map=procedural", "env.num_agents=3", "train.rollout_len=50", "voting.periods_per_round=2",
         "env.rounds_per_episode=1", "principal.update_every=1", "agents.minibatches=2",
         "principal.minibatches=1", "agents.hidden=16", "agents.epochs=1", "principal.epochs=1"]


def measure(n: int, args) -> dict:
    """In a process whose first ``n`` devices form the mesh: the env and the training numbers."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    from benchmarks.common import time_compiled
    from sedjax.envs import from_config as build_env
    from sedjax.train.config import compose_config
    from sedjax.train.loop import run
    from sedjax.train.mesh import auto_mesh

    overrides = list(args.overrides) + (QUICK if args.quick else [])
    devices = jax.devices()[:n]
    out = {"devices": n, "device_kind": devices[0].device_kind, "platform": devices[0].platform}

    # --- the simulator alone: a scan of env steps with random actions, the batch split over "envs"
    cfg = compose_config(overrides)
    env, params = build_env(cfg)
    E = args.envs_per_device * n
    mesh = auto_mesh((n,), ("envs",), devices)
    split = NamedSharding(mesh, P("envs"))
    keys = jax.device_put(jax.random.split(jax.random.key(0), E), split)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)), out_shardings=split)(keys, params)
    space = env.action_space(params)

    def steps(state, key):
        def one(s, k):  # random actions (the Principal's too), as benchmarks/env_throughput.py
            ka, ks = jax.random.split(k)
            a = jax.vmap(space.sample)(jax.random.split(ka, E))
            _, s, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(ks, E), s, a, params)
            return s, None

        s, _ = jax.lax.scan(one, state, jax.random.split(key, args.env_steps))
        return s

    fn = jax.jit(steps, in_shardings=(split, NamedSharding(mesh, P())), out_shardings=split)
    t = time_compiled(fn, (state, jax.random.key(1)), repeats=args.repeats,
                      feed=lambda s, a: (s, jax.random.fold_in(a[1], 1)))
    out["env"] = {"num_envs": E, "compile_s": t["compile_s"], "median_s": t["median_s"], "times_s": t["times_s"],
                  "env_steps_per_s": E * args.env_steps / t["median_s"],
                  "agent_steps_per_s": E * args.env_steps * env.num_agents / t["median_s"]}

    # --- training: the run's own compiled chunk on the run's mesh, for each minibatch shuffle
    TE = args.train_envs_per_device * n
    for shuffle in args.shuffles:
        tcfg = compose_config(overrides + [
            f"train.num_envs={TE}", f"train.mesh.devices={n}", "train.num_seeds=1", "train.plots=false",
            "train.checkpoint=false", f"train.chunks={args.chunks}", f"agents.shuffle={shuffle}",
            f"train.total_env_steps={args.chunks * args.train_steps_per_chunk * TE}"])
        with tempfile.TemporaryDirectory() as tmp:
            s = run(tcfg, tmp, verbose=False)
        chunk_s = [r["chunk_time"] for r in s["records"]][1:] or [s["records"][0]["chunk_time"]]  # first: warm-up
        steps_per_chunk = s["records"][0]["env_steps"]
        agents = s["records"][0]["agent_sps"] / s["records"][0]["sps"]  # agents per env step
        med = statistics.median(chunk_s)
        out[f"train_{shuffle}"] = {
            "num_envs": TE, "shuffle": shuffle, "compile_s": s["compile_time"], "chunk_s": chunk_s,
            "median_chunk_s": med, "env_steps_per_chunk": steps_per_chunk, "mesh": s["mesh"]["description"],
            "env_steps_per_s": steps_per_chunk / med, "agent_steps_per_s": steps_per_chunk * agents / med}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--envs-per-device", type=int, default=64, help="env benchmark: envs per device")
    ap.add_argument("--env-steps", type=int, default=100, help="env benchmark: steps per timed call")
    ap.add_argument("--train-envs-per-device", type=int, default=2, help="training: envs per device")
    ap.add_argument("--train-steps-per-chunk", type=int, default=None,
                    help="training: env steps per env per chunk (default: one episode)")
    ap.add_argument("--chunks", type=int, default=3, help="training chunks (the first is warm-up)")
    ap.add_argument("--shuffles", nargs="+", default=["global", "per_env"], choices=["global", "per_env"],
                    help="training: the agents' minibatch shuffles to measure (agents.shuffle)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/device_scaling.json)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="extra Hydra-style config overrides")
    args = ap.parse_args(argv)
    if args.quick:
        args.envs_per_device, args.env_steps, args.train_envs_per_device, args.repeats = 2, 10, 2, 2
        args.chunks = 2
    if args.train_steps_per_chunk is None:
        args.train_steps_per_chunk = 100 if args.quick else 4000  # one episode of the config
    if args.child is not None:
        print("RESULT " + json.dumps(measure(args.child, args)), flush=True)
        return {}

    import jax

    from benchmarks.common import env_info, env_info_line, markdown_table, write_json

    info = env_info()
    on_cpu = jax.devices()[0].platform == "cpu"
    results = []
    for n in args.devices:
        if not on_cpu and n > jax.device_count():
            print(f"skipping {n} devices: only {jax.device_count()} here", flush=True)
            continue
        env = dict(os.environ)
        if on_cpu:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}").strip()
            env["JAX_PLATFORMS"] = "cpu"
        child = [sys.executable, os.path.abspath(__file__), "--child", str(n)] + [
            a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--child",)]
        t0 = time.perf_counter()
        proc = subprocess.run(child, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise RuntimeError(f"{n} devices: the child failed:\n{proc.stderr[-3000:]}")
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
        r = json.loads(line[len("RESULT "):])
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        trains = [f"{sh} {r[f'train_{sh}']['agent_steps_per_s']:,.0f}" for sh in args.shuffles]
        print(f"{n} device(s): env {r['env']['env_steps_per_s']:,.0f} env-steps/s; training agent-steps/s: "
              f"{', '.join(trains)} ({r[f'train_{args.shuffles[0]}']['mesh']})", flush=True)
    base = results[0] if results else None
    rows = []
    parts = ["env"] + [f"train_{sh}" for sh in args.shuffles]
    for r in results:
        k = r["devices"] / base["devices"]
        row = [r["devices"], r["env"]["num_envs"], r[f"train_{args.shuffles[0]}"]["num_envs"]]
        for part in parts:
            unit = "env_steps_per_s" if part == "env" else "agent_steps_per_s"
            r[part]["efficiency"] = r[part][unit] / (k * base[part][unit])
            row += [r[part][unit], r[part]["efficiency"], r[part]["compile_s"]]
        rows.append(row)
    headers = ["devices", "env: envs", "train: envs"]
    for part in parts:
        name = "env env-steps/s" if part == "env" else f"train ({part[len('train_'):]}) agent-steps/s"
        headers += [name, "efficiency", "compile s"]
    table = markdown_table(headers, rows)
    note = ("forced host devices on one CPU: they share its cores, so this measures sharding overhead, "
            "not speed-up" if on_cpu else f"{info['device_kind']} devices")
    print(env_info_line(info))
    print(f"weak scaling ({note}); efficiency = throughput(N) / (N/{base['devices'] if base else 1} "
          f"x throughput({base['devices'] if base else 1}))")
    print(table)
    payload = {"env_info": info, "config": {**{k: v for k, v in vars(args).items() if k != "child"},
                                            "forced_host_devices": on_cpu},
               "note": note, "results": results, "table": table}
    path = write_json("device_scaling", payload, args.out)
    print(f"-> {path}")
    return payload


if __name__ == "__main__":
    main()
