"""Tests of the estimator API: DSAMLRegressor fit, personalize, predict, save.

Everything runs on tiny SongFeatures data sets and the ``TINY_MODEL``
architecture, so one fit takes a fraction of a second on a CPU.

scikit-learn's ``check_estimator`` cannot run as a whole: pdmer's estimators
take sequences of songs (``SongFeatures``, audio paths or waveforms) and
ragged ``(n_frames, 2)`` label curves, not 2-D numeric arrays (the tags say
``two_d_array=False``). The data-free checks are run directly
(:data:`DATA_FREE_CHECKS`); the checks that fit on 2-D data have
sequence-data equivalents below (repeatability, idempotent refit, pickling,
parameters not overwritten by fit, ``__dict__`` unchanged by predict,
batch/order invariance of predict, NotFittedError before fit).
"""

from __future__ import annotations

import copy
import functools
import os

import joblib
import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.utils import estimator_checks
from sklearn.utils.validation import check_is_fitted

import pdmer
from pdmer import AudioFeatures, DSAMLRegressor, ListenerAdaptation, SongFeatures
from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.evaluation import cross_validate_personalized, personalized_scorer
from pdmer.scoring import get_scorer

from helpers import LISTENER_CALIBRATION, TINY_MODEL, tiny as tiny_model, make_annotator_table, make_songs


# Adapting every parameter (the reference), unless a test says otherwise.
tiny = functools.partial(tiny_model, inner_params="all")


def assert_predictions_equal(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert p.shape == q.shape
        np.testing.assert_array_equal(p, q)


def predictions_differ(a, b):
    return any(not np.array_equal(p, q) for p, q in zip(a, b))


def state_copy(model):
    return {k: v.detach().clone() for k, v in model.network_.state_dict().items()}


def fitted_names(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


@pytest.fixture(scope="module")
def table():
    return make_annotator_table()


@pytest.fixture(scope="module")
def fitted(table):
    """A model fitted once per module; tests that mutate it take a deepcopy."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X, y, annotators = table
        return tiny().fit(X, y, annotators=annotators)
    finally:
        torch.set_num_threads(n_threads)


@pytest.fixture
def model(fitted):
    return copy.deepcopy(fitted)


@pytest.fixture(scope="module")
def other_songs():
    songs, curves = make_songs(3, n_frames=20, seed=7)
    return songs, curves


# ---------------------------------------------------------------------------
# 1. scikit-learn API
# ---------------------------------------------------------------------------

# Checks of sklearn.utils.estimator_checks that need no training data. Those
# that do fit on 2-D numeric arrays (check_fit2d_*, check_estimators_dtypes,
# check_dont_overwrite_parameters, check_dict_unchanged, check_fit_idempotent,
# check_estimators_pickle, check_n_features_in, check_methods_*_invariance,
# check_regressors_train, check_supervised_y_2d, ...) cannot apply: X is a
# sequence of songs and y ragged (n_frames, 2) curves. Their sequence-data
# equivalents are tested further down. check_param_validation runs on the
# parameter constraints (_parameter_constraints; messages tested in section 7).
DATA_FREE_CHECKS = [
    "check_param_validation",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
    "check_do_not_raise_errors_in_init_or_set_params",
    # Calls predict on 2-D data before fit: the NotFittedError comes first.
    "check_estimators_unfitted",
]


@pytest.mark.parametrize("check_name", DATA_FREE_CHECKS)
@pytest.mark.parametrize("front_end", [None, AudioFeatures(n_mels=32)],
                         ids=["plain", "front_end"])
def test_sklearn_data_free_checks(check_name, front_end):
    check = getattr(estimator_checks, check_name, None)
    if check is None:  # older scikit-learn
        pytest.skip(f"{check_name} is not in scikit-learn {sklearn.__version__}")
    check("DSAMLRegressor", tiny(front_end=front_end))


def test_reset_personalization_of_unfitted_model_raises():
    est = tiny()
    with pytest.raises(NotFittedError):
        est.reset_personalization()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def test_tags():
    tags = DSAMLRegressor().__sklearn_tags__()
    assert tags.input_tags.two_d_array is False
    assert tags.target_tags.multi_output is True
    assert tags.target_tags.single_output is False
    assert tags.estimator_type == "regressor"
    assert sklearn.base.is_regressor(DSAMLRegressor())


def test_init_stores_parameters_only():
    est = DSAMLRegressor(n_episodes=7, inner_lr=0.2, front_end=AudioFeatures())
    assert set(vars(est)) == set(est.get_params(deep=False))
    assert est.n_episodes == 7 and est.inner_lr == 0.2
    # Even invalid values are only stored; fit validates.
    est = DSAMLRegressor(n_episodes=0, meta_learning="x", device="tpu")
    assert est.n_episodes == 0 and est.meta_learning == "x" and est.device == "tpu"


def test_get_set_params_round_trip_with_nested_front_end():
    est = DSAMLRegressor(front_end=AudioFeatures())
    params = est.get_params()
    assert params["front_end__n_mels"] == 128
    assert "front_end__sample_rate" in params
    assert est.set_params(front_end__n_mels=64, inner_lr=0.01) is est
    assert est.front_end.n_mels == 64 and est.inner_lr == 0.01
    assert est.get_params()["front_end__n_mels"] == 64
    # Round trip: set_params(**get_params()) changes nothing.
    shallow = est.get_params(deep=False)
    est.set_params(**shallow)
    assert est.get_params(deep=False) == shallow
    other = DSAMLRegressor().set_params(**shallow)
    assert other.get_params()["front_end__n_mels"] == 64
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(not_a_param=1)


def test_clone_of_fitted_model_is_unfitted(fitted):
    assert fitted_names(fitted)  # network_, history_, ...
    est = clone(fitted)
    assert fitted_names(est) == []
    assert set(vars(est)) == set(fitted.get_params(deep=False))
    assert est.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    # The clone of a model with a front end gets its own front end.
    with_front_end = DSAMLRegressor(front_end=AudioFeatures(n_mels=16))
    cloned = clone(with_front_end)
    assert cloned.front_end is not with_front_end.front_end
    assert cloned.get_params()["front_end__n_mels"] == 16


def test_fit_returns_self_and_does_not_change_parameters(table):
    X, y, annotators = table
    est = tiny(front_end=AudioFeatures(n_mels=16))
    before = est.get_params(deep=False)
    before_deep = {k: v for k, v in est.get_params().items() if k != "front_end"}
    assert est.fit(X, y, annotators=annotators) is est
    after = est.get_params(deep=False)
    # check_dont_overwrite_parameters / check_estimators_overwrite_params.
    assert all(after[k] is before[k] for k in before)
    assert {k: v for k, v in est.get_params().items() if k != "front_end"} == before_deep
    check_is_fitted(est)
    assert not [k for k in vars(est) if not k.endswith("_") and not k.startswith("_")
                and k not in before]


def test_predict_does_not_change_dict(model, other_songs):
    # check_dict_unchanged on sequence data.
    songs, _ = other_songs
    before = dict(vars(model))
    model.predict(songs)
    assert vars(model).keys() == before.keys()
    assert all(vars(model)[k] is before[k] for k in before)


def test_score_is_mean_ccc(model, table):
    X, y, _ = table
    score = model.score(X, y)
    assert isinstance(score, float)
    assert score == pytest.approx(pdmer.scoring.ccc(y, model.predict(X)))
    with pytest.raises(ValueError, match="sample_weight"):
        model.score(X, y, sample_weight=np.ones(len(X)))


# ---------------------------------------------------------------------------
# 2. Repeatability, refit, persistence
# ---------------------------------------------------------------------------


def test_same_seed_repeats_different_seed_differs(fitted, table, other_songs):
    X, y, annotators = table
    songs, _ = other_songs
    again = tiny().fit(X, y, annotators=annotators)
    assert again.history_ == fitted.history_
    assert again.model_id_ == fitted.model_id_
    assert_predictions_equal(again.predict(songs), fitted.predict(songs))
    other = tiny(random_state=1).fit(X, y, annotators=annotators)
    assert other.history_["loss"] != fitted.history_["loss"]
    assert predictions_differ(other.predict(songs), fitted.predict(songs))


def test_fit_leaves_global_rngs_untouched(table):
    X, y, annotators = table
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    est = tiny(n_episodes=2).fit(X, y, annotators=annotators)
    est.personalize(X[:1], y[:1])
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_refit_is_idempotent(fitted, table, other_songs):
    # check_fit_idempotent on sequence data: a fit on other data first, then
    # on the table, gives the model of one fit on the table.
    X, y, annotators = table
    songs, _ = other_songs
    est = tiny()
    sX, sy = make_songs(6, seed=3)
    est.fit(sX, sy)
    est.personalize(sX[:1], sy[:1])
    est.fit(X, y, annotators=annotators)
    assert est.listener_ is None
    assert est.tasks_ == "annotator"
    assert est.history_ == fitted.history_
    assert_predictions_equal(est.predict(songs), fitted.predict(songs))


def test_joblib_pickle_round_trip(model, table, other_songs, tmp_path):
    X, y, _ = table
    songs, _ = other_songs
    expected = model.predict(songs)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert_predictions_equal(loaded.predict(songs), expected)
    assert loaded.history_ == model.history_
    # After personalize, the listener survives pickling.
    model.personalize(X[:1], y[:1])
    personal = model.predict(songs)
    joblib.dump(model, tmp_path / "personal.joblib")
    loaded = joblib.load(tmp_path / "personal.joblib")
    assert isinstance(loaded.listener_, ListenerAdaptation)
    assert loaded.listener_.model_id == model.model_id_
    assert_predictions_equal(loaded.predict(songs), personal)
    loaded.reset_personalization()
    assert_predictions_equal(loaded.predict(songs), expected)


def test_save_load_round_trip(model, table, other_songs, tmp_path):
    X, y, _ = table
    songs, _ = other_songs
    expected = model.predict(songs)
    model.personalize(X[:1], y[:1])
    path = tmp_path / "sub" / "model.safetensors"
    model.save(path)
    assert path.is_file()
    # No temporary files: the model and its card (tests/test_model_sharing.py).
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.md", path.name]
    loaded = pdmer.load(path)
    assert type(loaded) is DSAMLRegressor
    assert loaded.listener_ is None  # listeners are stored apart
    assert loaded.get_params() == model.get_params()
    for name in ("feature_spec_", "encoder_", "tasks_", "history_", "best_episode_",
                 "best_validation_ccc_", "model_id_"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert_predictions_equal(loaded.predict(songs), expected)
    # Parameters can be overridden at load.
    assert pdmer.load(path, predict_batch_size=1).predict_batch_size == 1


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError):
        tiny().save(tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        pdmer.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        pdmer.load(junk)


def test_save_model_with_numpy_integer_parameters(table, tmp_path):
    # A GridSearchCV over np.arange(...) or np.array([...]) of ints leaves
    # np.int64 parameters on best_estimator_; fit accepts them, save must too.
    X, y, annotators = table
    est = tiny(n_episodes=np.int64(2), inner_steps=np.int64(1), random_state=np.int64(0))
    est.fit(X, y, annotators=annotators)
    est.save(tmp_path / "model.safetensors")
    loaded = pdmer.load(tmp_path / "model.safetensors")
    assert loaded.n_episodes == 2
    assert_predictions_equal(loaded.predict(X), est.predict(X))


# ---------------------------------------------------------------------------
# 3. fit
# ---------------------------------------------------------------------------


def test_fit_records_history_and_validation(fitted):
    history = fitted.history_
    assert history["episode"] == list(range(TINY_MODEL["n_episodes"]))
    assert len(history["loss"]) == TINY_MODEL["n_episodes"]
    assert all(np.isfinite(history["loss"]))
    # 4 annotators, validation_fraction=0.1: one annotator held out,
    # validated every 2 episodes and after the last one.
    assert history["validation_episode"] == [1, 2]
    assert len(history["validation_ccc"]) == 2
    assert fitted.best_validation_ccc_ == max(history["validation_ccc"])
    assert fitted.best_episode_ in history["validation_episode"]
    assert fitted.tasks_ == "annotator"
    assert fitted.encoder_ == "unknown"
    assert fitted.feature_spec_ == {"n_patch_times": 6, "n_mels": 8, "global_dim": 6,
                                    "encoder": "unknown", "n_waveform_samples": 0}
    assert fitted.listener_ is None
    assert not fitted.network_.training


def test_fit_without_validation(table):
    X, y, annotators = table
    est = tiny(validation_fraction=0.0).fit(X, y, annotators=annotators)
    assert est.history_["validation_ccc"] == []
    assert est.best_validation_ccc_ is None
    assert est.best_episode_ == TINY_MODEL["n_episodes"] - 1
    # Too few annotators to hold one out: no validation either.
    est = tiny(validation_fraction=0.5).fit(X[:8], y[:8], annotators=annotators[:8])
    assert est.best_validation_ccc_ is None


def test_fit_keeps_the_best_validated_episode(table):
    # The network of the best validation episode is kept, not the last one:
    # it equals a run stopped right after that episode.
    X, y, annotators = table
    params = dict(n_episodes=6, validation_interval=1, outer_lr=0.03)
    for seed in range(6):
        long = tiny(random_state=seed, **params).fit(X, y, annotators=annotators)
        if long.best_episode_ < 5:
            break
    else:
        pytest.fail("no seed gave a best validation episode before the last one")
    history = long.history_
    assert long.best_validation_ccc_ == max(history["validation_ccc"])
    assert history["validation_ccc"][long.best_episode_] == long.best_validation_ccc_
    short = tiny(random_state=seed, **{**params, "n_episodes": long.best_episode_ + 1})
    short.fit(X, y, annotators=annotators)
    assert short.model_id_ == long.model_id_
    assert_predictions_equal(short.predict(X[:3]), long.predict(X[:3]))


@pytest.mark.parametrize("with_annotators", [True, False])
def test_song_tasks(table, with_annotators):
    X, y, annotators = table
    est = tiny(tasks="song", n_episodes=2)
    est.fit(X, y, annotators=annotators if with_annotators else None)
    assert est.tasks_ == "song"
    out = est.predict(X[:3])
    assert [p.shape for p in out] == [(len(x), 2) for x in X[:3]]
    assert all(np.isfinite(p).all() for p in out)


def test_song_tasks_average_labels_of_each_song(table):
    # tasks='song' trains on mean labels: the annotator-wise rows of a song
    # give the same model as one row with their mean.
    X, y, annotators = table
    est = tiny(tasks="song", n_episodes=2, validation_fraction=0.0)
    est.fit(X, y, annotators=annotators)
    rows = {}
    for x, labels in zip(X, y):
        rows.setdefault(x.source, (x, []))[1].append(labels)
    mX = [x for x, _ in rows.values()]
    my = [np.mean(ls, axis=0) for _, ls in rows.values()]
    mean = tiny(tasks="song", n_episodes=2, validation_fraction=0.0).fit(mX, my)
    np.testing.assert_allclose(est.history_["loss"], mean.history_["loss"], rtol=1e-5)


def test_auto_tasks_without_annotators_uses_songs(table):
    X, y, _ = table
    est = tiny(n_episodes=1).fit(X, y)
    assert est.tasks_ == "song"


@pytest.mark.parametrize("meta_learning", ["fomaml", "maml", "none"])
def test_meta_learning_variants(table, other_songs, meta_learning):
    X, y, annotators = table
    songs, _ = other_songs
    est = tiny(meta_learning=meta_learning, n_episodes=2).fit(X, y, annotators=annotators)
    assert len(est.history_["loss"]) == 2
    out = est.predict(songs)
    assert [p.shape for p in out] == [(len(s), 2) for s in songs]
    assert all(np.isfinite(p).all() for p in out)
    est.personalize(X[:1], y[:1])
    assert all(np.isfinite(p).all() for p in est.predict(songs))


def test_first_and_second_order_differ(table):
    X, y, annotators = table
    losses = {ml: tiny(meta_learning=ml, n_episodes=2).fit(X, y, annotators=annotators)
              .history_["loss"] for ml in ("fomaml", "maml")}
    assert losses["fomaml"][0] == pytest.approx(losses["maml"][0])  # same start
    assert losses["fomaml"][1] != losses["maml"][1]


def test_inner_params_head(table, other_songs):
    X, y, annotators = table
    songs, _ = other_songs
    est = tiny(inner_params="head", n_episodes=2).fit(X, y, annotators=annotators)
    before = state_copy(est)
    plain = est.predict(songs)
    est.personalize(X[:1], y[:1])
    # The small preset calibrates the output first (CalibrateThenAdapt): its map is kept too.
    keys = set(est.listener_.params) - LISTENER_CALIBRATION
    assert keys
    assert all(k.startswith(("lstm.", "head.")) for k in keys)
    assert keys == {n for n, _ in est.network_.named_parameters()
                    if n.startswith(("lstm.", "head."))}
    assert predictions_differ(est.predict(songs), plain)
    after = state_copy(est)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_inner_params_all_adapts_every_parameter(model, table):
    X, y, _ = table
    model.personalize(X[:1], y[:1])
    assert set(model.listener_.params) == {n for n, _ in model.network_.named_parameters()
                                           } | LISTENER_CALIBRATION


# ---------------------------------------------------------------------------
# 4. Personalization
# ---------------------------------------------------------------------------


def test_personalize_keeps_meta_parameters(model, table, other_songs):
    X, y, _ = table
    songs, _ = other_songs
    before = state_copy(model)
    model_id = model.model_id_
    plain = model.predict(songs)
    assert model.personalize(X[:1], y[:1]) is model
    after = state_copy(model)
    assert before.keys() == after.keys()
    for name in before:  # parameters and BatchNorm statistics
        assert torch.equal(before[name], after[name]), name
    assert model.model_id_ == model_id
    assert predictions_differ(model.predict(songs), plain)
    info = model.listener_.info
    assert info["n_songs"] == 1 and info["n_frames"] == len(y[0])
    assert info["steps"] == model.personalization_steps_ and info["lr"] == TINY_MODEL["inner_lr"]
    assert not model.network_.training


def test_personalize_twice_replaces_instead_of_stacking(model, table, other_songs):
    X, y, _ = table
    songs, _ = other_songs
    model.personalize(X[:1], y[:1])
    once = {k: v.clone() for k, v in model.listener_.params.items()}
    once_pred = model.predict(songs)
    model.personalize(X[:1], y[:1])
    assert once.keys() == model.listener_.params.keys()
    for name, tensor in once.items():
        assert torch.equal(tensor, model.listener_.params[name]), name
    assert_predictions_equal(model.predict(songs), once_pred)
    # Another listener in between does not leak into the next adaptation.
    model.personalize(X[5:6], y[5:6])
    model.personalize(X[:1], y[:1])
    assert_predictions_equal(model.predict(songs), once_pred)


def test_personalize_steps_and_lr(model, table, other_songs):
    X, y, _ = table
    songs, _ = other_songs
    model.personalize(X[:1], y[:1])
    default = model.predict(songs)
    model.personalize(X[:1], y[:1], steps=4, lr=0.01)
    assert model.listener_.info["steps"] == 4 and model.listener_.info["lr"] == 0.01
    assert predictions_differ(model.predict(songs), default)
    with pytest.raises(ValueError, match="steps >= 1 and lr > 0"):
        model.personalize(X[:1], y[:1], steps=0)
    with pytest.raises(ValueError, match="steps >= 1 and lr > 0"):
        model.personalize(X[:1], y[:1], lr=0.0)


def test_adapt_listener_serves_listeners_without_changing_the_model(model, table, other_songs):
    X, y, _ = table
    songs, _ = other_songs
    plain = model.predict(songs)
    steps_seen = []
    first = model.adapt_listener(X[:1], y[:1], progress=lambda s, n: steps_seen.append((s, n)))
    second = model.adapt_listener(X[5:6], y[5:6])
    n = model.personalization_steps_
    assert steps_seen == [(s, n) for s in range(1, n + 1)]
    assert model.listener_ is None
    assert_predictions_equal(model.predict(songs), plain)
    for_first = model.predict(songs, listener=first)
    assert predictions_differ(for_first, plain)
    assert predictions_differ(model.predict(songs, listener=second), for_first)
    # The same as personalizing the model itself.
    model.personalize(X[:1], y[:1])
    assert_predictions_equal(model.predict(songs), for_first)
    # An explicit listener wins over the current one.
    assert_predictions_equal(model.predict(songs, listener=second),
                             model.reset_personalization().predict(songs, listener=second))


def test_predict_refuses_a_listener_of_another_model(model, table, tmp_path):
    X, y, annotators = table
    other = tiny(random_state=1).fit(X, y, annotators=annotators)
    listener = other.adapt_listener(X[:1], y[:1])
    with pytest.raises(ValueError, match="adapted from model"):
        model.predict(X[:1], listener=listener)


def test_reset_personalization_restores_predictions(model, table, other_songs):
    X, y, _ = table
    songs, _ = other_songs
    plain = model.predict(songs)
    model.personalize(X[:2], y[:2])
    assert model.listener_.info["n_songs"] == 2
    assert model.reset_personalization() is model
    assert model.listener_ is None
    assert_predictions_equal(model.predict(songs), plain)


def test_listener_file_round_trip(model, table, other_songs, tmp_path):
    X, y, _ = table
    songs, _ = other_songs
    model.save(tmp_path / "model.safetensors")
    model.personalize(X[:1], y[:1])
    personal = model.predict(songs)
    listener_path = tmp_path / "listeners" / "me.safetensors"
    model.listener_.save(listener_path)
    fresh = pdmer.load(tmp_path / "model.safetensors")
    assert fresh.listener_ is None
    assert fresh.use_listener(listener_path) is fresh
    assert_predictions_equal(fresh.predict(songs), personal)
    # An in-memory ListenerAdaptation works too.
    listener = ListenerAdaptation.load(listener_path)
    assert listener.info == model.listener_.info
    assert listener.estimator == "DSAMLRegressor"
    fresh.reset_personalization().use_listener(listener)
    assert_predictions_equal(fresh.predict(songs), personal)


def test_listener_from_another_model_is_refused(model, table, tmp_path):
    X, y, annotators = table
    other = tiny(random_state=1, n_episodes=1).fit(X, y, annotators=annotators)
    other.personalize(X[:1], y[:1])
    other.listener_.save(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="adapted from model"):
        model.use_listener(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="adapted from model"):
        model.use_listener(other.listener_)
    assert model.listener_ is None
    with pytest.raises(FileNotFoundError, match="Listener file not found"):
        model.use_listener(tmp_path / "missing.safetensors")
    # A model file is not a listener file.
    model.save(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="not a pdmer listener file"):
        model.use_listener(tmp_path / "model.safetensors")


def test_head_listener_file_is_small(table, tmp_path):
    X, y, annotators = table
    est = tiny(inner_params="head", n_episodes=1).fit(X, y, annotators=annotators)
    est.personalize(X[:1], y[:1])
    est.save(tmp_path / "model.safetensors")
    est.listener_.save(tmp_path / "listener.safetensors")
    n_model = sum(p.numel() for p in est.network_.parameters())
    assert est.listener_.n_parameters < 0.5 * n_model
    model_size = os.path.getsize(tmp_path / "model.safetensors")
    listener_size = os.path.getsize(tmp_path / "listener.safetensors")
    assert listener_size < 0.5 * model_size


def test_personalize_and_use_listener_need_a_fitted_model(table, tmp_path):
    X, y, _ = table
    with pytest.raises(NotFittedError):
        tiny().personalize(X[:1], y[:1])
    with pytest.raises(NotFittedError):
        tiny().use_listener(tmp_path / "listener.safetensors")


# ---------------------------------------------------------------------------
# 5. predict
# ---------------------------------------------------------------------------


def test_predict_long_songs(fitted):
    # 200 frames: longer than train_window (60) and global_context (30).
    songs, _ = make_songs(2, n_frames=200, seed=5)
    out = fitted.predict(songs)
    assert [p.shape for p in out] == [(200, 2), (201, 2)]
    assert all(p.dtype == np.float32 and np.isfinite(p).all() for p in out)


def test_predict_keeps_order_and_ignores_batching(model):
    lengths = [30, 5, 50, 12, 1, 40, 7]
    rng = np.random.default_rng(11)
    songs = [SongFeatures(rng.normal(size=(n, 6, 8)), rng.normal(size=(n, 6)))
             for n in lengths]
    model.set_params(predict_batch_size=2)
    out = model.predict(songs)
    assert [p.shape for p in out] == [(n, 2) for n in lengths]
    # check_methods_subset_invariance / sample_order_invariance on songs:
    # each song alone gives the same curve as in the mixed, padded batches.
    for song, pred in zip(songs, out):
        np.testing.assert_allclose(model.predict([song])[0], pred, rtol=1e-5, atol=1e-6)
    reverse = model.predict(songs[::-1])
    for a, b in zip(out, reverse[::-1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    model.set_params(predict_batch_size=8)
    for a, b in zip(out, model.predict(songs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_non_contiguous_inputs(table):
    # Reversed (negative-stride) and Fortran-ordered arrays, as slicing and
    # transposing give them, are valid features and labels.
    X, y, annotators = table
    sources = {}
    for x in X:
        sources.setdefault(x.source, SongFeatures(
            x.local_patches[::-1], np.asfortranarray(x.global_embeddings[::-1]),
            source=x.source))
    rX = [sources[x.source] for x in X]
    ry = [labels[::-1] for labels in y]
    est = tiny(n_episodes=1).fit(rX, ry, annotators=annotators)
    out = est.predict(rX[:2])
    assert [p.shape for p in out] == [(len(x), 2) for x in rX[:2]]
    est.personalize(rX[:1], [y[0][::-1]])
    expected = tiny(n_episodes=1).fit(
        [SongFeatures(x.local_patches.copy(), x.global_embeddings.copy(), source=x.source)
         for x in rX], [labels.copy() for labels in ry], annotators=annotators)
    assert_predictions_equal(expected.predict(rX[:2]), out)


def test_predict_same_song_in_several_rows(fitted):
    songs, _ = make_songs(2, seed=4)
    out = fitted.predict([songs[0], songs[1], songs[0]])
    np.testing.assert_array_equal(out[0], out[2])


def test_predict_crop_of_song_in_same_call(fitted):
    songs, _ = make_songs(1, n_frames=20, seed=4)
    whole = songs[0]
    part = whole.crop(5, 12)
    out = fitted.predict([whole, part])
    assert out[1].shape == (7, 2)
    np.testing.assert_allclose(out[1], fitted.predict([part])[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# 6. Model selection
# ---------------------------------------------------------------------------


def test_grid_search_routes_annotators_to_fit(table):
    X, y, annotators = table
    search = GridSearchCV(tiny(n_episodes=2), {"inner_lr": [0.01, 0.05]},
                          scoring=get_scorer("ccc"), cv=GroupKFold(2))
    search.fit(X, y, groups=annotators, annotators=annotators)
    assert search.best_estimator_.tasks_ == "annotator"
    assert search.best_params_["inner_lr"] in (0.01, 0.05)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # Without annotators the same search trains on songs instead.
    search = GridSearchCV(tiny(n_episodes=1), {"inner_lr": [0.05]},
                          scoring=get_scorer("ccc"), cv=GroupKFold(2))
    search.fit(X, y, groups=annotators)
    assert search.best_estimator_.tasks_ == "song"


def test_cross_validate_with_annotators(table, monkeypatch):
    X, y, annotators = table
    seen = []
    original = BaseEmotionRegressor.fit

    def spy(self, X, y, annotators=None):
        seen.append(None if annotators is None else sorted(set(np.asarray(annotators))))
        return original(self, X, y, annotators=annotators)

    monkeypatch.setattr(BaseEmotionRegressor, "fit", spy)
    result = cross_validate(tiny(n_episodes=2), X, y, groups=annotators, cv=GroupKFold(2),
                            scoring=get_scorer("ccc"), params={"annotators": annotators},
                            return_estimator=True)
    assert result["test_score"].shape == (2,)
    assert np.isfinite(result["test_score"]).all()
    assert [e.tasks_ for e in result["estimator"]] == ["annotator", "annotator"]
    # Each fold's fit got the annotators of its own training rows.
    assert len(seen) == 2 and all(s is not None and len(s) == 2 for s in seen)
    assert sorted(seen[0] + seen[1]) == sorted(set(annotators))


def test_cross_validate_personalized(table):
    X, y, annotators = table
    result = cross_validate_personalized(tiny(n_episodes=2), X, y, annotators, cv=2,
                                         scoring=["ccc", "neg_rmse"], return_estimator=True)
    assert result["test_ccc"].shape == (2,)
    assert np.isfinite(result["test_ccc"]).all()
    assert np.isfinite(result["test_neg_rmse"]).all()
    assert list(result["n_listeners"]) == [2, 2]
    assert all(e.tasks_ == "annotator" and e.listener_ is None for e in result["estimator"])


def test_personalized_scorer_with_metadata_routing(table):
    X, y, annotators = table
    with sklearn.config_context(enable_metadata_routing=True):
        # fit requests annotators by default ...
        search = GridSearchCV(tiny(n_episodes=2), {"inner_lr": [0.01, 0.05]},
                              cv=GroupKFold(2), scoring=personalized_scorer("ccc"))
        search.fit(X, y, groups=annotators, annotators=annotators)
        assert search.best_estimator_.tasks_ == "annotator"
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        # ... and set_fit_request, as in the metrics docstring, works too.
        est = tiny(n_episodes=2).set_fit_request(annotators=True)
        routed = cross_validate(est, X, y, cv=GroupKFold(2),
                                scoring=personalized_scorer(["ccc", "neg_rmse"]),
                                params={"groups": annotators, "annotators": annotators},
                                return_estimator=True)
    assert np.isfinite(routed["test_ccc"]).all()
    assert all(e.tasks_ == "annotator" for e in routed["estimator"])
    # Same splits, fits and support draws as the routing-free helper.
    direct = cross_validate_personalized(tiny(n_episodes=2), X, y, annotators,
                                         cv=GroupKFold(2), scoring=["ccc"])
    np.testing.assert_allclose(routed["test_ccc"], direct["test_ccc"])


# ---------------------------------------------------------------------------
# 7. Errors
# ---------------------------------------------------------------------------


_INT = r"must be an int in the range \[1, inf\)"
_POSITIVE = r"must be a float in the range \(0.0, inf\)"


@pytest.mark.parametrize("params, match", [
    (dict(n_episodes=0), "'n_episodes' parameter of DSAMLRegressor " + _INT),
    (dict(n_episodes=2.0), "'n_episodes' parameter of DSAMLRegressor " + _INT),
    (dict(inner_steps=True), "'inner_steps' parameter of DSAMLRegressor must be an int"),
    (dict(inner_lr=0.0), "'inner_lr' parameter of DSAMLRegressor " + _POSITIVE),
    (dict(inner_lr=float("inf")), "'inner_lr' parameter of DSAMLRegressor " + _POSITIVE),
    (dict(outer_lr="1e-3"), "'outer_lr' parameter of DSAMLRegressor " + _POSITIVE),
    (dict(meta_learning="x"), "'meta_learning' parameter of DSAMLRegressor must be a str among"),
    (dict(tasks="listener"), "'tasks' parameter of DSAMLRegressor must be a str among"),
    (dict(inner_params="x"), "'inner_params' parameter of DSAMLRegressor must be a str among"),
    (dict(train_window=0), "'train_window' parameter of DSAMLRegressor " + _INT),
    (dict(validation_fraction=1.0),
     r"'validation_fraction' parameter of DSAMLRegressor must be a float in the range "
     r"\[0.0, 1.0\)"),
    (dict(device="tpu"), "device must be 'auto', 'cpu' or 'cuda"),
    (dict(random_state="seed"), "'random_state' parameter of DSAMLRegressor must be an int"),
    (dict(size="huge"), "'size' parameter of DSAMLRegressor must be a str among"),
    (dict(predict_batch_size=0), "'predict_batch_size' parameter of DSAMLRegressor " + _INT),
    (dict(checkpoint_interval=0, checkpoint_path="unused.pt"),
     "'checkpoint_interval' parameter of DSAMLRegressor " + _INT),
    (dict(patience=-1), "'patience' parameter of DSAMLRegressor must be an int"),
    (dict(max_grad_norm=float("nan")), "'max_grad_norm' parameter of DSAMLRegressor"),
    (dict(frame_offset=-1.0), "'frame_offset' parameter of DSAMLRegressor"),
])
def test_invalid_parameters(table, params, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y, annotators = table
    with pytest.raises(ValueError, match=match):
        tiny(**params).fit(X, y, annotators=annotators)


def test_numpy_float32_learning_rate_is_accepted(table):
    X, y, annotators = table
    tiny(inner_lr=np.float32(0.05), n_episodes=1).fit(X, y, annotators=annotators)


def test_cuda_without_gpu(table):
    if torch.cuda.is_available():
        pytest.skip("a GPU is available")
    X, y, annotators = table
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        tiny(device="cuda").fit(X, y, annotators=annotators)


def test_bad_input_errors(table):
    X, y, annotators = table
    est = tiny(n_episodes=1)
    with pytest.raises(ValueError, match="X has 16 songs but y has 15"):
        est.fit(X, y[:-1], annotators=annotators)
    with pytest.raises(ValueError, match="annotators must hold one id per song"):
        est.fit(X, y, annotators=annotators[:-1])
    with pytest.raises(ValueError, match="annotators contains NaN"):
        est.fit(X, y, annotators=np.r_[np.nan, np.arange(len(X) - 1.0)])
    long = list(y)
    long[3] = np.zeros((len(X[3]) + 1, 2), np.float32)
    with pytest.raises(ValueError, match=r"y\[3\] has .* do not line up"):
        est.fit(X, long, annotators=annotators)
    nan = list(y)
    nan[2] = y[2].copy()
    nan[2][4, 1] = np.nan
    with pytest.raises(ValueError, match=r"y\[2\] has NaN or infinite labels .*first: \[4\]"):
        est.fit(X, nan, annotators=annotators)
    for shape in [(12, 3), (12,), (0, 2)]:
        bad = list(y)
        bad[1] = np.zeros(shape, np.float32)
        with pytest.raises(ValueError, match=r"y\[1\] must have shape \(n_frames, 2\)"):
            est.fit(X, bad, annotators=annotators)
    with pytest.raises(ValueError, match="X is empty"):
        est.fit([], [])
    with pytest.raises(ValueError, match="single 2-D array"):
        est.fit(X[:1], y[0])
    with pytest.raises(ValueError, match="y is required"):
        est.fit(X, None)
    with pytest.raises(TypeError, match="wrap a single song in a list"):
        est.fit(X[0], y[:1])
    with pytest.raises(TypeError, match="not a numeric array"):
        est.fit(np.zeros((4, 3)), y[:4])
    assert not hasattr(est, "network_")


def test_annotator_with_one_song(table):
    X, y, annotators = table
    X, y, annotators = X + [X[0]], y + [y[0]], np.concatenate([annotators, ["lonely"]])
    with pytest.raises(ValueError, match=r"1 task group\(s\) have 1 song\(s\) or fewer.*lonely"):
        tiny(tasks="annotator", n_support=1).fit(X, y, annotators=annotators)


def test_annotator_tasks_need_annotators(table):
    X, y, _ = table
    with pytest.raises(ValueError, match="tasks='annotator' needs annotator ids"):
        tiny(tasks="annotator").fit(X, y)


def test_predict_errors(fitted):
    songs, _ = make_songs(2, seed=1)
    for method, args in [("predict", (songs,)), ("score", (songs, [np.zeros((12, 2))] * 2))]:
        with pytest.raises(NotFittedError):
            getattr(tiny(), method)(*args)
    other, _ = make_songs(2, patch=(6, 10), seed=1)
    with pytest.raises(ValueError, match="do not match the ones the model was trained on"):
        fitted.predict(other)
    other, _ = make_songs(2, global_dim=4, seed=1)
    with pytest.raises(ValueError, match="do not match the ones the model was trained on"):
        fitted.predict(other)
    encoded = [SongFeatures(s.local_patches, s.global_embeddings, encoder="imagebind")
               for s in songs]
    with pytest.raises(ValueError, match="do not match the ones the model was trained on"):
        fitted.predict(encoded)
    wide = make_songs(1, patch=(6, 10))[0][0]
    mixed = [songs[0], SongFeatures(wide.local_patches, wide.global_embeddings, source="wide")]
    with pytest.raises(ValueError, match="features of one kind"):
        fitted.predict(mixed)
    with pytest.raises(ValueError, match="X is empty"):
        fitted.predict([])
    other, curves = make_songs(1, patch=(6, 10), seed=1)
    with pytest.raises(ValueError, match="do not match"):
        copy.deepcopy(fitted).personalize(other, curves)


# ---------------------------------------------------------------------------
# 8. Checkpoints: tests/meta/test_trainer.py
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# 9. Audio input
# ---------------------------------------------------------------------------


def test_audio_tuples_end_to_end(monkeypatch, tmp_path):
    rate = 8000
    rng = np.random.default_rng(0)
    waves = [(rng.normal(scale=0.1, size=6 * rate).astype(np.float32), rate)
             for _ in range(3)]
    X, y, annotators = [], [], []
    for a, shift in enumerate((-0.2, 0.3)):
        for w in waves:
            X.append(w)
            y.append(np.clip(rng.normal(size=(12, 2)) * 0.3 + shift, -1, 1).astype(np.float32))
            annotators.append(f"L{a}")
    calls = []
    original = AudioFeatures.transform

    def counting(self, items, n_frames=None):
        calls.append(len(items))
        return original(self, items, n_frames)

    monkeypatch.setattr(AudioFeatures, "transform", counting)
    features = AudioFeatures(sample_rate=rate, n_mels=16, global_window=4.0)
    est = tiny(front_end=features, n_episodes=2)
    est.fit(X, y, annotators=np.array(annotators))
    assert calls == [3]  # 6 rows, 3 distinct songs, one extraction each
    assert est.feature_spec_["n_mels"] == 16
    assert est.encoder_ == "logmel-stats"
    out = est.predict([waves[0], waves[1], waves[0]])
    assert calls == [3, 2]
    assert [p.shape for p in out] == [(12, 2)] * 3
    assert all(np.isfinite(p).all() for p in out)
    np.testing.assert_array_equal(out[0], out[2])
    est.personalize([waves[2]], [y[2][:10]])  # labels may be shorter than the audio
    assert est.listener_.info["n_frames"] == 10
    assert predictions_differ(est.predict(waves[:2]), out[:2])
    # The front end's settings travel with the saved model.
    est.save(tmp_path / "audio.safetensors")
    loaded = pdmer.load(tmp_path / "audio.safetensors")
    assert loaded.get_params()["front_end__n_mels"] == 16
    assert_predictions_equal(loaded.predict([waves[0], waves[1], waves[0]]), out)


def test_fitted_model_keeps_its_encoder_when_auto_would_now_pick_another(tmp_path, monkeypatch):
    from pdmer.features import encoders

    rng = np.random.default_rng(0)
    songs = [(rng.normal(scale=0.1, size=16000 * 4).astype(np.float32), 16000) for _ in range(4)]
    y = [rng.uniform(-1, 1, size=(8, 2)).astype(np.float32) for _ in songs]
    est = tiny(front_end=AudioFeatures(n_mels=16, global_encoder="auto",
                                      cache_dir=tmp_path / "cache"))
    est.fit(songs, y)
    assert est.encoder_ == "logmel-stats"
    est.save(tmp_path / "model.safetensors")  # a Path parameter is stored as a string
    before = est.predict(songs[:1])

    def imagebind_installed(device="cpu"):
        raise AssertionError("a fitted model must not resolve 'auto' again")

    monkeypatch.setitem(encoders._REGISTRY, "auto", (imagebind_installed, lambda: ""))
    assert_predictions_equal(est.predict(songs[:1]), before)
    loaded = pdmer.load(tmp_path / "model.safetensors")
    assert_predictions_equal(loaded.predict(songs[:1]), before)
