"""Compatibility module: config composition and the training-side validation live in
:mod:`sedjax.train.config`, building the env from a config in :func:`sedjax.envs.from_config`."""

from sedjax.envs import from_config as build_env
from sedjax.train.config import NETWORKS, PRINCIPAL_KINDS, compose_config, fixed_rates, validate_train

__all__ = ["compose_config", "validate_train", "build_env", "fixed_rates", "PRINCIPAL_KINDS", "NETWORKS"]
