"""Per-song CCC, PCC and RMSE: the metric functions of :mod:`pdmer.scoring`."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from pdmer.labels import DIMENSIONS
from pdmer.sklearn_compat import Interval, StrOptions, validate_params

METRICS = ("ccc", "pcc", "rmse")  # documented in pdmer.scoring

_MIN_FRAMES = 2


class _DimensionIndex(Interval):
    """An int in [0, 1]: a column of DIMENSIONS (unlike Interval, True is no index)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


_METRIC_PARAMS = {
    # Songs are ragged sequences, not matrices: _as_songs checks them.
    "y_true": "no_validation",
    "y_pred": "no_validation",
    "dimension": [None, StrOptions(set(DIMENSIONS)),
                  _DimensionIndex(Integral, 0, len(DIMENSIONS) - 1, closed="both")],
    "multioutput": [StrOptions({"uniform_average", "raw_values"})],
    "per_song": ["boolean"],
}


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
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be an array of shape (n_frames, 2) for one song, "
                f"a list of such arrays, or an array of shape "
                f"(n_songs, n_frames, 2); got an array of shape {arr.shape}."
            )
        songs = [arr] if arr.ndim == 2 else list(arr)
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


def _curve_scores(t, p):
    """CCC, PCC and RMSE of one 1-D truth/prediction pair (no NaN)."""
    # "Constant" is decided exactly: a mean that rounds (0.1 * 3 != 0.3) must
    # not turn a flat curve into a spurious correlation.
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


def per_song_scores(y_true, y_pred):
    """CCC, PCC and RMSE of every song and dimension.

    This is the computation behind every pdmer metric and scorer; use it to
    average songs in a way of your own (per listener, per data set, ...).

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

    Returns
    -------
    scores : dict of str to ndarray of shape (n_songs, 2)
        Keys :data:`METRICS` (``"ccc"``, ``"pcc"``, ``"rmse"``); row ``i`` is
        song ``i``, columns are arousal and valence.

    Raises
    ------
    ValueError
        On empty input, a song count or shape mismatch between ``y_true`` and
        ``y_pred`` (the message names the song index and both shapes), a last
        axis other than 2, infinite labels, a song with fewer than 2 annotated
        frames in a dimension, or non-finite predictions on annotated frames.

    See Also
    --------
    scores_from_per_song : scorer values from these arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.scoring import per_song_scores
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> scores = per_song_scores([y, y], [y, y[::-1]])
    >>> scores["ccc"]
    array([[ 1. ,  1. ],
           [-1. ,  0.5]])
    >>> scores["rmse"].shape
    (2, 2)
    """
    true, pred = _paired_songs(y_true, y_pred)
    out = {m: np.empty((len(true), len(DIMENSIONS))) for m in METRICS}
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
            for m, value in zip(METRICS, _curve_scores(t, p)):
                out[m][i, d] = value
    return out


def _reduce(scores, dimension=None, multioutput="uniform_average", per_song=False):
    """Select and average an (n_songs, 2) score array as the metrics document."""
    if isinstance(dimension, str):
        dimension = DIMENSIONS.index(dimension)
    if dimension is not None:
        col = scores[:, dimension]
        return col.copy() if per_song else float(col.mean())
    if per_song:
        return scores.copy() if multioutput == "raw_values" else scores.mean(axis=1)
    if multioutput == "raw_values":
        return scores.mean(axis=0)
    return float(scores.mean())


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def ccc(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    """Concordance correlation coefficient, per song, averaged over songs.

    ``CCC = 2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))**2)`` with
    population (``ddof=0``) moments over a song's annotated frames. CCC is 1
    only for a perfect prediction and penalises both decorrelation and bias.
    If truth and prediction are both constant the score is 1.0 when they are
    equal (:func:`numpy.allclose`) and 0.0 otherwise; if only one is constant
    it is 0.0. Never ``NaN``.

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

    Returns
    -------
    score : float or ndarray
        Each song's CCC is computed over its own frames, then averaged over
        songs (not over concatenated frames). The shape depends on the
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
        On an invalid ``dimension``, ``multioutput`` or ``per_song`` (the
        message names the parameter), and on the bad inputs listed in
        :func:`per_song_scores`.

    See Also
    --------
    pcc, rmse, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.scoring import ccc
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> ccc(y, y)
    1.0
    >>> ccc(y, y + 0.1, dimension="arousal")  # doctest: +ELLIPSIS
    0.842...
    >>> ccc([y, y], [y, y[::-1]], per_song=True, multioutput="raw_values")
    array([[ 1. ,  1. ],
           [-1. ,  0.5]])
    """
    return _reduce(per_song_scores(y_true, y_pred)["ccc"], dimension, multioutput, per_song)


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def pcc(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    """Pearson correlation coefficient, per song, averaged over songs.

    ``PCC = cov(y, p) / sqrt(var(y) var(p))`` over a song's annotated frames.
    PCC ignores bias and scale. If truth and prediction are both constant the
    score is 1.0 when they are equal (:func:`numpy.allclose`) and 0.0
    otherwise; if only one is constant it is 0.0. Never ``NaN``.

    Parameters
    ----------
    y_true : array-like of shape (n_frames, 2), list of such arrays, or \
array-like of shape (n_songs, n_frames, 2)
        Labels, columns ``("arousal", "valence")``; ``NaN`` frames are
        ignored, as in :func:`ccc`.
    y_pred : same structure as ``y_true``
        Predictions, one array per song with the same shape as its labels.
    dimension : {None, "arousal", "valence", 0, 1}, default=None
        Score one dimension only. ``None`` scores both.
    multioutput : {"uniform_average", "raw_values"}, default="uniform_average"
        With ``dimension=None``: average the two dimensions or keep them
        apart. Ignored when ``dimension`` is given.
    per_song : bool, default=False
        Return each song's score instead of the average over songs.

    Returns
    -------
    score : float or ndarray
        Each song's PCC over its own frames, averaged over songs; the shape
        follows the table in :func:`ccc`.

    Raises
    ------
    ValueError
        As :func:`ccc`.

    See Also
    --------
    ccc, rmse, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.scoring import pcc
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> pcc(y, 2 * y + 0.1)  # invariant to scale and offset
    1.0
    >>> pcc(y, np.full_like(y, 0.2))  # a constant prediction correlates with nothing
    0.0
    """
    return _reduce(per_song_scores(y_true, y_pred)["pcc"], dimension, multioutput, per_song)


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def rmse(y_true, y_pred, *, dimension=None, multioutput="uniform_average", per_song=False):
    """Root mean squared error, per song, averaged over songs.

    ``RMSE = sqrt(mean((y - p)**2))`` over a song's annotated frames; lower is
    better. The per-song values are averaged (the mean of per-song RMSEs, not
    the RMSE of all frames pooled).

    Parameters
    ----------
    y_true : array-like of shape (n_frames, 2), list of such arrays, or \
array-like of shape (n_songs, n_frames, 2)
        Labels, columns ``("arousal", "valence")``; ``NaN`` frames are
        ignored, as in :func:`ccc`.
    y_pred : same structure as ``y_true``
        Predictions, one array per song with the same shape as its labels.
    dimension : {None, "arousal", "valence", 0, 1}, default=None
        Score one dimension only. ``None`` scores both.
    multioutput : {"uniform_average", "raw_values"}, default="uniform_average"
        With ``dimension=None``: average the two dimensions or keep them
        apart. Ignored when ``dimension`` is given.
    per_song : bool, default=False
        Return each song's score instead of the average over songs.

    Returns
    -------
    score : float or ndarray
        Each song's RMSE over its own frames, averaged over songs; the shape
        follows the table in :func:`ccc`.

    Raises
    ------
    ValueError
        As :func:`ccc`.

    See Also
    --------
    ccc, pcc, evaluate

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.scoring import rmse
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> round(rmse(y, y + 0.1), 6)
    0.1
    >>> y_pad = np.vstack([y, [[np.nan, np.nan]]])  # padding is ignored
    >>> round(rmse(y_pad, np.vstack([y + 0.1, [[0.0, 0.0]]])), 6)
    0.1
    """
    return _reduce(per_song_scores(y_true, y_pred)["rmse"], dimension, multioutput, per_song)


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
    >>> from pdmer.scoring import evaluate
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> scores = evaluate(y, y)
    >>> list(scores)  # doctest: +NORMALIZE_WHITESPACE
    ['ccc_arousal', 'ccc_valence', 'ccc_mean', 'pcc_arousal', 'pcc_valence',
     'pcc_mean', 'rmse_arousal', 'rmse_valence', 'rmse_mean']
    >>> scores["ccc_mean"], scores["rmse_mean"]
    (1.0, 0.0)
    """
    out = {}
    for m, scores in per_song_scores(y_true, y_pred).items():
        for dim in DIMENSIONS:
            out[f"{m}_{dim}"] = _reduce(scores, dim)
        out[f"{m}_mean"] = _reduce(scores)
    return out
