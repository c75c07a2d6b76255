"""pdmer.scoring on scikit-learn's scorer machinery: make_scorer, the
multi-metric predict cache, check_scoring, and the per-song building blocks.

The metric values, NaN and constant-curve rules are tested in test_metrics.py.
"""

import doctest
import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import check_scoring, make_scorer
from sklearn.model_selection import GroupKFold, cross_validate

import pdmer.scoring
from pdmer.scoring import (
    METRICS,
    SCORERS,
    ccc,
    check_scorer_names,
    get_scorer,
    get_scorer_names,
    make_multimetric_scorer,
    make_scorers,
    pcc,
    per_song_scores,
    rmse,
    scores_from_per_song,
)


class CountingRegressor(RegressorMixin, BaseEstimator):
    """Prediction = scale * features + mean training offset; counts predict calls."""

    n_predict = 0

    def __init__(self, scale=0.8):
        self.scale = scale

    def fit(self, X, y):
        self.offset_ = np.mean([np.mean(yi - xi, axis=0) for xi, yi in zip(X, y)], axis=0)
        return self

    def predict(self, X):
        type(self).n_predict += 1
        return [self.scale * x + self.offset_ for x in X]


@pytest.fixture
def songs():
    rng = np.random.default_rng(0)
    X = [np.cumsum(rng.normal(scale=0.1, size=(int(n), 2)), axis=0)
         for n in rng.integers(10, 30, size=12)]
    y = [x + rng.normal(scale=0.05, size=x.shape) + 0.3 for x in X]
    groups = np.repeat(np.arange(4), 3)
    return X, y, groups


def test_scorers_are_make_scorer_scorers(songs):
    X, y, _ = songs
    est = CountingRegressor().fit(X, y)
    for name in get_scorer_names():
        scorer = SCORERS[name]
        assert isinstance(scorer, type(make_scorer(ccc)))
    # A pdmer scorer is what make_scorer builds from the metric function.
    assert SCORERS["pcc_valence"](est, X, y) == make_scorer(pcc, dimension="valence")(est, X, y)
    assert SCORERS["ccc"](est, X, y) == make_scorer(ccc)(est, X, y)
    neg_rmse = make_scorer(rmse, greater_is_better=False, dimension="arousal")
    assert SCORERS["neg_rmse_arousal"](est, X, y) == neg_rmse(est, X, y) < 0


def test_dict_of_scorers_predicts_once_per_fold(songs):
    X, y, groups = songs
    CountingRegressor.n_predict = 0
    res = cross_validate(CountingRegressor(), X, y, groups=groups, cv=GroupKFold(2),
                         scoring=make_scorers(["ccc", "pcc_arousal", "neg_rmse"]),
                         error_score="raise")
    # sklearn's multi-metric scorer caches predict across the three scorers.
    assert CountingRegressor.n_predict == 2
    est = CountingRegressor().fit(X, y)
    expected = {n: SCORERS[n](est, X, y) for n in ("ccc", "pcc_arousal", "neg_rmse")}
    CountingRegressor.n_predict = 0
    assert make_multimetric_scorer(list(expected))(est, X, y) == expected
    assert CountingRegressor.n_predict == 1
    assert set(res) >= {"test_ccc", "test_pcc_arousal", "test_neg_rmse"}


def test_sklearn_check_scoring_accepts_pdmer_scorers(songs):
    X, y, _ = songs
    est = CountingRegressor().fit(X, y)
    assert check_scoring(est, scoring=get_scorer("ccc")) is SCORERS["ccc"]
    multi = check_scoring(est, scoring=make_scorers(["ccc", "neg_rmse"]))
    y_pred = est.predict(X)
    assert multi(est, X, y) == {"ccc": ccc(y, y_pred), "neg_rmse": -rmse(y, y_pred)}


def test_sample_weight_is_refused(songs):
    X, y, _ = songs
    est = CountingRegressor().fit(X, y)
    scorer = get_scorer("ccc")
    # scikit-learn asks before routing sample_weight to a scorer.
    assert not scorer._accept_sample_weight()
    assert not make_multimetric_scorer(["ccc", "pcc"])._accept_sample_weight()
    with pytest.raises(ValueError, match="does not support sample_weight"):
        scorer(est, X, y, sample_weight=np.ones(len(X)))
    assert scorer(est, X, y, sample_weight=None) == scorer(est, X, y)


def test_scorers_pickle_by_name(songs):
    X, y, _ = songs
    est = CountingRegressor().fit(X, y)
    for name, scorer in SCORERS.items():
        payload = pickle.dumps(scorer)
        assert b"SequenceScorer" in payload and name.encode() in payload
        again = pickle.loads(payload)
        assert again.name == name and repr(again) == f"get_scorer({name!r})"
        assert again(est, X, y) == scorer(est, X, y)


def test_per_song_scores_and_scores_from_per_song(songs):
    X, y, groups = songs
    est = CountingRegressor().fit(X, y)
    y_pred = est.predict(X)
    per_song = per_song_scores(y, y_pred)
    assert tuple(per_song) == METRICS
    for metric, func in zip(METRICS, (ccc, pcc, rmse)):
        np.testing.assert_array_equal(
            per_song[metric], func(y, y_pred, per_song=True, multioutput="raw_values"))
    names = get_scorer_names()
    pooled = scores_from_per_song(per_song, names)
    for name in names:
        assert pooled[name] == pytest.approx(SCORERS[name](est, X, y), abs=1e-15)
    # Per group first: the mean of the groups' means.
    by_group = scores_from_per_song(per_song, "ccc_valence", groups=groups)
    means = [per_song["ccc"][groups == g, 1].mean() for g in np.unique(groups)]
    assert by_group == {"ccc_valence": pytest.approx(np.mean(means))}
    uneven = np.array([0] * 9 + [1] * 3)
    means = [per_song["rmse"][uneven == g].mean() for g in (0, 1)]
    assert scores_from_per_song(per_song, "neg_rmse", uneven)["neg_rmse"] == pytest.approx(
        -np.mean(means))
    assert scores_from_per_song(per_song, "neg_rmse", uneven)["neg_rmse"] != pytest.approx(
        pooled["neg_rmse"])
    with pytest.raises(ValueError, match=r"groups must hold one label per song \(12\)"):
        scores_from_per_song(per_song, "ccc", groups=groups[:-1])


def test_name_validation_names_the_parameter():
    assert check_scorer_names("ccc") == ["ccc"]
    assert check_scorer_names(("pcc", "ccc")) == ["pcc", "ccc"]
    with pytest.raises(ValueError, match="scoring='rmse' is not a pdmer scorer.*'neg_rmse'"):
        check_scorer_names(["ccc", "rmse"], param="scoring")
    with pytest.raises(ValueError, match="metric must name at least one scorer"):
        check_scorer_names([], param="metric")
    with pytest.raises(TypeError, match="names must be a scorer name or a list"):
        check_scorer_names(3)
    with pytest.raises(TypeError, match=r"names must be a scorer name \(str\); got 3"):
        make_scorers([3])
    with pytest.raises(TypeError, match="'name' parameter of get_scorer must be"):
        get_scorer(3)


def test_public_api_is_documented():
    for name in pdmer.scoring.__all__:
        obj = getattr(pdmer.scoring, name)
        if callable(obj):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


@pytest.mark.parametrize("module", ["pdmer.scoring._metrics", "pdmer.scoring._scorers"])
def test_docstring_examples_run(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
