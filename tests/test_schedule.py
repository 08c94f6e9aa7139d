"""The run's time structure (``sedjax.train.schedule``) and the training-side validation, with
hand-worked numbers. Nothing here compiles: the env is a stand-in with the static ints the trainer
reads (the real env is checked once, for agreement)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sedjax.train.config import compose_config, validate_train
from sedjax.train.schedule import chunk_count, env_steps_per_iteration, make_schedule


def fake_env(period_len=50, periods_per_round=20, rounds_per_episode=4, num_agents=7, num_brackets=3):
    round_len = period_len * periods_per_round
    return SimpleNamespace(period_len=period_len, periods_per_round=periods_per_round,
                           rounds_per_episode=rounds_per_episode, round_len=round_len,
                           episode_len=round_len * rounds_per_episode, num_agents=num_agents,
                           num_brackets=num_brackets)


def test_default_run():
    # 16 envs x 200 steps x 1 agent iteration = 3200 env steps per Principal iteration; 640000
    # steps = 200 iterations; a 4000-step episode is 20 iterations, so 10 chunks of one episode each.
    s = validate_train(compose_config([]), fake_env())
    assert (s.period_len, s.periods_per_round, s.rounds_per_episode) == (50, 20, 4)
    assert (s.round_len, s.episode_len, s.periods_per_episode) == (1000, 4000, 80)
    assert (s.num_envs, s.rollout_len, s.periods_per_rollout, s.update_every) == (16, 200, 4, 1)
    assert s.env_steps_per_iter == 3200
    assert (s.num_iters, s.num_chunks, s.iters_per_chunk) == (200, 10, 20)
    assert (s.steps_per_chunk, s.total_env_steps) == (64000, 640000)
    assert s.anneal_steps == pytest.approx(0.02 * 640000)
    assert (s.agent_batch, s.principal_batch) == (16 * 200 * 7, 1 * 4 * 16)
    # optimizer steps: iterations x agent iterations x epochs x minibatches (agents 4 x 4, Principal 4 x 2)
    assert (s.agent_updates, s.principal_updates) == (200 * 1 * 4 * 4, 200 * 4 * 2)


BASE = ["train.num_envs=4", "train.rollout_len=200", "train.chunks=20"]


def test_run_cut_to_equal_chunks_of_whole_episodes():
    # 1600 steps per iteration, 250 iterations = 25 episodes of 10; at most 20 chunks: 12 chunks of
    # 2 episodes keep 24 of the 25 episodes (96 % >= 95 %), 240 iterations.
    s = make_schedule(compose_config(BASE + ["principal.update_every=2", "train.total_env_steps=400000"]),
                      fake_env())
    assert (s.num_chunks, s.iters_per_chunk, s.num_iters) == (12, 20, 240)
    assert (s.steps_per_chunk, s.total_env_steps) == (32000, 384000)
    assert s.anneal_steps == pytest.approx(0.02 * 384000)  # of the steps actually run
    assert s.agent_updates == 240 * 2 * 4 * 4


def test_chunks_of_whole_iterations_when_an_episode_is_not():
    # 600 steps per env per iteration do not divide 4000: 100000 // 2400 = 41 iterations, 20 chunks
    # of 2 keep 40 of them (97.6 %).
    s = make_schedule(compose_config(BASE + ["principal.update_every=3", "train.total_env_steps=100000"]),
                      fake_env())
    assert (s.num_chunks, s.iters_per_chunk, s.steps_per_chunk, s.total_env_steps) == (20, 2, 4800, 96000)


def test_shorter_than_an_episode_is_one_chunk():
    s = make_schedule(compose_config(BASE + ["principal.update_every=2", "train.total_env_steps=8000"]),
                      fake_env())
    assert (s.num_iters, s.num_chunks, s.iters_per_chunk, s.total_env_steps) == (5, 1, 5, 8000)


def test_lengths_come_from_the_env():
    # The config says 50-step periods; the env (e.g. a custom one passed to make_train) decides.
    s = make_schedule(compose_config(["train.rollout_len=100"]), fake_env(period_len=25, periods_per_round=4,
                                                                          rounds_per_episode=2))
    assert (s.period_len, s.round_len, s.episode_len, s.periods_per_rollout) == (25, 100, 200, 4)


def test_agrees_with_the_real_env():
    from sedjax.envs import from_config

    cfg = compose_config(["tax.period_len=25", "voting.periods_per_round=4", "env.rounds_per_episode=2",
                          "train.rollout_len=100", "env.num_agents=5"])
    env, _ = from_config(cfg)
    assert make_schedule(cfg, env) == make_schedule(cfg, fake_env(25, 4, 2, num_agents=5))


def test_chunk_count():
    assert chunk_count(10, 20) == 10  # fewer units than chunks: one unit each
    assert chunk_count(25, 20) == 12  # 12 x 2 = 24 >= 0.95 x 25; 13..20 chunks keep <= 20
    assert chunk_count(41, 20) == 20  # 20 x 2 = 40 >= 38.95
    assert chunk_count(7, 3) == 1  # 3 x 2 = 6 and 2 x 3 = 6 are < 6.65: one chunk of all 7
    assert chunk_count(1, 5) == 1


def test_env_steps_per_iteration():
    assert env_steps_per_iteration(compose_config(["train.num_envs=3", "train.rollout_len=100",
                                                   "principal.update_every=5"])) == 1500


@pytest.mark.parametrize("overrides, match", [
    (["train.rollout_len=30"], r"train.rollout_len=30 must be a multiple of tax.period_len=50"),
    (["train.rollout_len=300"], r"train.rollout_len=300 must divide the episode length 4000"),
    (["train.total_env_steps=1000"], r"train.total_env_steps=1000 is less than one Principal update .* = 3200"),
    (["agents.minibatches=3"], r"agents.minibatches=3 must divide .* = 22400"),
    (["principal.minibatches=3"], r"principal.minibatches=3 must divide the Principal's batch of 64 periods"),
    (["train.num_envs=0"], r"train.num_envs must be a positive integer, got 0"),
    (["train.chunks=2.5"], r"train.chunks must be a positive integer, got 2.5"),
    (["agents.gamma=1.5"], r"agents.gamma must be a number in \[0, 1\], got 1.5"),
    (["principal.lr=-1"], r"principal.lr must be a number in \[0, inf\], got -1"),
    (["agents.network=rnn"], r"agents.network must be one of \('cnn', 'mlp'\), got 'rnn'"),
    (["principal.kind=greedy"], r"principal.kind must be one of"),
    (["principal.rate_head=gaussian"], r"principal.rate_head must be one of \('ordinal', 'categorical'\)"),
    (["principal.policy_input=world"], r"principal.policy_input must be one of \('state', 'objective'\), got 'world'"),
    (["principal.bracket_scale=0"], r"principal.bracket_scale must be in \(0, 1\]"),
    (["principal.bracket_scale=2"], r"principal.bracket_scale must be a number in \[0, 1\], got 2"),
    (["agents.use_types=yes"], r"agents.use_types must be true or false, got 'yes'"),
    (["agents.observe_mechanism=1"], r"agents.observe_mechanism must be true or false, got 1"),
    (["types.per_env=maybe"], r"types.per_env must be true or false, got 'maybe'"),
    (["tax.anneal_fraction=2"], r"tax.anneal_fraction must be a number in \[0, 1\], got 2"),
    (["principal=fixed", "principal.rates=[2,0,0]"], r"principal.rates must be rates in \[0, 1\], got \[2.0, 0.0, 0.0\]"),
    (["principal=fixed", "principal.rates=[0.1,0.2]"], r"principal.rates needs 3 rates"),
    (["principal=fixed", "principal.rates=[a,b,c]"], r"principal.rates must be a list of numbers"),
])
def test_errors_name_the_key(overrides, match):
    with pytest.raises(ValueError, match=match) as e:
        validate_train(compose_config(overrides), fake_env())
    msg = str(e.value)
    assert "np." not in msg and "tax.rates" not in msg, msg


def test_bad_rates_ignored_unless_fixed():
    validate_train(compose_config(["principal.rates=[2,0,0]"]), fake_env())  # ppo does not use them
