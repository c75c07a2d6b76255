"""Personalized scores on the protocol of :mod:`.protocol`.

For every listener with at least ``support + 1`` songs, ``support`` of their
songs are drawn (:func:`~pdmer.evaluation.plan_episodes`), the estimator adapts
to them and predicts the listener's other songs, and each of those songs is
scored per song, as :func:`pdmer.scoring.ccc` does
(:func:`~pdmer.evaluation.run_episodes`). Listeners with fewer songs are
skipped with a :class:`UserWarning` giving the count. A pdmer estimator is
never changed (``adapt_listener`` and ``predict(X, listener=...)``); any other
estimator with ``personalize(X, y)``, ``predict(X)`` and
``reset_personalization()`` is run through those, and reset at the end, also
on errors. ``personalize`` is expected to adapt from the fitted parameters
and to replace, not stack on, an earlier personalization.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from pdmer.evaluation.protocol import plan_episodes, run_episodes

from pdmer.scoring import ccc, check_scorer_names, per_song_scores, scores_from_per_song

__all__ = ["listener_ccc", "personalized_score", "score_episodes"]

AVERAGES = ("songs", "listeners")


def listener_ccc(truth, predictions, listeners) -> dict:
    """Each listener's CCC: the mean over their scored songs (and both dimensions).

    Their mean over listeners is the score training validation maximises
    (every held-out listener weighs the same); ``score_episodes(...,
    average="listeners")`` is the same quantity.

    Parameters
    ----------
    truth, predictions : list of ndarray of shape (n_frames_i, 2)
        One pair per scored (song, listener), as :func:`run_episodes` returns them.
    listeners : sequence of str
        The listener of each pair.

    Returns
    -------
    dict of str to float
        In sorted listener order.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.evaluation.personalized import listener_ccc
    >>> t = [np.array([[0.0, 0.1], [0.5, 0.3], [1.0, 0.2]])]
    >>> listener_ccc(t, t, ["a"])
    {'a': 1.0}
    """
    listeners = np.asarray(listeners)
    return {str(who): ccc([t for t, k in zip(truth, listeners) if k == who],
                          [p for p, k in zip(predictions, listeners) if k == who])
            for who in np.unique(listeners)}


def score_episodes(truth, predictions, listeners, *, metric="ccc", average="songs"):
    """Scores named like pdmer's scorers, from :func:`run_episodes`' output.

    Parameters
    ----------
    truth, predictions : list of ndarray of shape (n_frames_i, 2)
        One pair per scored (song, listener).
    listeners : sequence of str
        The listener of each pair.
    metric : str or list of str, default="ccc"
        Scorer name(s) from :func:`pdmer.scoring.get_scorer_names` (greater is
        better, RMSE negated).
    average : {"songs", "listeners"}, default="songs"
        ``"songs"`` averages over all pairs; ``"listeners"`` first averages
        each listener's songs, so every listener weighs the same.

    Returns
    -------
    float or dict of str to float
        A float for one name, a dict for a list of names.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.evaluation import score_episodes
    >>> t = [np.array([[0.0, 0.1], [0.5, 0.3], [1.0, 0.2]])]
    >>> score_episodes(t, t, ["a"], metric=["ccc", "neg_rmse"])
    {'ccc': 1.0, 'neg_rmse': 0.0}
    """
    names = _check_metric(metric, "metric")
    _check_average(average)
    listeners = np.asarray(listeners).astype(str)
    per_song = {}
    for listener in np.unique(listeners):
        rows = np.flatnonzero(listeners == listener)
        try:
            scores = per_song_scores([truth[i] for i in rows], [predictions[i] for i in rows])
        except ValueError as exc:
            raise ValueError(f"listener {str(listener)!r}: {exc}") from exc
        for key, value in scores.items():
            per_song.setdefault(key, []).append(value)
        per_song.setdefault("listener", []).append(np.repeat(listener, len(rows)))
    groups = np.concatenate(per_song.pop("listener")) if average == "listeners" else None
    scores = scores_from_per_song({k: np.concatenate(v) for k, v in per_song.items()},
                                  names, groups=groups)
    return scores[names[0]] if isinstance(metric, str) else scores


def personalized_score(estimator, X, y, annotators, *, metric="ccc", support=1,
                       random_state=0, average="songs"):
    """Score a fitted estimator after adapting it to each listener.

    The routing-free way to compute the personalized (PDMER) score of a fitted
    estimator on listeners it has not seen, with the protocol described in
    :mod:`pdmer.evaluation` (one support draw per listener, the listener's
    other songs scored per song).

    Parameters
    ----------
    estimator : estimator
        Fitted; a pdmer estimator, or one providing ``personalize(X, y)``,
        ``predict(X)`` (one ``(n_frames, 2)`` array per song) and
        ``reset_personalization()``.
    X : sequence of length n_pairs
        Model input, one entry per (song, listener) pair.
    y : list of arrays of shape (n_frames, 2), length n_pairs
        That listener's labels for that song (``NaN`` frames ignored).
    annotators : array-like of shape (n_pairs,)
        Listener id of each entry.
    metric : str or list of str, default="ccc"
        Scorer name(s) from :func:`pdmer.scoring.get_scorer_names` (greater is
        better, RMSE negated).
    support : int, default=1
        Songs each listener gives for adaptation (the paper uses one).
    random_state : int, RandomState instance or None, default=0
        Draws the support songs. With an int the draw is the same on every
        call (and the same as every other pdmer caller's with that seed).
    average : {"songs", "listeners"}, default="songs"
        ``"songs"`` averages over all scored (song, listener) pairs;
        ``"listeners"`` first averages each listener's songs.

    Returns
    -------
    score : float or dict of str to float
        A float for one metric name, a dict for a list of names.

    Raises
    ------
    ValueError
        If ``annotators`` is missing or its length differs from ``X``/``y``,
        if a name is unknown, or if no listener has ``support + 1`` songs.

    See Also
    --------
    cross_validate_personalized : fit on some listeners, score on others.
    personalized_scorer : the same as a scikit-learn scorer.

    Examples
    --------
    A toy estimator whose prediction is its input shifted by a per-listener
    offset, learned by ``personalize``:

    >>> import numpy as np
    >>> from pdmer.evaluation import personalized_score
    >>> class Offset:
    ...     offset = 0.0
    ...     def personalize(self, X, y):
    ...         self.offset = np.mean([yi - xi for xi, yi in zip(X, y)])
    ...     def reset_personalization(self):
    ...         self.offset = 0.0
    ...     def predict(self, X):
    ...         return [x + self.offset for x in X]
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(20, 2)) for _ in range(6)]
    >>> annotators = np.array(["a", "a", "a", "b", "b", "b"])
    >>> y = [x + (0.5 if a == "a" else -0.5) for x, a in zip(X, annotators)]
    >>> personalized_score(Offset(), X, y, annotators, metric=["ccc", "neg_rmse"])
    {'ccc': 1.0, 'neg_rmse': 0.0}
    """
    _check_metric(metric, "metric")
    _check_average(average)
    return _personalized(estimator, X, y, annotators, metric, support, random_state, average)


def _personalized(estimator, X, y, annotators, metric, support, random_state, average):
    annotators = _check_personalized_inputs(X, y, annotators, support)
    scores, n_scored, n_skipped = _score_listeners(estimator, X, y, annotators, metric,
                                                   support, random_state, average)
    if scores is None:
        raise ValueError(
            f"No listener could be scored: each of the {n_skipped} listener(s) "
            f"has fewer than support + 1 = {support + 1} songs (support songs "
            f"to adapt on plus at least one song to score).")
    if n_skipped:
        warnings.warn(
            f"{n_skipped} of {n_scored + n_skipped} listener(s) have fewer than "
            f"support + 1 = {support + 1} songs and were not scored.",
            UserWarning, stacklevel=3)
    return scores


def _score_listeners(estimator, X, y, annotators, metric, support, random_state, average):
    """(scores or None, listeners scored, listeners skipped) on the one protocol."""
    episodes = plan_episodes(annotators, n_support=support, random_state=random_state)
    truth, predictions, listeners = run_episodes(estimator, X, y, episodes)
    n_skipped = len(np.unique(np.asarray(annotators).astype(str))) - len(episodes)
    if not episodes:
        return None, 0, n_skipped
    return (score_episodes(truth, predictions, listeners, metric=metric, average=average),
            len(episodes), n_skipped)


# ----------------------------------------------------------------- validation
def _check_metric(metric, param) -> list:
    """The scorer names in ``metric`` (validated), as a list."""
    return check_scorer_names(metric, param=param)


def _check_average(average):
    if not isinstance(average, str) or average not in AVERAGES:
        raise ValueError(f"average must be one of {', '.join(map(repr, AVERAGES))}; "
                         f"got {average!r}.")
    return average


def _check_support(support):
    if not isinstance(support, numbers.Integral) or isinstance(support, bool) or support < 1:
        raise ValueError(f"support must be an integer >= 1; got {support!r}.")
    return int(support)


def _n_songs(y, name="y"):
    if isinstance(y, np.ndarray) and y.dtype != object and y.ndim != 3:
        raise ValueError(
            f"{name} must hold one (n_frames, 2) array per song (a list, or an "
            f"array of shape (n_songs, n_frames, 2)); got an array of shape {y.shape}.")
    try:
        return len(y)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of songs; got {type(y).__name__}.") from None


def _check_personalized_inputs(X, y, annotators, support):
    _check_support(support)
    n = _n_songs(y)
    try:
        n_x = len(X)
    except TypeError:
        raise TypeError(f"X must be a sequence of songs; got {type(X).__name__}.") from None
    if annotators is None:
        raise ValueError(
            "annotators is required: personalized scoring needs to know which "
            "listener annotated each song. Pass it directly, or, inside "
            "GridSearchCV/cross_validate, enable metadata routing "
            "(sklearn.set_config(enable_metadata_routing=True)) and pass "
            "annotators as fit/params metadata; see pdmer.evaluation.personalized_scorer.")
    annotators = np.asarray(annotators)
    if annotators.ndim != 1:
        raise ValueError(
            f"annotators must be 1-D (one listener id per song); got shape {annotators.shape}.")
    if not (n_x == n == annotators.shape[0]):
        raise ValueError(
            f"X, y and annotators must have one entry per (song, listener) "
            f"pair; got {n_x}, {n} and {annotators.shape[0]}.")
    if n == 0:
        raise ValueError("X is empty: at least one song is needed.")
    return annotators
