"""Per-song metrics and scikit-learn scorers.

Dynamic music emotion recognition is scored per song: the concordance
correlation coefficient (CCC), Pearson's correlation (PCC) and the root mean
squared error (RMSE) of each song's arousal and valence curves are computed
over that song's time axis, then averaged over songs (or song-listener
pairs). Frames of different songs are never concatenated into one sequence:
doing so would reward a model for getting each song's *average* emotion
right even when it tracks nothing within a song.

Labels and predictions are sequences of songs, each an array of shape
``(n_frames, 2)`` whose columns are :data:`pdmer.labels.DIMENSIONS`
(arousal, valence). Songs may differ in length. ``NaN`` in the labels marks
padding or unannotated frames; those frames are ignored.

Two layers are offered:

* metric functions :func:`ccc`, :func:`pcc`, :func:`rmse` and
  :func:`evaluate` on label and prediction arrays, all computed by
  :func:`per_song_scores`;
* scorers ``scorer(estimator, X, y) -> float`` for
  :class:`~sklearn.model_selection.GridSearchCV` and
  :func:`~sklearn.model_selection.cross_validate`, made with
  :func:`sklearn.metrics.make_scorer`: :data:`SCORERS`, :func:`get_scorer`,
  :func:`make_scorers`, :func:`make_multimetric_scorer`. A dict of scorers
  (:func:`make_scorers`) predicts once per fold for all of them.

Undefined correlations
----------------------
A correlation is undefined when a sequence is constant (zero variance).
Following the ``force_finite`` convention of
:func:`sklearn.metrics.r2_score`, pdmer never returns ``NaN`` and never
warns: when truth and prediction are *both* constant, PCC and CCC are ``1.0``
if they are equal (:func:`numpy.allclose`) and ``0.0`` otherwise; when exactly
one of them is constant, PCC and CCC are ``0.0`` (for CCC this is also what
its formula gives, since the covariance is zero). "Constant" is decided
exactly (all values identical), so rounding never turns a flat curve into a
spurious correlation.
"""

from pdmer.scoring import _metrics, _scorers
from pdmer.scoring._metrics import ccc, evaluate, pcc, per_song_scores, rmse
from pdmer.scoring._scorers import (
    SequenceScorer,
    check_scorer_names,
    get_scorer,
    get_scorer_names,
    make_multimetric_scorer,
    make_scorers,
    scores_from_per_song,
)

# Assigned here, where autodoc reads a constant's docstring from.
METRICS = _metrics.METRICS
"""Names of the per-song metrics, the keys of :func:`per_song_scores`."""

SCORERS = _scorers.SCORERS
"""Read-only mapping from scorer name to :class:`SequenceScorer`.

Names: ``"ccc"``, ``"ccc_arousal"``, ``"ccc_valence"``, ``"pcc"``,
``"pcc_arousal"``, ``"pcc_valence"``, ``"neg_rmse"``, ``"neg_rmse_arousal"``,
``"neg_rmse_valence"``. The names without a dimension average arousal and
valence.
"""

__all__ = [
    "METRICS",
    "ccc",
    "pcc",
    "rmse",
    "evaluate",
    "per_song_scores",
    "SCORERS",
    "SequenceScorer",
    "get_scorer",
    "get_scorer_names",
    "make_scorers",
    "make_multimetric_scorer",
    "check_scorer_names",
    "scores_from_per_song",
]
