"""Compatibility module: the training plots moved to :mod:`sedjax.train.plots`."""

from sedjax.train.plots import CURVES, plot_run, tax_schedule, training_curves

__all__ = ["CURVES", "training_curves", "tax_schedule", "plot_run"]
