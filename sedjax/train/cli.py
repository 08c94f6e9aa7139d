"""``sedjax-train`` / ``python -m sedjax.train``: the Hydra front end of :func:`sedjax.train.loop.run`.

Examples::

    sedjax-train                                   # the default run (sedjax/conf/config.yaml)
    sedjax-train principal=fixed train.num_seeds=4 hydra.run.dir=runs/fixed
    sedjax-train train.resume=true hydra.run.dir=runs/fixed      # continue an interrupted run
    sedjax-train -m principal=ppo,none,fixed,random hydra.sweep.dir=runs/baselines

The run folder is Hydra's output directory (``hydra.run.dir``; ``hydra.sweep.dir/<job number>`` for
``-m`` sweeps).
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sedjax.train.loop import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg, HydraConfig.get().runtime.output_dir)
    objective = summary["final"].get("objective")
    # The return value is what Hydra's sweepers optimise (e.g. Optuna): the final objective.
    return None if objective is None else objective["mean"]


if __name__ == "__main__":
    main()
