"""Compatibility module: the host loop moved to :mod:`sedjax.train.loop`, checkpoints to
:mod:`sedjax.train.checkpoint`, metrics records to :mod:`sedjax.train.metrics`."""

from sedjax.train.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from sedjax.train.loop import config_differences, quiet_libraries, run, run_chunks
from sedjax.train.metrics import (MAIN_METRICS, SUMMARY_METRICS, chunk_record, format_summary, read_metrics,
                                  summarize)
from sedjax.train.program import make_train, seed_keys, seed_slice

__all__ = ["run", "run_chunks", "load_checkpoint", "save_checkpoint", "seed_keys", "seed_slice", "read_metrics",
           "chunk_record", "summarize", "format_summary", "config_differences", "quiet_libraries",
           "make_train", "CHECKPOINT_DIR", "MAIN_METRICS", "SUMMARY_METRICS"]
