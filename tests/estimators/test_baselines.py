"""Tests of the baseline estimators CRNN, DNN, MCRNN and DAMFF.

They share DSAMLRegressor's base (tested in depth in test_estimator.py);
these tests check what differs per model: the networks, their inputs (log-mel
patches or raw waveforms), the head used by ``inner_params="head"``, and that
the shared API works for each: fit with every meta-learning option,
personalize, predict, save/load, clone, pickling and GridSearchCV.
"""

from __future__ import annotations

import dataclasses

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.utils import estimator_checks

import pdmer
from pdmer import (
    AudioFeatures,
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    DSAMLRegressor,
    MCRNNRegressor,
)
from pdmer.experiments import PAPER_FEATURES, parameter_counts
from pdmer.estimators.base import DEFAULT_WAVEFORM_RATE
from pdmer.scoring import get_scorer
from pdmer.nn.baselines import CRNNNet, DAMFFNet, DNNNet, MCRNNNet

from helpers import LISTENER_CALIBRATION, make_annotator_table

WAVE_SAMPLES = 256
TRAINING = dict(n_episodes=3, tasks_per_step=2, n_query=2, inner_steps=2, inner_lr=0.05,
                outer_lr=1e-3, validation_interval=2, device="cpu", random_state=0)
TINY = {
    CRNNRegressor: dict(size="small", conv_channels=4, rnn_hidden=4),
    DNNRegressor: dict(size="small", conv_channels=4, rnn_hidden=4),
    MCRNNRegressor: dict(size="small", view_kernels=(8, 32), conv_channels=4, fusion_dim=8,
                         rnn_hidden=4),
    DAMFFRegressor: dict(size="small", conv_channels=4, scales=(3, 5), rnn_hidden=4),
}
CLASSES = list(TINY)
IDS = [cls.__name__ for cls in CLASSES]


def tiny(cls, **params):
    return cls(**{**TRAINING, **TINY[cls], **params})


def with_waves(X, seed=0):
    """The same songs with raw audio per frame (one waveform per distinct song)."""
    rng = np.random.default_rng(seed)
    cache = {}
    out = []
    for song in X:
        if id(song) not in cache:
            waves = rng.normal(scale=0.1, size=(song.n_frames, WAVE_SAMPLES)).astype(np.float32)
            # Tie the waveform to the labels' source (the global embedding) a little.
            waves += song.global_embeddings[:, :1] * 0.1
            cache[id(song)] = dataclasses.replace(song, waveforms=waves, waveform_rate=512)
        out.append(cache[id(song)])
    return out


@pytest.fixture(scope="module")
def table():
    X, y, annotators = make_annotator_table()
    return with_waves(X), y, annotators


@pytest.fixture(scope="module")
def fitted(table):
    X, y, annotators = table
    torch.set_num_threads(1)
    return {cls: tiny(cls).fit(X, y, annotators=annotators) for cls in CLASSES}


def differ(a, b):
    return any(not np.array_equal(p, q) for p, q in zip(a, b))


# --------------------------------------------------------------------- API
@pytest.mark.parametrize("check_name", [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_estimator_cloneable",
    "check_estimator_repr", "check_mixin_order", "check_estimators_unfitted",
    "check_param_validation",
])
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_sklearn_data_free_checks(cls, check_name):
    getattr(estimator_checks, check_name)(cls.__name__, tiny(cls))


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_docstrings_cite_paper_input_and_interpretations(cls):
    doc = cls.__doc__
    assert "**Input**" in doc and "Interpretations" in doc
    assert any(year in doc for year in ("2017", "2019", "2020", "2023"))
    assert "meta_learning : str or MetaLearningMethod" in doc  # the shared parameters
    assert "%(" not in doc


@pytest.mark.parametrize("meta_learning", ["fomaml", "maml", "none"])
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_fit_personalize_predict(cls, meta_learning, table):
    X, y, annotators = table
    est = tiny(cls, meta_learning=meta_learning)
    assert est.fit(X, y, annotators=annotators) is est
    assert est.tasks_ == "annotator"
    assert len(est.history_["loss"]) == TRAINING["n_episodes"]
    assert all(np.isfinite(est.history_["loss"]))
    songs = X[:3]
    plain = est.predict(songs)
    assert [p.shape for p in plain] == [(s.n_frames, 2) for s in songs]
    assert all(np.isfinite(p).all() for p in plain)
    before = {k: v.clone() for k, v in est.network_.state_dict().items()}
    est.personalize(X[:1], y[:1])
    personal = est.predict(songs)
    assert differ(personal, plain)
    # The meta-parameters never change; resetting restores the predictions.
    assert all(torch.equal(before[k], v) for k, v in est.network_.state_dict().items())
    est.reset_personalization()
    for p, q in zip(est.predict(songs), plain):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_song_tasks_and_no_annotators(cls, table):
    X, y, _ = table
    est = tiny(cls, meta_learning="none", n_episodes=2).fit(X, y)
    assert est.tasks_ == "song"


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_inner_params_head_adapts_rnn_and_head_only(cls, table):
    X, y, annotators = table
    est = tiny(cls, inner_params="head", n_episodes=2).fit(X, y, annotators=annotators)
    plain = est.predict(X[:2])
    est.personalize(X[:1], y[:1])
    names = {n for n, _ in est.network_.named_parameters()}
    head = {n for n in names if n.startswith(("rnn.", "head."))}
    assert head and head != names
    # The small preset calibrates the output first (CalibrateThenAdapt): its map is kept too.
    assert set(est.listener_.params) == head | LISTENER_CALIBRATION
    assert differ(est.predict(X[:2]), plain)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_save_load_clone_pickle(cls, fitted, table, tmp_path):
    X, y, _ = table
    est = fitted[cls]
    expected = est.predict(X[:3])
    path = tmp_path / "model.safetensors"
    est.save(path)
    loaded = pdmer.load(path)
    assert type(loaded) is cls
    assert loaded.get_params().keys() == est.get_params().keys()
    assert loaded.model_id_ == est.model_id_
    for p, q in zip(loaded.predict(X[:3]), expected):
        np.testing.assert_array_equal(p, q)
    # A listener adapted on the loaded model can be used by the original.
    loaded.personalize(X[:1], y[:1])
    loaded.listener_.save(tmp_path / "listener.safetensors")
    copy = joblib.load(_dump(est, tmp_path))
    copy.use_listener(tmp_path / "listener.safetensors")
    for p, q in zip(copy.predict(X[:3]), loaded.predict(X[:3])):
        np.testing.assert_array_equal(p, q)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        cloned.predict(X[:1])


def _dump(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return path


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_same_seed_repeats(cls, fitted, table):
    X, y, annotators = table
    again = tiny(cls).fit(X, y, annotators=annotators)
    assert again.model_id_ == fitted[cls].model_id_


def test_grid_search(table):
    X, y, annotators = table
    search = GridSearchCV(tiny(CRNNRegressor, n_episodes=2, validation_fraction=0),
                          {"rnn_hidden": [2, 4]}, cv=GroupKFold(2), scoring=get_scorer("ccc"))
    search.fit(X, y, groups=annotators)
    assert search.best_params_["rnn_hidden"] in (2, 4)
    assert type(search.best_estimator_) is CRNNRegressor


# ------------------------------------------------------------- parameters
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_parameter_counts(cls, fitted):
    est = fitted[cls]
    assert est.n_parameters_ == sum(p.numel() for p in est.network_.parameters())
    assert clone(est).count_parameters(est.feature_spec_) == est.n_parameters_
    small, paper = (cls(size=size).count_parameters(PAPER_FEATURES) for size in
                    ("small", "paper"))
    assert 0 < small < paper < DSAMLRegressor(size="small").count_parameters(
        dict(PAPER_FEATURES, global_dim=128)) or cls is MCRNNRegressor
    with pytest.raises(NotFittedError):
        _ = clone(est).n_parameters_


def test_parameter_count_table():
    counts = parameter_counts()
    assert counts["dsaml"] == 29_508_019  # the paper's DSAML (benchmarks/README.md)
    assert set(counts) == {"dsaml", "damff", "mcrnn", "dnn", "crnn"}
    # CRNN is the paper's "compact" model.
    assert counts["crnn"] == min(counts.values())


def test_count_parameters_does_not_move_the_global_rng():
    state = torch.random.get_rng_state()
    CRNNRegressor().count_parameters(PAPER_FEATURES)
    assert torch.equal(state, torch.random.get_rng_state())


# ------------------------------------------------------------------ inputs
@pytest.mark.parametrize("cls", [DNNRegressor, MCRNNRegressor], ids=["DNN", "MCRNN"])
def test_waveform_models_need_waveforms(cls):
    X, y, annotators = make_annotator_table()
    with pytest.raises(ValueError, match=r"raw audio.*AudioFeatures\(waveform_rate=16000\)"):
        tiny(cls).fit(X, y, annotators=annotators)
    assert cls()._default_features().waveform_rate == DEFAULT_WAVEFORM_RATE


@pytest.mark.parametrize("cls", [CRNNRegressor, DAMFFRegressor], ids=["CRNN", "DAMFF"])
def test_log_mel_models_ignore_waveforms(cls):
    X, y, annotators = make_annotator_table()
    assert cls()._default_features().waveform_rate is None
    est = tiny(cls, n_episodes=1).fit(X, y, annotators=annotators)
    assert est.feature_spec_["n_waveform_samples"] == 0


def test_too_short_waveforms_are_refused(table):
    X, y, annotators = table
    short = [dataclasses.replace(s, waveforms=s.waveforms[:, :32]) for s in X]
    with pytest.raises(ValueError, match="fewer than the first convolution's kernel"):
        tiny(DNNRegressor).fit(short, y, annotators=annotators)  # the first kernel is 64
    with pytest.raises(ValueError, match="largest view kernel"):
        tiny(MCRNNRegressor, view_kernels=(8, 512)).fit(X, y, annotators=annotators)


def test_waveform_model_end_to_end_from_audio(tmp_path):
    rate = 8000
    rng = np.random.default_rng(0)
    waves = [(rng.normal(scale=0.1, size=4 * rate).astype(np.float32), rate) for _ in range(3)]
    X = waves * 2
    y = [np.clip(rng.normal(size=(8, 2)) * 0.3, -1, 1).astype(np.float32) for _ in X]
    annotators = np.array(["a"] * 3 + ["b"] * 3)
    features = AudioFeatures(sample_rate=rate, n_mels=16, global_window=2.0,
                             waveform_rate=2000)
    est = tiny(MCRNNRegressor, front_end=features, n_episodes=2).fit(X, y, annotators=annotators)
    assert est.feature_spec_["n_waveform_samples"] == 1000
    out = est.predict(waves[:2])
    assert [p.shape for p in out] == [(8, 2), (8, 2)]
    est.save(tmp_path / "m.safetensors")
    loaded = pdmer.load(tmp_path / "m.safetensors")
    for p, q in zip(loaded.predict(waves[:2]), out):
        np.testing.assert_array_equal(p, q)


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("make, frame_shape", [
    (lambda: CRNNNet(12, conv_channels=3, n_conv_layers=2, rnn_hidden=4), (5, 12)),
    (lambda: DAMFFNet(conv_channels=3, scales=(3,), rnn_hidden=4), (5, 12)),
    (lambda: DNNNet(300, conv_channels=3, n_conv_layers=2, rnn_hidden=4), (300,)),
    (lambda: MCRNNNet(300, view_kernels=(8, 64), conv_channels=3, fusion_dim=5,
                      rnn_hidden=4), (300,)),
], ids=["CRNN", "DAMFF", "DNN", "MCRNN"])
def test_padding_never_changes_valid_frames(make, frame_shape):
    torch.manual_seed(0)
    net = make()
    long = torch.randn(1, 9, *frame_shape)
    short = torch.randn(1, 6, *frame_shape)
    lengths = torch.tensor([9, 6])

    def batch(pad_value):
        pad = torch.full((1, 3, *frame_shape), pad_value)
        return torch.cat([long, torch.cat([short, pad], 1)])

    # Training mode: BatchNorm uses batch statistics, which padding must not enter.
    net.train()
    torch.manual_seed(1)  # the same dropout masks
    a = net(batch(9.0), lengths).prediction
    torch.manual_seed(1)
    b = net(batch(-5.0), lengths).prediction
    assert torch.equal(a[0], b[0]) and torch.equal(a[1, :6], b[1, :6])
    # Evaluation: a padded song predicts as it does alone.
    net.eval()
    together = net(batch(9.0), lengths).prediction
    alone = net(short).prediction
    assert torch.allclose(together[1, :6], alone[0], atol=1e-5)


def test_context_skips_the_encoder():
    net = CRNNNet(12, conv_channels=3, n_conv_layers=1, rnn_hidden=4).eval()
    frames = torch.randn(2, 7, 5, 12)
    out = net(frames)
    again = net(None, context=out.context)
    assert torch.equal(out.prediction, again.prediction)
