"""Contract checks every sedjax environment must pass (as jumanji's ``env_not_smoke``): used by the
test suite on both envs, and available to anyone wrapping or adding an env.

Each check raises ``AssertionError`` with what differed. ``env`` follows
:class:`sedjax.environment.Environment`; actions are sampled from ``env.action_space(params)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _assert_trees_equal(a, b, what: str, rtol: float = 0.0, atol: float = 0.0) -> None:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"{what}: different structures {ta} vs {tb}"
    for i, (x, y) in enumerate(zip(la, lb)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, f"{what}: leaf {i} shapes {x.shape} vs {y.shape}"
        if rtol or atol:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"{what}: leaf {i}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what}: leaf {i}")


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


_JITTED: dict = {}


def jitted(env) -> dict:
    """Jitted ``reset``/``step`` and their (nested) vmaps of one env, compiled once per env object
    and shared by the checks (compilation dominates their cost on CPU)."""
    k = id(env)
    if k not in _JITTED or _JITTED[k]["env"] is not env:
        v = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        _JITTED[k] = {"env": env, "reset": jax.jit(env.reset), "step": jax.jit(env.step), "vstep": jax.jit(v),
                      "vvstep": jax.jit(jax.vmap(v, in_axes=(0, 0, 0, None)))}
    return _JITTED[k]


def random_actions(env, params, key, batch_shape=()):
    space = env.action_space(params)
    n = int(np.prod(batch_shape)) if batch_shape else 1
    keys = jax.random.split(key, n)
    acts = [space.sample(k) for k in keys]
    out = _stack(acts)
    return jax.tree.map(lambda x: x.reshape(tuple(batch_shape) + x.shape[1:]), out) if batch_shape else _index(out, 0)


def check_jit_equals_nojit(env, params, key, steps: int = 3, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``reset`` and ``step`` give the same results under ``jit`` and eagerly (``jax.disable_jit``)."""
    k_reset, k_run = jax.random.split(key)
    step_j, reset_j = jitted(env)["step"], jitted(env)["reset"]
    out_j = reset_j(k_reset, params)
    with jax.disable_jit():
        out_e = env.reset(k_reset, params)
    _assert_trees_equal(out_j, out_e, "reset jit vs no-jit", rtol, atol)
    state_j, state_e = out_j[1], out_e[1]
    for s, k in enumerate(jax.random.split(k_run, steps)):
        ka, ks = jax.random.split(k)
        a = random_actions(env, params, ka)
        res_j = step_j(ks, state_j, a, params)
        with jax.disable_jit():
            res_e = env.step(ks, state_e, a, params)
        _assert_trees_equal(res_j, res_e, f"step {s} jit vs no-jit", rtol, atol)
        state_j, state_e = res_j[1], res_e[1]


def desynchronised_states(env, params, key, offsets: Sequence[int]):
    """One state per offset: env ``i`` reset, then stepped ``offsets[i]`` times (so a batch of them
    reaches its episode end on different steps)."""
    step, reset = jitted(env)["step"], jitted(env)["reset"]
    states = []
    for i, off in enumerate(offsets):
        k = jax.random.fold_in(key, i)
        _, st = reset(k, params)
        for j in range(off):
            ka, ks = jax.random.split(jax.random.fold_in(k, 1000 + j))
            st = step(ks, st, random_actions(env, params, ka), params)[1]
        states.append(st)
    return states


def check_vmap_equals_loop(env, params, key, offsets: Sequence[int], steps: int) -> np.ndarray:
    """``vmap(step)`` over a batch of envs == a loop of ``step`` over them, with resets of only
    some envs on a step. Returns the ``(steps, batch)`` done flags (the caller can check that the
    resets really were partial)."""
    states = desynchronised_states(env, params, key, offsets)
    batch = len(states)
    vstep, step = jitted(env)["vstep"], jitted(env)["step"]
    vstate, dones = _stack(states), []
    for s in range(steps):
        k = jax.random.fold_in(key, 10_000 + s)
        ks = jax.random.split(k, batch)
        a = random_actions(env, params, jax.random.fold_in(k, 1), (batch,))
        vout = vstep(ks, vstate, a, params)
        for i in range(batch):
            lout = step(ks[i], states[i], _index(a, i), params)
            _assert_trees_equal(lout, _index(vout, i), f"step {s}, env {i}: vmap vs loop")
            states[i] = lout[1]
        dones.append(np.asarray(vout[3]))
        vstate = vout[1]
    return np.asarray(dones)


def check_nested_vmap_equals_loop(env, params, key, offsets: Sequence[Sequence[int]], steps: int) -> np.ndarray:
    """``vmap(vmap(step))`` over seeds x envs (the batched reset's merging rule) == a loop over
    both axes, with partial resets. Returns the ``(steps, seeds, envs)`` done flags."""
    S, E = len(offsets), len(offsets[0])
    flat = desynchronised_states(env, params, key, [o for row in offsets for o in row])
    grid = [flat[i * E:(i + 1) * E] for i in range(S)]
    vvstep, step = jitted(env)["vvstep"], jitted(env)["step"]
    vstate = _stack([_stack(row) for row in grid])
    dones = []
    for s in range(steps):
        k = jax.random.fold_in(key, 20_000 + s)
        ks = jax.random.split(k, S * E).reshape(S, E)
        a = random_actions(env, params, jax.random.fold_in(k, 1), (S, E))
        vout = vvstep(ks, vstate, a, params)
        for i in range(S):
            for j in range(E):
                lout = step(ks[i, j], grid[i][j], _index(_index(a, i), j), params)
                _assert_trees_equal(lout, _index(_index(vout, i), j), f"step {s}, seed {i}, env {j}: nested vmap vs loop")
                grid[i][j] = lout[1]
        dones.append(np.asarray(vout[3]))
        vstate = vout[1]
    return np.asarray(dones)


def check_spaces_contain(env, params, key, steps: int) -> None:
    """Every observation of a random rollout (resets included) lies in ``observation_space``, and
    sampled actions lie in ``action_space``."""
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    step = jitted(env)["step"]
    obs, st = jitted(env)["reset"](key, params)
    assert bool(obs_space.contains(obs)), "reset observation outside observation_space"
    for s in range(steps):
        ka, ks = jax.random.split(jax.random.fold_in(key, s))
        a = random_actions(env, params, ka)
        assert bool(act_space.contains(a)), f"step {s}: sampled action outside action_space"
        obs, st, *_ = step(ks, st, a, params)
        assert bool(obs_space.contains(obs)), f"step {s}: observation outside observation_space"


def check_params_batch_equals_built(build: Callable[[dict], object], values: Sequence[dict], key,
                                    steps: int, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``vmap`` over a batch of traced params == building each env with those values.

    ``build(overrides) -> env``; ``values``: one dict of constructor overrides per batch entry,
    differing only in traced settings. The batch of ``default_params`` of the built envs is run
    through the *first* env under ``vmap``; each entry must equal its own env's rollout."""
    envs = [build(v) for v in values]
    env0 = envs[0]
    pbatch = _stack([e.default_params for e in envs])
    # Under jit the params are traced and cannot be checked: check the concrete batch first, as the
    # trainer and sweeps do (a value env0's static settings cannot honour raises here).
    env0.check_params(pbatch)

    def rollout(env, params, key):
        obs, st = env.reset(key, params)

        def body(st, k):
            ka, ks = jax.random.split(k)
            a = env.action_space(params).sample(ka)
            obs, st, r, d, info = env.step(ks, st, a, params)
            return st, (obs, r, d)

        return jax.lax.scan(body, st, jax.random.split(key, steps))

    batched = jax.jit(jax.vmap(lambda p: rollout(env0, p, key)))(pbatch)
    for i, e in enumerate(envs):
        own = jax.jit(lambda p, e=e: rollout(e, p, key))(e.default_params)
        _assert_trees_equal(own, _index(batched, i), f"params entry {i} ({values[i]}): vmap vs built", rtol, atol)
