"""Evaluation metrics and scikit-learn scorers (re-exported from :mod:`pdmer.scoring`).

The per-song metrics and the scorers live in :mod:`pdmer.scoring`, which also
states the rules (songs scored one by one, ``NaN`` labels ignored, undefined
correlations); they are re-exported here unchanged:

* metric functions :func:`ccc`, :func:`pcc`, :func:`rmse` and
  :func:`evaluate` on label and prediction arrays;
* scorers ``scorer(estimator, X, y) -> float`` for
  :class:`~sklearn.model_selection.GridSearchCV` and
  :func:`~sklearn.model_selection.cross_validate`: :data:`SCORERS`,
  :func:`get_scorer`, :func:`make_scorers`, :func:`make_multimetric_scorer`.

Personalized evaluation, where every held-out listener first adapts the model
on ``support`` of their own songs and is then scored on their other songs
(:func:`~pdmer.evaluation.personalized_score`,
:func:`~pdmer.evaluation.cross_validate_personalized` and the
metadata-routing aware :func:`~pdmer.evaluation.personalized_scorer`), lives
in :mod:`pdmer.evaluation`; those names are importable from here too.
"""

from __future__ import annotations

from pdmer import scoring
from pdmer.scoring import (
    SequenceScorer,
    ccc,
    evaluate,
    get_scorer,
    get_scorer_names,
    make_multimetric_scorer,
    make_scorers,
    pcc,
    rmse,
)

SCORERS = scoring.SCORERS
"""Read-only mapping from scorer name to scorer: :data:`pdmer.scoring.SCORERS`."""

__all__ = [
    "ccc",
    "pcc",
    "rmse",
    "evaluate",
    "SCORERS",
    "SequenceScorer",
    "get_scorer",
    "get_scorer_names",
    "make_scorers",
    "make_multimetric_scorer",
]

# The personalized names live in pdmer.evaluation and are re-exported here for
# code written against pdmer.metrics (not in __all__, so that they are
# documented once). Imported on first use: pdmer.evaluation builds on the
# scorers above.
_PERSONALIZED = ("PersonalizedScorer", "personalized_scorer", "personalized_score",
                 "cross_validate_personalized")


def __dir__():
    return sorted(set(globals()) | set(_PERSONALIZED))


def __getattr__(name):
    if name in _PERSONALIZED:
        import pdmer.evaluation

        return getattr(pdmer.evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
