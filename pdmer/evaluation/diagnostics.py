"""Checks on scored predictions: how much they move, and whether the model collapsed.

The one judgment of collapse: training (the fitted ``prediction_std_ratio_``
and its :class:`~pdmer.estimators.CollapseWarning`) and the benchmark's
``spread`` and ``collapsed`` columns both measure :func:`prediction_spread`
and judge it with :func:`collapse_problems`.
"""

from __future__ import annotations

import numpy as np

from pdmer.labels import DIMENSIONS

__all__ = ["COLLAPSE_CCC", "COLLAPSE_RATIO", "collapse_problems", "prediction_spread"]

COLLAPSE_RATIO = 0.5
"""A model whose predictions move less than this fraction of the labels'
movement within songs (:func:`prediction_spread`) is reported as collapsed."""

COLLAPSE_CCC = 0.05
"""... as is one whose best validation CCC stays below this."""


def prediction_spread(truth, predictions, per_dimension=False):
    """How much predictions move within songs, relative to the labels.

    The standard deviation over time of each song's predictions, averaged
    over songs, divided by the same for the labels; computed per dimension
    (arousal, valence) and averaged. About 1 for a model that tracks the
    labels' range; near 0 for one that predicts an almost constant curve
    whatever the music (a collapsed model), whose CCC is then near 0 too.

    Parameters
    ----------
    truth, predictions : list of ndarray of shape (n_frames_i, 2)
        Scored pairs, as :func:`~pdmer.evaluation.run_episodes` returns them;
        ``NaN`` label frames are ignored (with their predictions).
    per_dimension : bool, default=False
        Return the ratio of each dimension instead of their mean.

    Returns
    -------
    float, or list of float with per_dimension
        NaN when the labels never move.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.evaluation import prediction_spread
    >>> t = [np.array([[0.0, 0.0], [1.0, 1.0]])]
    >>> prediction_spread(t, [0.1 * t[0]])
    0.1
    """
    label_std, prediction_std = [], []
    for t, p in zip(truth, predictions):
        t, p = np.asarray(t, dtype=float), np.asarray(p, dtype=float)
        keep = ~np.isnan(t).any(axis=1)
        if keep.sum() < 2:
            continue
        label_std.append(t[keep].std(axis=0))
        prediction_std.append(p[keep].std(axis=0))
    if not label_std:
        return [float("nan")] * len(DIMENSIONS) if per_dimension else float("nan")
    label_std = np.mean(label_std, axis=0)
    ratio = np.mean(prediction_std, axis=0) / np.where(label_std > 0, label_std, np.nan)
    if per_dimension:
        return [float(r) for r in ratio]
    return float(np.round(np.nanmean(ratio), 12)) if np.isfinite(ratio).any() else float("nan")


def collapse_problems(spread, validation_ccc=None) -> list:
    """Why a model looks collapsed to a near-constant output; empty when it does not.

    Parameters
    ----------
    spread : float or list of float
        :func:`prediction_spread` (per dimension, or their mean). The model
        collapsed when their mean is below :data:`COLLAPSE_RATIO`.
    validation_ccc : float, optional
        The best validation CCC of training; below :data:`COLLAPSE_CCC` the
        model collapsed too.

    Returns
    -------
    list of str
        One phrase per problem, for a warning or a report.

    Examples
    --------
    >>> from pdmer.evaluation import collapse_problems
    >>> collapse_problems([0.1, 0.3])
    ['its predictions vary 0.10 (arousal), 0.30 (valence) times as much as the labels within songs']
    >>> collapse_problems(0.8, validation_ccc=0.5)
    []
    """
    ratios = np.atleast_1d(np.asarray(spread, dtype=float))
    problems = []
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(ratios) if np.isfinite(ratios).any() else float("nan")
    if mean < COLLAPSE_RATIO:
        named = (", ".join(f"{r:.2f} ({d})" for d, r in zip(DIMENSIONS, ratios))
                 if len(ratios) == len(DIMENSIONS) else f"{mean:.2f}")
        problems.append(f"its predictions vary {named} times as much as the labels within songs")
    if validation_ccc is not None and validation_ccc < COLLAPSE_CCC:
        problems.append(f"its best validation CCC is {validation_ccc:.3f}")
    return problems
