"""Compatibility module: ``sedjax-eval`` moved to :mod:`sedjax.train.evaluate`."""

import sys

from sedjax.train.evaluate import csv_columns, evaluate, format_eval_summary, main, make_period_fn

__all__ = ["evaluate", "main", "csv_columns", "format_eval_summary", "make_period_fn"]

if __name__ == "__main__":
    sys.exit(main())
