"""End-to-end training throughput: PPO agents + PPO Principal, real env vs a stub env.

For each ``num_envs``: compile time of one training chunk, then the median steady-state time of a
chunk (one Principal iteration = ``principal.update_every`` agent iterations of ``rollout_len``
steps, with the PPO updates), as env-steps/s and agent-steps/s. The same loop and networks are then
fed by a *stub* environment whose step returns observations that cost nothing to make (but are not
compile-time constants) and zero rewards: ``real / stub`` is the share of the training speed left
when the simulator is real. Target: >= 50 % (the simulator is not the bottleneck).

    python benchmarks/train_throughput.py                  # num_envs 16, 64, 256
    python benchmarks/train_throughput.py --quick          # seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import env_info, env_info_line, markdown_table, time_compiled, write_json  # noqa: E402
from sedjax.envs import from_config as build_env  # noqa: E402
from sedjax.sed import SED  # noqa: E402
from sedjax.train import make_train  # noqa: E402
from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.schedule import env_steps_per_iteration  # noqa: E402


class StubSED(SED):
    """The SED interface with a free step: the clock advances (so periods, rounds and episode ends
    happen on time) but observations are a cheap function of ``t`` and rewards are zero."""

    def step_env(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        t = state.t + 1
        n = self.num_agents
        obs_shape = self.grid.observation_space().shape
        obs = {
            "agents": jnp.broadcast_to((t % 2).astype(jnp.uint8), obs_shape),
            "principal": jnp.broadcast_to((t % 3).astype(jnp.float32), (self.principal_obs_dim,)),
        }
        zeros = jnp.zeros((n,), jnp.float32)
        period_end = t % self.period_len == 0
        info = {
            "apples_collected": zeros, "period_raw": zeros, "income": zeros, "extrinsic": zeros,
            "rates": state.rates, "voted": state.voted, "objective": jnp.float32(0),
            "apples_alive": jnp.int32(0), "period_end": period_end,
            "round_end": t % self.round_len == 0,
        }
        reward = {"agents": zeros, "principal": jnp.float32(0)}
        return obs, state.replace(grid=state.grid.replace(t=t)), reward, t >= self.episode_len, info


def stub_of(env: SED) -> StubSED:
    stub = copy.copy(env)
    stub.__class__ = StubSED
    return stub


def measure(overrides, repeats, stub: bool):
    cfg = compose_config(overrides)
    env = stub_of(build_env(cfg)[0]) if stub else None
    program = make_train(cfg, env=env)
    runner = jax.jit(program.init)(jax.random.key(0))
    res = time_compiled(jax.jit(program.chunk), (runner,), repeats=repeats, warmup=1,
                        feed=lambda out, args: (out[0],))
    steps = program.schedule.steps_per_chunk
    n = program.schedule.num_agents
    return {
        "compile_s": res["compile_s"],
        "chunk_median_s": res["median_s"],
        "chunk_times_s": res["times_s"],
        "env_steps_per_chunk": steps,
        "env_steps_per_s": steps / res["median_s"],
        "agent_steps_per_s": steps * n / res["median_s"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-envs", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_throughput.json)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra-style config overrides")
    args = ap.parse_args(argv)
    base = list(args.overrides)
    if args.quick:
        args.num_envs, args.repeats = [2], 1
        base += ["train.rollout_len=50", "voting.periods_per_round=2", "env.rounds_per_episode=1",
                 "principal.update_every=1", "agents.minibatches=2", "principal.minibatches=1"]
    info = env_info()
    rows, results = [], []
    for E in args.num_envs:
        # One chunk = one Principal iteration: a run of exactly one iteration (its schedules then
        # anneal within it, which changes values, not the cost of the program).
        per_iter = env_steps_per_iteration(compose_config(base + [f"train.num_envs={E}"]))
        ov = base + [f"train.num_envs={E}", "train.chunks=1", f"train.total_env_steps={per_iter}"]
        real = measure(ov, args.repeats, stub=False)
        fake = measure(ov, args.repeats, stub=True)
        ratio = real["agent_steps_per_s"] / fake["agent_steps_per_s"]
        results.append({"num_envs": E, "real": real, "stub": fake, "real_over_stub": ratio})
        rows.append([E, real["env_steps_per_s"], real["agent_steps_per_s"], real["compile_s"],
                     fake["agent_steps_per_s"], f"{100 * ratio:.0f} %"])
        print(f"num_envs={E}: {real['agent_steps_per_s']:,.0f} agent-steps/s (stub {fake['agent_steps_per_s']:,.0f})",
              flush=True)
    table = markdown_table(
        ["num_envs", "env-steps/s", "agent-steps/s", "compile (s)", "stub agent-steps/s", "real / stub"], rows)
    print()
    print(f"Training throughput (default config, {env_info_line(info)}); medians of {args.repeats} chunks")
    print(table)
    cfg = compose_config(base)
    path = write_json("train_throughput", {
        "env": info, "overrides": base, "repeats": args.repeats, "results": results, "table": table,
        "config": {"num_agents": int(cfg.env.num_agents), "rollout_len": int(cfg.train.rollout_len),
                   "update_every": int(cfg.principal.update_every), "network": str(cfg.agents.network)},
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
