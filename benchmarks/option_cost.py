"""What the SPEC's options cost in training: one Principal iteration (PPO agents + PPO Principal) of
the default config with each option on, timed in the same run as the default.

Options: ``env.principal_obs=world`` (the Principal's CNN over the whole map), ``env.obs_mode=rgb``
(88x88x3 views and the agents' pixel conv), ``voting.reports=strategic`` (iterated best responses
at each vote), ``types.trust_rate`` (dynamic trust). Medians of ``--repeats`` compiled chunks after a
warm-up (compile time apart); ``× default`` is the ratio of the option's env-steps/s to the
default's, measured in the same run. Writes ``benchmarks/results/option_cost.json``.

``python benchmarks/option_cost.py [--num-envs 16] [--repeats 3] [--quick] [overrides ...]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import env_info, env_info_line, markdown_table, write_json  # noqa: E402
from benchmarks.train_throughput import measure as measure_training  # noqa: E402
from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.schedule import env_steps_per_iteration  # noqa: E402

OPTIONS = {
    "default": [],
    "env.principal_obs=world": ["env.principal_obs=world"],
    "env.obs_mode=rgb": ["env.obs_mode=rgb"],
    "voting.reports=strategic": ["voting.reports=strategic"],
    "types.trust_rate=0.05": ["types.trust_rate=0.05", "types.trust_ref=1.0"],
}
QUICK = ["train.rollout_len=50", "voting.periods_per_round=2", "env.rounds_per_episode=1",
         "principal.update_every=1", "agents.minibatches=2", "principal.minibatches=1"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    ap.add_argument("--quick", action="store_true", help="tiny sizes and two options, for smoke tests")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/option_cost.json)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra-style config overrides")
    args = ap.parse_args(argv)
    base = list(args.overrides)
    if args.quick:
        args.num_envs, args.repeats = 2, 1
        args.options = ["default", "env.principal_obs=world"]
        base += QUICK
    base += [f"train.num_envs={args.num_envs}"]
    per_iter = env_steps_per_iteration(compose_config(base))
    base += ["train.chunks=1", f"train.total_env_steps={per_iter}"]  # one chunk = one Principal iteration
    info = env_info()
    results = {}
    for name in args.options:
        results[name] = measure_training(base + OPTIONS[name], args.repeats, stub=False)  # train_throughput's timing
        print(f"{name}: {results[name]['env_steps_per_s']:,.0f} env-steps/s", flush=True)
    ref = results.get("default")
    rows = []
    for name, r in results.items():
        ratio = r["env_steps_per_s"] / ref["env_steps_per_s"] if ref else float("nan")
        r["relative_to_default"] = ratio
        rows.append([name, r["env_steps_per_s"], r["agent_steps_per_s"], f"{ratio:.2f}", r["compile_s"]])
    table = markdown_table(["option", "env-steps/s", "agent-steps/s", "x default", "compile (s)"], rows)
    print()
    print(f"Training cost of the options (num_envs={args.num_envs}, {env_info_line(info)}); "
          f"medians of {args.repeats} chunks of one Principal iteration")
    print(table)
    payload = {"env": info, "overrides": base, "repeats": args.repeats, "num_envs": args.num_envs,
               "results": results, "table": table}
    path = write_json("option_cost", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
