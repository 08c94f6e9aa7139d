"""Vectorised sweeps (``sedjax.train.sweep``): one compiled program for a grid of traced settings.

* A 3-configuration sweep (x 2 seeds) gives the metrics of the 3 separate runs with the same seed,
  and its configurations differ from each other (the swept values are honoured).
* Every sweepable key maps to the traced value a plain run of that config uses (no compile).
* Static keys, unknown keys, values that change a static setting or a shape, and bad values are
  rejected when the sweep is expanded, naming ``sweep.<key>``; a sweep too big for the device's
  memory is refused before compiling.
"""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf

from sedjax.config import compose_config
from sedjax.train import loop, sweep
from sedjax.train.program import make_train

TINY = ["train.num_envs=4", "train.rollout_len=100", "voting.periods_per_round=2", "env.rounds_per_episode=1",
        "train.total_env_steps=1600", "train.chunks=2", "env.map=procedural", "env.num_agents=3",
        "train.plots=false", "train.checkpoint=false", "train.num_seeds=2"]
LRS = [1e-4, 1e-3, 1e-2]
COMPARED = ("objective", "agent_return", "apples_alive", "mean_tax_rate", "zero_income_share")


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    summary = loop.run(compose_config(TINY + [f"+sweep.agents.lr={LRS}"]), out, verbose=False)
    return out, summary


def test_sweep_equals_its_separate_runs(lr_sweep, tmp_path):
    out, summary = lr_sweep
    assert [c["values"] for c in summary["sweep"]] == [{"agents.lr": lr} for lr in LRS]
    finals = []
    for k, lr in enumerate(LRS):
        sep = loop.run(compose_config(TINY + [f"agents.lr={lr}"]), tmp_path / str(k), verbose=False)["final"]
        swept = summary["sweep"][k]["final"]
        for m in COMPARED:
            np.testing.assert_allclose(swept[m]["per_seed"], sep[m]["per_seed"], rtol=1e-4, atol=1e-5, err_msg=m)
        finals.append(swept)
    # The learning rate is honoured: the configurations' agents behave differently.
    returns = [f["agent_return"]["mean"] for f in finals]
    assert len({round(r, 6) for r in returns}) == 3, returns


def test_sweep_folders_and_csv(lr_sweep):
    out, summary = lr_sweep
    for k, lr in enumerate(LRS):
        d = out / "sweep" / str(k)
        cfg = OmegaConf.load(d / "config.yaml")
        assert cfg.agents.lr == lr and "sweep" not in cfg
        lines = (d / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 2 and json.loads(lines[-1])["env_steps"] == 1600
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["config"]), int(r["seed"])) for r in rows] == [(k, s) for k in range(3) for s in range(2)]
    assert [float(r["agents.lr"]) for r in rows] == [lr for lr in LRS for _ in range(2)]
    got = [float(r["objective"]) for r in rows]
    want = [v for c in summary["sweep"] for v in c["final"]["objective"]["per_seed"]]
    np.testing.assert_allclose(got, want)


SWEPT_VALUES = {  # key -> a value different from the default, and where the plain run keeps it
    "env.regrowth_probs": ([0.0, 0.01, 0.02, 0.05], lambda h: h.env.grid.regrowth_probs),
    "tax.thresholds": ([0, 3, 9], lambda h: h.env.thresholds),
    "tax.max_rate_change": (0.2, lambda h: h.env.max_rate_change),
    "tax.anneal_start": (0.5, lambda h: h.anneal_start),
    "types.sigma": ({"dist": "uniform", "low": 0.2, "high": 0.6}, lambda h: h.env.sigma_dist),
    "types.beta": (0.3, lambda h: h.env.beta_dist),
    "objective.eta": (0.25, lambda h: h.env.objective_param),
    "principal.rates": ([0.1, 0.2, 0.3], lambda h: h.principal_rates),
    "agents.lr": (1e-3, lambda h: h.agents.lr),
    "agents.ent_coef": (0.05, lambda h: h.agents.ent_coef),
    "agents.clip_eps": (0.1, lambda h: h.agents.clip_eps),
    "principal.gamma": (0.9, lambda h: h.principal.gamma),
    "principal.gae_lambda": (0.5, lambda h: h.principal.gae_lambda),
    "principal.max_grad_norm": (2.0, lambda h: h.principal.max_grad_norm),
}


def _hydra(v) -> str:
    """A value in Hydra's override grammar."""
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_hydra(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_hydra(x) for x in v) + "]"
    return str(v)


def _ov(key, value):
    return f"{key}={_hydra(value)}"


def test_every_sweepable_key_reaches_the_program():
    base = TINY + ["principal=fixed", "types.sigma=uniform", "types.beta=uniform"]
    for key, (value, read) in SWEPT_VALUES.items():
        values = [value, value]  # the product of one key is its list
        if key in ("types.beta",):
            base_k = [o for o in base if not o.startswith("types.beta")] + ["types.beta=0.5"]
        else:
            base_k = base
        swept = sweep.expand(compose_config(base_k + [f"+sweep.{_ov(key, values)}"]))
        plain_run = make_train(compose_config(base_k + [_ov(key, value)])).hypers
        np.testing.assert_allclose(np.asarray(read(swept.hypers))[0], np.asarray(read(plain_run)), err_msg=key)
        default = make_train(compose_config(base_k)).hypers
        assert not np.allclose(np.asarray(read(default)), np.asarray(read(plain_run)), equal_nan=True), key


@pytest.mark.parametrize("override, match", [
    ("+sweep.train.num_envs=[4,8]", r"sweep\.train\.num_envs: .*static.*-m"),
    ("+sweep.env.num_agents=[3,4]", r"sweep\.env\.num_agents: .*static.*-m"),
    ("+sweep.agents.epochs=[1,2]", r"sweep\.agents\.epochs: .*static"),
    ("+sweep.agents.no_such_key=[1,2]", r"sweep\.agents\.no_such_key: .*not a config key"),
    ("+sweep.agents.lr=0.001", r"sweep\.agents\.lr must be a non-empty list"),
    ("+sweep.agents.lr=[]", r"sweep\.agents\.lr must be a non-empty list"),
    ("+sweep.principal.rates=[[0,0,0]]", r"sweep\.principal\.rates: .*principal=fixed"),
    ("+sweep.agents.lr=[1e-3,-1]", r"sweep\.agents\.lr=-1.*agents\.lr must be a number"),
    ("+sweep.env.regrowth_probs=[[0,0,0,1.5]]", r"sweep\.env\.regrowth_probs=.*env\.regrowth_probs must lie in \[0, 1\]"),
    ("+sweep.tax.thresholds=[[0,20,10]]", r"sweep\.tax\.thresholds=.*"),
    ("+sweep.tax.thresholds=[[0,10]]", r"sweep\.tax\.thresholds=.*static"),
    ("+sweep.env.regrowth_probs=[[0,0.1]]", r"sweep\.env\.regrowth_probs=.*shape"),
    ("+sweep.types.sigma=[{dist:beta,a:2,b:2}]", r"sweep\.types\.sigma=.*static"),
    ("+sweep.objective.eta=[0.5,2]", r"sweep\.objective\.eta=2.*objective\.eta"),
])
def test_bad_sweeps_fail_at_config_time(override, match):
    with pytest.raises(ValueError, match=match):
        sweep.expand(compose_config(TINY + [override]))


def test_fixed_rates_sweep_checks_rates():
    with pytest.raises(ValueError, match=r"sweep\.principal\.rates=\[0, 0, 2\].*principal\.rates must be rates in \[0, 1\]"):
        sweep.expand(compose_config(TINY + ["principal=fixed", "+sweep.principal.rates=[[0,0,0],[0,0,2]]"]))


def test_sweep_over_memory_is_refused_before_compiling(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "_device_memory", lambda: (1024, "test device"))
    monkeypatch.setattr(loop, "_PROGRAMS", loop.OrderedDict())
    with pytest.raises(MemoryError, match=r"needs about .* GiB per device, more than the device's"):
        loop.run(compose_config(TINY + ["+sweep.agents.lr=[1e-3,1e-2]"]), tmp_path, verbose=False)
    assert all("chunk" not in p for p in loop._PROGRAMS.values())  # nothing was compiled
    assert not (tmp_path / "sweep" / "0" / "metrics.jsonl").exists()


def test_runs_differing_in_traced_values_share_a_program_but_not_across_static_settings():
    """Traced values are arguments of the compiled program (one compile for runs that differ only
    in them); a traced key whose value fixes a static setting (types.sigma: a number builds the
    'fixed' sampler, 'uniform' another) must not reuse the other's program."""
    a = compose_config(TINY + ["agents.lr=1e-3", "tax.thresholds=[0,3,9]"])
    b = compose_config(TINY + ["agents.lr=1e-2"])
    c = compose_config(TINY + ["types.sigma=0.5"])
    key = lambda cfg: loop._program_key(cfg, 2, make_train(cfg))  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)
    assert loop._program_key(a, 2, make_train(a)) != loop._program_key(a, 4, make_train(a))
