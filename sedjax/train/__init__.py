"""Training: PPO agents and a PPO Principal in one compiled program, and the host side around it.

Traced (jitted) code: ``program`` (``make_train(cfg, env=None) -> Program``), ``policy`` (how a
policy plays the env), ``ppo`` (generic PPO), ``networks``, ``schedule`` (the run's counts) and
``config`` (composition and validation; Hydra imported lazily). Host side, never imported by the
traced modules: ``loop`` (``run(cfg, out_dir)``), ``checkpoint``, ``metrics``, ``plots``,
``evaluate`` (``sedjax-eval``) and ``cli`` (``sedjax-train`` / ``python -m sedjax.train``).
"""

from sedjax.train.program import Program, Runner, make_train
from sedjax.train.schedule import Schedule, make_schedule

__all__ = ["make_train", "Program", "Runner", "Schedule", "make_schedule"]
