"""Training: PPO agents and a PPO Principal in one compiled program (``make_train``), and the
host-side runner with logging, checkpoints and plots (``sedjax.train.run.run``; the Hydra front end
is ``sedjax.train.cli``, i.e. ``sedjax-train`` / ``python -m sedjax.train``)."""

from sedjax.train.ppo import make_train

__all__ = ["make_train"]
