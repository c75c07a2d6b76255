"""Per-song metrics, scorers (pdmer.scoring) and personalized CV (pdmer.evaluation)."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from scipy.stats import pearsonr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

from pdmer.evaluation import (
    cross_validate_personalized,
    personalized_score,
    personalized_scorer,
)
from pdmer.scoring import (
    SCORERS,
    ccc,
    evaluate,
    get_scorer,
    get_scorer_names,
    make_multimetric_scorer,
    make_scorers,
    pcc,
    rmse,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def ccc_reference(t, p):
    """Textbook CCC with population moments."""
    t = np.asarray(t, float)
    p = np.asarray(p, float)
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


def random_songs(rng, n_songs=5, lengths=(7, 40)):
    true, pred = [], []
    for _ in range(n_songs):
        n = int(rng.integers(*lengths))
        t = rng.normal(size=(n, 2))
        true.append(t)
        pred.append(0.6 * t + rng.normal(scale=0.7, size=(n, 2)) + 0.2)
    return true, pred


class OffsetRegressor(RegressorMixin, BaseEstimator):
    """Fake PDMER estimator: prediction = scale * features + listener offset.

    ``fit`` learns the average offset of the training listeners;
    ``personalize`` learns one listener's offset from their songs (replacing
    any earlier one); ``reset_personalization`` goes back to the average.
    """

    def __init__(self, scale=1.0):
        self.scale = scale

    def _offset(self, X, y):
        return np.mean(
            [
                np.nanmean(np.asarray(yi) - self.scale * np.asarray(xi), axis=0)
                for xi, yi in zip(X, y)
            ],
            axis=0,
        )

    def fit(self, X, y, annotators=None):
        assert annotators is not None, "annotators must reach fit"
        assert len(annotators) == len(X) == len(y)
        self.base_offset_ = self._offset(X, y)
        self.offset_ = self.base_offset_
        self.fit_listeners_ = set(np.asarray(annotators).tolist())
        self.personalize_sizes_ = []
        self.n_resets_ = 0
        return self

    def personalize(self, X, y):
        self.personalize_sizes_.append(len(X))
        self.offset_ = self._offset(X, y)
        return self

    def reset_personalization(self):
        self.n_resets_ += 1
        self.offset_ = self.base_offset_
        return self

    def predict(self, X):
        return [self.scale * np.asarray(x) + self.offset_ for x in X]


def make_listener_data(seed=0, n_listeners=9, songs_per_listener=4, n_songs=12):
    """(song, listener) pairs: y = consensus curve + listener bias + noise."""
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n_songs):
        n = int(rng.integers(20, 40))
        steps = rng.normal(scale=0.1, size=(n, 2))
        curves.append(np.cumsum(steps, axis=0))
    X, y, annotators = [], [], []
    for listener in range(n_listeners):
        bias = rng.normal(scale=0.5, size=2)
        for s in rng.choice(n_songs, size=songs_per_listener, replace=False):
            X.append(curves[s])
            y.append(curves[s] + bias + rng.normal(scale=0.05, size=curves[s].shape))
            annotators.append(f"L{listener}")
    # One listener with a single song: cannot be personalized and scored.
    X.append(curves[0])
    y.append(curves[0] + 1.0)
    annotators.append("solo")
    return X, y, np.asarray(annotators)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------------------
# Metric values
# ---------------------------------------------------------------------------


def test_values_match_references():
    rng = np.random.default_rng(1)
    true, pred = random_songs(rng)
    per_ccc = ccc(true, pred, per_song=True, multioutput="raw_values")
    per_pcc = pcc(true, pred, per_song=True, multioutput="raw_values")
    per_rmse = rmse(true, pred, per_song=True, multioutput="raw_values")
    assert per_ccc.shape == per_pcc.shape == per_rmse.shape == (5, 2)
    for i, (t, p) in enumerate(zip(true, pred)):
        for d in range(2):
            assert per_ccc[i, d] == pytest.approx(ccc_reference(t[:, d], p[:, d]), abs=1e-12)
            assert per_pcc[i, d] == pytest.approx(pearsonr(t[:, d], p[:, d])[0], abs=1e-12)
            assert per_rmse[i, d] == pytest.approx(
                np.sqrt(np.mean((t[:, d] - p[:, d]) ** 2)), abs=1e-12
            )
    # Averages are over songs, then dimensions.
    assert ccc(true, pred) == pytest.approx(per_ccc.mean())
    assert ccc(true, pred, dimension="valence") == pytest.approx(per_ccc[:, 1].mean())
    assert pcc(true, pred, dimension=0) == pytest.approx(per_pcc[:, 0].mean())
    np.testing.assert_allclose(rmse(true, pred, multioutput="raw_values"), per_rmse.mean(axis=0))
    assert isinstance(ccc(true, pred), float)


def test_ccc_is_at_most_pcc_and_penalises_bias():
    rng = np.random.default_rng(2)
    true, pred = random_songs(rng)
    assert np.all(
        np.abs(ccc(true, pred, per_song=True, multioutput="raw_values"))
        <= np.abs(pcc(true, pred, per_song=True, multioutput="raw_values")) + 1e-12
    )
    shifted = [t + 0.5 for t in true]
    assert pcc(true, shifted) == pytest.approx(1.0)
    assert ccc(true, shifted) < 0.95


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, ()),
        ({"multioutput": "raw_values"}, (2,)),
        ({"dimension": "arousal"}, ()),
        ({"dimension": 1, "multioutput": "raw_values"}, ()),
        ({"per_song": True}, (3,)),
        ({"per_song": True, "multioutput": "raw_values"}, (3, 2)),
        ({"per_song": True, "dimension": "valence"}, (3,)),
    ],
)
def test_output_shapes(kwargs, shape):
    rng = np.random.default_rng(3)
    true, pred = random_songs(rng, n_songs=3)
    for fn in (ccc, pcc, rmse):
        assert np.shape(fn(true, pred, **kwargs)) == shape


def test_single_song_and_input_forms():
    rng = np.random.default_rng(4)
    t = rng.normal(size=(10, 2))
    p = t + rng.normal(size=(10, 2))
    expected = ccc([t], [p])
    assert ccc(t, p) == expected  # a 2-D array is one song
    assert ccc(t.tolist(), p.tolist()) == expected  # nested lists
    assert ccc(t[None], p[None]) == expected  # (n_songs, n_frames, 2)
    assert ccc((t,), (p.astype(np.float32),)) == pytest.approx(expected, abs=1e-6)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = t, t[:5]
    assert ccc(ragged, [p, p[:5]]) == pytest.approx(ccc([t, t[:5]], [p, p[:5]]))


def test_per_song_average_differs_from_concatenation():
    # Each prediction is flat at its song's mean: it tracks nothing within a
    # song, but follows the song-to-song level, which concatenation rewards.
    t1 = np.array([[0.0, 0.0], [0.2, 0.2], [0.0, 0.0], [0.2, 0.2]])
    t2 = t1 + 1.0
    p1 = np.full_like(t1, 0.1)
    p2 = np.full_like(t2, 1.1)
    per_song = pcc([t1, t2], [p1, p2])
    concatenated = pcc(np.vstack([t1, t2]), np.vstack([p1, p2]))
    assert per_song == 0.0
    assert concatenated > 0.9
    assert ccc([t1, t2], [p1, p2]) == 0.0
    assert ccc(np.vstack([t1, t2]), np.vstack([p1, p2])) > 0.9
    # RMSE: mean of per-song RMSEs, not the pooled RMSE.
    a = np.zeros((2, 2))
    b = np.zeros((8, 2))
    assert rmse([a, b], [a + 1.0, b]) == pytest.approx(0.5)
    assert rmse(np.vstack([a, b]), np.vstack([a + 1.0, b])) == pytest.approx(np.sqrt(0.2))


def test_nan_padding_is_ignored(no_warnings):
    rng = np.random.default_rng(5)
    true, pred = random_songs(rng, n_songs=4)
    width = max(len(t) for t in true)
    pad_t = np.full((4, width, 2), np.nan)
    pad_p = np.zeros((4, width, 2))
    for i, (t, p) in enumerate(zip(true, pred)):
        pad_t[i, : len(t)] = t
        pad_p[i, : len(p)] = p
        pad_p[i, len(p) :] = 99.0 if i % 2 else np.nan  # anything goes on padding
    assert evaluate(pad_t, pad_p) == pytest.approx(evaluate(true, pred))
    # NaN in one dimension only affects that dimension.
    t = true[0].copy()
    t[:3, 1] = np.nan
    got = ccc(t, pred[0], multioutput="raw_values")
    assert got[0] == pytest.approx(ccc_reference(true[0][:, 0], pred[0][:, 0]))
    assert got[1] == pytest.approx(ccc_reference(true[0][3:, 1], pred[0][3:, 1]))


# ---------------------------------------------------------------------------
# Constant sequences: finite, exact, silent
# ---------------------------------------------------------------------------


def test_constant_sequences(no_warnings):
    flat = np.full((6, 2), 0.3)
    moving = np.column_stack([np.linspace(0, 1, 6), np.linspace(1, 0, 6)])
    for fn in (ccc, pcc):
        assert fn(flat, flat) == 1.0  # both constant and equal
        assert fn(flat, flat + 0.1) == 0.0  # both constant, different
        assert fn(flat, moving) == 0.0  # constant truth
        assert fn(moving, flat) == 0.0  # constant prediction
        assert fn(flat, flat.astype(np.float32)) == 1.0  # equal up to allclose
        assert fn([flat, moving], [flat, moving]) == 1.0
        out = fn([flat, moving], [moving, flat], per_song=True, multioutput="raw_values")
        assert np.array_equal(out, np.zeros((2, 2)))
    assert rmse(flat, flat) == 0.0
    assert rmse(flat, flat + 0.25) == pytest.approx(0.25)
    # A flat value whose mean rounds (0.1 * 3 != 0.3) is still exactly constant.
    tenth = np.full((3, 2), 0.1)
    assert pcc(tenth, moving[:3]) == 0.0
    assert ccc(tenth, tenth) == 1.0
    scores = evaluate(flat, moving)
    assert all(np.isfinite(v) for v in scores.values())


def test_perfect_and_anti_correlated_are_exact(no_warnings):
    t = np.column_stack([np.linspace(-1, 1, 11), np.sin(np.arange(11))])
    assert ccc(t, t) == pytest.approx(1.0, abs=1e-15)
    assert pcc(t, -t) == pytest.approx(-1.0, abs=1e-15)
    assert -1.0 <= pcc(t, -3 * t) and pcc(t, 3 * t) <= 1.0


# ---------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------


def test_errors_name_song_and_shapes():
    a = np.zeros((5, 2))
    b = np.zeros((4, 2))
    with pytest.raises(
        ValueError, match=r"song 1: y_true has shape \(5, 2\) but y_pred has shape \(4, 2\)"
    ):
        ccc([a, a], [a, b])
    with pytest.raises(ValueError, match="y_true has 2 song.*y_pred has 1"):
        pcc([a, a], [a])
    with pytest.raises(ValueError, match=r"y_pred\[0\] must have shape \(n_frames, 2\).*\(5, 3\)"):
        rmse(a, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"y_true\[1\] must have shape"):
        ccc([a, np.zeros(5)], [a, np.zeros(5)])
    with pytest.raises(ValueError, match="y_true is empty"):
        ccc([], [])
    with pytest.raises(ValueError, match="array of shape"):
        ccc(np.zeros(5), np.zeros(5))
    with pytest.raises(TypeError, match="y_true must be"):
        ccc(None, a)


def test_errors_on_frames_and_values():
    t = np.array([[0.1, 0.2], [np.nan, 0.3], [np.nan, 0.1]])
    with pytest.raises(ValueError, match="song 0: arousal has 1 annotated"):
        ccc(t, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="song 0: valence has 0 annotated"):
        rmse(np.column_stack([[0.1, 0.2], [np.nan, np.nan]]), np.zeros((2, 2)))
    good = np.array([[0.1, 0.2], [0.2, 0.3], [0.3, 0.1]])
    bad_pred = good.copy()
    bad_pred[1, 0] = np.nan
    with pytest.raises(ValueError, match="song 0: y_pred has NaN or infinite arousal"):
        pcc(good, bad_pred)
    inf_true = good.copy()
    inf_true[0, 1] = np.inf
    with pytest.raises(ValueError, match="y_true contains infinite"):
        pcc(inf_true, good)
    # sklearn's validate_params wording; the parameter and the bad value are named.
    with pytest.raises(
        ValueError,
        match=r"'dimension' parameter of ccc must be None, a str among .* or an int in the "
        r"range \[0, 1\]. Got 'dominance'",
    ):
        ccc(good, good, dimension="dominance")
    with pytest.raises(ValueError, match="'dimension' parameter of ccc must be"):
        ccc(good, good, dimension=2)
    with pytest.raises(ValueError, match="'dimension' parameter of ccc must be"):
        ccc(good, good, dimension=True)
    with pytest.raises(ValueError, match="'multioutput' parameter of ccc must be a str among"):
        ccc(good, good, multioutput="mean")
    with pytest.raises(TypeError, match="'per_song' parameter of ccc must be an instance of 'bool'"):
        ccc(good, good, per_song="yes")


def test_evaluate_keys_and_values():
    rng = np.random.default_rng(6)
    true, pred = random_songs(rng)
    scores = evaluate(true, pred)
    assert sorted(scores) == sorted(
        f"{m}_{d}" for m in ("ccc", "pcc", "rmse") for d in ("arousal", "valence", "mean")
    )
    assert scores["ccc_arousal"] == pytest.approx(ccc(true, pred, dimension="arousal"))
    assert scores["pcc_valence"] == pytest.approx(pcc(true, pred, dimension="valence"))
    assert scores["rmse_mean"] == pytest.approx(rmse(true, pred))
    assert all(type(v) is float for v in scores.values())


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


def test_scorer_registry_and_names():
    names = get_scorer_names()
    assert set(names) == {
        "ccc", "ccc_arousal", "ccc_valence",
        "pcc", "pcc_arousal", "pcc_valence",
        "neg_rmse", "neg_rmse_arousal", "neg_rmse_valence",
    }  # fmt: skip
    assert set(SCORERS) == set(names)
    with pytest.raises(TypeError):
        SCORERS["mine"] = SCORERS["ccc"]
    assert get_scorer("ccc") is SCORERS["ccc"]
    assert get_scorer(len) is len  # a callable passes through, as in sklearn
    with pytest.raises(ValueError, match="'neg_rmse_valence'"):
        get_scorer("rmse_valence")
    with pytest.raises(ValueError, match="Did you mean 'ccc_arousal'"):
        get_scorer("ccc_arousl")
    with pytest.raises(ValueError, match="Valid names: ccc, ccc_arousal"):
        get_scorer("r2")
    with pytest.raises(ValueError, match="more than once"):
        make_scorers(["ccc", "ccc"])
    with pytest.raises(ValueError, match="neg_rmse"):
        make_scorers(["ccc", "rmse"])
    scorer = pickle.loads(pickle.dumps(SCORERS["neg_rmse_arousal"]))
    assert repr(scorer) == "get_scorer('neg_rmse_arousal')"


def test_scorers_call_predict_and_use_sign():
    X, y, annotators = make_listener_data()
    est = OffsetRegressor().fit(X, y, annotators=annotators)
    y_pred = est.predict(X)
    assert get_scorer("ccc")(est, X, y) == pytest.approx(ccc(y, y_pred))
    assert get_scorer("pcc_valence")(est, X, y) == pytest.approx(
        pcc(y, y_pred, dimension="valence")
    )
    assert get_scorer("neg_rmse_arousal")(est, X, y) == pytest.approx(
        -rmse(y, y_pred, dimension="arousal")
    )
    combined = make_multimetric_scorer(["ccc", "neg_rmse"])(est, X, y)
    assert combined == pytest.approx({"ccc": ccc(y, y_pred), "neg_rmse": -rmse(y, y_pred)})


def test_scorers_in_grid_search_and_cross_validate():
    X, y, annotators = make_listener_data()
    grid = {"scale": [0.3, 1.0]}
    cv = GroupKFold(n_splits=3)
    search = GridSearchCV(
        OffsetRegressor(), grid, cv=cv, scoring=get_scorer("ccc"), error_score="raise"
    )
    search.fit(X, y, groups=annotators, annotators=annotators)
    assert search.best_params_ == {"scale": 1.0}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))

    search = GridSearchCV(
        OffsetRegressor(),
        grid,
        cv=cv,
        scoring=make_scorers(["ccc", "neg_rmse"]),
        refit="neg_rmse",
        error_score="raise",
    )
    search.fit(X, y, groups=annotators, annotators=annotators)
    assert search.best_params_ == {"scale": 1.0}
    assert {"mean_test_ccc", "mean_test_neg_rmse"} <= set(search.cv_results_)
    assert np.all(search.cv_results_["mean_test_neg_rmse"] < 0)

    search = GridSearchCV(
        OffsetRegressor(),
        grid,
        cv=cv,
        scoring=make_multimetric_scorer(["ccc", "pcc_arousal"]),
        refit="ccc",
        error_score="raise",
    )
    search.fit(X, y, groups=annotators, annotators=annotators)
    assert search.best_params_ == {"scale": 1.0}
    assert "mean_test_pcc_arousal" in search.cv_results_

    res = cross_validate(
        OffsetRegressor(),
        X,
        y,
        groups=annotators,
        cv=cv,
        scoring=make_scorers(["ccc", "neg_rmse_valence"]),
        params={"annotators": annotators},
        error_score="raise",
    )
    assert res["test_ccc"].shape == (3,)
    assert np.all(res["test_neg_rmse_valence"] < 0)


# ---------------------------------------------------------------------------
# Personalized scoring
# ---------------------------------------------------------------------------


def test_personalized_score_gains_and_resets():
    X, y, annotators = make_listener_data(seed=1)
    train = np.isin(annotators, ["L0", "L1", "L2", "L3", "L4"])
    test = ~train
    X_tr = [x for x, k in zip(X, train) if k]
    y_tr = [v for v, k in zip(y, train) if k]
    X_te = [x for x, k in zip(X, test) if k]
    y_te = [v for v, k in zip(y, test) if k]
    est = OffsetRegressor().fit(X_tr, y_tr, annotators=annotators[train])

    generic = make_multimetric_scorer(["ccc", "neg_rmse"])(est, X_te, y_te)
    with pytest.warns(UserWarning, match="1 of 5 listener"):
        personal = personalized_score(
            est, X_te, y_te, annotators[test], metric=["ccc", "neg_rmse"]
        )
    assert personal["ccc"] > generic["ccc"] + 0.1
    assert personal["neg_rmse"] > generic["neg_rmse"] + 0.1
    assert personal["ccc"] > 0.9
    # 4 scorable listeners adapted on one song each, then the model was reset.
    assert est.personalize_sizes_ == [1, 1, 1, 1]
    assert est.n_resets_ == 1
    np.testing.assert_array_equal(est.offset_, est.base_offset_)

    with pytest.warns(UserWarning):
        single = personalized_score(est, X_te, y_te, annotators[test])
        again = personalized_score(est, X_te, y_te, annotators[test])
        two = personalized_score(est, X_te, y_te, annotators[test], support=2)
    assert single == pytest.approx(personal["ccc"]) and single == again
    assert 0.9 < two <= 1.0  # more support songs, still a good fit
    assert est.personalize_sizes_[-4:] == [2, 2, 2, 2]


def test_personalized_score_protocol_and_average():
    # Listener A: 2 songs, listener B: 4 songs; support songs never scored.
    X, y, annotators = make_listener_data(seed=2, n_listeners=2, songs_per_listener=4)
    keep = np.r_[0, 1, 4, 5, 6, 7]  # L0 keeps 2 songs, L1 keeps 4, no "solo"
    X = [X[i] for i in keep]
    y = [y[i] for i in keep]
    annotators = annotators[keep]

    class Recorder(OffsetRegressor):
        def personalize(self, X, y):
            self.support_ids_ = getattr(self, "support_ids_", []) + [id(x) for x in y]
            return super().personalize(X, y)

        def predict(self, X):
            self.predicted_ = getattr(self, "predicted_", 0) + len(X)
            return super().predict(X)

    est = Recorder().fit(X, y, annotators=annotators)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        songs = personalized_score(est, X, y, annotators, metric="ccc_arousal")
        listeners = personalized_score(
            est, X, y, annotators, metric="ccc_arousal", average="listeners"
        )
    assert est.predicted_ == 2 * 4  # 1 + 3 query songs, twice

    # Recompute by hand: same draw (random_state=0), per-listener averages.
    rng = np.random.RandomState(0)
    per_listener, pooled = [], []
    for who in np.unique(annotators):
        rows = np.flatnonzero(annotators == who)
        sup = np.sort(rng.choice(rows, size=1, replace=False))
        query = np.setdiff1d(rows, sup)
        est.personalize([X[i] for i in sup], [y[i] for i in sup])
        vals = ccc(
            [y[i] for i in query],
            est.predict([X[i] for i in query]),
            dimension="arousal",
            per_song=True,
        )
        per_listener.append(vals.mean())
        pooled.extend(vals)
    assert songs == pytest.approx(np.mean(pooled))
    assert listeners == pytest.approx(np.mean(per_listener))


def test_personalized_score_errors():
    X, y, annotators = make_listener_data()
    est = OffsetRegressor().fit(X, y, annotators=annotators)
    with pytest.raises(ValueError, match="annotators is required"):
        personalized_score(est, X, y, None)
    with pytest.raises(ValueError, match="one entry per"):
        personalized_score(est, X, y, annotators[:-1])
    with pytest.raises(ValueError, match="support must be an integer >= 1"):
        personalized_score(est, X, y, annotators, support=0)
    with pytest.raises(ValueError, match="No listener could be scored"):
        personalized_score(est, X, y, annotators, support=10)
    with pytest.raises(ValueError, match="'neg_rmse'"):
        personalized_score(est, X, y, annotators, metric="rmse")
    with pytest.raises(ValueError, match="average must be one of"):
        personalized_score(est, X, y, annotators, average="frames")
    with pytest.raises(ValueError, match=r"one \(n_frames, 2\) array per song"):
        personalized_score(est, X[0], y[0], annotators)
    with pytest.raises(TypeError, match="has no personalize"):
        personalized_score(object(), X, y, annotators)


def test_cross_validate_personalized():
    X, y, annotators = make_listener_data(seed=3)
    res = cross_validate_personalized(OffsetRegressor(), X, y, annotators, cv=3)
    expected_keys = {f"test_{n}" for n in get_scorer_names()} | {
        "fit_time", "score_time", "n_listeners", "n_skipped",
    }  # fmt: skip
    assert set(res) == expected_keys
    assert all(v.shape == (3,) for v in res.values())
    assert res["n_listeners"].sum() == 9 and res["n_skipped"].sum() == 1
    generic = cross_validate(
        OffsetRegressor(),
        X,
        y,
        groups=annotators,
        cv=GroupKFold(3),
        params={"annotators": annotators},
        scoring=make_multimetric_scorer(["ccc", "neg_rmse"]),
        error_score="raise",
    )
    assert res["test_ccc"].mean() > generic["test_ccc"].mean() + 0.1
    assert res["test_neg_rmse"].mean() > generic["test_neg_rmse"].mean() + 0.1

    splits = list(GroupKFold(3).split(X, y, annotators))
    res2 = cross_validate_personalized(
        OffsetRegressor(), X, y, annotators, cv=splits, scoring="ccc", return_estimator=True
    )
    np.testing.assert_allclose(res2["test_ccc"], res["test_ccc"])
    for est, (train, test) in zip(res2["estimator"], splits):
        # Fitted on the training listeners only, personalization reset.
        assert est.fit_listeners_ == set(annotators[train].tolist())
        assert not est.fit_listeners_ & set(annotators[test].tolist())
        assert est.n_resets_ == 1 and np.array_equal(est.offset_, est.base_offset_)


def test_cross_validate_personalized_empty_fold_warns():
    X, y, annotators = make_listener_data(seed=4, n_listeners=2)
    X, y = X + [X[0]], y + [y[0]]
    annotators = np.append(annotators, "solo2")
    # Test fold = the two single-song listeners only.
    test = np.flatnonzero(np.isin(annotators, ["solo", "solo2"]))
    train = np.setdiff1d(np.arange(len(X)), test)
    with pytest.warns(UserWarning, match=r"fold\(s\) \[1\]"):
        res = cross_validate_personalized(
            OffsetRegressor(), X, y, annotators, cv=[(test, train), (train, test)], scoring=["ccc"]
        )
    assert np.isfinite(res["test_ccc"][0]) and np.isnan(res["test_ccc"][1])
    assert res["n_listeners"].tolist() == [2, 0] and res["n_skipped"].tolist() == [0, 2]


# ---------------------------------------------------------------------------
# Metadata routing
# ---------------------------------------------------------------------------


def test_personalized_scorer_with_metadata_routing():
    X, y, annotators = make_listener_data(seed=5)
    manual = cross_validate_personalized(
        OffsetRegressor(), X, y, annotators, cv=GroupKFold(3), scoring=["ccc", "neg_rmse"]
    )
    with sklearn.config_context(enable_metadata_routing=True):
        est = OffsetRegressor().set_fit_request(annotators=True)
        with pytest.warns(UserWarning, match="1 of"):
            res = cross_validate(
                est,
                X,
                y,
                cv=GroupKFold(3),
                scoring=personalized_scorer(["ccc", "neg_rmse"]),
                params={"groups": annotators, "annotators": annotators},
                error_score="raise",
            )
        np.testing.assert_allclose(res["test_ccc"], manual["test_ccc"])
        np.testing.assert_allclose(res["test_neg_rmse"], manual["test_neg_rmse"])

        search = GridSearchCV(
            est,
            {"scale": [0.3, 1.0]},
            cv=GroupKFold(3),
            scoring=personalized_scorer("ccc"),
            error_score="raise",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the skipped "solo" listener
            search.fit(X, y, groups=annotators, annotators=annotators)
        assert search.best_params_ == {"scale": 1.0}
        np.testing.assert_allclose(
            search.cv_results_["split0_test_score"][1], manual["test_ccc"][0]
        )

        # One metadata for everything: alias the scorer's (and fit's)
        # annotators to the splitter's groups.
        aliased = OffsetRegressor().set_fit_request(annotators="groups")
        scorer = personalized_scorer("ccc").set_score_request(annotators="groups")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = cross_validate(
                aliased,
                X,
                y,
                cv=GroupKFold(3),
                scoring=scorer,
                params={"groups": annotators},
                error_score="raise",
            )
        np.testing.assert_allclose(res["test_score"], manual["test_ccc"])


def test_personalized_scorer_without_routing_explains():
    X, y, annotators = make_listener_data(seed=6)
    search = GridSearchCV(
        OffsetRegressor(),
        {"scale": [1.0]},
        cv=GroupKFold(3),
        scoring=personalized_scorer(),
        error_score="raise",
    )
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        search.fit(X, y, groups=annotators, annotators=annotators)
    assert repr(personalized_scorer("ccc_valence", support=2)).startswith(
        "personalized_scorer('ccc_valence'"
    )
    with pytest.raises(ValueError, match="support must be"):
        personalized_scorer(support=1.5)

