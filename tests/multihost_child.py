"""One process of tests/test_multihost.py: a tiny training run, interrupted after a chunk and
resumed, on a mesh spanning every process's devices. argv: out_dir, then config overrides."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sharded_config import SHARDED  # noqa: E402

from sedjax.train.config import compose_config  # noqa: E402
from sedjax.train.loop import run  # noqa: E402

out_dir, overrides = sys.argv[1], sys.argv[2:]
base = SHARDED + ["train.mesh.runs=1"] + overrides
run(compose_config(base), out_dir, max_chunks=1, verbose=False)
summary = run(compose_config(base + ["train.resume=true"]), out_dir, verbose=False)

import jax  # noqa: E402  (already initialised by run)

leaf = jax.tree.leaves(summary["runner"].env_state)[0]
print("RESULT " + json.dumps({
    "process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
    "mesh": summary["mesh"], "global": list(leaf.shape),
    "local_shards": [list(s.data.shape) for s in leaf.addressable_shards],
    "records": [{k: r[k] for k in ("objective", "agent_return", "mean_tax_rate", "agents/value_loss",
                                   "objective_per_seed")} for r in summary["records"]],
}), flush=True)
