"""``sedjax-scaling profile=<name>``: run the scaling-law suite of a profile into one folder.

Examples::

    sedjax-scaling                                   # profile=quick, ~3 minutes on a 2-core CPU
    sedjax-scaling profile=cpu hydra.run.dir=scaling/cpu
    sedjax-scaling profile=gpu studies=[S1,S2]       # on an accelerator host
    sedjax-scaling profile=cpu 'profile.s2.widths=[32,128]' 'profile.s1.num_agents=[7,64]'

Without Hydra: ``run_profile(compose_profile(["profile=quick"]), "out/quick")``.

The folder (``hydra.run.dir``) gets ``manifest.json`` (versions, devices, the resolved config,
timings), ``runs.jsonl`` (one record per measured point, written as it is measured),
``fits.json``, PNG figures and ``summary.md`` (:mod:`sedjax.scaling.report`). The training runs
of S2 and S3 keep their own folders under ``runs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

STUDIES = ("S1", "S2", "S3")


def compose_profile(overrides: Sequence[str] = ()) -> DictConfig:
    """The scaling config (``sedjax/conf/scaling/config.yaml``) with Hydra-style overrides."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sedjax.conf.scaling", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@contextlib.contextmanager
def _keep_global_hydra():
    """The training configs are composed with Hydra's compose API, which needs Hydra's global
    state; inside ``sedjax-scaling`` that state is the running app's, restored afterwards."""
    from hydra.core.global_hydra import GlobalHydra

    gh = GlobalHydra.instance()
    saved = gh.hydra if gh.is_initialized() else None
    try:
        yield
    finally:
        if saved is not None:
            gh.clear()
            gh.initialize(saved)


def _compose_train(overrides: list[str]) -> DictConfig:
    from sedjax.config import compose_config

    with _keep_global_hydra():
        return compose_config(overrides)


# --------------------------------------------------------------------------------- checks
def _ints(node, field: str, *, allow_null: bool = False, minimum: int = 1) -> list[int] | None:
    if node is None:
        if allow_null:
            return None
        raise ValueError(f"{field} must be a list of integers >= {minimum}, got null")
    vals = list(node) if OmegaConf.is_list(node) or isinstance(node, (list, tuple)) else None
    if vals is None or not vals:
        raise ValueError(f"{field} must be a non-empty list of integers >= {minimum}, got {node!r}")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{field} must hold integers >= {minimum}, got {v!r}")
    if sorted(set(vals)) != vals:
        raise ValueError(f"{field} must be strictly increasing, got {vals}")
    return vals


def check_profile(cfg) -> None:
    """Every setting of the profile, before anything runs: ``ValueError`` naming the key."""
    from sedjax.scaling.learning import SETTINGS

    studies = list(cfg.studies)
    bad = [s for s in studies if s not in STUDIES]
    if bad or not studies:
        raise ValueError(f"studies must be a non-empty subset of {list(STUDIES)}, got {studies}")
    if not 0.0 < float(cfg.level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {cfg.level}")
    if int(cfg.n_boot) < 10:
        raise ValueError(f"n_boot must be >= 10, got {cfg.n_boot}")
    p = cfg.profile
    if "S1" in studies:
        _ints(p.s1.num_envs, "profile.s1.num_envs")
        if p.s1.steps is not None:
            _ints([p.s1.steps], "profile.s1.steps")
        _ints([p.s1.repeats], "profile.s1.repeats")
        _ints(p.s1.num_agents, "profile.s1.num_agents")
        _ints([p.s1.total_agents], "profile.s1.total_agents")
        _ints(p.s1.voters, "profile.s1.voters")
        _ints([p.s1.dense_voters_max], "profile.s1.dense_voters_max", minimum=0)
        _ints(p.s1.devices, "profile.s1.devices", allow_null=True)
        _ints([p.s1.num_envs_per_device], "profile.s1.num_envs_per_device")
        for name in ("num_envs", "num_agents", "voters"):
            if len(p.s1[name]) < 3:
                raise ValueError(f"profile.s1.{name} needs >= 3 points for a fit with a confidence interval, "
                                 f"got {list(p.s1[name])}")
    if "S2" in studies:
        for s in p.s2.settings:
            if s not in SETTINGS:
                raise ValueError(f"profile.s2.settings: unknown setting {s!r}; known: {sorted(SETTINGS)}")
        _ints(p.s2.widths, "profile.s2.widths")
        budgets = _ints(p.s2.budgets, "profile.s2.budgets")
        if len(budgets) < 3:
            raise ValueError(f"profile.s2.budgets needs >= 3 budgets to fit a power law with an offset, got {budgets}")
        _ints([p.s2.seeds], "profile.s2.seeds", minimum=2)
        _ints([p.s2.chunk_steps], "profile.s2.chunk_steps")
        bad = [b for b in budgets if b % int(p.s2.chunk_steps)]
        if bad:
            raise ValueError(f"profile.s2.budgets must be multiples of profile.s2.chunk_steps={p.s2.chunk_steps}, "
                             f"got {bad}")
    if "S3" in studies:
        if p.s3.setting not in SETTINGS:
            raise ValueError(f"profile.s3.setting: unknown setting {p.s3.setting!r}; known: {sorted(SETTINGS)}")
        ns = _ints(p.s3.num_agents, "profile.s3.num_agents")
        if len(ns) < 3:
            raise ValueError(f"profile.s3.num_agents needs >= 3 sizes for a fit, got {ns}")
        _ints([p.s3.budget], "profile.s3.budget")
        _ints([p.s3.seeds], "profile.s3.seeds", minimum=2)
        _ints([p.s3.chunks], "profile.s3.chunks", minimum=3)
        if not 0.0 < float(p.s3.frac) <= 1.0:
            raise ValueError(f"profile.s3.frac must be in (0, 1], got {p.s3.frac}")


def plan(cfg) -> dict:
    """``{"S2": jobs, "S3": jobs}``: the studies' training configs (sedjax-train keys: the profile's
    ``train`` overrides, then the study's), composed and their budgets checked."""
    from sedjax.scaling.learning import check_jobs, s2_jobs, s3_jobs

    base = list(cfg.profile.train) + [f"seed={int(cfg.seed)}"]
    plans = {}
    if "S2" in cfg.studies:
        plans["S2"] = s2_jobs(cfg.profile.s2, base, _compose_train)
        check_jobs(plans["S2"], "profile.s2.budgets / profile.s2.chunk_steps")
    if "S3" in cfg.studies:
        plans["S3"] = s3_jobs(cfg.profile.s3, base, _compose_train)
        check_jobs(plans["S3"], "profile.s3.budget / profile.s3.chunks")
    return plans


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - a private API: assume the worst
        return True


def _apply_xla_flags(flags: str | None) -> str:
    """Set the profile's XLA flags if JAX's backend has not started yet; say what happened."""
    if not flags:
        return "none"
    if _backend_started():
        return f"not applied (JAX had started): {flags}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + str(flags)).strip()
    return f"applied: {flags}"


def _manifest(cfg, out: Path, xla: str, timings: dict) -> dict:
    import jax
    import jaxlib

    from sedjax import __version__

    devs = jax.devices()
    return {
        "sedjax_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", None),
        "python_version": sys.version.split()[0],
        "platform": devs[0].platform,
        "device_kind": devs[0].device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "profile_xla_flags": xla,
        "out_dir": str(out),
        "argv": sys.argv,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "timings_s": timings,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------- run
def run_profile(cfg, out_dir, *, verbose: bool = True) -> dict:
    """Run the studies of ``cfg`` (a composed scaling config) into ``out_dir``; returns the fits."""
    check_profile(cfg)
    xla = _apply_xla_flags(cfg.profile.get("xla_flags"))
    plans = plan(cfg)  # the training configs, composed and checked before anything runs
    from sedjax.scaling import report

    say = (lambda *a: print(*a, flush=True)) if verbose else (lambda *a: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.jsonl"
    runs_path.write_text("")
    timings: dict[str, float] = {}
    _write_json(out / "manifest.json", _manifest(cfg, out, xla, timings))
    records: list[dict] = []

    def log(rec: dict) -> None:
        records.append(rec)
        with open(runs_path, "a") as f:
            f.write(json.dumps(rec, default=float) + "\n")
        say("  " + report.point_line(rec))

    from sedjax.scaling.learning import run_jobs

    p, seed = cfg.profile, int(cfg.seed)
    say(f"sedjax-scaling: profile {p.name}, studies {list(cfg.studies)} -> {out}")
    t_all = time.perf_counter()
    if "S1" in cfg.studies:
        t0 = time.perf_counter()
        say("S1: simulation cost")
        s1_study(p.s1, seed, log)
        timings["S1"] = time.perf_counter() - t0
    for name, jobs in plans.items():
        t0 = time.perf_counter()
        say(f"{name}: " + ("learning vs compute" if name == "S2" else "population size")
            + f" ({len(jobs)} programs, compiled concurrently, then run one at a time)")
        run_jobs(jobs, out, log, name)
        timings[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = report.write_report(cfg, records, out)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    _write_json(out / "manifest.json", _manifest(cfg, out, xla, timings))
    say(f"wrote {out / 'summary.md'} ({timings['total']:.0f}s)")
    return fits


def _steps(steps, units: int) -> int:
    """Steps per timed call: the profile's, or ~2^17 units (env-steps or agent-steps) per call."""
    if steps is not None:
        return int(steps)
    return int(min(500, max(8, (1 << 17) // max(units, 1))))


def s1_study(p1, seed: int, log) -> None:
    import jax

    from sedjax.scaling import cost

    for ne in p1.num_envs:
        log({"study": "S1", "axis": "num_envs",
             **cost.env_point(ne, steps=_steps(p1.steps, ne), repeats=int(p1.repeats), seed=seed)})
    for n in p1.num_agents:
        ne = max(1, int(p1.total_agents) // int(n))
        # At least a tax period per call, so every timed call includes a bracket tax and a vote.
        steps = max(_steps(p1.steps, ne * n), cost.AGENT_AXIS_SED["period_len"])
        log({"study": "S1", "axis": "num_agents",
             **cost.env_point(ne, n, steps=steps, repeats=int(p1.repeats), agent_axis=True, seed=seed)})
    for v in p1.voters:
        log({"study": "S1", "axis": "voters", **cost.vote_point(v, repeats=max(3, int(p1.repeats)), seed=seed)})
        if v <= int(p1.dense_voters_max):
            log({"study": "S1", "axis": "voters",
                 **cost.vote_point(v, repeats=max(3, int(p1.repeats)), dense=True, seed=seed)})
    counts = list(p1.devices) if p1.devices is not None else \
        [2**k for k in range(jax.device_count().bit_length()) if 2**k <= jax.device_count()]
    per = int(p1.num_envs_per_device)
    for rec in cost.devices_points(counts, per, steps=_steps(p1.steps, per), repeats=int(p1.repeats)):
        log({"study": "S1", "axis": "devices", **rec})


@hydra.main(version_base="1.3", config_path="../conf/scaling", config_name="config")
def main(cfg: DictConfig) -> None:
    run_profile(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
