"""What the estimators add to training: presets, input normalisation, Meta-SGD,
frame offsets, adaptation mode, refusals of non-finite settings, the public
front-end and parameter API."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open

import pdmer
from pdmer import (
    AudioFeatures,
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    DSAMLRegressor,
    MCRNNRegressor,
    SongFeatures,
)
from pdmer.estimators import FrameOffsetWarning, TRAINING_PRESETS
from pdmer.estimators.persistence import ESTIMATORS, model_id
from pdmer.nn.device import resolve_device

from helpers import TINY_MODEL, tiny, make_annotator_table, make_songs

pytestmark = pytest.mark.filterwarnings("ignore::pdmer.estimators.exceptions.CollapseWarning")

ALL = [DSAMLRegressor, CRNNRegressor, DNNRegressor, MCRNNRegressor, DAMFFRegressor]



@pytest.fixture(scope="module")
def table():
    # Global embeddings far from zero mean and unit scale, as logmel-stats gives.
    X, y, annotators = make_annotator_table()
    shifted = {}
    for x in X:
        if x.source not in shifted:
            shifted[x.source] = SongFeatures(x.local_patches * 3 - 8,
                                             x.global_embeddings * 4 + 10, source=x.source)
    return [shifted[x.source] for x in X], y, annotators


@pytest.fixture(scope="module")
def fitted(table):
    X, y, annotators = table
    return tiny().fit(X, y, annotators=annotators)


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=[c.__name__ for c in ALL])
def test_presets_carry_every_setting_and_params_stay_none(cls):
    presets = cls.presets()
    assert set(presets) == set(cls._architectures)
    for settings in presets.values():
        assert set(TRAINING_PRESETS["small"]) <= set(settings)
        assert all(settings[name] is not None for name in TRAINING_PRESETS["small"])
    est = cls(size="small")
    for name in TRAINING_PRESETS["small"]:
        assert getattr(est, name) is None  # None means "the preset's value"
    assert est.resolved_params() == presets["small"]
    assert cls(size="small", outer_lr=0.5).resolved_params()["outer_lr"] == 0.5
    presets["small"]["outer_lr"] = -1  # a copy
    assert cls.presets()["small"]["outer_lr"] > 0


def test_paper_preset_is_the_paper():
    paper = DSAMLRegressor.presets()["paper"]
    assert {k: paper[k] for k in ("n_episodes", "tasks_per_step", "n_query", "inner_steps",
                                  "inner_lr", "outer_lr", "inner_params", "train_window")} == \
        dict(n_episodes=2000, tasks_per_step=16, n_query=15, inner_steps=16, inner_lr=5e-3,
             outer_lr=5e-5, inner_params="all", train_window=60)
    assert (paper["d_model"], paper["n_heads"], paper["n_layers"], paper["d_ff"],
            paper["lstm_hidden"], paper["head_hidden"]) == (1024, 16, 3, 2048, 256, 256)
    # Nothing the paper does not have.
    assert paper["input_normalization"] is False
    assert paper["patience"] == 0 and paper["max_grad_norm"] == 0


def test_fit_resolves_the_preset_without_changing_parameters(table):
    X, y, annotators = table
    est = DSAMLRegressor(**{**TINY_MODEL, "inner_steps": None, "train_window": None})
    est.fit(X, y, annotators=annotators)
    assert est.inner_steps is None and est.train_window is None
    assert est.resolved_params_["inner_steps"] == TRAINING_PRESETS["small"]["inner_steps"]
    assert est.resolved_params_["train_window"] == TRAINING_PRESETS["small"]["train_window"]
    assert est.listener_ is None
    est.personalize(X[:1], y[:1])
    # The preset's method personalizes from its recentered start in fewer steps.
    assert est.listener_.info["steps"] == est.personalization_steps_ == TRAINING_PRESETS[
        "small"]["meta_learning"].recentered_steps


def test_train_window_full_trains_on_whole_songs(table):
    X, y, annotators = table
    whole = tiny(train_window="full", validation_fraction=0.0).fit(X, y, annotators=annotators)
    long = tiny(train_window=1000, validation_fraction=0.0).fit(X, y, annotators=annotators)
    assert whole.history_["loss"] == long.history_["loss"]


# ---------------------------------------------------------------------------
# Input normalisation
# ---------------------------------------------------------------------------


def test_normalisation_statistics_come_from_the_training_songs(fitted, table):
    X, _, annotators = table
    norm = fitted.network_.input_normalization
    assert norm.fitted
    # The training annotators' distinct songs (the validation annotator's are left out).
    songs = {}
    for x, a in zip(X, annotators):
        songs.setdefault(x.source, (x, set()))[1].add(a)
    glob = np.concatenate([x.global_embeddings for x, _ in songs.values()])
    assert np.allclose(norm.global_mean.numpy(), glob.mean(0), atol=0.5)
    assert np.allclose(norm.global_scale.numpy(), glob.std(0), rtol=0.3)
    local = np.concatenate([x.local_patches.reshape(-1, x.local_patches.shape[-1])
                            for x, _ in songs.values()])
    assert np.allclose(norm.local_mean.numpy(), local.mean(0), atol=1.0)
    assert abs(float(norm.global_mean.mean()) - 10) < 1  # the shift is learned ...
    assert abs(float(norm.global_scale.mean()) - 4) < 1  # ... and the scale


def test_normalisation_is_saved_loaded_and_part_of_the_model_id(fitted, table, tmp_path):
    X, _, _ = table
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
    assert {"input_normalization.global_mean", "input_normalization.global_scale",
            "input_normalization.local_mean", "input_normalization.local_scale"} <= keys
    loaded = pdmer.load(path)
    for name in ("global_mean", "global_scale", "local_mean", "local_scale"):
        assert torch.equal(getattr(loaded.network_.input_normalization, name),
                           getattr(fitted.network_.input_normalization, name))
    assert loaded.model_id_ == fitted.model_id_
    for p, q in zip(loaded.predict(X[:3]), fitted.predict(X[:3])):
        np.testing.assert_array_equal(p, q)
    # Other statistics, other model: listener files of one are refused by the other.
    loaded.network_.input_normalization.global_mean += 1
    assert model_id(loaded.network_) != fitted.model_id_


def test_normalisation_can_be_turned_off(fitted, table):
    X, y, annotators = table
    off = tiny(input_normalization=False).fit(X, y, annotators=annotators)
    assert not hasattr(off.network_, "input_normalization")
    assert off.history_["loss"] != fitted.history_["loss"]


@pytest.mark.parametrize("cls", ALL[1:], ids=[c.__name__ for c in ALL[1:]])
def test_normalisation_works_for_every_estimator(cls):
    X, y, annotators = make_annotator_table()
    waves = {}
    rng = np.random.default_rng(0)
    X = [SongFeatures(x.local_patches, x.global_embeddings, source=x.source,
                      waveforms=waves.setdefault(x.source, rng.normal(
                          size=(x.n_frames, 256)).astype(np.float32)), waveform_rate=512)
         for x in X]
    small = {CRNNRegressor: dict(conv_channels=4, rnn_hidden=4),
             DNNRegressor: dict(conv_channels=4, rnn_hidden=4),
             MCRNNRegressor: dict(view_kernels=(8, 32), conv_channels=4, fusion_dim=8,
                                  rnn_hidden=4),
             DAMFFRegressor: dict(conv_channels=4, scales=(3,), rnn_hidden=4)}[cls]
    est = cls(size="small", n_episodes=2, tasks_per_step=2, n_query=2, inner_steps=1,
              device="cpu", random_state=0, **small).fit(X, y, annotators=annotators)
    assert est.network_.input_normalization.fitted
    assert all(np.isfinite(p).all() for p in est.predict(X[:2]))


# ---------------------------------------------------------------------------
# Meta-SGD
# ---------------------------------------------------------------------------


def test_metasgd_learns_rates_that_are_saved_and_used(table, tmp_path):
    X, y, annotators = table
    est = tiny(meta_learning="metasgd", inner_params="head", n_episodes=3)
    est.fit(X, y, annotators=annotators)
    rates = est.network_.inner_rates.as_dict()
    assert set(rates) == {n for n, _ in est.network_.named_parameters()
                          if n.startswith(("lstm.", "head."))}
    changed = [not torch.allclose(r, torch.full_like(r, TINY_MODEL["inner_lr"]))
               for r in rates.values()]
    assert any(changed)  # meta-learned
    est.personalize(X[:1], y[:1])
    assert est.listener_.info["learned_rates"] is True
    assert set(est.listener_.params) == set(rates)  # the rates are not per-listener
    learned = est.predict(X[:2])
    uniform = est.personalize(X[:1], y[:1], lr=TINY_MODEL["inner_lr"]).predict(X[:2])
    assert any(not np.array_equal(p, q) for p, q in zip(learned, uniform))
    est.save(tmp_path / "metasgd.safetensors")
    loaded = pdmer.load(tmp_path / "metasgd.safetensors")
    for name, rate in loaded.network_.inner_rates.as_dict().items():
        assert torch.equal(rate, rates[name])
    loaded.personalize(X[:1], y[:1])
    for p, q in zip(loaded.predict(X[:2]), learned):
        np.testing.assert_array_equal(p, q)


def test_metasgd_rate_gradient_is_first_order_meta_sgd():
    # One inner step on a quadratic: theta' = theta - alpha * g_s, and the
    # first-order meta-gradient of alpha is -g_s * g_q.
    from pdmer.meta.maml import maml_task_backward

    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    alpha = torch.nn.Parameter(torch.tensor([0.1, 0.3]))
    a, b = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 2.0])

    def support(params, batch):
        return ((params["w"] - a) ** 2).sum()

    def query(params, batch):
        return ((params["w"] - b) ** 2).sum()

    maml_task_backward(support, query, {"w": theta}, ["w"], None, None, 1, {"w": alpha},
                       first_order=True)
    g_s = 2 * (theta.detach() - a)
    adapted = theta.detach() - alpha.detach() * g_s
    g_q = 2 * (adapted - b)
    assert torch.allclose(theta.grad, g_q)
    assert torch.allclose(alpha.grad, -g_s * g_q)


# ---------------------------------------------------------------------------
# Personalization: refusals and the adaptation mode
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("steps, lr", [(0, None), (2, float("inf")), (2, float("nan")),
                                       (2, -1.0), (2.5, None), (True, None), (2, "0.1")])
def test_personalize_refuses_bad_steps_and_lr(fitted, table, steps, lr):
    X, y, _ = table
    with pytest.raises(ValueError, match="steps >= 1 and lr > 0"):
        fitted.adapt_listener(X[:1], y[:1], steps=steps, lr=lr)


def test_diverging_adaptation_is_refused_and_nothing_is_stored(fitted, table, monkeypatch):
    import copy

    X, y, _ = table
    est = copy.deepcopy(fitted)
    # Whether a huge step overflows depends on the gradients (the moment fit
    # rescales the output); a method whose steps overflow does, always.
    method = type(est._session().method())
    adapt = method.adapt

    def overflowing(self, learner, batch, steps, lr, progress=None):
        return {n: p * float("inf") for n, p in adapt(self, learner, batch, steps, lr).items()}

    monkeypatch.setattr(method, "adapt", overflowing)
    with pytest.raises(FloatingPointError, match="Adaptation diverged.*not finite"):
        est.personalize(X[:1], y[:1])
    assert est.listener_ is None


def test_adaptation_does_not_switch_the_network_mode(fitted, table):
    X, y, _ = table
    modes = []
    hooks = [m.register_forward_pre_hook(lambda m, a: modes.append(m.training))
             for m in fitted.network_.modules()]
    try:
        fitted.adapt_listener(X[:1], y[:1])
        fitted.predict(X[:1])
    finally:
        for hook in hooks:
            hook.remove()
    assert modes and not any(modes)
    assert not any(m.training for m in fitted.network_.modules())


def test_threads_adapt_and_predict_as_one_thread_does(fitted, table):
    X, y, _ = table
    expected = {}
    for i in range(4):
        listener = fitted.adapt_listener([X[i]], [y[i]])
        expected[i] = fitted.predict(X[4:6], listener=listener)
    results, errors = {}, []

    def serve(i):
        try:
            for _ in range(3):
                listener = fitted.adapt_listener([X[i]], [y[i]])
                results[i] = fitted.predict(X[4:6], listener=listener)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(4):
        for p, q in zip(results[i], expected[i]):
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_plain_training_then_fine_tuning_uses_the_preset_inner_loop(table):
    X, y, annotators = table
    plain = tiny(meta_learning="none", inner_steps=None, inner_lr=None)
    plain.fit(X, y, annotators=annotators)
    before = plain.predict(X[:2])
    plain.personalize(X[:1], y[:1])
    assert plain.listener_.info["steps"] == TRAINING_PRESETS["small"]["inner_steps"]
    assert plain.listener_.info["lr"] == TRAINING_PRESETS["small"]["inner_lr"]
    assert any(not np.array_equal(p, q) for p, q in zip(plain.predict(X[:2]), before))


# ---------------------------------------------------------------------------
# Frame offset, front end, parameters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=[c.__name__ for c in ALL])
def test_frame_offset_is_a_parameter_of_every_estimator(cls):
    assert cls().get_params()["frame_offset"] is None
    est = cls(frame_offset=15, front_end=AudioFeatures(frame_offset=3.0))
    assert est.make_front_end().frame_offset == 15.0
    assert cls(front_end=AudioFeatures(frame_offset=3.0)).make_front_end().frame_offset == 3.0
    assert cls().make_front_end().frame_offset == 0.0


def _audio_rows(rate=8000, seconds=8.0, n_labels=10):
    rng = np.random.default_rng(0)
    waves = [(rng.normal(scale=0.1, size=int(seconds * rate)).astype(np.float32), rate)
             for _ in range(3)]
    X = waves * 2
    y = [np.clip(rng.normal(size=(n_labels, 2)) * 0.3, -1, 1).astype(np.float32) for _ in X]
    return X, y, np.array(["A"] * 3 + ["B"] * 3)


def test_short_labels_without_an_offset_warn(tmp_path):
    X, y, annotators = _audio_rows()  # 16 frames of audio, 10 of labels
    front_end = AudioFeatures(sample_rate=8000, n_mels=16, global_window=4.0)
    est = tiny(front_end=front_end, n_episodes=1)
    with pytest.warns(FrameOffsetWarning, match=r"6 of 6 label curves are shorter.*"
                                                r"set frame_offset"):
        est.fit(X, y, annotators=annotators)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FrameOffsetWarning)
        # An explicit offset, even 0, says where the labels start.
        tiny(front_end=front_end, n_episodes=1, frame_offset=0).fit(X, y, annotators=annotators)
        offset = tiny(front_end=front_end, n_episodes=1, frame_offset=3.0)
        offset.fit(X, y, annotators=annotators)
        # One frame shorter is rounding, not a missing offset.
        short = [v[:15] for v in _audio_rows(n_labels=15)[1]]
        tiny(front_end=front_end, n_episodes=1).fit(X, short, annotators=annotators)
    # The offset is used: audio from 3 s on pairs with the labels.
    songs = offset.make_front_end().transform(X[:1])
    assert songs[0].frame_offset == 3.0 and songs[0].n_frames == 10


def test_make_front_end_keeps_the_fitted_encoder(fitted):
    est = tiny(front_end=AudioFeatures(global_encoder="auto"))
    assert est.make_front_end().global_encoder == "auto"
    est.encoder_ = "logmel-stats"
    assert est.make_front_end().global_encoder == "logmel-stats"
    assert est.front_end.global_encoder == "auto"  # the parameter is not changed


def test_check_params_is_public_and_names_the_parameter():
    assert tiny().check_params() is not None
    with pytest.raises(ValueError, match="'patience' parameter of DSAMLRegressor"):
        tiny(patience=-2).check_params()
    with pytest.raises(ValueError, match="'size' parameter of DSAMLRegressor"):
        tiny(size="huge").check_params()


def test_registry_is_public():
    assert ESTIMATORS["DSAMLRegressor"] is DSAMLRegressor
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda"):
        resolve_device("tpu")


def test_song_fields_use_the_song_features_names():
    from pdmer.meta.batch import Song, collate

    songs, curves = make_songs(2)
    song = Song(torch.from_numpy(songs[0].local_patches),
                torch.from_numpy(songs[0].global_embeddings), torch.from_numpy(curves[0]))
    batch = collate([song, song.crop(0, 5)], "cpu")
    assert batch.local_patches.shape[:2] == batch.global_embeddings.shape[:2] == (2, 12)
    assert batch.waveforms is None and batch.lengths.tolist() == [12, 5]


# --------------------------------------------------------------- task batching
def test_batched_tasks_train_what_sequential_tasks_train(table):
    # Without dropout the two ways of running an episode's tasks differ by
    # float rounding only, which Adam lifts to ~1e-4 where gradients are ~0
    # (the bias of a convolution before BatchNorm).
    X, y, annotators = table
    fits = {mode: tiny(task_batching=mode, dropout=0.0, n_episodes=2).fit(
        X, y, annotators=annotators) for mode in ("sequential", "vmap")}
    for (name, a), b in zip(fits["sequential"].network_.state_dict().items(),
                            fits["vmap"].network_.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-3, rtol=0, msg=lambda m: f"{name}: {m}")
    assert tiny(task_batching=2, n_episodes=1).fit(X, y, annotators=annotators).network_


@pytest.mark.parametrize("params, match", [
    (dict(estimator=CRNNRegressor, task_batching="vmap"), "cannot batch tasks"),
    (dict(meta_learning="metasgd", task_batching="vmap"), "'metasgd' cannot batch"),
    (dict(task_batching="together"), "task_batching"),
])
def test_batched_tasks_are_refused_where_they_cannot_run(table, params, match):
    X, y, annotators = table
    params = dict(params)
    cls = params.pop("estimator", DSAMLRegressor)
    small = {k: v for k, v in TINY_MODEL.items() if k in cls().get_params()}
    with pytest.raises(ValueError, match=match):
        cls(**{**small, **params}).fit(X, y, annotators=annotators)


def test_auto_batches_tasks_on_cuda_only(table):
    X, y, annotators = table
    model = tiny(n_episodes=1).fit(X, y, annotators=annotators)
    assert model.meta_learner().task_batching == "sequential"  # the CPU: 2x slower batched


# ------------------------------------------------------------------- bfloat16
def test_bf16_on_the_cpu_runs_where_native_and_warns_elsewhere(table, monkeypatch):
    from pdmer.nn import precision

    X, y, annotators = table
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="runs float32"):
        plain = tiny(precision="bf16", n_episodes=1).fit(X, y, annotators=annotators)
    reference = tiny(precision="fp32", n_episodes=1).fit(X, y, annotators=annotators)
    for a, b in zip(plain.predict(X[:2]), reference.predict(X[:2])):
        np.testing.assert_array_equal(a, b)  # float32 both: bit-identical

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*runs float32")
        fast = tiny(precision="bf16", n_episodes=1).fit(X, y, annotators=annotators)
    predictions = fast.predict(X[:2])
    assert all(np.isfinite(p).all() for p in predictions)
    # bfloat16 keeps ~3 significant digits: close to float32, not equal.
    difference = max(float(np.abs(a - b).max()) for a, b in zip(predictions,
                                                                  reference.predict(X[:2])))
    assert 0 < difference < 0.05


def test_a_float32_model_serves_in_bf16_after_set_params(fitted, table, tmp_path, monkeypatch):
    # The performance guide's advice for serving on bfloat16 CPUs: train in
    # float32, then personalize and predict with precision="bf16", no refit.
    from pdmer.nn import precision

    X, y, annotators = table
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    fitted.save(tmp_path / "model.safetensors")
    model = pdmer.load(tmp_path / "model.safetensors")
    support = [X[0]], [y[0]]

    def served():
        listener = model.adapt_listener(*support, steps=3, lr=0.05)
        return model.predict(X[:2]) + model.predict(X[:2], listener=listener)

    in_fp32 = served()
    model.set_params(precision="bf16")
    assert model.meta_learner().bf16_names()  # the learner now autocasts
    in_bf16 = served()
    # The population curves differ by bfloat16's ~3 digits on the same weights.
    # (Personalized ones are only checked to run: on this near-flat tiny model
    # the listener's delay is a near tie that rounding may tip; the suite's
    # networks personalize the same in both, benchmarks/scale.md.)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(in_bf16[:2], in_fp32[:2]))
    assert 0 < difference < 0.01
    assert all(np.isfinite(p).all() for p in in_bf16[2:])
    model.set_params(precision="auto")  # float32 on the CPU: exactly as before
    for a, b in zip(served(), in_fp32):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("inner_params", ["head", "all"])
def test_bf16_copies_of_linear_weights_change_no_value(table, monkeypatch, inner_params):
    # Under bfloat16 autocast, inner loops and personalization differentiate
    # bfloat16 copies of the linear layers' weights (no gradient cast back to
    # float32 each step): exactly what autocast's own casts give.
    import torch

    from pdmer.meta.learner import MetaLearner
    from pdmer.nn import precision

    X, y, annotators = table
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    params = dict(precision="bf16", inner_params=inner_params, n_episodes=3)
    listener = [i for i, a in enumerate(annotators) if a == annotators[0]][:1]
    support = [X[i] for i in listener], [y[i] for i in listener]

    def fit_and_personalize():
        model = tiny(**params).fit(X, y, annotators=annotators)
        adapted = model.personalize(*support, steps=3, lr=0.05).predict(X[:2])
        return model, adapted

    copies, copies_adapted = fit_and_personalize()
    names = copies.meta_learner().bf16_names()
    linear = {f"{m}.{p}" for m, module in copies.network_.named_modules()
              if isinstance(module, torch.nn.Linear) for p in ("weight", "bias")}
    assert names and set(names) <= linear and set(names) <= set(copies.meta_learner().names)
    monkeypatch.setattr(MetaLearner, "bf16_names", lambda self: [])
    casts, casts_adapted = fit_and_personalize()
    for a, b in zip(copies.network_.state_dict().values(), casts.network_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(copies_adapted, casts_adapted):
        np.testing.assert_array_equal(a, b)
