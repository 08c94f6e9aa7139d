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
