"""The scaling-law suite (``sedjax-scaling profile=<name>``): how the cost of simulating and
learning grows with environments, agents, devices, network width and compute.

* :mod:`sedjax.scaling.cost`: S1, the simulation's cost per point (throughput, XLA FLOPs/bytes,
  memory, compile time) on the env-count, agent-count, voter-count and device axes.
* :mod:`sedjax.scaling.learning`: S2 (learning vs compute x width) and S3 (population size).
* :mod:`sedjax.scaling.fits`: the fits (log-log slopes, power laws with an offset, frontiers).
* :mod:`sedjax.scaling.report`: ``fits.json``, figures and ``summary.md``.
* :mod:`sedjax.scaling.cli`: the Hydra front end; profiles in ``sedjax/conf/scaling/profile/``.
"""
