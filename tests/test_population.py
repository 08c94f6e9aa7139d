"""Agents' types and the typed reward (SPEC §4)."""

import jax.numpy as jnp
import numpy as np
import pytest

from sedjax import population


def test_typed_reward_worked_example():
    """e = (2, 0), a = (1, 0), S = (3, 1), sigma = (0.25, 1), beta = (0.5, 0):
    r_int = (0.25*1 + 0.75*3, 1*0 + 0*1) = (2.5, 0); r = (0.5*2 + 0.5*2.5, 0*0 + 1*0) = (2.25, 0)."""
    r = population.typed_reward(jnp.array([2.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([3.0, 1.0]),
                                jnp.array([0.25, 1.0]), jnp.array([0.5, 0.0]))
    np.testing.assert_allclose(np.asarray(r), [2.25, 0.0], rtol=1e-6)
    # A fully trusting agent (beta = 1) gets exactly its extrinsic reward; a selfish distrustful one its apples.
    r = population.typed_reward(jnp.array([4.0]), jnp.array([1.0]), jnp.array([7.0]), jnp.array([1.0]), jnp.array([1.0]))
    assert float(r[0]) == 4.0
    r = population.typed_reward(jnp.array([4.0]), jnp.array([1.0]), jnp.array([7.0]), jnp.array([1.0]), jnp.array([0.0]))
    assert float(r[0]) == 1.0


@pytest.mark.parametrize("value,family", [(0.3, "fixed"), ("uniform", "uniform"),
                                          ({"dist": "uniform", "low": 0.1, "high": 0.2}, "uniform"),
                                          ({"dist": "beta", "a": 2.0, "b": 1.0}, "beta")])
def test_family_of_parsed_distributions(value, family):
    assert population.family_of(population.parse_type_dist(value, "types.sigma")) == family


def test_check_type_dist_names_the_field():
    with pytest.raises(ValueError, match=r"types\.beta"):
        population.check_type_dist([0.0, 1.0, 2.0, 2.0], "uniform", "types.beta")
    with pytest.raises(ValueError, match=r"types\.beta"):
        population.check_type_dist([0.2, 0.3, 1.0, 1.0], "fixed", "types.beta")
    population.check_type_dist(np.array([[0.0, 1.0, 2.0, 2.0], [0.1, 0.9, 1.0, 1.0]]), "beta", "types.beta")


def test_one_population_per_seed_shared_by_its_envs():
    """types.per_env=false (default): every env of a seed plays the same type vector; per_env=true:
    each env draws its own; reset_envs with a given population plays exactly it."""
    import jax
    import jax.numpy as jnp

    from sedjax.config import compose_config
    from sedjax.train import make_train

    tiny = ["train.num_envs=4", "train.rollout_len=50", "voting.periods_per_round=2", "env.rounds_per_episode=1",
            "principal.update_every=1", "agents.minibatches=2", "principal.minibatches=1", "train.total_env_steps=200"]
    shared = make_train(compose_config(tiny))
    _, st = jax.jit(shared.reset_envs, static_argnums=1)(jax.random.key(0), 4)
    s = np.asarray(st.sigma)
    assert s.shape == (4, 7) and (s == s[:1]).all() and len(set(s[0].tolist())) == 7
    pop = (jnp.linspace(0.0, 1.0, 7), jnp.full((7,), 0.5))
    _, st = jax.jit(shared.reset_envs, static_argnums=1)(jax.random.key(1), 4, pop)
    np.testing.assert_array_equal(np.asarray(st.sigma), np.tile(np.asarray(pop[0]), (4, 1)))
    per_env = make_train(compose_config(tiny + ["types.per_env=true"]))
    assert per_env.policy.use_types and not shared.policy.use_types  # agents.use_types: null follows per_env
    _, st = jax.jit(per_env.reset_envs, static_argnums=1)(jax.random.key(0), 4)
    s = np.asarray(st.sigma)
    assert not (s == s[:1]).all()
