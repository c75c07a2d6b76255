"""scikit-learn scorers for pdmer's per-song metrics, built on ``make_scorer``."""

from __future__ import annotations

import difflib
from types import MappingProxyType

import numpy as np
from sklearn.metrics import check_scoring

from pdmer.labels import DIMENSIONS
from pdmer.scoring._metrics import METRICS, _reduce, ccc, pcc, rmse
from pdmer.sklearn_compat import Scorer, validate_params


def _scorer_specs():
    """Scorer name -> (metric, dimension or None, sign)."""
    specs = {}
    for m in METRICS:
        prefix, sign = ("neg_rmse", -1) if m == "rmse" else (m, 1)
        specs[prefix] = (m, None, sign)
        for dim in DIMENSIONS:
            specs[f"{prefix}_{dim}"] = (m, dim, sign)
    return specs


_SPECS = _scorer_specs()
_METRIC_FUNCTIONS = {"ccc": ccc, "pcc": pcc, "rmse": rmse}


def _lookup(name, param):
    """Validate a scorer name; return its (metric, dimension, sign) spec."""
    if not isinstance(name, str):
        raise TypeError(f"{param} must be a scorer name (str); got {name!r}.")
    if name in _SPECS:
        return _SPECS[name]
    if name.startswith("rmse"):
        hint = (
            f" Scorers follow scikit-learn's greater-is-better convention: use "
            f"'neg_{name}' (the negated RMSE); pdmer.scoring.rmse gives the "
            f"plain value."
        )
    else:
        close = difflib.get_close_matches(name, _SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{param}={name!r} is not a pdmer scorer.{hint} Valid names: "
        f"{', '.join(sorted(_SPECS))}."
    )


def check_scorer_names(names, param="names"):
    """Validate scorer names; return them as a list.

    Parameters
    ----------
    names : str or iterable of str
        Names from :func:`get_scorer_names`.
    param : str, default="names"
        The caller's parameter name, used in error messages.

    Returns
    -------
    names : list of str
        ``[names]`` for a single name, else the names in order.

    Raises
    ------
    ValueError
        If a name is unknown (the message suggests the closest name, and
        ``"neg_rmse*"`` for ``"rmse*"``), listed twice, or none is given.
    TypeError
        If ``names`` is neither a string nor an iterable of strings.

    Examples
    --------
    >>> from pdmer.scoring import check_scorer_names
    >>> check_scorer_names("ccc")
    ['ccc']
    >>> check_scorer_names(["ccc", "rmse"], param="scoring")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: scoring='rmse' is not a pdmer scorer. Scorers follow ...
    """
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
    for name in names:
        _lookup(name, param)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{param} lists {repeated} more than once.")
    return names


def _group_means(scores, groups):
    """Average the rows of an (n_songs, k) array within each group."""
    groups = np.asarray(groups)
    if groups.shape != (scores.shape[0],):
        raise ValueError(
            f"groups must hold one label per song ({scores.shape[0]}); got shape "
            f"{groups.shape}."
        )
    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((inverse.max() + 1, scores.shape[1]))
    np.add.at(sums, inverse, scores)
    return sums / np.bincount(inverse)[:, None]


def scores_from_per_song(per_song, names, groups=None):
    """Scorer values from per-song scores, optionally averaged per group first.

    Parameters
    ----------
    per_song : dict of str to ndarray of shape (n_songs, 2)
        The output of :func:`per_song_scores` (possibly several outputs
        concatenated song-wise).
    names : str or list of str
        Scorer names from :func:`get_scorer_names`.
    groups : array-like of shape (n_songs,), default=None
        A label per song (e.g. its listener). Given, the songs of each group
        are averaged first, so that every group weighs the same; otherwise
        every song does.

    Returns
    -------
    scores : dict of str to float
        One value per name, greater is better (RMSE negated), equal to what
        the scorer of that name returns for the same songs.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.scoring import per_song_scores, scores_from_per_song
    >>> y = np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])
    >>> per_song = per_song_scores([y, y, y], [y, y, y[::-1]])
    >>> scores_from_per_song(per_song, ["ccc_arousal", "neg_rmse"])  # doctest: +ELLIPSIS
    {'ccc_arousal': 0.333..., 'neg_rmse': -0.068...}
    >>> scores_from_per_song(per_song, "ccc_arousal", groups=["a", "a", "b"])
    {'ccc_arousal': 0.0}
    """
    names = check_scorer_names(names)
    out = {}
    for name in names:
        metric, dimension, sign = _SPECS[name]
        scores = per_song[metric]
        if groups is not None:
            scores = _group_means(scores, groups)
        out[name] = sign * _reduce(scores, dimension)
    return out


# make_scorer returns a Scorer; subclassing it keeps scikit-learn's predict
# cache (its multimetric scorer calls Scorer._score) and adds a name for
# repr and pickle.
class SequenceScorer(Scorer):
    """The scikit-learn scorer of one pdmer metric, by name.

    ``scorer(estimator, X, y)`` predicts ``X`` with the fitted scikit-learn
    ``estimator`` (whose ``predict`` returns one ``(n_frames, 2)`` array per
    song) and scores the prediction against the labels ``y`` song by song.
    Greater is better; RMSE scorers return the negated RMSE. It is the scorer
    :func:`sklearn.metrics.make_scorer` builds, e.g.
    ``make_scorer(pcc, dimension="valence")`` for ``"pcc_valence"``, plus a
    name: so in a dict of scorers passed to
    :func:`~sklearn.model_selection.cross_validate` or
    :class:`~sklearn.model_selection.GridSearchCV`, ``predict`` runs once per
    fold for all of them. Get instances with :func:`get_scorer` rather than
    building them.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`.

    Attributes
    ----------
    name : str
        The scorer's name.

    Examples
    --------
    >>> from pdmer.scoring import get_scorer
    >>> get_scorer("neg_rmse_valence")
    get_scorer('neg_rmse_valence')
    """

    # Its public home: pickles and the API docs name it pdmer.scoring.SequenceScorer.
    __module__ = "pdmer.scoring"

    def __init__(self, name):
        metric, dimension, sign = _lookup(name, "name")
        super().__init__(
            score_func=_METRIC_FUNCTIONS[metric],
            sign=sign,
            kwargs={} if dimension is None else {"dimension": dimension},
            response_method="predict",
        )
        self.name = name

    def __call__(self, estimator, X, y_true, **kwargs):
        """Score ``estimator.predict(X)`` against ``y_true``; greater is better.

        Parameters
        ----------
        estimator : estimator
            Fitted; ``predict(X)`` returns one ``(n_frames, 2)`` array per song.
        X : sequence
            Model input, one entry per song.
        y_true : list of arrays of shape (n_frames, 2)
            Labels (``NaN`` frames ignored).
        **kwargs : dict
            Metadata (none is used). ``sample_weight`` is refused: every song
            weighs the same.

        Returns
        -------
        score : float
        """
        if kwargs.get("sample_weight") is not None:
            raise ValueError(
                f"{self!r} does not support sample_weight: pdmer scores average "
                f"songs with equal weights. Drop sample_weight."
            )
        return super().__call__(estimator, X, y_true, **kwargs)

    def __repr__(self):
        return f"get_scorer({self.name!r})"

    def __reduce__(self):  # pickle by name (for joblib workers)
        return (type(self), (self.name,))


# Documented in pdmer.scoring.
SCORERS = MappingProxyType({name: SequenceScorer(name) for name in _SPECS})


def get_scorer_names():
    """Names accepted by :func:`get_scorer`.

    Returns
    -------
    names : list of str
        Sorted scorer names.

    Examples
    --------
    >>> from pdmer.scoring import get_scorer_names
    >>> get_scorer_names()[:3]
    ['ccc', 'ccc_arousal', 'ccc_valence']
    """
    return sorted(_SPECS)


@validate_params({"name": [str, callable]}, prefer_skip_nested_validation=True)
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
    >>> from sklearn.base import BaseEstimator
    >>> from pdmer.scoring import get_scorer
    >>> class Echo(BaseEstimator):  # "predicts" the features themselves
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
    if callable(name):
        return name
    _lookup(name, "name")
    return SCORERS[name]


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
        scikit-learn wraps the dict in its multi-metric scorer, which calls
        ``predict`` once per fold for all the scorers, and honours
        ``error_score``.

    See Also
    --------
    make_multimetric_scorer : the same scorers as one callable.

    Examples
    --------
    >>> from pdmer.scoring import make_scorers
    >>> make_scorers(["ccc", "neg_rmse"])
    {'ccc': get_scorer('ccc'), 'neg_rmse': get_scorer('neg_rmse')}
    """
    return {n: SCORERS[n] for n in check_scorer_names(names)}


def make_multimetric_scorer(names):
    """One callable that predicts once and returns several scores.

    This is scikit-learn's multi-metric scorer
    (:func:`sklearn.metrics.check_scoring` of :func:`make_scorers`), useful
    outside model selection. scikit-learn also accepts it as ``scoring``; the
    keys become ``test_<name>`` in
    :func:`~sklearn.model_selection.cross_validate` and ``mean_test_<name>``
    in ``GridSearchCV.cv_results_`` (set ``refit`` to a name or ``False``).
    A failing scorer raises whatever ``error_score`` says; pass
    :func:`make_scorers` instead to have ``error_score`` honoured.

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
    >>> from sklearn.base import BaseEstimator
    >>> from pdmer.scoring import make_multimetric_scorer
    >>> class Echo(BaseEstimator):
    ...     def predict(self, X):
    ...         return [np.asarray(x) for x in X]
    >>> X = [np.array([[0.1, 0.0], [0.3, 0.2], [0.5, 0.1]])]
    >>> make_multimetric_scorer(["ccc", "neg_rmse"])(Echo(), X, X)
    {'ccc': 1.0, 'neg_rmse': -0.0}
    """
    return check_scoring(scoring=make_scorers(names))
