"""The Principal's network: what its schedule is a function of (``principal.policy_input``)."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedjax.train.networks import PrincipalNet

B, D, VOTED = 3, 21, 18  # an observation of 21 numbers with the vote at index 18


def _net_and_obs(policy_input, rate_head="ordinal", continuous=False):
    net = PrincipalNet(B, 11, continuous, 16, True, rate_head, 1.0, None, policy_input, VOTED)
    obs = jax.random.uniform(jax.random.key(0), (D,))
    params = net.init(jax.random.key(1), obs)
    # Larger output weights than the init's 0.01, so that a dependence shows well above rounding.
    params = jax.tree.map(lambda x: x * 30.0, params)
    return net, params, obs


def _policy(net, params, obs):
    dist, value = net.apply(params, obs)
    d = dist.distribution
    out = d.logits if isinstance(d, distrax.Categorical) else jnp.stack([d.alpha, d.beta])
    return np.asarray(out), float(value)


@pytest.mark.parametrize("rate_head, continuous", [("ordinal", False), ("categorical", False), ("ordinal", True)])
def test_objective_input_reads_only_the_vote(rate_head, continuous):
    """``objective``: the rates' distribution changes with the voted parameter and with nothing
    else in the observation; the critic still reads all of it. ``state``: both change."""
    other = jax.random.uniform(jax.random.key(2), (D,)).at[VOTED].set(0.0)
    for policy_input in ("objective", "state"):
        net, params, obs = _net_and_obs(policy_input, rate_head, continuous)
        obs = obs.at[VOTED].set(0.0)
        pi, v = _policy(net, params, obs)
        pi_other, v_other = _policy(net, params, other)  # same vote, another state
        pi_vote, _ = _policy(net, params, obs.at[VOTED].set(1.0))  # another vote, same state
        assert v != v_other
        assert np.abs(pi - pi_vote).max() > 1e-3
        if policy_input == "objective":
            np.testing.assert_array_equal(pi, pi_other)
        else:
            assert np.abs(pi - pi_other).max() > 1e-3
