"""Evaluation metrics, scikit-learn scorers and personalized cross-validation.

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

Three layers are offered:

* metric functions :func:`ccc`, :func:`pcc`, :func:`rmse` and
  :func:`evaluate` on label and prediction arrays;
* scorers ``scorer(estimator, X, y) -> float`` for
  :class:`~sklearn.model_selection.GridSearchCV` and
  :func:`~sklearn.model_selection.cross_validate`: :data:`SCORERS`,
  :func:`get_scorer`, :func:`make_scorers`, :func:`make_multimetric_scorer`;
* personalized evaluation, where every held-out listener first adapts the
  model on ``support`` of their own songs and is then scored on their other
  songs: :func:`~pdmer.evaluation.personalized_score`,
  :func:`~pdmer.evaluation.cross_validate_personalized` and the
  metadata-routing aware :func:`~pdmer.evaluation.personalized_scorer`. They
  live in :mod:`pdmer.evaluation` and are re-exported here.

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

from __future__ import annotations

import difflib
import numbers
from types import MappingProxyType

import numpy as np

from pdmer.labels import DIMENSIONS

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

_METRICS = ("ccc", "pcc", "rmse")
_MULTIOUTPUT = ("uniform_average", "raw_values")
_MIN_FRAMES = 2


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _as_songs(y, name):
    """Return ``y`` as a list of float64 arrays of shape ``(n_frames, 2)``."""
    if isinstance(y, (str, bytes)) or y is None or np.isscalar(y):
        raise TypeError(
            f"{name} must be an array of shape (n_frames, 2) for one song, a "
            f"list of such arrays, or an array of shape (n_songs, n_frames, 2); "
            f"got {type(y).__name__}."
        )
    if isinstance(y, np.ndarray) and y.dtype != object:
        arr = y
    elif isinstance(y, (list, tuple, np.ndarray)) and all(np.ndim(s) == 2 for s in y):
        arr = None  # already a sequence of 2-D songs (possibly ragged)
    else:
        try:
            arr = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None  # ragged or mixed: validate song by song below
    if arr is not None:
        if arr.ndim == 2:
            songs = [arr]
        elif arr.ndim == 3:
            songs = list(arr)
        else:
            raise ValueError(
                f"{name} must be an array of shape (n_frames, 2) for one song, "
                f"a list of such arrays, or an array of shape "
                f"(n_songs, n_frames, 2); got an array of shape {arr.shape}."
            )
    else:
        songs = list(y)
    if len(songs) == 0:
        raise ValueError(f"{name} is empty: at least one song is needed.")
    out = []
    for i, song in enumerate(songs):
        try:
            a = np.asarray(song, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name}[{i}] is not a numeric array of shape (n_frames, 2): {exc}"
            ) from None
        if a.ndim != 2 or a.shape[1] != len(DIMENSIONS):
            raise ValueError(
                f"{name}[{i}] must have shape (n_frames, {len(DIMENSIONS)}) with "
                f"columns {DIMENSIONS}; got shape {a.shape}."
            )
        out.append(a)
    return out


def _paired_songs(y_true, y_pred):
    true = _as_songs(y_true, "y_true")
    pred = _as_songs(y_pred, "y_pred")
    if len(true) != len(pred):
        raise ValueError(
            f"y_true has {len(true)} song(s) but y_pred has {len(pred)}; both "
            f"must hold one array per song, in the same order."
        )
    for i, (t, p) in enumerate(zip(true, pred)):
        if t.shape != p.shape:
            raise ValueError(
                f"song {i}: y_true has shape {t.shape} but y_pred has shape "
                f"{p.shape}; predictions need one row per label frame."
            )
    return true, pred


def _check_dimension(dimension):
    if dimension is None:
        return None
    if isinstance(dimension, str):
        if dimension in DIMENSIONS:
            return DIMENSIONS.index(dimension)
    elif isinstance(dimension, numbers.Integral) and not isinstance(dimension, bool):
        if 0 <= int(dimension) < len(DIMENSIONS):
            return int(dimension)
    raise ValueError(f"dimension must be None, 'arousal', 'valence', 0 or 1; got {dimension!r}.")


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


# ---------------------------------------------------------------------------
# Per-song computation
# ---------------------------------------------------------------------------


def _curve_scores(t, p):
    """CCC, PCC and RMSE of one 1-D truth/prediction pair (no NaN)."""
    t_const = t.max() == t.min()
    p_const = p.max() == p.min()
    mt = t[0] if t_const else t.mean()
    mp = p[0] if p_const else p.mean()
    err = p - t
    rmse_ = float(np.sqrt(np.mean(err * err)))
    if not (t_const or p_const):
        dt = t - mt
        dp = p - mp
        var_t = np.mean(dt * dt)
        var_p = np.mean(dp * dp)
        scale = np.sqrt(var_t) * np.sqrt(var_p)
        if scale > 0:  # not underflowed to zero
            cov = np.mean(dt * dp)
            pcc_ = float(np.clip(cov / scale, -1.0, 1.0))
            ccc_ = float(2.0 * cov / (var_t + var_p + (mt - mp) ** 2))
            return ccc_, pcc_, rmse_
    # Undefined correlation (a constant side): sklearn's force_finite rule.
    same = bool(t_const and p_const and np.allclose(p, t))
    value = 1.0 if same else 0.0
    return value, value, rmse_


def _per_song_stats(y_true, y_pred):
    """Arrays of shape (n_songs, 2) for "ccc", "pcc" and "rmse"."""
    true, pred = _paired_songs(y_true, y_pred)
    n = len(true)
    out = {m: np.empty((n, len(DIMENSIONS))) for m in _METRICS}
    for i, (t_song, p_song) in enumerate(zip(true, pred)):
        if np.isinf(t_song).any():
            raise ValueError(f"song {i}: y_true contains infinite values.")
        for d, dim in enumerate(DIMENSIONS):
            t = t_song[:, d]
            p = p_song[:, d]
            valid = ~np.isnan(t)
            n_valid = int(valid.sum())
            if n_valid < _MIN_FRAMES:
                raise ValueError(
                    f"song {i}: {dim} has {n_valid} annotated (non-NaN) "
                    f"frame(s) in y_true; at least {_MIN_FRAMES} are needed "
                    f"to score a curve."
                )
            if n_valid < t.size:
                t = t[valid]
                p = p[valid]
            if not np.isfinite(p).all():
                raise ValueError(
                    f"song {i}: y_pred has NaN or infinite {dim} values at "
                    f"frames where y_true is annotated."
                )
            scores = _curve_scores(t, p)
            for m, s in zip(_METRICS, scores):
                out[m][i, d] = s
    return out


def _reduce(scores, dimension, multioutput, per_song):
    """Select and average an (n_songs, 2) score array as documented."""
    if dimension is not None:
        col = scores[:, dimension]
        return col.copy() if per_song else float(col.mean())
    if per_song:
        return scores.copy() if multioutput == "raw_values" else scores.mean(axis=1)
    if multioutput == "raw_values":
        return scores.mean(axis=0)
    return float(scores.mean())


def _metric(name, y_true, y_pred, dimension, multioutput, per_song):
    dim = _check_dimension(dimension)
    _check_choice(multioutput, "multioutput", _MULTIOUTPUT)
    if not isinstance(per_song, (bool, np.bool_)):
        raise TypeError(f"per_song must be a bool; got {per_song!r}.")
    stats = _per_song_stats(y_true, y_pred)
    return _reduce(stats[name], dim, multioutput, bool(per_song))


_METRIC_PARAMS_DOC = """
    Parameters
    ----------
    y_true : array-like of shape (n_frames, 2), list of such arrays, or \
array-like of shape (n_songs, n_frames, 2)
        Labels, columns ``("arousal", "valence")``. A single 2-D array is one
        song. ``NaN`` marks padding or unannotated frames, which are ignored
        song by song (and dimension by dimension); every song needs at least
        2 annotated frames in each dimension.
    y_pred : same structure as ``y_true``
        Predictions, one array per song with the same shape as its labels.
        They must be finite wherever the labels are annotated.
    dimension : {None, "arousal", "valence", 0, 1}, default=None
        Score one dimension only. ``None`` scores both.
    multioutput : {"uniform_average", "raw_values"}, default="uniform_average"
        With ``dimension=None``: average the two dimensions
        (``"uniform_average"``) or keep them apart (``"raw_values"``).
        Ignored when ``dimension`` is given.
    per_song : bool, default=False
        Return each song's score instead of the average over songs.
"""

_METRIC_RETURNS_DOC = """
    Returns
    -------
    score : float or ndarray
        Each song's {what} is computed over its own frames, then averaged
        over songs (not over concatenated frames). The shape depends on the
        arguments:

        =============  ==============  ==================  ==================
        ``per_song``   ``dimension``   ``multioutput``     result
        =============  ==============  ==================  ==================
        False          None            "uniform_average"   float
        False          None            "raw_values"        ndarray (2,)
        False          given           (ignored)           float
        True           None            "uniform_average"   ndarray (n_songs,)
        True           None            "raw_values"        ndarray (n_songs, 2)
        True           given           (ignored)           ndarray (n_songs,)
        =============  ==============  ==================  ==================

    Raises
    ------
    ValueError
        On empty input, a song count or shape mismatch between ``y_true`` and
        ``y_pred`` (the message names the song index and both shapes), a last
        axis other than 2, a song with fewer than 2 annotated frames in a
        dimension, or non-finite predictions on annotated frames.
"""


def ccc(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    return _metric("ccc", y_true, y_pred, dimension, multioutput, per_song)


def pcc(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    return _metric("pcc", y_true, y_pred, dimension, multioutput, per_song)


def rmse(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    return _metric("rmse", y_true, y_pred, dimension, multioutput, per_song)


ccc.__doc__ = (
    """Concordance correlation coefficient, per song, averaged over songs.

    ``CCC = 2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))**2)`` with
    population (``ddof=0``) moments over a song's annotated frames. CCC is 1
    only for a perfect prediction and penalises both decorrelation and bias.
    If truth and prediction are both constant the score is 1.0 when they are
    equal (:func:`numpy.allclose`) and 0.0 otherwise; if only one is constant
    it is 0.0. Never ``NaN``.
"""
    + _METRIC_PARAMS_DOC
    + _METRIC_RETURNS_DOC.format(what="CCC")
    + """
    See Also
    --------
    pcc, rmse, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import ccc
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> ccc(y, y)
    1.0
    >>> ccc(y, y + 0.1, dimension="arousal")  # doctest: +ELLIPSIS
    0.842...
    >>> ccc([y, y], [y, y[::-1]], per_song=True, multioutput="raw_values")
    array([[ 1. ,  1. ],
           [-1. ,  0.5]])
"""
)

pcc.__doc__ = (
    """Pearson correlation coefficient, per song, averaged over songs.

    ``PCC = cov(y, p) / sqrt(var(y) var(p))`` over a song's annotated frames.
    PCC ignores bias and scale. If truth and prediction are both constant the
    score is 1.0 when they are equal (:func:`numpy.allclose`) and 0.0
    otherwise; if only one is constant it is 0.0. Never ``NaN``.
"""
    + _METRIC_PARAMS_DOC
    + _METRIC_RETURNS_DOC.format(what="PCC")
    + """
    See Also
    --------
    ccc, rmse, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import pcc
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> pcc(y, 2 * y + 0.1)  # invariant to scale and offset
    1.0
    >>> pcc(y, np.full_like(y, 0.2))  # a constant prediction correlates with nothing
    0.0
"""
)

rmse.__doc__ = (
    """Root mean squared error, per song, averaged over songs.

    ``RMSE = sqrt(mean((y - p)**2))`` over a song's annotated frames; lower is
    better. The per-song values are averaged (the mean of per-song RMSEs, not
    the RMSE of all frames pooled).
"""
    + _METRIC_PARAMS_DOC
    + _METRIC_RETURNS_DOC.format(what="RMSE")
    + """
    See Also
    --------
    ccc, pcc, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import rmse
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> round(rmse(y, y + 0.1), 6)
    0.1
    >>> y_pad = np.vstack([y, [[np.nan, np.nan]]])  # padding is ignored
    >>> round(rmse(y_pad, np.vstack([y + 0.1, [[0.0, 0.0]]])), 6)
    0.1
"""
)


def evaluate(y_true, y_pred):
    """All metrics of both dimensions, for a results table.

    Parameters
    ----------
    y_true : array-like of shape (n_frames, 2), list of such arrays, or \
array-like of shape (n_songs, n_frames, 2)
        Labels (``NaN`` frames ignored), as for :func:`ccc`.
    y_pred : same structure as ``y_true``
        Predictions.

    Returns
    -------
    scores : dict of str to float
        Keys ``"ccc_arousal"``, ``"ccc_valence"``, ``"ccc_mean"``,
        ``"pcc_arousal"``, ``"pcc_valence"``, ``"pcc_mean"``,
        ``"rmse_arousal"``, ``"rmse_valence"`` and ``"rmse_mean"``. Each value
        is a per-song score averaged over songs; ``*_mean`` averages the two
        dimensions. RMSE is reported as is (lower is better).

    See Also
    --------
    ccc, pcc, rmse

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import evaluate
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> scores = evaluate(y, y)
    >>> list(scores)  # doctest: +NORMALIZE_WHITESPACE
    ['ccc_arousal', 'ccc_valence', 'ccc_mean', 'pcc_arousal', 'pcc_valence',
     'pcc_mean', 'rmse_arousal', 'rmse_valence', 'rmse_mean']
    >>> scores["ccc_mean"], scores["rmse_mean"]
    (1.0, 0.0)
    """
    stats = _per_song_stats(y_true, y_pred)
    out = {}
    for m in _METRICS:
        per_dim = stats[m].mean(axis=0)
        for d, dim in enumerate(DIMENSIONS):
            out[f"{m}_{dim}"] = float(per_dim[d])
        out[f"{m}_mean"] = float(stats[m].mean())
    return out


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


def _scorer_specs():
    specs = {}
    for m in _METRICS:
        prefix, sign = ("neg_rmse", -1.0) if m == "rmse" else (m, 1.0)
        specs[prefix] = (m, None, sign)
        for d, dim in enumerate(DIMENSIONS):
            specs[f"{prefix}_{dim}"] = (m, d, sign)
    return specs


_SCORER_SPECS = _scorer_specs()


def _lookup(name, param="name"):
    """Validate a scorer name; return its (metric, dimension, sign) spec."""
    if not isinstance(name, str):
        raise TypeError(f"{param} must be a scorer name (str); got {name!r}.")
    try:
        return _SCORER_SPECS[name]
    except KeyError:
        pass
    if name.startswith("rmse"):
        hint = (
            f" Scorers follow scikit-learn's greater-is-better convention: use "
            f"'neg_{name}' (the negated RMSE); pdmer.metrics.rmse gives the "
            f"plain value."
        )
    else:
        close = difflib.get_close_matches(name, _SCORER_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{param}={name!r} is not a pdmer scorer.{hint} Valid names: "
        f"{', '.join(sorted(_SCORER_SPECS))}."
    )


def _names_from_stats(stats, names, listeners=None):
    """Scores named like the scorers, from per-song stats (n, 2) arrays.

    With ``listeners`` (one label per row), rows are first averaged per
    listener, so that every listener weighs the same.
    """
    if listeners is not None:
        keys, inverse = np.unique(listeners, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(keys))[:, None]
        stats = {
            m: np.stack(
                [
                    np.bincount(inverse, weights=a[:, d], minlength=len(keys))
                    for d in range(a.shape[1])
                ],
                axis=1,
            )
            / counts
            for m, a in stats.items()
        }
    out = {}
    for name in names:
        m, d, sign = _SCORER_SPECS[name]
        arr = stats[m]
        value = arr.mean() if d is None else arr[:, d].mean()
        out[name] = float(sign * value)
    return out


class SequenceScorer:
    """A scorer ``scorer(estimator, X, y) -> float`` for one pdmer metric.

    Scorers are what scikit-learn's model selection tools call: they predict
    ``X`` with the fitted ``estimator`` (whose ``predict`` returns one
    ``(n_frames, 2)`` array per song) and compare with the labels ``y``.
    Greater is better; RMSE scorers return the negated RMSE. Get instances
    with :func:`get_scorer` rather than building them.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`.

    Examples
    --------
    >>> from pdmer.metrics import get_scorer
    >>> get_scorer("neg_rmse_valence")
    get_scorer('neg_rmse_valence')
    """

    def __init__(self, name):
        self._metric, self._dimension, self._sign = _lookup(name)
        self.name = name

    def __call__(self, estimator, X, y):
        """Score ``estimator.predict(X)`` against ``y``; greater is better."""
        y_pred = estimator.predict(X)
        stats = _per_song_stats(y, y_pred)
        return _names_from_stats(stats, [self.name])[self.name]

    def __repr__(self):
        return f"get_scorer({self.name!r})"

    def __reduce__(self):  # pickle by name (for joblib workers)
        return (SequenceScorer, (self.name,))

    def _accept_sample_weight(self):
        # scikit-learn asks scorers this when sample_weight is passed to a
        # search; pdmer metrics are unweighted.
        return False


SCORERS = MappingProxyType({name: SequenceScorer(name) for name in _SCORER_SPECS})
"""Read-only mapping from scorer name to :class:`SequenceScorer`.

Names: ``"ccc"``, ``"ccc_arousal"``, ``"ccc_valence"``, ``"pcc"``,
``"pcc_arousal"``, ``"pcc_valence"``, ``"neg_rmse"``, ``"neg_rmse_arousal"``,
``"neg_rmse_valence"``. The names without a dimension average arousal and
valence.
"""


def get_scorer_names():
    """Names accepted by :func:`get_scorer`.

    Returns
    -------
    names : list of str
        Sorted scorer names.

    Examples
    --------
    >>> from pdmer.metrics import get_scorer_names
    >>> get_scorer_names()[:3]
    ['ccc', 'ccc_arousal', 'ccc_valence']
    """
    return sorted(_SCORER_SPECS)


def get_scorer(name):
    """Return the pdmer scorer called ``name``.

    scikit-learn only resolves its own string names, so pass the returned
    object (not the string) as ``scoring``:
    ``GridSearchCV(estimator, grid, scoring=get_scorer("ccc"))``.

    Parameters
    ----------
    name : str or callable
        A name from :func:`get_scorer_names`. RMSE scorers are negated
        (``"neg_rmse"``, ``"neg_rmse_arousal"``, ``"neg_rmse_valence"``) so
        that greater is better; ``"rmse*"`` names are rejected with a pointer
        to them. A callable is returned unchanged (as
        :func:`sklearn.metrics.get_scorer` does).

    Returns
    -------
    scorer : SequenceScorer
        Callable ``scorer(estimator, X, y) -> float``.

    Raises
    ------
    ValueError
        If ``name`` is not a pdmer scorer name.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import get_scorer
    >>> class Echo:  # "predicts" the features themselves
    ...     def predict(self, X):
    ...         return [np.asarray(x) for x in X]
    >>> X = [np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])]
    >>> get_scorer("ccc")(Echo(), X, X)
    1.0
    >>> get_scorer("rmse")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: name='rmse' is not a pdmer scorer. Scorers follow ...
    """
    if callable(name) and not isinstance(name, str):
        return name
    _lookup(name)
    return SCORERS[name]


def _check_names(names, param):
    if isinstance(names, str):
        names = [names]
    try:
        names = list(names)
    except TypeError:
        raise TypeError(
            f"{param} must be a scorer name or a list of scorer names; got {names!r}."
        ) from None
    if not names:
        raise ValueError(f"{param} must name at least one scorer.")
    for n in names:
        _lookup(n, param)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{param} lists {dup} more than once.")
    return names


def make_scorers(names):
    """A ``{name: scorer}`` dict for multi-metric ``scoring``.

    Parameters
    ----------
    names : str or list of str
        Scorer names, see :func:`get_scorer_names`.

    Returns
    -------
    scorers : dict of str to SequenceScorer
        Pass it as ``scoring=`` to
        :class:`~sklearn.model_selection.GridSearchCV` (with ``refit`` set to
        one of the names) or :func:`~sklearn.model_selection.cross_validate`.
        Each scorer calls ``predict`` itself; with an expensive model prefer
        :func:`make_multimetric_scorer`, which predicts once.

    Examples
    --------
    >>> from pdmer.metrics import make_scorers
    >>> make_scorers(["ccc", "neg_rmse"])
    {'ccc': get_scorer('ccc'), 'neg_rmse': get_scorer('neg_rmse')}
    """
    return {n: SCORERS[n] for n in _check_names(names, "names")}


class _MultiMetricSequenceScorer:
    """Predicts once, returns ``{name: score}``."""

    def __init__(self, names):
        self.names = _check_names(names, "names")

    def __call__(self, estimator, X, y):
        stats = _per_song_stats(y, estimator.predict(X))
        return _names_from_stats(stats, self.names)

    def __repr__(self):
        return f"make_multimetric_scorer({self.names!r})"

    def _accept_sample_weight(self):
        return False


def make_multimetric_scorer(names):
    """One callable that predicts once and returns several scores.

    scikit-learn accepts a callable returning a dict as ``scoring`` (see its
    "callable returning a dictionary" option); the result keys become
    ``test_<name>`` in :func:`~sklearn.model_selection.cross_validate` and
    ``mean_test_<name>`` in ``GridSearchCV.cv_results_`` (set ``refit`` to a
    name or ``False``).

    Parameters
    ----------
    names : str or list of str
        Scorer names, see :func:`get_scorer_names`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> dict of str to float``.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.metrics import make_multimetric_scorer
    >>> class Echo:
    ...     def predict(self, X):
    ...         return [np.asarray(x) for x in X]
    >>> X = [np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])]
    >>> make_multimetric_scorer(["ccc", "neg_rmse"])(Echo(), X, X)
    {'ccc': 1.0, 'neg_rmse': -0.0}
    """
    return _MultiMetricSequenceScorer(names)


# ---------------------------------------------------------------------------
# Personalized evaluation: lives in pdmer.evaluation (the one protocol);
# re-exported here for code written against pdmer.metrics (not in __all__,
# so that they are documented once). Imported on first use, because
# pdmer.evaluation itself builds on this module's scorers.
# ---------------------------------------------------------------------------

_PERSONALIZED = ("PersonalizedScorer", "personalized_scorer", "personalized_score",
                 "cross_validate_personalized")


def __dir__():
    return sorted(set(globals()) | set(_PERSONALIZED))


def __getattr__(name):
    if name in _PERSONALIZED:
        import pdmer.evaluation

        return getattr(pdmer.evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
