"""The scikit-learn internals pdmer builds on, in one place.

pdmer's estimators, scorers and data-set generators declare their parameter
constraints the way scikit-learn's own do, and its scorers extend
scikit-learn's scorer class. Those helpers live in private scikit-learn
modules, which may move between releases: this module is the only one that
imports them, and ``pyproject.toml`` bounds scikit-learn to the releases
they were checked against. When a new release moves one, this file is the
one to change.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import _fit_context as fit_context
from sklearn.metrics._scorer import _Scorer as Scorer
from sklearn.utils import _safe_indexing as safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_params,
)

__all__ = ["HasMethods", "Interval", "InvalidParameterError", "Options", "Scorer",
           "StrOptions", "StrictInterval", "fit_context", "safe_indexing", "validate_params"]


class StrictInterval(Interval):
    """A numeric interval that, unlike scikit-learn's, refuses ``True``/``False``."""

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)
