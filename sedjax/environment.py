"""The one env contract (gymnax's): ``step`` = ``step_env`` + a reset where the episode ended.

Subclasses define ``default_params``, ``reset_env(key, params)``, ``step_env(key, state, action,
params)`` and, if a new episode must keep something of the old one (e.g. agents' types),
``reset_keeping(key, params, obs, state)``. Static settings live on the env object (they select
code and fix shapes); traced ones in the ``params`` pytree passed to every call.
"""

from __future__ import annotations

import functools

import jax

from sedjax.where import apply_where


def is_concrete(tree) -> bool:
    """Whether every leaf of ``tree`` is a concrete array (not traced under ``jit``/``vmap``): only
    concrete params can be checked on the host."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


class Environment:
    name: str = "env"

    @property
    def default_params(self):
        raise NotImplementedError

    def reset_env(self, key, params):
        raise NotImplementedError

    def step_env(self, key, state, action, params):
        raise NotImplementedError

    def reset_keeping(self, key, params, obs, state):
        """A new episode that may keep parts of the finished one (default: a plain reset)."""
        return self.reset_env(key, params)

    def check_params(self, params) -> None:
        """Host-side: raise ``ValueError`` if concrete ``params`` hold values this env cannot honour."""

    # ------------------------------------------------------------------ the contract
    def reset(self, key: jax.Array, params=None):
        params = self.default_params if params is None else params
        self.check_params(params)
        return self.reset_env(key, params)

    def step(self, key: jax.Array, state, action, params=None):
        """One step with auto-reset at the episode end (``reward``/``info``/``done`` belong to the
        finished step; the returned ``obs``/``state`` are the new episode's where ``done``)."""
        params = self.default_params if params is None else params
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, done, info = self.step_env(k_step, state, action, params)
        obs, state = self.reset_where(done, k_reset, obs, state, params)
        return obs, state, reward, done, info

    def reset_where(self, done, key, obs, state, params=None):
        """``(obs, state)`` of a new episode where ``done``, the given pair elsewhere. Under ``vmap``
        the reset is computed only on steps where some env is done (:mod:`sedjax.where`)."""
        params = self.default_params if params is None else params
        return self._reset_where(done, key, (obs, state), params)

    @functools.cached_property
    def _reset_where(self):
        return apply_where(lambda key, params, old: self.reset_keeping(key, params, *old))
