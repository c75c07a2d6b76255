"""Checks on scored predictions that a table should show beside the scores."""

from __future__ import annotations

import numpy as np

__all__ = ["COLLAPSE_RATIO", "prediction_spread"]

COLLAPSE_RATIO = 0.5
"""A model whose predictions move less than this fraction of the labels'
movement within songs (:func:`prediction_spread`) is reported as collapsed."""


def prediction_spread(truth, predictions) -> float:
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

    Returns
    -------
    float
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
        return float("nan")
    label_std = np.mean(label_std, axis=0)
    ratio = np.mean(prediction_std, axis=0) / np.where(label_std > 0, label_std, np.nan)
    return float(np.round(np.nanmean(ratio), 12)) if np.isfinite(ratio).any() else float("nan")
