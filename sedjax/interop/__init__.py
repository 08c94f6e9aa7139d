"""Adapters exposing sedjax environments through other libraries' interfaces.

* :mod:`sedjax.interop.jaxmarl`: :class:`~sedjax.interop.jaxmarl.SEDMultiAgentEnv`, the full game
  (:class:`sedjax.SED`) as a JaxMARL ``MultiAgentEnv`` (dict observations/actions keyed by agent,
  ``"__all__"`` done, auto-reset), so JaxMARL's baselines (IPPO, MAPPO) run on it unchanged.
  Needs the optional dependency: ``pip install sedjax[jaxmarl]``.

Importing this package never imports the optional libraries; the adapters' modules do, and raise an
``ImportError`` naming the extra to install when they are missing.
"""

from __future__ import annotations

import importlib

__all__ = ["SEDMultiAgentEnv"]


def __getattr__(name):
    if name == "SEDMultiAgentEnv":
        return importlib.import_module("sedjax.interop.jaxmarl").SEDMultiAgentEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
