"""Personalized scoring inside scikit-learn: a routed scorer and cross-validation.

Both score with the protocol of :func:`~pdmer.evaluation.personalized_score`.
"""

from __future__ import annotations

import numbers
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import MetadataRequest

from pdmer.evaluation.personalized import (
    _check_average,
    _check_metric,
    _check_personalized_inputs,
    _check_support,
    _personalized,
    _score_listeners,
)
from pdmer.scoring import get_scorer_names
from pdmer.sklearn_compat import safe_indexing

__all__ = ["PersonalizedScorer", "cross_validate_personalized", "personalized_scorer"]


class PersonalizedScorer:
    """Scorer ``scorer(estimator, X, y, annotators=None)`` for personalized CV.

    Build it with :func:`personalized_scorer`. scikit-learn gives scorers only
    ``(estimator, X, y)``; the listener ids reach this scorer through
    metadata routing. The scorer requests ``annotators`` for ``score`` by
    default (change the name it is read from with :meth:`set_score_request`).

    Parameters
    ----------
    metric : str or list of str, default="ccc"
        Scorer name(s); a list makes the scorer return a dict.
    support : int, default=1
        Songs each listener gives for adaptation.
    random_state : int, RandomState instance or None, default=0
        Draws the support songs.
    average : {"songs", "listeners"}, default="songs"
        Average over (song, listener) pairs or first per listener.

    Examples
    --------
    >>> from pdmer.evaluation import personalized_scorer
    >>> scorer = personalized_scorer("ccc").set_score_request(annotators="groups")
    >>> scorer.get_metadata_routing().score.requests
    {'annotators': 'groups'}
    """

    def __init__(self, metric="ccc", *, support=1, random_state=0, average="songs"):
        _check_metric(metric, "metric")
        self.metric = metric
        self.support = _check_support(support)
        self.random_state = random_state
        self.average = _check_average(average)
        self._annotators_request = True

    def __call__(self, estimator, X, y, annotators=None):
        """Personalize ``estimator`` per listener of ``annotators`` and score."""
        return _personalized(estimator, X, y, annotators, self.metric, self.support,
                             self.random_state, self.average)

    def set_score_request(self, *, annotators=True):
        """Choose how ``annotators`` is requested from metadata routing.

        Parameters
        ----------
        annotators : bool, None or str, default=True
            ``True``: requested under its own name. A string: read from
            metadata of that name (an alias, e.g. ``"groups"`` to reuse the
            splitter's groups). ``False``/``None`` as in scikit-learn.

        Returns
        -------
        self : PersonalizedScorer
        """
        self._annotators_request = annotators
        self.get_metadata_routing()  # validate the alias now
        return self

    def get_metadata_routing(self):
        """The scorer's metadata request: ``annotators`` for ``score``.

        Returns
        -------
        request : sklearn.utils.metadata_routing.MetadataRequest
        """
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="annotators", alias=self._annotators_request)
        return request

    def _accept_sample_weight(self):
        return False

    def __repr__(self):
        return (f"personalized_scorer({self.metric!r}, support={self.support}, "
                f"random_state={self.random_state!r}, average={self.average!r})")


def personalized_scorer(metric="ccc", *, support=1, random_state=0, average="songs"):
    """A scikit-learn scorer that adapts to each held-out listener first.

    The returned callable is ``scorer(estimator, X, y, annotators=None)`` and
    scores with the protocol of :func:`personalized_score`. scikit-learn
    passes scorers only ``(estimator, X, y)``, so the listener ids must be
    routed to the scorer with metadata routing (scikit-learn >= 1.4). Enable
    it, let the estimator request ``annotators`` for ``fit`` and pass
    ``annotators`` (and the splitter's ``groups``) as metadata::

        import sklearn
        from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

        with sklearn.config_context(enable_metadata_routing=True):
            est = estimator.set_fit_request(annotators=True)
            search = GridSearchCV(est, grid, cv=GroupKFold(5),
                                  scoring=personalized_scorer("ccc"))
            search.fit(X, y, groups=annotators, annotators=annotators)
            cross_validate(est, X, y, cv=GroupKFold(5),
                           scoring=personalized_scorer(["ccc", "neg_rmse"]),
                           params={"groups": annotators, "annotators": annotators})

    Splitting by listener (``GroupKFold`` with ``groups=annotators``) scores
    listeners the model was not trained on. Without routing, use
    :func:`cross_validate_personalized` or :func:`personalized_score`.

    Parameters
    ----------
    metric : str or list of str, default="ccc"
        Scorer name(s) from :func:`pdmer.scoring.get_scorer_names`. A list
        makes the scorer return a dict (set ``refit`` to one of the names in a
        search).
    support : int, default=1
        Songs each listener gives for adaptation.
    random_state : int, RandomState instance or None, default=0
        Draws the support songs; an int gives the same draw on every call.
    average : {"songs", "listeners"}, default="songs"
        Average over (song, listener) pairs or first per listener.

    Returns
    -------
    scorer : PersonalizedScorer

    Examples
    --------
    >>> from pdmer.evaluation import personalized_scorer
    >>> scorer = personalized_scorer(["ccc", "neg_rmse"])
    >>> scorer.get_metadata_routing().score.requests
    {'annotators': True}
    """
    return PersonalizedScorer(metric, support=support, random_state=random_state, average=average)


def cross_validate_personalized(estimator, X, y, annotators, *, cv=5, scoring=None, support=1,
                                random_state=0, average="songs", fit_params=None,
                                return_estimator=False):
    """Cross-validate with personalization to each held-out listener.

    For every fold a clone of ``estimator`` is fitted on the training rows
    with ``fit(X_train, y_train, annotators=annotators_train, **fit_params)``
    and scored on the test rows with the protocol of
    :func:`personalized_score`. This needs no metadata routing. The default
    ``cv`` splits by listener, so every fold scores listeners the model never
    saw: the PDMER setting.

    Parameters
    ----------
    estimator : estimator
        Unfitted; cloned per fold. Must provide ``fit(X, y, annotators=...)``
        and what :func:`personalized_score` needs.
    X : sequence of length n_pairs
        Model input, one entry per (song, listener) pair.
    y : list of arrays of shape (n_frames, 2), length n_pairs
        The listener's labels for the song (``NaN`` frames ignored).
    annotators : array-like of shape (n_pairs,)
        Listener id of each entry; the groups of the split.
    cv : int, splitter or iterable, default=5
        An int is the number of :class:`~sklearn.model_selection.GroupKFold`
        folds. A splitter is called as ``cv.split(X, y, groups=annotators)``.
        An iterable yields ``(train, test)`` index arrays.
    scoring : str, list of str or None, default=None
        Scorer names from :func:`pdmer.scoring.get_scorer_names`; ``None``
        means all nine.
    support : int, default=1
        Songs each held-out listener gives for adaptation.
    random_state : int, RandomState instance or None, default=0
        Draws the support songs. An int re-seeds every fold, so the results
        equal those of :func:`~sklearn.model_selection.cross_validate` with
        :func:`personalized_scorer` and metadata routing on the same splits.
    average : {"songs", "listeners"}, default="songs"
        Average over (song, listener) pairs or first per listener.
    fit_params : dict, default=None
        Extra keyword arguments for ``fit``, passed unchanged (not split).
    return_estimator : bool, default=False
        Also return the fitted estimator of every fold.

    Returns
    -------
    results : dict of str to ndarray of shape (n_folds,)
        ``"test_<name>"`` for every scorer name, ``"fit_time"``,
        ``"score_time"`` (adapting, predicting and scoring, in seconds),
        ``"n_listeners"`` (listeners scored) and ``"n_skipped"`` (held-out
        listeners with fewer than ``support + 1`` songs); with
        ``return_estimator``, ``"estimator"`` as a list. A fold where no
        listener could be scored gets ``NaN`` scores and a warning.

    See Also
    --------
    personalized_score, personalized_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator, RegressorMixin
    >>> from pdmer.evaluation import cross_validate_personalized
    >>> class Offset(RegressorMixin, BaseEstimator):
    ...     def fit(self, X, y, annotators=None):
    ...         self.base_ = np.mean([yi - xi for xi, yi in zip(X, y)])
    ...         self.offset_ = self.base_
    ...         return self
    ...     def personalize(self, X, y):
    ...         self.offset_ = np.mean([yi - xi for xi, yi in zip(X, y)])
    ...         return self
    ...     def reset_personalization(self):
    ...         self.offset_ = self.base_
    ...         return self
    ...     def predict(self, X):
    ...         return [x + self.offset_ for x in X]
    >>> rng = np.random.default_rng(0)
    >>> annotators = np.repeat(np.arange(6), 3)
    >>> X = [rng.normal(size=(20, 2)) for _ in annotators]
    >>> y = [x + 0.2 * a for x, a in zip(X, annotators)]
    >>> res = cross_validate_personalized(Offset(), X, y, annotators, cv=3,
    ...                                   scoring=["ccc", "neg_rmse"])
    >>> res["test_ccc"]
    array([1., 1., 1.])
    >>> res["n_listeners"]
    array([2, 2, 2])
    """
    annotators = _check_personalized_inputs(X, y, annotators, support)
    names = get_scorer_names() if scoring is None else _check_metric(scoring, "scoring")
    _check_average(average)
    fit_params = {} if fit_params is None else dict(fit_params)
    splits = _iter_splits(cv, X, y, annotators)
    if not splits:
        raise ValueError("cv produced no (train, test) split.")

    results = {f"test_{n}": [] for n in names}
    results.update(fit_time=[], score_time=[], n_listeners=[], n_skipped=[])
    estimators, empty_folds = [], []
    for fold, (train, test) in enumerate(splits):
        train, test = np.asarray(train), np.asarray(test)
        est = clone(estimator)
        t0 = time.perf_counter()
        est.fit(safe_indexing(X, train), safe_indexing(y, train),
                annotators=annotators[train], **fit_params)
        t1 = time.perf_counter()
        # Re-seeded per fold (for an int), exactly as personalized_scorer is on
        # each call, so both paths draw the same support songs.
        scores, n_scored, n_skipped = _score_listeners(
            est, safe_indexing(X, test), safe_indexing(y, test), annotators[test], names,
            support, check_random_state(random_state), average)
        if scores is None:
            empty_folds.append(fold)
            scores = {n: np.nan for n in names}
        t2 = time.perf_counter()
        for n in names:
            results[f"test_{n}"].append(scores[n])
        results["fit_time"].append(t1 - t0)
        results["score_time"].append(t2 - t1)
        results["n_listeners"].append(n_scored)
        results["n_skipped"].append(n_skipped)
        if return_estimator:
            estimators.append(est)
    if empty_folds:
        warnings.warn(
            f"No held-out listener had support + 1 = {support + 1} songs in "
            f"fold(s) {empty_folds}; their scores are NaN.", UserWarning, stacklevel=2)
    out = {k: np.asarray(v) for k, v in results.items()}
    if return_estimator:
        out["estimator"] = estimators
    return out


def _iter_splits(cv, X, y, annotators):
    if cv is None:
        cv = 5
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        cv = GroupKFold(n_splits=int(cv))
    if hasattr(cv, "split"):
        return list(cv.split(X, y, groups=annotators))
    try:
        return list(cv)
    except TypeError:
        raise ValueError(
            f"cv must be an int, a splitter with split(X, y, groups) or an "
            f"iterable of (train, test) index arrays; got {cv!r}.") from None
