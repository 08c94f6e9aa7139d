"""The honest training metrics, by hand: equality only over periods in which someone earns (with the
share of zero-income periods on its own), and the objective / agent return of an episode's first and
last voting round, summed over a chunk before dividing."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from sedjax.train.metrics import chunk_record
from sedjax.train.program import period_metrics


def _p_trs(income, rounds, objective, agent_reward, rates=None):
    income = jnp.asarray(income, jnp.float32)
    rates = jnp.zeros(income.shape[:2] + (2,)) if rates is None else jnp.asarray(rates, jnp.float32)
    return {"income": income, "round": jnp.asarray(rounds), "rates": rates,
            "objective": jnp.asarray(objective, jnp.float32), "agent_reward": jnp.asarray(agent_reward, jnp.float32)}


def test_zero_income_periods_are_not_perfect_equality():
    # 3 periods x 1 env x 2 agents: [2, 2] (equality 1), [0, 0] (nobody earns), [4, 0] (Gini 1/2).
    p = _p_trs([[[2, 2]], [[0, 0]], [[4, 0]]], [[0], [0], [1]], [[1.0], [0.0], [3.0]], [[0.1], [0.2], [0.3]])
    m = {k: np.asarray(v) for k, v in period_metrics(p, rounds_per_episode=2).items()}
    np.testing.assert_allclose(m["zero_income_share"], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(m["ratio/equality/num"], 1.0 + 0.5, rtol=1e-6)
    np.testing.assert_allclose(m["ratio/equality/den"], 2.0)
    np.testing.assert_allclose(m["ratio/objective_first_round/num"], 1.0)
    np.testing.assert_allclose(m["ratio/objective_first_round/den"], 2.0)
    np.testing.assert_allclose(m["ratio/objective_last_round/num"], 3.0)
    np.testing.assert_allclose(m["ratio/agent_reward_last_round/num"], 0.3, rtol=1e-6)


def test_rates_where_someone_earns():
    # The same 3 periods with rates per bracket [0.2, 1], [1, 0] (nobody earns: left out), [0.6, 0.5]:
    # over earning periods the rates are [0.4, 0.75], the plain mean [0.6, 0.5].
    rates = [[[0.2, 1.0]], [[1.0, 0.0]], [[0.6, 0.5]]]
    p = _p_trs([[[2, 2]], [[0, 0]], [[4, 0]]], [[0], [0], [1]], [[1.0], [0.0], [3.0]], [[0.1], [0.2], [0.3]], rates)
    m = {k: np.asarray(v) for k, v in period_metrics(p, rounds_per_episode=2).items()}
    np.testing.assert_allclose(m["ratio/tax_rates_earning/num"], [0.8, 1.5], rtol=1e-6)
    np.testing.assert_allclose(m["ratio/tax_rates_earning/den"], [2.0, 2.0])
    # chunk_record divides the vector sums by their shared count, per seed (2 seeds x 1 iteration;
    # seed 1 earns nowhere -> NaN, and the mean over seeds skips it).
    metrics = {"ratio/tax_rates_earning/num": np.array([[[0.8, 1.5]], [[0.0, 0.0]]]),
               "ratio/tax_rates_earning/den": np.array([[[2.0, 2.0]], [[0.0, 0.0]]])}
    rec = chunk_record(metrics, chunk=1, num_chunks=1, env_steps=1, num_agents=2, round_len=1)
    np.testing.assert_allclose(rec["tax_rates_earning_per_seed"][0], [0.4, 0.75], rtol=1e-6)
    assert np.isnan(rec["tax_rates_earning_per_seed"][1]).all()
    np.testing.assert_allclose(rec["mean_tax_rate_earning"], 0.575, rtol=1e-6)


def test_chunk_record_divides_sums_over_the_chunk():
    # 2 seeds x 2 iterations. Seed 0: equality sums 1.5/2 and 0/0 -> 0.75 (a plain mean of per-
    # iteration ratios would give 0.375 or NaN); seed 1 earns nowhere -> NaN, not 1 and not 0.
    metrics = {
        "agent_reward": np.array([[0.5, 0.5], [1.0, 1.0]]),
        "zero_income_share": np.array([[1 / 3, 1.0], [1.0, 1.0]]),
        "ratio/equality/num": np.array([[1.5, 0.0], [0.0, 0.0]]),
        "ratio/equality/den": np.array([[2.0, 0.0], [0.0, 0.0]]),
        "ratio/agent_reward_first_round/num": np.array([[0.3, 0.0], [0.4, 0.4]]),
        "ratio/agent_reward_first_round/den": np.array([[2.0, 0.0], [1.0, 1.0]]),
    }
    rec = chunk_record(metrics, chunk=0, num_chunks=1, env_steps=10, num_agents=2, round_len=100)
    assert not any(k.startswith("ratio/") for k in rec)
    np.testing.assert_allclose(rec["equality_per_seed"][0], 0.75)
    assert np.isnan(rec["equality_per_seed"][1])
    np.testing.assert_allclose(rec["zero_income_share_per_seed"], [2 / 3, 1.0])
    np.testing.assert_allclose(rec["agent_return_first_round_per_seed"], [0.15 * 100, 0.4 * 100])
    np.testing.assert_allclose(rec["agent_return"], 0.75 * 100)


def test_eval_masked_mean_by_hand():
    # sedjax-eval's rates over earning periods: 2 episodes x 2 periods x 2 brackets, period (0, 1)
    # earns nothing: [[.2, 1], [.6, .5], [1, 0]] -> [0.6, 0.5]; a mask that never holds gives NaN.
    from sedjax.train.evaluate import _masked_mean

    x = np.array([[[0.2, 1.0], [0.0, 0.0]], [[0.6, 0.5], [1.0, 0.0]]])
    mask = np.array([[True, False], [True, True]])[..., None]
    np.testing.assert_allclose(_masked_mean(x, mask), [0.6, 0.5])
    assert np.isnan(_masked_mean(x, np.zeros_like(mask))).all()
