"""The host-side training loop (``sedjax.train.run``), its Hydra entry point and ``sedjax-eval``.

Compilation dominates on CPU, so one module-scoped fixture trains a tiny config (2 seeds, 2 chunks)
straight, and the same config interrupted after one chunk then resumed; ``run`` shares compiled
programs between runs of the same config in a process, and a persistent compilation cache (in a
temporary folder, for this module only) lets the Hydra subprocess reuse them too.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from sedjax.config import compose_config
from sedjax.evaluate import csv_columns
from sedjax.evaluate import evaluate
from sedjax.evaluate import main as eval_main
from sedjax.train.run import load_checkpoint, read_metrics, run

TINY = [
    "train.total_env_steps=800", "train.num_envs=2", "train.rollout_len=50", "tax.period_len=50",
    "voting.periods_per_round=2", "env.rounds_per_episode=1", "principal.update_every=1",
    "agents.minibatches=2", "principal.minibatches=1", "train.chunks=2", "train.num_seeds=2",
]
REQUIRED = ("chunk", "env_steps", "sps", "agent_sps", "wall_time", "agent_return", "apples_per_agent_step",
            "objective", "tax_rates", "equality", "productivity", "apples_alive", "voted",
            "objective_per_seed", "agent_return_per_seed", "tax_rates_per_seed", "agents/policy_loss",
            "agents/value_loss", "agents/entropy", "principal/policy_loss", "zero_income_share",
            "objective_first_round", "objective_last_round", "agent_return_first_round", "agent_return_last_round")
TIMING = ("sps", "agent_sps", "chunk_time", "wall_time")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, compile_cache):
    root = tmp_path_factory.mktemp("runs")
    cfg = compose_config(TINY)
    straight = run(cfg, root / "straight")
    partial = run(cfg, root / "resumed", max_chunks=1)
    partial_lines = read_metrics(root / "resumed")
    resumed = run(compose_config(TINY + ["train.resume=true"]), root / "resumed")
    return {"root": root, "cfg": cfg, "straight": straight, "partial": partial, "partial_lines": partial_lines,
            "resumed": resumed}


def test_run_writes_config_metrics_plots_checkpoint(runs):
    d = runs["root"] / "straight"
    saved = OmegaConf.load(d / "config.yaml")
    saved = OmegaConf.to_container(saved)
    used = saved["train"]["mesh"].pop("used")  # the devices the run used, recorded beside the config
    assert used["devices"] == jax.device_count() and used["runs"] * used["envs"] == used["devices"]
    assert saved == OmegaConf.to_container(runs["cfg"], resolve=True)
    recs = read_metrics(d)
    assert len(recs) == 2 and [r["chunk"] for r in recs] == [0, 1]
    for r in recs:
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, missing
        assert len(r["tax_rates"]) == 3 and len(r["objective_per_seed"]) == 2
        assert np.asarray(r["tax_rates_per_seed"]).shape == (2, 3)
        assert r["productivity"] == pytest.approx(r["apples_per_agent_step"] * 7)
        assert r["agent_return"] == pytest.approx(r["agent_reward"] * 50 * 2)  # per voting round
        assert r["objective"] == pytest.approx(np.mean(r["objective_per_seed"]))
        assert all(np.isfinite(r[k]) for k in ("objective", "agent_return", "equality", "sps"))
    assert [r["env_steps"] for r in recs] == [400, 800]
    for png in ("training_curves.png", "tax_schedule.png"):
        with Image.open(d / png) as im:
            assert im.format == "PNG" and im.width > 100
    assert (d / "checkpoint").is_dir()
    s = runs["straight"]
    assert s["chunks_done"] == s["num_chunks"] == 2 and s["env_steps"] == s["total_env_steps"] == 800
    assert set(s["final"]) >= {"objective", "agent_return", "productivity", "apples_alive", "equality"}
    assert s["final"]["objective"]["mean"] == pytest.approx(recs[-1]["objective"])
    assert json.loads((d / "summary.json").read_text())["chunks_done"] == 2


def test_resume_equals_uninterrupted(runs):
    assert runs["partial"]["chunks_done"] == 1 and len(runs["partial_lines"]) == 1
    a, b = runs["straight"], runs["resumed"]
    assert b["chunks_done"] == 2
    ra, rb = read_metrics(runs["root"] / "straight"), read_metrics(runs["root"] / "resumed")
    assert len(rb) == 2
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k not in TIMING} == {k: v for k, v in y.items() if k not in TIMING}
    la, lb = jax.tree.leaves(a["runner"]), jax.tree.leaves(b["runner"])
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The checkpoint holds the final state (keys included) and the metrics so far.
    runner, meta = load_checkpoint(runs["root"] / "resumed", b["runner"])
    assert meta["chunk"] == 2 and len(meta["metrics"]) == 2
    for x, y in zip(jax.tree.leaves(runner), lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_eval_writes_csv_and_gif(runs, tmp_path):
    d = runs["root"] / "straight"
    rc = eval_main([str(d), "--episodes", "2", "--seed", "1", "--gif-steps", "30", "--out", str(tmp_path)])
    assert rc == 0
    with open(tmp_path / "eval.csv") as f:
        rows = list(csv.reader(f))
    header = (["episode", "period", "rate_0", "rate_1", "rate_2"] + [f"raw_{i}" for i in range(7)]
              + [f"income_{i}" for i in range(7)] + ["objective", "apples_alive"])
    assert rows[0] == header == csv_columns(3, 7)
    body = np.asarray(rows[1:], np.float64)
    assert body.shape == (2 * 2, len(header))  # episodes x periods (2 periods per episode)
    assert body[:, 0].tolist() == [0, 0, 1, 1] and body[:, 1].tolist() == [0, 1, 0, 1]
    rates, raw, income = body[:, 2:5], body[:, 5:12], body[:, 12:19]
    assert ((rates >= 0) & (rates <= 1)).all() and (raw >= 0).all()
    np.testing.assert_allclose(raw.sum(1), income.sum(1), rtol=1e-4, atol=1e-3)  # taxes are redistributed
    with Image.open(tmp_path / "eval.gif") as im:
        assert im.format == "GIF" and im.n_frames == 30


def test_eval_under_a_fixed_schedule(runs, tmp_path, capsys):
    """``--rates``: the trained agents under that schedule instead of the run's Principal."""
    d = runs["root"] / "straight"
    rc = eval_main([str(d), "--episodes", "2", "--gif-steps", "0", "--rates", "0,0.5,1", "--out", str(tmp_path)])
    assert rc == 0
    assert "fixed rates [0.0, 0.5, 1.0]" in capsys.readouterr().out
    with open(tmp_path / "eval.csv") as f:
        body = np.asarray(list(csv.reader(f))[1:], np.float64)
    np.testing.assert_array_equal(body[:, 2:5], np.tile([0.0, 0.5, 1.0], (len(body), 1)))
    for bad, msg in (("0,1", "needs 3 rates"), ("0,0.5,2", "rates in [0, 1]"), ("a,b,c", "comma-separated")):
        assert eval_main([str(d), "--gif-steps", "0", "--rates", bad, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "--rates" in err and msg in err, err


def test_eval_reports_where_the_rates_act(runs, tmp_path):
    """The summary's rates over earning periods and the share of periods reaching each bracket,
    recomputed from the CSV's rows (the largest raw period income against each lower bound)."""
    d = runs["root"] / "straight"
    s = evaluate(d, episodes=2, gif_steps=0, out_dir=tmp_path, verbose=False)
    body = np.asarray(list(csv.reader(open(tmp_path / "eval.csv")))[1:], np.float64)
    rates, top = body[:, 2:5], body[:, 5:12].max(1)
    thresholds = OmegaConf.load(d / "config.yaml").tax.thresholds
    np.testing.assert_allclose(s["bracket_reached"], [(top > t).mean() for t in thresholds], rtol=1e-6)
    assert s["bracket_reached"][0] == pytest.approx(1 - s["zero_income_share"])
    assert s["max_period_income"] == pytest.approx(top.max(), rel=1e-5)
    earn = top > 0
    assert earn.any()
    np.testing.assert_allclose(s["tax_rates_earning"], rates[earn].mean(0), rtol=1e-4)


def test_older_run_folders_read_as_they_were_trained(runs, tmp_path):
    """A run folder written before ``principal.policy_input`` existed trained the state-conditioned
    Principal: its config is read with that key filled in as ``state``; a key that is there is kept."""
    from sedjax.train.evaluate import read_run_config

    cfg = OmegaConf.load(runs["root"] / "straight" / "config.yaml")
    written = cfg.principal.policy_input
    assert read_run_config(runs["root"] / "straight").principal.policy_input == written
    del cfg.principal["policy_input"]
    (tmp_path / "old").mkdir()
    OmegaConf.save(cfg, tmp_path / "old" / "config.yaml")
    old = read_run_config(tmp_path / "old")
    assert old.principal.policy_input == "state"
    assert OmegaConf.to_container(old.agents) == OmegaConf.to_container(cfg.agents)  # nothing else changes


def test_eval_missing_checkpoint(tmp_path, capsys):
    assert eval_main([str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_hydra_entry_point(runs, compile_cache, tmp_path):
    out = tmp_path / "hydra_run"
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=compile_cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    cmd = [sys.executable, "-m", "sedjax.train", *TINY, "train.plots=false", f"hydra.run.dir={out}"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "[chunk 2/2]" in p.stdout
    assert (out / "config.yaml").exists() and (out / "checkpoint").is_dir()
    assert not (out / "training_curves.png").exists()  # train.plots=false
    recs = read_metrics(out)
    assert len(recs) == 2
    # Same config and seed as the in-process run: the same numbers.
    ref = read_metrics(runs["root"] / "straight")
    assert recs[-1]["objective_per_seed"] == ref[-1]["objective_per_seed"]


def test_bad_config_raises_before_compiling(tmp_path):
    cfg = compose_config(TINY + ["train.rollout_len=30"])
    with pytest.raises(ValueError, match="train.rollout_len"):
        run(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_chunks_span_whole_episodes():
    """A chunk's averages cover whole episodes when the episode is a whole number of Principal
    iterations; otherwise chunks fall back to whole iterations. No compilation here."""
    from sedjax.train import make_train

    base = ["train.num_envs=4", "train.rollout_len=200", "tax.period_len=50", "voting.periods_per_round=20",
            "env.rounds_per_episode=4", "train.chunks=20"]
    # 4000-step episodes, 400 steps per Principal iteration per env: 10 iterations per episode.
    t = make_train(compose_config(base + ["principal.update_every=2", "train.total_env_steps=400000"])).schedule
    episode = 4 * 4000
    assert t.steps_per_chunk % episode == 0
    # 25 episodes in at most 20 equal chunks: 12 chunks of 2 episodes keep 24 of them (>= 95 %).
    assert (t.num_chunks, t.steps_per_chunk, t.total_env_steps) == (12, 2 * episode, 24 * episode)
    # 600 steps per iteration does not divide 4000: chunks are whole iterations instead.
    t = make_train(compose_config(base + ["principal.update_every=3", "train.total_env_steps=100000"])).schedule
    assert (t.num_chunks, t.steps_per_chunk) == (20, 2 * 4 * 600)  # 41 iterations: 20 x 2 = 40 kept
    # Fewer iterations than an episode: one chunk of everything.
    t = make_train(compose_config(base + ["principal.update_every=2", "train.total_env_steps=8000"])).schedule
    assert t.num_chunks == 1 and t.total_env_steps == 8000
