"""``sedjax-search``: the exhaustive fixed-schedule search, on a small config.

Known optimum: with eta = 0 on post-tax income and beta = 0 (agents ignore taxes in their reward),
taxing everything and handing it back equally maximises the poorest agent's income, so among the 27
schedules over [0, 0.5, 1] the search must rank [1, 1, 1] first. Thresholds [0, 1, 2] so every
bracket binds (with the default [0, 10, 20] the upper brackets are rarely reached and tie).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sedjax.config import compose_config
from sedjax.train.search import check_search, indistinguishable, mean_ci, schedules, search

SMALL = ["train.num_envs=4", "train.rollout_len=100", "voting.periods_per_round=2", "env.rounds_per_episode=1",
         "train.total_env_steps=1600", "train.chunks=2", "env.map=procedural", "env.num_agents=3",
         "train.num_seeds=2", "tax.thresholds=[0,1,2]"]
KNOWN_OPTIMUM = ["objective.eta=0", "objective.welfare_of=post_tax", "types.beta=0"]


def test_search_ranks_the_known_optimum_first(tmp_path):
    result = search(compose_config(SMALL + KNOWN_OPTIMUM), tmp_path, verbose=False)
    assert result["best"]["schedule"] == [1.0, 1.0, 1.0]
    with open(tmp_path / "search.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 27
    assert list(rows[0])[:6] == ["rate_0", "rate_1", "rate_2", "objective_mean", "objective_ci_low",
                                 "objective_ci_high"]
    for name in ("productivity_mean", "equality_mean", "apples_alive_mean", "agent_return_mean"):
        assert name in rows[0]
    by_rank = sorted(rows, key=lambda r: int(r["rank"]))
    assert [float(by_rank[0][f"rate_{i}"]) for i in range(3)] == [1.0, 1.0, 1.0]
    # No tax leaves the poorest agent only what it picks itself: well below full redistribution.
    none = next(r for r in rows if all(float(r[f"rate_{i}"]) == 0.0 for i in range(3)))
    assert float(none["objective_mean"]) < 0.8 * float(by_rank[0]["objective_mean"])
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["objective_ci_low"] <= best["objective_mean"] <= best["objective_ci_high"]
    assert [0.0, 0.0, 0.0] not in best["indistinguishable"]
    assert (tmp_path / "search.png").stat().st_size > 0


def test_search_helpers():
    assert schedules([0, 1], 2) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    m, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and lo == pytest.approx(2.0 - 4.302653 / np.sqrt(3)) and hi == pytest.approx(2.0 + 4.302653 / np.sqrt(3))
    assert np.isnan(mean_ci(np.array([1.0]))[1])
    # Paired over seeds: a constant shift far above the noise is distinguishable, an equal sample is not.
    base = np.array([1.0, 5.0, 9.0])
    assert not indistinguishable(base + 1.0 + np.array([0.0, 0.01, -0.01]), base, 0.05)
    assert indistinguishable(base, base.copy(), 0.05)


@pytest.mark.parametrize("override, match", [
    ("search.levels=[0,1.5]", r"search\.levels must be rates in \[0, 1\]"),
    ("search.levels=[]", r"search\.levels must be a non-empty list"),
    ("search.levels=[0,0]", r"search\.levels has repeated values"),
    ("search.tail=0", r"search\.tail must be a fraction"),
    ("search.batch=0", r"search\.batch must be a positive integer"),
    ("search.alpha=1", r"search\.alpha must be in \(0, 1\)"),
    ("+sweep.agents.lr=[1e-3]", r"remove the sweep node"),
])
def test_bad_search_config(override, match):
    with pytest.raises(ValueError, match=match):
        check_search(compose_config([override]))


def test_search_in_batches_equals_one_batch(tmp_path):
    """search.batch splits the schedules into equal, padded batches (one compiled program): the same
    rows as a single batch, since every schedule's seed s uses the same keys."""
    levels = ["search.levels=[0,1]", "train.total_env_steps=800", "train.chunks=1"]
    one = search(compose_config(SMALL + KNOWN_OPTIMUM + levels), tmp_path / "one", verbose=False)
    split = search(compose_config(SMALL + KNOWN_OPTIMUM + levels + ["search.batch=3"]), tmp_path / "split",
                   verbose=False)
    assert len(list((tmp_path / "split" / "batches").iterdir())) == 3  # 8 schedules: 3 + 3 + 2 (padded)
    assert [r["rank"] for r in split["rows"]] == [r["rank"] for r in one["rows"]]
    np.testing.assert_allclose([r["objective_mean"] for r in split["rows"]],
                               [r["objective_mean"] for r in one["rows"]], rtol=1e-5)
    assert split["best"]["schedule"] == one["best"]["schedule"]
