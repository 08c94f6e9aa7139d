"""Evidence that learning works, on small configs with fixed seeds (each well under 3 minutes on CPU).

* Agents: after a short training on the default map, the apples collected in an episode's first
  tax period (50 steps) are >= 3x a uniformly random policy's.
* Principal, a case with a known optimum: eta = 0 on post-tax income with beta = 0 (agents ignore
  taxes, so taxes cannot change production): the egalitarian optimum is 100 % on every bracket. The
  PPO Principal must reach a mean rate >= 0.8 and an objective >= 1.5x that of no tax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedjax.config import compose_config
from sedjax.train import make_train

# Short episodes (one 2-period round) so every rollout starts from a fresh world; 32 envs.
SMALL = ["train.num_envs=32", "train.rollout_len=100", "voting.periods_per_round=2",
         "env.rounds_per_episode=1", "principal.update_every=1", "train.chunks=1"]


def _train(overrides):
    program = make_train(compose_config(SMALL + overrides))
    runner, metrics = jax.jit(program.train)(jax.random.key(0))
    return program, runner, jax.device_get(metrics)


def _first_period_apples(program, runner, random_policy: bool, num_envs=64):
    """Apples per env in an episode's first tax period (all agents), played by the trainer's own
    ``play_period`` with the trained agents or a uniformly random policy."""
    env, params = program.env, program.params

    def uniform(key, _params, agent_obs, _state):
        a = jax.random.randint(key, agent_obs.shape[:2], 0, env.grid.num_actions)
        return a, jnp.zeros(a.shape), jnp.zeros(a.shape)

    @jax.jit
    def play(key):
        k_reset, k_play = jax.random.split(key)
        obs, s = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
        _, _, apples = program.policy.play_period(
            runner.agents.params, runner.principal.params, (obs, s, k_play), params,
            record=lambda step: step.info["apples_collected"].sum(-1),
            agent_act=uniform if random_policy else None)
        return apples.sum(0).mean()

    return float(play(jax.random.key(123)))


def test_agents_learn_to_harvest():
    train, runner, metrics = _train(["principal=none", "train.total_env_steps=76800"])
    random_apples = _first_period_apples(train, runner, random_policy=True)
    learned = _first_period_apples(train, runner, random_policy=False)
    assert random_apples > 1.0  # the comparison is not against zero
    assert learned >= 3.0 * random_apples, (learned, random_apples)


PRINCIPAL_CASE = ["objective.kind=eta", "objective.eta=0", "objective.welfare_of=post_tax", "types.beta=0",
                  # low brackets so every bracket is reached by a few apples per period
                  "tax.thresholds=[0,2,4]", "train.total_env_steps=128000", "agents.network=mlp"]


@pytest.fixture(scope="module")
def principal_runs():
    _, _, ppo = _train(PRINCIPAL_CASE + ["principal=ppo", "principal.lr=3e-3"])
    _, _, none = _train(PRINCIPAL_CASE + ["principal=none"])
    return ppo, none


def test_principal_learns_the_known_optimum(principal_runs):
    ppo, none = principal_runs
    tail = lambda m, k: np.asarray(m[k]).reshape(-1, *np.shape(m[k])[2:])[-8:]  # noqa: E731
    mean_rate = tail(ppo, "tax_rates").mean()
    assert mean_rate >= 0.8, tail(ppo, "tax_rates")
    assert tail(ppo, "objective").mean() >= 1.5 * tail(none, "objective").mean()
