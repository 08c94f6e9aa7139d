"""From a Hydra/OmegaConf config to a validated environment, and config loading without Hydra's CLI.

Every check raises ``ValueError`` naming the config field, when the config is built (never NaNs
later). ``compose_config(overrides)`` gives the same config as the command line (for tests and
notebooks); ``build_env(cfg)`` the ``SED`` env and its default params.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sedjax import tax

PRINCIPAL_KINDS = ("ppo", "none", "fixed", "random")
NETWORKS = ("cnn", "mlp")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The run config with Hydra-style overrides (``["train.num_envs=8", "principal=fixed"]``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sedjax.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


from sedjax.envs import _get, _number, _positive_int  # noqa: E402
from sedjax.envs import from_config as build_env  # noqa: E402,F401


def validate_train(cfg, env) -> None:
    """Checks of the learning settings that depend on the env (rollout alignment, kinds, ranges)."""
    T = _positive_int(cfg, "train.rollout_len")
    P = _positive_int(cfg, "tax.period_len")
    episode = P * _positive_int(cfg, "voting.periods_per_round") * _positive_int(cfg, "env.rounds_per_episode")
    if T % P:
        raise ValueError(f"train.rollout_len={T} must be a multiple of tax.period_len={P} "
                         "(the Principal acts once per period, on period-level transitions)")
    if episode % T:
        raise ValueError(f"train.rollout_len={T} must divide the episode length {episode} "
                         "(= tax.period_len x voting.periods_per_round x env.rounds_per_episode)")
    E = _positive_int(cfg, "train.num_envs")
    _positive_int(cfg, "train.num_seeds")
    _positive_int(cfg, "train.chunks")
    total = _positive_int(cfg, "train.total_env_steps")
    k = _positive_int(cfg, "principal.update_every")
    if total < E * T * k:
        raise ValueError(f"train.total_env_steps={total} is less than one Principal update "
                         f"(train.num_envs x train.rollout_len x principal.update_every = {E * T * k})")
    for group in ("agents", "principal"):
        _number(cfg, f"{group}.lr", 0.0)
        _number(cfg, f"{group}.gamma", 0.0, 1.0)
        _number(cfg, f"{group}.gae_lambda", 0.0, 1.0)
        _number(cfg, f"{group}.clip_eps", 0.0)
        _number(cfg, f"{group}.ent_coef", 0.0)
        _number(cfg, f"{group}.vf_coef", 0.0)
        _number(cfg, f"{group}.max_grad_norm", 0.0)
        _positive_int(cfg, f"{group}.epochs")
        _positive_int(cfg, f"{group}.minibatches")
        _positive_int(cfg, f"{group}.hidden")
    n = env.num_agents
    if (E * T * n) % _get(cfg, "agents.minibatches"):
        raise ValueError(f"agents.minibatches={_get(cfg, 'agents.minibatches')} must divide "
                         f"train.num_envs x train.rollout_len x env.num_agents = {E * T * n}")
    periods = k * (T // P) * E
    if periods % _get(cfg, "principal.minibatches"):
        raise ValueError(f"principal.minibatches must divide the Principal's batch of {periods} periods")
    if _get(cfg, "agents.network") not in NETWORKS:
        raise ValueError(f"agents.network must be one of {NETWORKS}, got {_get(cfg, 'agents.network')!r}")
    kind = _get(cfg, "principal.kind")
    if kind not in PRINCIPAL_KINDS:
        raise ValueError(f"principal.kind must be one of {PRINCIPAL_KINDS}, got {kind!r}")
    if kind == "fixed":
        rates = _get(cfg, "principal.rates")
        tax.check_brackets(_get(cfg, "tax.thresholds"), rates)
        if len(rates) != env.num_brackets:
            raise ValueError(f"principal.rates needs {env.num_brackets} rates, got {len(rates)}")
    _number(cfg, "tax.anneal_start", 0.0, 1.0)
    _number(cfg, "tax.anneal_fraction", 0.0, 1.0)


def fixed_rates(cfg) -> np.ndarray:
    return np.asarray(_get(cfg, "principal.rates"), np.float32)
