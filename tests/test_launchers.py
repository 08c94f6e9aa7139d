"""Hydra launchers (the ``launchers`` extra): sedjax's presets ``hydra/launcher=slurm`` and
``hydra/launcher=local`` (``sedjax/conf/hydra/launcher/``) compose, and a ``-m`` sweep under the
joblib launcher runs its jobs in parallel worker processes, each in its own ``hydra.sweep.dir/<n>``.

The sweep runs in a subprocess (``python -m sedjax.train -m ...``). Which process ran each job, and
when, is recorded by a Hydra callback (``hydra.callbacks``, called inside the job's process) into a
folder of its own, so the run folders hold only what sedjax and Hydra write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from sedjax.train.run import read_metrics

# The smallest run that passes validation and still trains: 2 agents on a procedural map, one
# chunk of one rollout, a small MLP and no Principal, so the sweep's jobs compile fast.
TINY = [
    "principal=none", "env.map=procedural", "env.num_agents=2", "env.rounds_per_episode=1",
    "env.view_ahead=3", "env.view_behind=0", "env.view_side=1", "tax.period_len=50",
    "voting.periods_per_round=2", "agents.network=mlp", "agents.hidden=16", "agents.observe_mechanism=false",
    "agents.epochs=1", "agents.minibatches=1", "train.num_envs=2", "train.rollout_len=50",
    "train.total_env_steps=100", "train.chunks=1", "train.plots=false", "train.checkpoint=false",
]

PROBE = '''
"""A Hydra callback recording the process id and wall time of each job's start and end."""
import json, os, time

from hydra.experimental.callback import Callback


class RecordProcess(Callback):
    def __init__(self, out):
        self.out = out

    def _write(self, config, what, **extra):
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, f"{config.hydra.job.num}.{what}.json"), "w") as f:
            json.dump({"pid": os.getpid(), "time": time.time(), **extra}, f)

    def on_job_start(self, config, **kwargs):
        self._write(config, "start")

    def on_job_end(self, config, job_return, **kwargs):
        self._write(config, "end", status=job_return.status.name)
'''


def _compose_hydra(overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module("sedjax.conf", version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True).hydra


def test_slurm_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    h = _compose_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert h.runtime.choices["hydra/launcher"] == "slurm"
    lc = h.launcher
    assert lc._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (lc.nodes, lc.tasks_per_node, lc.gpus_per_task, lc.cpus_per_task) == (1, 1, 1, 8)
    assert (lc.timeout_min, lc.mem_gb, lc.array_parallelism, lc.partition) == (240, 32, 32, "gpu")
    assert lc.submitit_folder.endswith("/.submitit/%j") and lc.name.startswith("sedjax-")
    assert _compose_hydra(["hydra/launcher=slurm"]).launcher.partition is None  # the cluster's default


def test_local_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    h = _compose_hydra(["hydra/launcher=local", "hydra.launcher.n_jobs=3"])
    assert h.runtime.choices["hydra/launcher"] == "local"
    lc = h.launcher
    assert lc._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert (lc.n_jobs, lc.backend, lc.prefer) == (3, "loky", "processes")
    assert _compose_hydra(["hydra/launcher=local"]).launcher.n_jobs == 2


def test_joblib_multirun_runs_jobs_in_parallel_processes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep_dir, probe_dir, probe_out = tmp_path / "sweep", tmp_path / "probe", tmp_path / "probe_out"
    probe_dir.mkdir()
    (probe_dir / "launcher_probe.py").write_text(textwrap.dedent(PROBE))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
               SEDJAX_CACHE_DIR=str(tmp_path / "cache"),  # timings (and compiles) of this test only
               PYTHONPATH=os.pathsep.join(filter(None, [str(probe_dir), os.environ.get("PYTHONPATH")])))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the cache under SEDJAX_CACHE_DIR, not the user's
    cmd = [sys.executable, "-m", "sedjax.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
           f"hydra.sweep.dir={sweep_dir}", "seed=0,1", *TINY,
           "+hydra.callbacks.probe._target_=launcher_probe.RecordProcess", f"+hydra.callbacks.probe.out={probe_out}"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("the multirun did not finish in 900 s:\n" + out[-3000:])
    assert proc.returncode == 0, out[-5000:]
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in out and "is launching 2 jobs" in out, out[-3000:]

    # Hydra records the launcher for the sweep and for each job.
    multirun = OmegaConf.load(sweep_dir / "multirun.yaml")
    assert "joblib" in multirun.hydra.launcher._target_ and multirun.hydra.launcher.n_jobs == 2
    finals = []
    for num in (0, 1):
        job = sweep_dir / str(num)
        hydra_cfg = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra
        assert "joblib" in hydra_cfg.launcher._target_ and hydra_cfg.runtime.choices["hydra/launcher"] == "joblib"
        assert hydra_cfg.job.num == num and f"seed={num}" in OmegaConf.load(job / ".hydra" / "overrides.yaml")
        assert OmegaConf.load(job / "config.yaml").seed == num
        recs = read_metrics(job)
        summary = json.loads((job / "summary.json").read_text())
        assert len(recs) == 1 and summary["chunks_done"] == summary["num_chunks"] == 1
        assert summary["env_steps"] == 100
        finals.append(summary["final"])
    # Different seeds, different training.
    assert finals[0]["agent_return"]["mean"] != finals[1]["agent_return"]["mean"]

    # Each job ran in a worker process of its own (not in Hydra's process, as the basic launcher
    # would), and the two ran at the same time.
    start = [json.loads((probe_out / f"{n}.start.json").read_text()) for n in (0, 1)]
    end = [json.loads((probe_out / f"{n}.end.json").read_text()) for n in (0, 1)]
    assert [e["status"] for e in end] == ["COMPLETED", "COMPLETED"]
    assert [s["pid"] for s in start] == [e["pid"] for e in end]
    pids = {s["pid"] for s in start}
    assert len(pids) == 2 and proc.pid not in pids
    assert start[0]["time"] < end[1]["time"] and start[1]["time"] < end[0]["time"], (start, end)
