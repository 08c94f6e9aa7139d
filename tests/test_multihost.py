"""Multi-host training (jax.distributed): two processes on localhost, one CPU device each, talking
through gloo collectives, train a tiny run together (interrupted after a chunk and resumed from
their joint Orbax checkpoint) and get the metrics of one process holding both devices. Only
process 0 writes the run's files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = str(Path(__file__).parent / "multihost_child.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _result(stdout: str) -> dict:
    return json.loads([l for l in stdout.splitlines() if l.startswith("RESULT ")][-1][len("RESULT "):])


def _env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def test_two_processes_match_one(tmp_path):
    port = _free_port()
    shared = tmp_path / "two"
    procs = [subprocess.Popen(
        [sys.executable, CHILD, str(shared), "distributed.initialize=true",
         f"distributed.coordinator_address=127.0.0.1:{port}", "distributed.num_processes=2",
         f"distributed.process_id={i}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(1)) for i in range(2)]
    single = subprocess.run([sys.executable, CHILD, str(tmp_path / "one")], capture_output=True, text=True,
                            env=_env(2), timeout=900)
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr[-4000:]
        outs.append(_result(stdout))
    assert single.returncode == 0, single.stderr[-4000:]
    one = _result(single.stdout)

    assert [o["process"] for o in outs] == [0, 1] and all(o["processes"] == 2 and o["devices"] == 2 for o in outs)
    assert outs[0]["mesh"]["description"].startswith("mesh: 2 devices (runs=1 x envs=2; cpu, 2 processes)")
    # each process holds its half of the env batch (2 seeds x 8 envs) and only that
    assert all(o["global"][:2] == [2, 8] and [s[:2] for s in o["local_shards"]] == [[2, 4]] for o in outs)
    assert one["processes"] == 1 and [s[:2] for s in one["local_shards"]] == [[2, 4], [2, 4]]
    for o in outs:  # both processes report the same global metrics, those of the single process
        assert len(o["records"]) == len(one["records"]) == 2
        for ra, rb in zip(o["records"], one["records"]):
            for k in ra:
                np.testing.assert_allclose(np.asarray(ra[k], float), np.asarray(rb[k], float), rtol=1e-4,
                                           atol=1e-5, err_msg=k)
    # process 0 wrote the run's files, once: one line per chunk, not one per process
    lines = (shared / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert (shared / "summary.json").exists() and (shared / "checkpoint").is_dir()
