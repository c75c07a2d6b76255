"""Deprecated: the benchmark moved to :mod:`pdmer.experiments`.

``from pdmer.benchmark import run_benchmark`` (and the other names below)
still works, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import warnings

_MOVED = ("MODELS", "PRESETS", "PAPER", "PAPER_FEATURES", "Preset", "BenchmarkResult",
          "run_benchmark", "parameter_counts")


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(f"pdmer.benchmark is deprecated; import {name} from pdmer.experiments.",
                      DeprecationWarning, stacklevel=2)
        import pdmer.experiments

        return getattr(pdmer.experiments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
