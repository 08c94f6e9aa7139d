"""The PPO minibatch shuffles (sedjax.train.ppo.minibatches), by their defining properties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedjax.train.ppo import minibatches

G, R, M = 4, 6, 3  # groups (envs), rows per group, minibatches


def _ids():
    """Sample ids (group, row) -> group * R + row, with a trailing feature axis."""
    ids = jnp.arange(G * R).reshape(G, R)
    return {"id": ids, "x": jnp.stack([ids, -ids], -1)}


@pytest.mark.parametrize("per_group", [False, True])
def test_every_sample_once_per_epoch(per_group):
    mbs = minibatches(jax.random.key(0), _ids(), M, per_group)
    ids = np.asarray(mbs["id"])
    assert ids.shape == (M, G * R // M)
    assert sorted(ids.ravel().tolist()) == list(range(G * R))
    np.testing.assert_array_equal(np.asarray(mbs["x"])[..., 1], -ids)  # leaves shuffled together


def test_per_group_minibatches_take_equal_rows_of_every_group():
    ids = np.asarray(minibatches(jax.random.key(1), _ids(), M, True)["id"])
    for mb in ids:
        assert np.bincount(mb // R, minlength=G).tolist() == [R // M] * G
    # laid out group-major inside a minibatch: a device holding some groups holds its rows
    assert (np.diff(ids // R, axis=1) >= 0).all()


def test_global_shuffle_mixes_groups_and_keys_differ():
    a = np.asarray(minibatches(jax.random.key(2), _ids(), M, False)["id"])
    counts = [np.bincount(mb // R, minlength=G).tolist() for mb in a]
    assert any(c != [R // M] * G for c in counts)  # not stratified (for this key)
    b = np.asarray(minibatches(jax.random.key(3), _ids(), M, False)["id"])
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, np.asarray(minibatches(jax.random.key(2), _ids(), M, False)["id"]))
