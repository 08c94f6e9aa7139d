"""Optional experiment trackers (TensorBoard, Weights & Biases), fed from the ``metrics.jsonl`` records.

Config (``sedjax/conf/config.yaml``)::

    logger: [jsonl]        # any of jsonl, tensorboard, wandb
    wandb: {project: sedjax, entity: null, mode: null, group: null, tags: []}

* ``jsonl`` is always written, listed or not: ``metrics.jsonl`` is the source of truth (resume,
  plots, summaries, ``sweep.csv``); the trackers only mirror its records. ``logger: [jsonl]`` (the
  default) therefore means "no tracker", and so does an empty list or ``null``. A single name
  (``logger=tensorboard``) is read as a one-item list.
* ``tensorboard`` writes event files with tensorboardX (no TensorFlow, no PyTorch) to
  ``<run dir>/tensorboard``; ``tensorboard --logdir <out_dir>`` then shows a sweep's configurations
  (``<out_dir>/sweep/<k>/tensorboard``) as separate runs.
* ``wandb`` opens one W&B run per run directory (``wandb.init(..., reinit="create_new")``, so a
  process can hold a sweep's configurations at once, or run several runs one after another), with
  ``dir=<run dir>`` (offline runs land in ``<run dir>/wandb/offline-run-*``: ``wandb sync`` them).
  Each chunk is one history row; ``env_steps`` is its x axis (``define_metric``), so a resumed run
  (``train.resume=true`` reuses the W&B run id kept in ``<run dir>/wandb-run-id.txt``) continues the
  same curves.

Both libraries are imported only when listed (``pip install "sedjax[trackers]"``).

Series (:func:`flatten_record`): one scalar per record key, the step being ``env_steps``; lists are
split by index (``tax_rates/0``, ``income/3``), per-seed lists by seed (``objective_per_seed`` ->
``objective/seed_0``, ``tax_rates_per_seed`` -> ``tax_rates/seed_0/2``); NaN, inf and None values
are left out (a chunk in which nobody earns has no ``equality``), as are ``chunk`` / ``num_chunks``.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

LOGGERS = ("jsonl", "tensorboard", "wandb")
WANDB_MODES = ("online", "offline", "disabled", "shared")
WANDB_ID_FILE = "wandb-run-id.txt"
WANDB_MIN_VERSION = (0, 19, 10)  # wandb.init(reinit="create_new")
TENSORBOARD_DIR = "tensorboard"
DROPPED = ("chunk", "num_chunks", "env_steps")  # env_steps is the step, not a series
PER_SEED = "_per_seed"
INSTALL_HINT = 'pip install "sedjax[trackers]"'


# ----------------------------------------------------------------------------- config
def _node(cfg, key: str, default=None):
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            v = OmegaConf.select(cfg, key, default=default)
            return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    node = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def check_loggers(cfg) -> list[str]:
    """The tracker names of ``cfg.logger`` (deduplicated, in order; ``jsonl`` kept when listed).

    ``logger`` must be a list of names from :data:`LOGGERS` (a single name counts as a one-item list;
    a missing key, ``null`` or ``[]`` as no tracker: ``metrics.jsonl`` is written in every case).
    Raises ``ValueError`` naming ``logger`` otherwise, and naming ``wandb.<key>`` for a bad W&B
    setting when ``wandb`` is listed.
    """
    v = _node(cfg, "logger", None)
    if v is None:
        names: list = []
    elif isinstance(v, str):
        names = [v]
    elif isinstance(v, (list, tuple)):
        names = list(v)
    else:
        raise ValueError(f"logger must be a list of {', '.join(LOGGERS)} (e.g. logger=[jsonl,tensorboard]), "
                         f"got {v!r}")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or name not in LOGGERS:
            raise ValueError(f"logger: unknown logger {name!r}; choose from {', '.join(LOGGERS)} "
                             f"(e.g. logger=[jsonl,tensorboard,wandb]), got {v!r}")
        if name not in out:
            out.append(name)
    if "wandb" in out:
        wandb_settings(cfg)
    return out


def wandb_settings(cfg) -> dict[str, Any]:
    """``cfg.wandb`` checked, as ``wandb.init`` keywords (``project``, ``entity``, ``group``, ``tags``,
    ``mode``); ``ValueError`` naming ``wandb.<key>`` for a bad value."""
    w = _node(cfg, "wandb", None) or {}
    if not isinstance(w, Mapping):
        raise ValueError(f"wandb must be a group of settings (project, entity, mode, group, tags), got {w!r}")
    out: dict[str, Any] = {}
    for key in ("project", "entity", "group"):
        x = w.get(key)
        if x is not None and (isinstance(x, bool) or not isinstance(x, (str, int))):
            raise ValueError(f"wandb.{key} must be a name or null, got {x!r}")
        out[key] = None if x is None else str(x)
    mode = w.get("mode")
    if mode is not None and mode not in WANDB_MODES:
        raise ValueError(f"wandb.mode must be null (W&B's default, WANDB_MODE) or one of "
                         f"{', '.join(WANDB_MODES)}, got {mode!r}")
    out["mode"] = mode
    tags = w.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, (list, tuple)) or any(isinstance(t, bool) or not isinstance(t, (str, int)) for t in tags):
        raise ValueError(f"wandb.tags must be a list of names, got {tags!r}")
    out["tags"] = [str(t) for t in tags]
    return out


# ----------------------------------------------------------------------------- records -> scalars
def _finite(x) -> float | None:
    if x is None or isinstance(x, str):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _flatten_into(out: dict[str, float], name: str, v) -> None:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _flatten_into(out, f"{name}/{i}", x)
        return
    if isinstance(v, Mapping):
        for k, x in v.items():
            _flatten_into(out, f"{name}/{k}", x)
        return
    f = _finite(v)
    if f is not None:
        out[name] = f


def flatten_record(rec: Mapping[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` record as tracker scalars ``{series: float}``.

    * scalars keep their name (``objective``, ``sps``, ``agents/value_loss``: names holding ``/``
      are kept as they are); ints and bools become floats;
    * lists are split by index: ``tax_rates`` -> ``tax_rates/0``, ``tax_rates/1``, ... (nested lists
      recursively);
    * ``<m>_per_seed`` lists become ``<m>/seed_<i>`` (``tax_rates_per_seed`` -> ``tax_rates/seed_<i>/<b>``);
    * NaN, +-inf, None and strings are left out (trackers plot them badly or refuse them; the
      record in metrics.jsonl keeps them);
    * ``chunk``, ``num_chunks`` and ``env_steps`` (the step of every series) are dropped.
    """
    out: dict[str, float] = {}
    for k, v in rec.items():
        if k in DROPPED:
            continue
        if k.endswith(PER_SEED) and isinstance(v, (list, tuple, np.ndarray)):
            base = k[:-len(PER_SEED)]
            for i, x in enumerate(v.tolist() if isinstance(v, np.ndarray) else v):
                _flatten_into(out, f"{base}/seed_{i}", x)
        else:
            _flatten_into(out, k, v)
    return out


# ----------------------------------------------------------------------------- the trackers
def _import(module: str, logger: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"logger={logger} needs the {module} package: {INSTALL_HINT}") from e


class Trackers:
    """The trackers of one run directory: ``log(record)`` after each ``metrics.jsonl`` line, then
    ``close()`` (or use it as a context manager). Without trackers (``logger: [jsonl]``, or
    ``enabled=False``) every call is a no-op.

    ``tb_writer`` (a ``tensorboardX.SummaryWriter``) and ``wandb_run`` (a ``wandb.Run``) are the
    open backends, or None.
    """

    def __init__(self, *, tb_writer=None, wandb_run=None, loggers: tuple[str, ...] = ()):
        self.tb_writer = tb_writer
        self.wandb_run = wandb_run
        self.loggers = tuple(loggers)
        self._closed = False

    @property
    def active(self) -> bool:
        return not self._closed and (self.tb_writer is not None or self.wandb_run is not None)

    def log(self, rec: Mapping[str, Any]) -> None:
        """Log one record at step ``rec["env_steps"]``. A tracker that raises is warned about and
        dropped, so that training goes on (metrics.jsonl still has every record)."""
        if not self.active:
            return
        step = int(rec["env_steps"])
        scalars = flatten_record(rec)
        if self.tb_writer is not None:
            try:
                for tag, value in scalars.items():
                    self.tb_writer.add_scalar(tag, value, global_step=step)
                self.tb_writer.flush()
            except Exception as e:  # noqa: BLE001 - a tracker must not stop training
                warnings.warn(f"tensorboard logging failed, tensorboard is off for this run: {e!r}", stacklevel=2)
                self._close_tb()
        if self.wandb_run is not None:
            try:
                self.wandb_run.log({**scalars, "env_steps": step})
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"wandb logging failed, wandb is off for this run: {e!r}", stacklevel=2)
                self._close_wandb(exit_code=1)

    def _close_tb(self) -> None:
        w, self.tb_writer = self.tb_writer, None
        if w is not None:
            try:
                w.close()
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"closing the tensorboard writer failed: {e!r}", stacklevel=3)

    def _close_wandb(self, exit_code: int = 0) -> None:
        r, self.wandb_run = self.wandb_run, None
        if r is not None:
            try:
                r.finish(exit_code=exit_code)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"finishing the wandb run failed: {e!r}", stacklevel=3)

    def close(self, *, failed: bool = False) -> None:
        """Flush and close every tracker (the W&B run finishes with exit code 1 when ``failed``);
        calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close_tb()
        self._close_wandb(exit_code=1 if failed else 0)

    def __enter__(self) -> "Trackers":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def __repr__(self) -> str:
        return f"Trackers({', '.join(self.loggers) or 'none'}{', closed' if self._closed else ''})"


def _config_dict(cfg) -> dict:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            try:
                return OmegaConf.to_container(cfg, resolve=True)
            except Exception:  # noqa: BLE001 - e.g. an interpolation only Hydra's app can resolve
                return OmegaConf.to_container(cfg, resolve=False)
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg) if isinstance(cfg, Mapping) else {}


def _open_wandb(cfg, out_dir: Path, name: str | None, config_dict: dict | None):
    wandb = _import("wandb", "wandb")
    version = tuple(int(x) for x in re.findall(r"\d+", str(getattr(wandb, "__version__", "0")))[:3])
    if version < WANDB_MIN_VERSION:
        raise ImportError(f"logger=wandb needs wandb >= {'.'.join(map(str, WANDB_MIN_VERSION))} (several runs in one "
                          f"process: reinit='create_new'), found {wandb.__version__}: {INSTALL_HINT}")
    kw = wandb_settings(cfg)
    id_file = out_dir / WANDB_ID_FILE
    resume_id = None
    if bool(_node(cfg, "train.resume", False)) and id_file.exists():
        resume_id = id_file.read_text().strip() or None
    try:
        run = wandb.init(project=kw["project"], entity=kw["entity"], group=kw["group"], tags=kw["tags"] or None,
                         mode=kw["mode"], dir=str(out_dir), name=name,
                         config=config_dict if config_dict is not None else _config_dict(cfg),
                         id=resume_id, resume="allow" if resume_id else None,
                         reinit="create_new")
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(f"wandb.init failed for {out_dir}: {e}\n(log in with `wandb login`, or run without "
                           f"a connection: wandb.mode=offline; wandb.mode=disabled turns it off)") from e
    try:
        run.define_metric("env_steps")
        run.define_metric("*", step_metric="env_steps")
        if getattr(run, "id", None):
            id_file.write_text(str(run.id) + "\n")
    except Exception:
        run.finish(exit_code=1)
        raise
    return run


def make_trackers(cfg, out_dir, *, name: str | None = None, config_dict: dict | None = None,
                  enabled: bool = True) -> Trackers:
    """The trackers ``cfg.logger`` lists, for the run directory ``out_dir`` (one per sweep
    configuration: ``out_dir/sweep/<k>``).

    ``name``: the W&B run name (None: W&B's own); ``config_dict``: the W&B run config (None: ``cfg``
    resolved); ``enabled=False`` (processes other than 0 of a multi-host run) gives a no-op.
    Raises ``ValueError`` for a bad ``logger`` / ``wandb.*`` setting, ``ImportError`` (naming
    ``pip install "sedjax[trackers]"``) when a listed tracker's library is missing.
    """
    loggers = check_loggers(cfg)
    if not enabled:
        return Trackers()
    out_dir = Path(out_dir)
    tb_writer = wandb_run = None
    if "tensorboard" in loggers:
        tbx = _import("tensorboardX", "tensorboard")
        (out_dir / TENSORBOARD_DIR).mkdir(parents=True, exist_ok=True)
        tb_writer = tbx.SummaryWriter(logdir=str(out_dir / TENSORBOARD_DIR))
    if "wandb" in loggers:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            wandb_run = _open_wandb(cfg, out_dir, name, config_dict)
        except BaseException:
            if tb_writer is not None:
                tb_writer.close()
            raise
    return Trackers(tb_writer=tb_writer, wandb_run=wandb_run, loggers=tuple(loggers))
