"""Smoke tests: the benchmark scripts run end to end on tiny sizes and write their JSON (so they do
not rot between the runs whose figures the README quotes). No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import env_throughput, sweep_throughput, train_throughput  # noqa: E402


def test_env_throughput_quick(tmp_path):
    out = tmp_path / "env.json"
    payload = env_throughput.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["env_info"]["jax_version"] and saved["config"]["quick"]
    assert [(r["env"], r["num_envs"]) for r in payload["throughput"]] == [
        ("sed", 1), ("sed", 8), ("apple_grid", 1), ("apple_grid", 8)]  # the bare grid is timed beside sed
    assert set(saved["summary"]["apple_grid_to_sed"]) == {"1", "8"}
    assert [r["num_agents"] for r in payload["scaling"]] == [7, 16]
    for r in payload["throughput"] + payload["scaling"]:
        assert r["env_steps_per_s"] > 0 and r["compile_s"] > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_train_throughput_quick(tmp_path):
    out = tmp_path / "train.json"
    train_throughput.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    (row,) = saved["results"]
    assert row["num_envs"] == 2 and row["real"]["agent_steps_per_s"] > 0 and row["stub"]["agent_steps_per_s"] > 0
    assert row["real"]["env_steps_per_chunk"] == 2 * 50  # one Principal iteration per chunk


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sweep_throughput_quick(tmp_path):
    out = tmp_path / "sweep.json"
    sweep_throughput.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert [r["configs"] for r in saved["results"]] == [1, 3]
    one, three = saved["results"]
    assert three["env_steps_per_chunk"] == 3 * one["env_steps_per_chunk"]
    for r in saved["results"]:
        assert r["agent_steps_per_s"] > 0 and r["compile_s"] > 0 and r["memory_estimate_bytes"] > 0
    assert saved["env"]["jax_version"] and "| configs K |" in saved["table"]


def test_device_scaling_quick(tmp_path):
    """One child process with 2 forced CPU devices (each device count is its own process; one keeps
    the suite short): both parts measured, training on a 2-device mesh splitting the envs."""
    from benchmarks import device_scaling

    out = tmp_path / "scaling.json"
    device_scaling.main(["--quick", "--devices", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    (two,) = saved["results"]
    assert two["devices"] == 2 and saved["config"]["forced_host_devices"]
    assert two["env"]["num_envs"] == 2 * saved["config"]["envs_per_device"]  # weak scaling
    for shuffle in ("global", "per_env"):
        train = two[f"train_{shuffle}"]
        assert train["mesh"].startswith("mesh: 2 devices (runs=1 x envs=2") and train["shuffle"] == shuffle
        assert train["agent_steps_per_s"] > 0 and train["compile_s"] > 0
    assert two["env"]["efficiency"] == pytest.approx(1.0)  # relative to the first count measured
    assert two["env"]["env_steps_per_s"] > 0 and two["env"]["compile_s"] > 0
    assert "| devices |" in saved["table"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_option_cost_quick(tmp_path):
    from benchmarks import option_cost

    out = tmp_path / "options.json"
    payload = option_cost.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert list(saved["results"]) == ["default", "env.principal_obs=world"]
    assert saved["results"]["default"]["relative_to_default"] == 1.0
    for r in payload["results"].values():
        assert r["env_steps_per_s"] > 0 and r["compile_s"] > 0 and r["env_steps_per_chunk"] == 2 * 50
