"""Minimal gymnax-style spaces: ``sample(key)`` returns a valid value, ``contains(x)`` checks one."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


class Discrete:
    """``shape`` independent integers in ``[0, n)``."""

    def __init__(self, n: int, shape: tuple[int, ...] = (), dtype=jnp.int32):
        self.n, self.shape, self.dtype = int(n), tuple(shape), dtype

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == self.shape) & jnp.all((x >= 0) & (x < self.n))

    def __repr__(self):
        return f"Discrete({self.n}, shape={self.shape})"


class Box:
    """Real values in ``[low, high]``."""

    def __init__(self, low, high, shape: tuple[int, ...], dtype=jnp.float32):
        self.low, self.high, self.shape, self.dtype = low, high, tuple(shape), dtype

    def sample(self, key: jax.Array) -> jax.Array:
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(key, self.shape, self.low, self.high + 1, dtype=self.dtype)
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == self.shape) & jnp.all((x >= self.low) & (x <= self.high))

    def __repr__(self):
        return f"Box({self.low}, {self.high}, shape={self.shape}, dtype={jnp.dtype(self.dtype).name})"


class Dict:
    """A dict of spaces; samples a dict with one independent key per entry."""

    def __init__(self, spaces: dict[str, Any]):
        self.spaces = dict(spaces)

    def sample(self, key: jax.Array) -> dict:
        keys = jax.random.split(key, len(self.spaces))
        return {k: s.sample(kk) for (k, s), kk in zip(self.spaces.items(), keys)}

    def contains(self, x) -> jax.Array:
        return jnp.all(jnp.stack([jnp.asarray(s.contains(x[k])) for k, s in self.spaces.items()]))

    def __getitem__(self, k):
        return self.spaces[k]

    def __repr__(self):
        return f"Dict({self.spaces})"
