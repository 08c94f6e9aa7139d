"""The scaling-law suite (``sedjax-scaling``): its measurements, the traced run length it relies
on, the large-map builders it needs, its config checks, and the quick profile end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sedjax.apple_grid.layout import regrowth_neighbours
from sedjax.config import compose_config
from sedjax.maps import default_map, procedural_map_for_agents

TINY = ["train.num_envs=4", "train.rollout_len=20", "tax.period_len=10", "voting.periods_per_round=2",
        "env.rounds_per_episode=1", "principal.update_every=1", "agents.network=mlp", "agents.hidden=16",
        "agents.epochs=1", "agents.minibatches=1", "train.num_seeds=2", "train.plots=false",
        "train.checkpoint=false"]


# ------------------------------------------------------------------------ large-map builders
def _neighbours_pairwise(apple_rc, radius):
    """The O(A^2) definition: other apple cells within Euclidean ``radius``, by slot, padded with A."""
    A = len(apple_rc)
    d2 = ((apple_rc[:, None, :] - apple_rc[None, :, :]) ** 2).sum(-1)
    nb = (d2 <= radius * radius) & ~np.eye(A, dtype=bool)
    table = np.full((A, max(int(nb.sum(1).max()), 1)), A, np.int32)
    for a in range(A):
        idx = np.flatnonzero(nb[a])
        table[a, :len(idx)] = idx
    return table


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 2.0, 2.9])
def test_regrowth_neighbours_equal_the_pairwise_definition(radius):
    rng = np.random.default_rng(0)
    maps = [default_map().apples, procedural_map_for_agents(16).apples, rng.random((13, 17)) < 0.3]
    for apples in maps:
        rc = np.argwhere(apples).astype(np.int32)
        got, want = regrowth_neighbours(rc, radius), _neighbours_pairwise(rc, radius)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_procedural_maps_are_unchanged_by_the_faster_builder():
    # The counts of the README's env-throughput table (built with the earlier generator).
    assert [procedural_map_for_agents(n).num_apples for n in (7, 64, 512)] == [65, 585, 4608]
    m = procedural_map_for_agents(7)
    assert (m.height, m.width, len(m.spawn)) == (21, 21, 14)


# ------------------------------------------------------------------- the traced run length
@pytest.mark.parametrize("horizon", [1, 7, 20, 100, 640, 3200, 12800])
def test_linear_decay_with_a_traced_horizon_is_optax_with_a_constant_one(horizon):
    """Bit for bit, both compiled, the learning rate traced as inject_hyperparams makes it: a run
    whose length is traced computes what it computed when the length was a constant."""
    from sedjax.train.ppo import linear_decay

    counts = jnp.arange(horizon + 40, dtype=jnp.int32)
    for lr in (2.5e-4, 3e-4, 1e-3):
        ours = jax.jit(jax.vmap(lambda c, h, l: linear_decay(l, h)(c), in_axes=(0, None, None)))(
            counts, jnp.float32(horizon), jnp.float32(lr))
        ref = jax.jit(jax.vmap(lambda c, l: optax.linear_schedule(l, 0.0, horizon)(c), in_axes=(0, None)))(
            counts, jnp.float32(lr))
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_budget_runs_equal_separate_runs():
    """Budgets 160 and 480 on one compiled program: the 160-step run is what a separate 160-step
    program computes (its learning rates decay over its own length), and differs from the first
    chunk of the 480-step run (the length is honoured, not ignored)."""
    from sedjax.scaling.learning import budget_runs
    from sedjax.train.metrics import chunk_record
    from sedjax.train.program import make_train, seed_keys

    cfg = compose_config(TINY + ["principal=random"])
    short, long_ = budget_runs(cfg, [160, 480], 160)
    assert [len(short["records"]), len(long_["records"])] == [1, 3]

    separate = make_train(compose_config(TINY + ["principal=random",
                                                 "train.total_env_steps=160", "train.chunks=1"]))
    runner, metrics = jax.jit(jax.vmap(separate.train))(seed_keys(0, 2), jax.tree.map(
        lambda x: jnp.broadcast_to(x, (2,) + jnp.shape(x)), separate.hypers))
    for a, b in zip(jax.tree.leaves(short["runner"].agents.params), jax.tree.leaves(runner.agents.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    S = separate.schedule
    rec = chunk_record(jax.device_get(jax.tree.map(lambda x: x[:, 0], metrics)), chunk=0, num_chunks=1,
                       env_steps=160, num_agents=S.num_agents, round_len=S.round_len)
    for k in ("objective_per_seed", "agent_return_per_seed", "mean_tax_rate_per_seed"):
        np.testing.assert_allclose(short["records"][0][k], rec[k], rtol=1e-5, err_msg=k)
    # Same first chunk of experience, other learning-rate decay: other parameters.
    diff = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(short["runner"].agents.params),
                                                          jax.tree.leaves(long_["runner"].agents.params))]
    assert max(diff) > 0


# --------------------------------------------------------------------------- measurements
def test_env_point_counts_one_step_and_is_finite():
    from sedjax.scaling.cost import env_point, vote_point

    a = env_point(2, steps=4, repeats=1)
    b = env_point(2, steps=12, repeats=1)
    # XLA counts the scan's body once: the FLOPs do not depend on the trip count.
    assert a["flops_per_step"] == b["flops_per_step"] > 0
    assert b["bytes_per_step"] > 0 and b["xla_memory_bytes"] > 0
    assert math.isfinite(b["agent_steps_per_s"]) and b["agent_steps_per_s"] > 0
    assert b["num_envs"] * b["num_agents"] * b["flops_per_agent_step"] == pytest.approx(b["flops_per_step"])
    v, d = vote_point(64, repeats=1), vote_point(64, repeats=1, dense=True)
    assert v["mechanism"] == "weighted_median" and d["mechanism"] == "weighted_median_dense"


# ----------------------------------------------------------------------------- the config
@pytest.mark.parametrize("override, field", [
    ("studies=[S1,S4]", "studies"),
    ("profile.s1.num_envs=[1,4]", "profile.s1.num_envs"),
    ("profile.s1.num_agents=[7,28,14]", "profile.s1.num_agents"),
    ("profile.s2.budgets=[480,960]", "profile.s2.budgets"),
    ("profile.s2.budgets=[480,960,2000]", "profile.s2.budgets"),
    ("profile.s2.widths=[0,8]", "profile.s2.widths"),
    ("profile.s2.settings=[nowhere]", "profile.s2.settings"),
    ("profile.s2.seeds=1", "profile.s2.seeds"),
    ("profile.s3.frac=1.5", "profile.s3.frac"),
    ("profile.s3.num_agents=[3,5]", "profile.s3.num_agents"),
    ("level=1.0", "level"),
])
def test_bad_profiles_are_refused_naming_the_field(override, field):
    from sedjax.scaling.cli import check_profile, compose_profile

    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        check_profile(compose_profile([override]))


def test_budgets_that_are_not_whole_iterations_are_refused_before_compiling():
    from sedjax.scaling.cli import compose_profile, plan

    # One Principal iteration of the quick profile is 4 envs x 20 steps = 80 env steps.
    cfg = compose_profile(["profile.s2.chunk_steps=120", "profile.s2.budgets=[480,960,1920]", "studies=[S2]"])
    with pytest.raises(ValueError, match=r"profile\.s2\.budgets / profile\.s2\.chunk_steps.*80 env steps"):
        plan(cfg)


# -------------------------------------------------------------------- the quick profile
def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check_fit(f):
    """A power law with an offset: finite parameters, each with a finite, ordered CI."""
    for k in ("a", "b", "c"):
        assert _finite(f[k]), f
        lo, hi = f["ci"][k]
        assert _finite(lo) and _finite(hi) and lo <= hi, (k, f["ci"])


def _check_slope(f):
    assert _finite(f["slope"]) and _finite(f["ci_low"]) and _finite(f["ci_high"]), f
    assert f["ci_low"] <= f["slope"] <= f["ci_high"]


def test_quick_profile_writes_every_file_with_finite_fits(tmp_path):
    out = tmp_path / "quick"
    proc = subprocess.run([sys.executable, "-m", "sedjax.scaling.cli", f"hydra.run.dir={out}"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    for k in ("jax_version", "device_kind", "device_count", "config", "timings_s"):
        assert k in manifest
    assert manifest["config"]["profile"]["name"] == "quick"
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    axes = {r["axis"] for r in records if r["study"] == "S1"}
    assert axes == {"num_envs", "num_agents", "voters", "devices"}
    s2 = [r for r in records if r["study"] == "S2"]
    assert sorted((r["width"], r["budget"]) for r in s2) == [(w, b) for w in (8, 32) for b in (480, 960, 1920)]
    assert all(len(r["per_seed"]["regret"]) == 2 for r in s2)
    assert sorted(r["num_agents"] for r in records if r["study"] == "S3") == [3, 5, 7]

    fits = json.loads((out / "fits.json").read_text())
    na = fits["S1"]["num_agents"]
    _check_slope(na["ns_per_agent_step_slope"])
    _check_slope(fits["S1"]["voters"]["weighted_median"])
    assert fits["S1"]["num_envs"]["saturation"]["x"] in (1, 4, 16)
    fitted = 0
    for key, entry in fits["S2"].items():
        for w, we in entry["widths"].items():
            if we["fit"] is None:
                assert we["not_fitted"] and not we["monotone"]["monotone"]
            else:
                assert we["monotone"]["monotone"]
                _check_fit(we["fit"])
                fitted += 1
        if entry["frontier"]["fit"] is not None:
            _check_fit(entry["frontier"]["fit"])
    assert fitted >= 1
    for metric in ("objective", "agent_return"):
        _check_slope(fits["S3"][metric]["fit"])

    from PIL import Image

    for name in ("s1_cost.png", "s2_learning.png", "s3_population.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    summary = (out / "summary.md").read_text()
    for section in ("## S1: simulation cost", "## S2: learning vs compute", "## S3: population size"):
        assert section in summary
