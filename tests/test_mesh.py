"""Sharded training on one host (sedjax.train.mesh): a run on 8 (forced CPU) devices computes what
the 1-device run computes, its env batch really is split, a resumed sharded run equals the
uninterrupted one, and meshes that cannot split the batch are refused naming the key.

The 8-device runs happen in a subprocess: ``--xla_force_host_platform_device_count`` must be set
before jax is imported, and this test process has imported it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from sedjax.train.config import compose_config
from sedjax.train.mesh import make_run_mesh

HERE = Path(__file__).parent

CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import jax, numpy as np
    from sharded_config import SHARDED
    from sedjax.train.config import compose_config
    from sedjax.train.loop import run

    assert jax.device_count() == 8, jax.devices()
    base = SHARDED
    out = {{}}
    def metrics(summary):
        return [{{k: r[k] for k in ("objective", "agent_return", "mean_tax_rate", "apples_alive",
                                   "agents/value_loss", "principal/value_loss", "objective_per_seed")}}
                for r in summary["records"]]
    def shards(summary):
        leaf = jax.tree.leaves(summary["runner"].env_state)[0]
        param = jax.tree.leaves(summary["runner"].agents.params)[0]
        return {{"global": list(leaf.shape), "devices": len(leaf.sharding.device_set),
                "shards": sorted({{tuple(s.data.shape) for s in leaf.addressable_shards}}),
                "param_shards": sorted({{tuple(s.data.shape) for s in param.addressable_shards}}),
                "param_global": list(param.shape)}}
    if {shuffle!r} == "global":
        runs = (("one", ["train.mesh.devices=1", "train.checkpoint=false"]), ("eight", ["train.checkpoint=false"]))
    else:
        runs = (("one", ["train.mesh.devices=1", "train.checkpoint=false", "agents.shuffle=per_env"]),
                ("eight", ["train.mesh.runs=1", "train.checkpoint=false", "agents.shuffle=per_env"]))
    for name, extra in runs:
        s = run(compose_config(base + extra), {root!r} + "/" + name, verbose=False)
        out[name] = {{"metrics": metrics(s), "mesh": s["mesh"], **shards(s)}}
    if {shuffle!r} == "global":
        # interrupted after one chunk on the 8-device mesh, then resumed from its sharded checkpoint
        # (the same compiled program as "eight")
        run(compose_config(base), {root!r} + "/resumed", max_chunks=1, verbose=False)
        s = run(compose_config(base + ["train.resume=true"]), {root!r} + "/resumed", verbose=False)
        out["resumed"] = {{"metrics": metrics(s), **shards(s)}}
    print("RESULT " + json.dumps(out))
""")


def _eight_device_child(root, shuffle: str):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(HERE), root=str(root), shuffle=shuffle)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), root


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    """The default (global) shuffle: 1 device, 8 devices (runs=2 x envs=4), and a resumed run."""
    return _eight_device_child(tmp_path_factory.mktemp("mesh"), "global")


@pytest.fixture(scope="module")
def eight_devices_per_env(tmp_path_factory):
    """agents.shuffle=per_env: 1 device and 8 devices (envs=8)."""
    return _eight_device_child(tmp_path_factory.mktemp("mesh_per_env"), "per_env")


def _assert_same_metrics(a, b, rtol=1e-4, atol=1e-5):
    assert len(a) == len(b) and a
    for ra, rb in zip(a, b):
        for k in ra:
            np.testing.assert_allclose(np.asarray(ra[k], float), np.asarray(rb[k], float), rtol=rtol, atol=atol,
                                       err_msg=k)


def test_eight_devices_match_one(eight_devices):
    """Same seeds, same config: 8 devices (runs=2 x envs=4: both axes split) give the 1-device
    metrics, up to the order of floating-point sums."""
    out, _ = eight_devices
    assert out["one"]["mesh"]["devices"] == 1
    assert (out["eight"]["mesh"]["runs"], out["eight"]["mesh"]["envs"]) == (2, 4)  # 2 seeds: runs first
    _assert_same_metrics(out["one"]["metrics"], out["eight"]["metrics"])
    # the two seeds differ: the comparison is not between constants
    per_seed = out["one"]["metrics"][-1]["objective_per_seed"]
    assert abs(per_seed[0] - per_seed[1]) > 1e-6


def test_per_env_shuffle_is_the_same_on_any_mesh(eight_devices, eight_devices_per_env):
    """agents.shuffle=per_env (minibatches stratified by env, so they stay on their devices): 8
    devices (envs=8) give the 1-device metrics too, and they differ from the global shuffle's."""
    out, _ = eight_devices_per_env
    assert out["eight"]["mesh"]["envs"] == 8
    assert [s[:2] for s in out["eight"]["shards"]] == [[2, 1]]
    _assert_same_metrics(out["one"]["metrics"], out["eight"]["metrics"])
    a = eight_devices[0]["one"]["metrics"][-1]["agents/value_loss"]
    b = out["one"]["metrics"][-1]["agents/value_loss"]
    assert abs(a - b) > 1e-6 * abs(a)


def test_env_batch_is_split(eight_devices):
    """Each device holds 1/8 of the env batch (2 seeds x 8 envs): one seed's 2 envs on
    runs=2 x envs=4; the learners' parameters are split by run only (replicated over the envs)."""
    out, _ = eight_devices
    assert out["eight"]["global"][:2] == [2, 8] and out["eight"]["devices"] == 8
    assert [s[:2] for s in out["eight"]["shards"]] == [[1, 2]]
    assert out["eight"]["param_shards"] == [[1] + out["eight"]["param_global"][1:]]
    assert [s[:2] for s in out["one"]["shards"]] == [[2, 8]]


def test_sharded_resume_equals_uninterrupted(eight_devices, tmp_path):
    """A sharded run interrupted after a chunk and resumed from its (sharded) checkpoint ends where
    the uninterrupted run ends, still split over the 8 devices."""
    out, root = eight_devices
    assert len(out["resumed"]["metrics"]) == 2  # one chunk before the interruption, one after
    _assert_same_metrics(out["eight"]["metrics"], out["resumed"]["metrics"], rtol=1e-6, atol=1e-7)
    assert [s[:2] for s in out["resumed"]["shards"]] == [[1, 2]]
    cfg = json.loads((root / "resumed" / "summary.json").read_text())
    assert cfg["mesh"]["description"].startswith("mesh: 8 devices (runs=2 x envs=4")
    assert "used:" in (root / "resumed" / "config.yaml").read_text()


class _FakeDevice:
    platform = "cpu"


@pytest.mark.parametrize("overrides,num_runs,message", [
    (["train.num_envs=6"], 1, "train.num_envs=6 cannot be split over the mesh's envs axis of 8"),
    (["train.num_envs=6", "train.mesh.runs=2"], 2, "train.num_envs=6 cannot be split over the mesh's envs axis of 4"),
    (["train.mesh.runs=3"], 3, "train.mesh.runs=3 does not divide the mesh's 8 devices"),
    (["train.mesh.runs=4"], 2, "train.mesh.runs=4 does not divide the 2 runs"),
    (["train.mesh.devices=16"], 1, "train.mesh.devices=16, but only 8 device(s)"),
    (["train.mesh.devices=0"], 1, "train.mesh.devices must be a positive integer"),
    (["train.mesh.runs=two"], 1, "train.mesh.runs must be a positive integer"),
])
def test_bad_mesh_is_refused(overrides, num_runs, message):
    cfg = compose_config(overrides)
    with pytest.raises(ValueError) as e:
        make_run_mesh(cfg, num_runs, int(cfg.train.num_envs), devices=[_FakeDevice()] * 8)
    assert message in str(e.value)


def test_default_mesh_takes_runs_first():
    """On the devices this process sees: runs get the gcd of devices and runs, envs the rest."""
    n = jax.device_count()
    m = make_run_mesh(compose_config([]), 2 * n, 16 * n)
    assert (m.runs, m.envs) == (n, 1)
    assert m.description.startswith(f"mesh: {n} device")
