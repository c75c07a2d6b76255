"""The personalized evaluation protocol: the one place that picks support songs.

A held-out listener gives a few annotated songs (the *support*); the model
adapts to them and is scored on what that listener annotated otherwise (the
*query*). Every caller in pdmer (the benchmark, the demo, ``pdmer evaluate``,
personalized cross-validation and validation during training) plans its
episodes with :func:`plan_episodes` and runs them with :func:`run_episodes`.

Two protocols are offered:

``"other-songs"`` (the paper's text)
    ``n_support`` whole songs of the listener are drawn at random; the model
    is scored on the listener's other songs.
``"same-song"`` (the reference implementation's validation)
    The first ``support_frames`` frames of each of the listener's songs are
    the support; the rest of the same song is scored.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

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
                  lengths=None, random_state=0) -> list[Episode]:
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
    random_state : int, RandomState or Generator, default=0
        Which songs are drawn as support (``"other-songs"``).

    Returns
    -------
    list of Episode
        Listeners with fewer than ``n_support + 1`` songs (or songs of fewer
        than ``support_frames + 2`` frames) get no episode.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
    for name, value in (("n_support", n_support), ("support_frames", support_frames)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    annotators = np.asarray(annotators).astype(str)
    if annotators.ndim != 1:
        raise ValueError(f"annotators must be 1-D; got shape {annotators.shape}.")
    if protocol == "same-song":
        if lengths is None or len(lengths) != len(annotators):
            raise ValueError("The same-song protocol needs lengths: the label frames of every row.")
        lengths = np.asarray(lengths)
    rng = np.random.default_rng(random_state) if not isinstance(
        random_state, np.random.RandomState) else random_state
    episodes = []
    for listener in np.unique(annotators):
        rows = np.flatnonzero(annotators == listener)
        if protocol == "other-songs":
            if len(rows) < n_support + 1:
                continue
            support = np.sort(rng.choice(rows, size=n_support, replace=False))
            query = np.setdiff1d(rows, support)
            episodes.append(Episode(str(listener), tuple(int(r) for r in support), None,
                                    tuple(int(r) for r in query), 0))
        else:
            for r in rows:
                if lengths[r] < support_frames + 2:
                    continue
                episodes.append(Episode(str(listener), (int(r),), int(support_frames),
                                        (int(r),), int(support_frames)))
    return episodes


def run_episodes(estimator, X, y, episodes, *, adapt=True):
    """Adapt per episode, predict its query rows and return what to score.

    The estimator is never changed: adaptations come from
    ``estimator.adapt_listener`` and predictions from
    ``estimator.predict(X, listener=...)``.

    Parameters
    ----------
    estimator : fitted pdmer estimator
    X : sequence of songs
    y : sequence of ndarray of shape (n_frames_i, 2)
    episodes : list of Episode
        From :func:`plan_episodes`.
    adapt : bool, default=True
        False scores the model as it is, on the same query frames (the
        "not personalized" row of a table).

    Returns
    -------
    truth, predictions : list of ndarray
        Labels and predictions of every scored (query row, listener) pair,
        from each episode's ``query_start`` on.
    listeners : list of str
        The listener of each scored pair.
    """
    truth, predictions, listeners = [], [], []
    for episode in episodes:
        listener = None
        if adapt:
            songs = [X[r] for r in episode.support]
            labels = [y[r] for r in episode.support]
            if episode.support_frames is not None:
                songs = [s.crop(0, episode.support_frames) for s in songs]
                labels = [v[: episode.support_frames] for v in labels]
            listener = estimator.adapt_listener(songs, labels)
        predicted = estimator.predict([X[r] for r in episode.query], listener=listener)
        for r, p in zip(episode.query, predicted):
            n = len(y[r])
            truth.append(np.asarray(y[r])[episode.query_start:])
            predictions.append(np.asarray(p)[episode.query_start:n])
            listeners.append(episode.listener)
    return truth, predictions, listeners
