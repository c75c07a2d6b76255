"""The personalized evaluation protocol: the one place that picks support songs.

A held-out listener gives a few annotated songs (the *support*); the model
adapts to them and is scored on what that listener annotated otherwise (the
*query*). Every caller in pdmer (the benchmark, the demo, ``pdmer evaluate``,
:func:`~pdmer.evaluation.personalized_score` and personalized
cross-validation) plans its episodes with :func:`plan_episodes` and runs them
with :func:`run_episodes`.

Two protocols are offered:

``"other-songs"`` (the paper's text)
    ``n_support`` whole songs of the listener are drawn at random; the model
    is scored on the listener's other songs (only on rows marked ``scored``
    when a mask is given: with a song-disjoint split, the songs nobody
    annotated in training).
``"same-song"`` (the reference implementation's validation)
    The first ``support_frames`` frames of each of the listener's songs are
    the support; the rest of the same song is scored.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, replace

import numpy as np
from sklearn.utils import check_random_state

PROTOCOLS = ("other-songs", "same-song")
"""Names accepted by :func:`plan_episodes`."""


@dataclass(frozen=True)
class Episode:
    """One listener's adaptation and the rows it is scored on.

    Attributes
    ----------
    listener : str
        The listener (annotator id).
    support : tuple of int
        Rows the model adapts on.
    support_frames : int or None
        Adapt on the first ``support_frames`` frames of each support row
        (None: whole songs).
    query : tuple of int
        Rows that are predicted and scored.
    query_start : int
        First scored frame of every query row (``support_frames`` in the
        same-song protocol, else 0).
    """

    listener: str
    support: tuple
    support_frames: int | None
    query: tuple
    query_start: int = 0


def plan_episodes(annotators, *, protocol="other-songs", n_support=1, support_frames=60,
                  lengths=None, scored=None, random_state=0) -> list[Episode]:
    """Plan one adaptation episode per listener (per song for ``"same-song"``).

    Parameters
    ----------
    annotators : array-like of shape (n_rows,)
        Listener id of every row.
    protocol : {"other-songs", "same-song"}, default="other-songs"
    n_support : int, default=1
        Support songs per listener (``"other-songs"``).
    support_frames : int, default=60
        Frames of each song adapted on (``"same-song"``; 60 frames = 30 s).
    lengths : array-like of int, optional
        Label frames of every row; needed by ``"same-song"``.
    scored : array-like of bool of shape (n_rows,), optional
        Rows that may be scored (default: all). Support songs are drawn from
        all of a listener's rows, but only ``scored`` rows are predicted and
        scored: with a song-disjoint split, mark the rows of songs that were
        not in the training data. When a listener has no more than
        ``n_support`` scored rows, the support is drawn from the other rows,
        so that something is left to score.
    random_state : int, RandomState, Generator or None, default=0
        Which songs are drawn as support (``"other-songs"``). An int seeds a
        :class:`numpy.random.RandomState` (:func:`sklearn.utils.check_random_state`),
        so every caller given the same seed draws the same songs.

    Returns
    -------
    list of Episode
        Sorted by listener. Listeners without ``n_support`` rows to adapt on
        and one scored row besides (or songs of fewer than
        ``support_frames + 2`` frames) get no episode.

    Examples
    --------
    >>> from pdmer.evaluation import plan_episodes
    >>> episodes = plan_episodes(["a", "a", "a", "b", "b"], random_state=0)
    >>> [(e.listener, len(e.support), len(e.query)) for e in episodes]
    [('a', 1, 2), ('b', 1, 1)]
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
    for name, value in (("n_support", n_support), ("support_frames", support_frames)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    annotators = np.asarray(annotators).astype(str)
    if annotators.ndim != 1:
        raise ValueError(f"annotators must be 1-D; got shape {annotators.shape}.")
    scored = (np.ones(len(annotators), dtype=bool) if scored is None
              else np.asarray(scored, dtype=bool))
    if scored.shape != annotators.shape:
        raise ValueError(f"scored must have one entry per row ({len(annotators)}); got shape "
                         f"{scored.shape}.")
    if protocol == "same-song":
        if lengths is None or len(lengths) != len(annotators):
            raise ValueError("The same-song protocol needs lengths: the label frames of every row.")
        lengths = np.asarray(lengths)
    rng = (random_state if isinstance(random_state, np.random.Generator)
           else check_random_state(random_state))
    episodes = []
    for listener in np.unique(annotators):
        rows = np.flatnonzero(annotators == listener)
        if protocol == "other-songs":
            candidates = rows if scored[rows].sum() > n_support else rows[~scored[rows]]
            if len(candidates) < n_support:
                continue
            support = np.sort(rng.choice(candidates, size=n_support, replace=False))
            query = np.setdiff1d(rows[scored[rows]], support)
            if not len(query):
                continue
            episodes.append(Episode(str(listener), tuple(int(r) for r in support), None,
                                    tuple(int(r) for r in query), 0))
        else:
            for r in rows[scored[rows]]:
                if lengths[r] < support_frames + 2:
                    continue
                episodes.append(Episode(str(listener), (int(r),), int(support_frames),
                                        (int(r),), int(support_frames)))
    return episodes


def listener_episodes(annotators, listeners, draws=2, random_state=0) -> list[Episode]:
    """Episodes of some listeners only, ``draws`` per listener, each with another support song.

    Where settings are chosen on held-out training listeners (more draws
    make the choice less dependent on which song each listener gave).

    Parameters
    ----------
    annotators : array-like of shape (n_rows,)
        Listener id of every row.
    listeners : iterable of str
        The listeners to plan for.
    draws : int, default=2
        Episodes per listener; draw ``d`` uses ``random_state + d``.
    random_state : int, default=0

    Returns
    -------
    list of Episode
        Rows index ``annotators``; empty when no listener is given.
    """
    annotators = np.asarray(annotators).astype(str)
    rows = np.flatnonzero(np.isin(annotators, sorted(set(map(str, listeners)))))
    episodes = []
    if not len(rows):
        return episodes
    for draw in range(draws):
        for episode in plan_episodes(annotators[rows], random_state=random_state + draw):
            episodes.append(replace(episode, support=tuple(int(rows[i]) for i in episode.support),
                                    query=tuple(int(rows[i]) for i in episode.query)))
    return episodes


def run_episodes(estimator, X, y, episodes, *, adapt=True, steps=None, lr=None):
    """Adapt per episode, predict its query rows and return what to score.

    A pdmer estimator is never changed: adaptations come from
    ``estimator.adapt_listener`` and predictions from
    ``estimator.predict(X, listener=...)``; training validation runs the
    same loop on song tensors through
    :class:`~pdmer.meta.learner.TensorEpisodes`. Other estimators are run through
    ``personalize(X, y)``, ``predict(X)`` and, once at the end (also on
    errors), ``reset_personalization()``; with ``adapt=False`` only
    ``predict(X)`` is needed.

    Parameters
    ----------
    estimator : fitted estimator
    X : sequence of songs
    y : sequence of ndarray of shape (n_frames_i, 2)
    episodes : list of Episode
        From :func:`plan_episodes`; an episode without support rows scores
        the model as it is.
    adapt : bool, default=True
        False scores the model without adaptation (the meta-parameters of a
        pdmer estimator) on the same query frames: the "not personalized"
        row of a table.
    steps, lr : int and float, optional
        Adaptation steps and step size (default: the estimator's
        ``inner_steps`` and ``inner_lr``); pdmer estimators only.

    Returns
    -------
    truth, predictions : list of ndarray
        Labels and predictions of every scored (query row, listener) pair,
        from each episode's ``query_start`` on, episode after episode.
    listeners : list of str
        The listener of each scored pair.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.evaluation import plan_episodes, run_episodes
    >>> class Mean:  # predicts the support song's mean label
    ...     level = 0.0
    ...     def personalize(self, X, y):
    ...         self.level = float(np.mean(y[0]))
    ...     def predict(self, X):
    ...         return [np.full((len(x), 2), self.level) for x in X]
    ...     def reset_personalization(self):
    ...         self.level = 0.0
    >>> X = [np.zeros((4, 1))] * 3
    >>> y = [np.full((4, 2), 0.5)] * 3
    >>> truth, predictions, listeners = run_episodes(
    ...     Mean(), X, y, plan_episodes(["a"] * 3))
    >>> float(predictions[0][0, 0]), listeners
    (0.5, ['a', 'a'])
    """
    native = callable(getattr(estimator, "adapt_listener", None))
    if not native:
        for method in ("personalize", "predict", "reset_personalization") if adapt else (
                "predict",):
            if not callable(getattr(estimator, method, None)):
                raise TypeError(
                    f"{type(estimator).__name__} has no {method}() method; personalized "
                    "scoring needs adapt_listener(X, y) and predict(X, listener=...), or "
                    "personalize(X, y), predict(X) and reset_personalization().")
    elif not adapt:
        estimator = _without_listener(estimator)
    truth, predictions, listeners = [], [], []
    try:
        for episode in episodes:
            query = [X[r] for r in episode.query]
            if not adapt:
                predicted = estimator.predict(query)
            elif not episode.support:
                if not native:
                    estimator.reset_personalization()
                predicted = _without_listener(estimator).predict(query)
            else:
                songs = [X[r] for r in episode.support]
                labels = [y[r] for r in episode.support]
                if episode.support_frames is not None:
                    songs = [s.crop(0, episode.support_frames) for s in songs]
                    labels = [v[: episode.support_frames] for v in labels]
                if native:
                    listener = estimator.adapt_listener(songs, labels, steps=steps, lr=lr)
                    predicted = estimator.predict(query, listener=listener)
                else:
                    estimator.personalize(songs, labels)
                    predicted = estimator.predict(query)
            for r, p in zip(episode.query, predicted):
                n = len(y[r])
                truth.append(np.asarray(y[r])[episode.query_start:])
                predictions.append(np.asarray(p)[episode.query_start:n])
                listeners.append(episode.listener)
    finally:
        if adapt and not native:
            estimator.reset_personalization()
    return truth, predictions, listeners


def _without_listener(estimator):
    """The estimator predicting with its meta-parameters, sharing its network.

    ``predict`` uses the current ``listener_`` when no listener is passed;
    a shallow copy without it scores the meta-parameters and leaves the
    caller's estimator as it is.
    """
    if getattr(estimator, "listener_", None) is None:
        return estimator
    view = copy.copy(estimator)
    view.listener_ = None
    return view


def scored_rows(episodes) -> list[int]:
    """The query row of every scored pair, in :func:`run_episodes`' order."""
    return [r for episode in episodes for r in episode.query]
