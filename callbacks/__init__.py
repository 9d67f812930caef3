"""Evaluation and logging callbacks. They read the datamodule (``modes``, ``reference_samples``…) and the
module's ``sample(n)`` / ``gen_step``, and know nothing of specific methods."""

import importlib

from callbacks.modes import ModeCoverage, mode_metrics, support_metrics
from callbacks.plots import SamplePlot
from callbacks.results import ResultsWriter

_LAZY = {
    "FID": "callbacks.fid",
    "SpectralMonitor": "callbacks.spectral",
    "StackedModeCount": "callbacks.stacked",
    "SampleDistances": "callbacks.distances",
    "DivergenceRollback": "callbacks.rollback",
}

__all__ = ["ModeCoverage", "mode_metrics", "support_metrics", "SamplePlot", "ResultsWriter", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'callbacks' has no attribute {name!r}")
