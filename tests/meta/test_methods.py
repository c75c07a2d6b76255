"""Meta-learning methods as classes: registry, estimator parameter, saving, adaptation."""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

import pdmer
from pdmer import DSAMLRegressor
from pdmer.meta.methods import (
    METHODS,
    CalibrateThenAdapt,
    CalibratedFOMAML,
    FOMAML,
    MetaLearningMethod,
    get_method,
    method_to_json,
)
from pdmer.nn.calibration import ridge_calibration

from helpers import LISTENER_CALIBRATION, TINY_MODEL, make_annotator_table, tiny



@pytest.fixture(scope="module")
def table():
    return make_annotator_table(n_annotators=6, songs_per_annotator=5)


def test_registry_names_and_instances():
    assert set(METHODS) >= {"fomaml", "maml", "metasgd", "none", "calibrated"}
    for name, cls in METHODS.items():
        assert cls.name == name and isinstance(get_method(name), cls)
    method = CalibratedFOMAML(strength=20.0)
    copy = get_method(method)
    assert copy is not method and copy.strength == 20.0
    assert get_method(method_to_json(method)).get_params() == {"fit": "moments",
                                                               "strength": 20.0}
    with pytest.raises(ValueError, match="meta_learning must be one of"):
        get_method("reptile")


def test_estimator_takes_a_name_an_instance_or_the_presets():
    assert DSAMLRegressor.presets()["paper"]["meta_learning"] == "fomaml"
    est = DSAMLRegressor(size="small", meta_learning=CalibratedFOMAML(strength=5.0))
    assert clone(est).meta_learning.strength == 5.0
    assert est.get_params()["meta_learning__strength"] == 5.0  # GridSearchCV can tune it
    with pytest.raises(ValueError, match="'meta_learning' parameter"):
        DSAMLRegressor(meta_learning=3).check_params()


def test_ridge_calibration_matches_least_squares_and_shrinks_to_identity():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 40, 2, generator=g)
    y = -0.7 * p + 0.3 + 0.05 * torch.randn(2, 40, 2, generator=g)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    y[0, 3, 1] = float("nan")  # ignored
    slope, intercept = ridge_calibration(p, y, mask, 0.0, 0.0)
    for d in range(2):
        valid = mask & torch.isfinite(y[..., d])
        A = np.c_[p[..., d][valid].double().numpy(), np.ones(int(valid.sum()))]
        expected = np.linalg.lstsq(A, y[..., d][valid].double().numpy(), rcond=None)[0]
        np.testing.assert_allclose([slope[d], intercept[d]], expected, atol=1e-5)
    slope, intercept = ridge_calibration(p, y, mask, 1e9, 1e9)
    torch.testing.assert_close(slope, torch.ones(2), atol=1e-4, rtol=0)
    slope, intercept = ridge_calibration(p, y, mask, math.inf, math.inf)
    assert slope.tolist() == [1.0, 1.0] and intercept.tolist() == [0.0, 0.0]
    strength = torch.tensor(10.0, requires_grad=True)
    ridge_calibration(p, y, mask, strength, strength)[0].sum().backward()
    assert strength.grad is not None and torch.isfinite(strength.grad)


class IgnoresTheSupport(MetaLearningMethod):
    """A broken method: personalization returns the meta-parameters unchanged."""

    name = "ignores-support"

    def adapt(self, learner, batch, steps, lr, progress=None):
        return {n: p.detach().clone() for n, p in learner.network.named_parameters()
                if n in learner.names}


def support_matters(est, X, y) -> bool:
    """Whether two listeners who label one song oppositely get different curves."""
    reversed_labels = [np.stack([-v[:, 0], -v[:, 1]], axis=1) for v in y[:1]]
    one = est.predict(X[1:3], listener=est.adapt_listener(X[:1], y[:1]))
    two = est.predict(X[1:3], listener=est.adapt_listener(X[:1], reversed_labels))
    return not all(np.allclose(a, b, atol=1e-6) for a, b in zip(one, two))


@pytest.mark.parametrize("method", [*sorted(set(METHODS) - {"maml"}), "ignores-support"])
def test_every_method_personalizes_from_the_support_song(table, method):
    X, y, annotators = table
    est = tiny(meta_learning=IgnoresTheSupport() if method == "ignores-support" else method,
               n_episodes=2).fit(X, y, annotators=annotators)
    # The check must catch a method that silently ignores the support song.
    assert support_matters(est, X, y) == (method != "ignores-support")


def test_calibrated_method_learns_its_strengths_and_saves_the_calibration(table, tmp_path):
    X, y, annotators = table
    est = tiny(meta_learning=CalibratedFOMAML(strength=4.0), n_episodes=3)
    est.fit(X, y, annotators=annotators)
    log_strength = est.network_.listener_calibration.log_strength.detach()
    assert not torch.allclose(log_strength, torch.full_like(log_strength, math.log(4.0)))
    assert all(not n.startswith("listener_calibration.") for n in est.meta_learner().names)
    # A listener who reverses valence moves the valence slope the other way.
    flipped = [np.stack([v[:, 0], -v[:, 1]], axis=1) for v in y[:1]]
    me = est.adapt_listener(X[:1], flipped)
    typical = est.adapt_listener(X[:1], y[:1])
    slopes = [float(a.params["listener_calibration.slope"][1]) for a in (me, typical)]
    assert (slopes[0] - 1) * (slopes[1] - 1) < 0  # moved from the identity both ways
    me.save(tmp_path / "me.safetensors")
    est.save(tmp_path / "model.safetensors")
    loaded = pdmer.load(tmp_path / "model.safetensors")
    assert isinstance(loaded.meta_learning, CalibratedFOMAML)
    assert loaded.meta_learning.strength == 4.0
    for a, b in zip(est.predict(X[1:3], listener=me),
                    loaded.predict(X[1:3], listener=tmp_path / "me.safetensors")):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # The population model's calibration is the identity.
    base = est.predict(X[1:2])[0]
    no_calibration = est.meta_learner()
    no_calibration.method = FOMAML()
    songs = est._session().prepare(est._songs(X[1:2], None))
    np.testing.assert_allclose(base, no_calibration.predict(songs)[0], atol=1e-6)


def test_calibrate_then_adapt_meta_trains_as_fomaml_and_chooses_its_strength(tmp_path):
    X, y, annotators = make_annotator_table(n_annotators=8, songs_per_annotator=5)
    settings = dict(n_episodes=4, validation_fraction=0.25, random_state=0)
    assert DSAMLRegressor.presets()["small"]["meta_learning"] == CalibrateThenAdapt(
        recenter=8, recentered_steps=4)
    fomaml = tiny(meta_learning="fomaml", **settings).fit(X, y, annotators=annotators)
    # With "auto" choices, validation during training personalizes as FOMAML until
    # they are made, so meta-training is FOMAML's to the bit: same weights, same
    # population predictions.
    est = tiny(meta_learning=CalibrateThenAdapt(strength="auto", max_lag="auto"), **settings)
    est.fit(X, y, annotators=annotators)
    weights = fomaml.network_.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in est.network_.state_dict().items()
               if not k.startswith("listener_calibration."))
    for a, b in zip(fomaml.predict(X[:3]), est.predict(X[:3])):
        np.testing.assert_array_equal(a, b)
    # Whether to calibrate, and to look for a delay, was chosen on the validation
    # listeners, by their score.
    choices = est.personalization_choices_
    scores = choices["validation_ccc"]
    names = {(True, 0): "calibrated", (False, 0): "not calibrated",
             (True, 6): "calibrated, delays up to 6 frames",
             (False, 6): "not calibrated, delays up to 6 frames"}
    assert set(scores) == set(names.values())
    assert scores[names[choices["calibrate"], choices["max_lag"]]] == max(scores.values())
    # The choices are the network's (saved with the model), and a listener holds the map.
    calibration = est.network_.listener_calibration
    strength = calibration.strengths()[0][0].item()
    assert (strength < 1e-9) if choices["calibrate"] else (strength == math.inf)
    assert int(calibration.max_lag) == choices["max_lag"]
    est.save(tmp_path / "model.safetensors")
    loaded = pdmer.load(tmp_path / "model.safetensors")
    assert loaded.personalization_choices_ == choices
    me = est.adapt_listener(X[:1], y[:1])
    assert LISTENER_CALIBRATION <= set(me.params)
    for a, b in zip(est.predict(X[1:3], listener=me),
                    loaded.predict(X[1:3], listener=loaded.adapt_listener(X[:1], y[:1]))):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_calibrate_then_adapt_without_calibration_personalizes_as_fomaml(table):
    X, y, annotators = table
    fomaml = tiny(meta_learning="fomaml", n_episodes=2).fit(X, y, annotators=annotators)
    off = tiny(meta_learning=CalibrateThenAdapt(strength=math.inf, max_lag=0), n_episodes=2)
    off.fit(X, y, annotators=annotators)
    assert off.personalization_choices_ == {}  # given settings are not tuned
    for a, b in zip(fomaml.predict(X[1:3], listener=fomaml.adapt_listener(X[:1], y[:1])),
                    off.predict(X[1:3], listener=off.adapt_listener(X[:1], y[:1]))):
        np.testing.assert_array_equal(a, b)


def test_calibrate_then_adapt_follows_a_reversed_listener_before_any_step(table):
    X, y, annotators = table
    est = tiny(meta_learning=CalibrateThenAdapt(strength=0.0, max_lag=0), n_episodes=2)
    est.fit(X, y, annotators=annotators)
    # Labels that are the model's own valence reversed: the map flips valence.
    own = est.predict(X[:1])[0]
    flipped = np.stack([own[:, 0], -own[:, 1]], axis=1)
    slope = est.adapt_listener(X[:1], [flipped]).params["listener_calibration.slope"]
    assert float(slope[1]) < 0 < float(slope[0])
    with pytest.raises(ValueError, match="strength must be 'auto' or a number"):
        tiny(meta_learning=CalibrateThenAdapt(strength=-1.0), n_episodes=1).fit(
            X, y, annotators=annotators)


def test_calibrate_then_adapt_finds_a_late_listener_s_delay(table, tmp_path):
    X, y, annotators = table
    est = tiny(meta_learning=CalibrateThenAdapt(strength=0.0, max_lag=6), n_episodes=2)
    est.fit(X, y, annotators=annotators)
    assert est.personalization_choices_ == {}  # given settings are not tuned
    # A listener who rates what the model predicts, 3 frames (1.5 s) late.
    own = est.predict(X[:1])[0]
    late = np.concatenate([np.repeat(own[:1], 3, axis=0), own[:-3]])
    me = est.adapt_listener(X[:1], [late], steps=1, lr=1e-12)  # next to no step
    assert int(me.params["listener_calibration.lag"]) == 3
    # Their predictions are the population's, 3 frames later.
    population = est.predict(X[1:3])
    for p, q in zip(population, est.predict(X[1:3], listener=me)):
        np.testing.assert_allclose(q[3:], p[:-3], atol=1e-4)
        np.testing.assert_allclose(q[:3], np.repeat(p[:1], 3, axis=0), atol=1e-4)
    # The delay travels in the listener file.
    me.save(tmp_path / "late.safetensors")
    for a, b in zip(est.predict(X[1:3], listener=me),
                    est.predict(X[1:3], listener=tmp_path / "late.safetensors")):
        np.testing.assert_array_equal(a, b)
    # max_lag=0 never delays.
    est.set_params(meta_learning=CalibrateThenAdapt(strength=0.0, max_lag=0))
    est.fit(X, y, annotators=annotators)
    assert int(est.adapt_listener(X[:1], [late], steps=1, lr=1e-12).params[
        "listener_calibration.lag"]) == 0
    with pytest.raises(ValueError, match="max_lag must be 'auto' or a whole number"):
        tiny(meta_learning=CalibrateThenAdapt(max_lag=1.5), n_episodes=1).fit(
            X, y, annotators=annotators)


def test_calibrate_then_adapt_refits_the_calibration_after_its_steps(table):
    X, y, annotators = table

    def fit(rounds):  # no validation: no early stopping, the same network whatever the rounds
        return tiny(meta_learning=CalibrateThenAdapt(strength=0.0, max_lag=0, rounds=rounds),
                    n_episodes=2, validation_fraction=0.0).fit(X, y, annotators=annotators)

    est = fit(2)
    # A listener who rates twice as widely as the model predicts, higher, and noisily.
    own = est.predict(X[:1])[0]
    labels = 2 * own + 0.3 + own.std(0) * np.random.default_rng(0).normal(size=own.shape)
    calls = []
    me = est.adapt_listener(X[:1], [labels], steps=5,
                            progress=lambda step, steps: calls.append((step, steps)))
    assert calls == [(step, 5) for step in range(1, 6)]  # one count over both rounds
    # The last fit is made on the adapted network: its prediction of the support
    # song has the labels' mean and spread (a full moment fit), whatever the steps did.
    prediction = est.predict(X[:1], listener=me)[0]
    np.testing.assert_allclose(prediction.mean(0), labels.mean(0), atol=1e-5)
    np.testing.assert_allclose(prediction.std(0), labels.std(0), rtol=1e-4)
    # Rounds change the result: the second round's steps run under a refitted map.
    one = fit(1)
    np.testing.assert_array_equal(one.predict(X[1:2])[0], est.predict(X[1:2])[0])
    one_round = one.adapt_listener(X[:1], [labels], steps=5)
    assert not np.allclose(one.predict(X[1:2], listener=one_round)[0],
                           est.predict(X[1:2], listener=me)[0], atol=1e-5)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="rounds must be a whole number >= 1"):
            tiny(meta_learning=CalibrateThenAdapt(rounds=bad), n_episodes=1).fit(
                X, y, annotators=annotators)


def test_personalization_runs_the_fixed_trunk_once(table):
    X, y, annotators = table

    def trunk_passes(est):  # per forward pass of a personalization: did it run the trunk?
        passes = []
        hook = est.network_.register_forward_pre_hook(
            lambda module, args: passes.append(args[3] is None))  # no context given
        try:
            est.adapt_listener(X[:1], y[:1], steps=4)
        finally:
            hook.remove()
        return passes

    est = tiny(meta_learning=CalibrateThenAdapt(rounds=2), n_episodes=1, inner_params="head")
    # 4 steps and 3 calibration fits (2 rounds, then after), one trunk pass.
    assert trunk_passes(est.fit(X, y, annotators=annotators)) == [True] + [False] * 6
    # Adapting every parameter, each pass runs the whole network.
    est.set_params(inner_params="all")
    assert trunk_passes(est.fit(X, y, annotators=annotators)) == [True] * 7


def test_calibrate_then_adapt_recenters_the_start_on_the_training_listeners(table, tmp_path,
                                                                           capsys):
    X, y, annotators = table

    def fit(recenter, **params):  # no validation: the same network whatever recenter is
        return tiny(meta_learning=CalibrateThenAdapt(recenter=recenter, **params), n_episodes=2,
                    validation_fraction=0.0).fit(X, y, annotators=annotators)

    plain, once, twice = fit(0), fit(1), fit(2)
    assert not hasattr(plain.network_, "personalization_start")
    for a, b in zip(plain.predict(X[:2]), once.predict(X[:2])):
        np.testing.assert_array_equal(a, b)  # the population model is unchanged
    # One step: the start is the mean of every training listener's
    # personalization (on all of their songs) from the meta-parameters.
    listeners = sorted(set(annotators))
    adapted = [plain.adapt_listener([X[i] for i, a in enumerate(annotators) if a == who],
                                    [y[i] for i, a in enumerate(annotators) if a == who])
               for who in listeners]
    start = once.network_.personalization_start
    assert bool(start.ready) and set(start.names) == set(once.meta_learner().names)
    for name, value in start.values().items():
        mean = torch.stack([listener.params[name] for listener in adapted]).mean(0)
        torch.testing.assert_close(value, mean, rtol=1e-5, atol=1e-6)
    # A second step starts from the first: the start moves again.
    assert any(not torch.allclose(value, twice.network_.personalization_start.values()[name])
               for name, value in start.values().items())
    # The passes show progress: every training listener, each time.
    capsys.readouterr()
    tiny(meta_learning=CalibrateThenAdapt(recenter=2), n_episodes=1, validation_fraction=0.0,
         verbose=1).fit(X, y, annotators=annotators)
    err = capsys.readouterr().err
    assert "after training" in err and f"{2 * len(listeners)}/{2 * len(listeners)}" in err
    # recentered_steps is how many steps a personalization from the start takes;
    # the recentering itself takes inner_steps.
    short = fit(2, recentered_steps=1)
    for name, value in twice.network_.personalization_start.values().items():
        torch.testing.assert_close(short.network_.personalization_start.values()[name], value)
    assert twice.personalization_steps_ == TINY_MODEL["inner_steps"] != 1
    assert short.personalization_steps_ == 1
    assert short.adapt_listener(X[:1], y[:1]).info["steps"] == 1
    # A listener's steps start there (a negligible step stays on it) ...
    near = once.adapt_listener(X[:1], y[:1], steps=1, lr=1e-12)
    for name, value in start.values().items():
        torch.testing.assert_close(near.params[name], value)
    # ... which the model file carries.
    once.save(tmp_path / "recentered.safetensors")
    loaded = pdmer.load(tmp_path / "recentered.safetensors")
    assert loaded.meta_learning.recenter == 1
    for a, b in zip(loaded.personalize(X[:1], y[:1]).predict(X[1:3]),
                    once.personalize(X[:1], y[:1]).predict(X[1:3])):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="recenter needs training listeners") as record:
        mean_labels = tiny(meta_learning=CalibrateThenAdapt(recenter=1), n_episodes=1,
                           validation_fraction=0.0).fit(X, y)
    assert record[0].filename == __file__
    assert not bool(mean_labels.network_.personalization_start.ready)
    unstarted = tiny(meta_learning=CalibrateThenAdapt(recenter=1, recentered_steps=1),
                     n_episodes=1, validation_fraction=0.0)
    with pytest.warns(UserWarning, match="recenter needs training listeners"):
        unstarted.fit(X, y)
    assert unstarted.personalization_steps_ == TINY_MODEL["inner_steps"]  # no start, no override
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="recentered_steps must be None or a whole number"):
            tiny(meta_learning=CalibrateThenAdapt(recenter=1, recentered_steps=bad),
                 n_episodes=1).fit(X, y, annotators=annotators)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="recenter must be a whole number >= 0"):
            tiny(meta_learning=CalibrateThenAdapt(recenter=bad), n_episodes=1).fit(
                X, y, annotators=annotators)


def test_best_lag_and_delay():
    from pdmer.nn.calibration import best_lag, delay

    g = torch.Generator().manual_seed(0)
    curve = torch.cumsum(torch.randn(2, 80, 2, generator=g), dim=1)  # smooth-ish curves
    labels = -0.5 * delay(curve, 4) + 0.1 * torch.randn(2, 80, 2, generator=g)
    assert best_lag(curve, labels, None, 8) == 4  # a reversed dimension counts as well
    assert best_lag(curve, labels, None, 2) == 2  # never beyond max_lag
    # Frames outside the mask and NaN labels do not count.
    mask = torch.ones(2, 80, dtype=torch.bool)
    mask[1, 40:] = False
    noisy = labels.clone()
    noisy[1, 40:] = torch.randn(40, 2, generator=g) * 100
    noisy[0, :5] = float("nan")
    assert best_lag(curve, noisy, mask, 8) == 4
    # A delay longer than the song repeats its first frame throughout.
    torch.testing.assert_close(delay(curve, 200), curve[:, :1].expand(-1, 80, -1))
    assert delay(curve, 0) is curve


def test_moment_calibration_matches_spread_and_keeps_the_identity_without_evidence():
    from pdmer.nn.calibration import MAX_STRETCH, moment_calibration

    g = torch.Generator().manual_seed(1)
    p = torch.randn(1, 200, 2, generator=g)
    y = torch.stack([-0.5 * p[..., 0] + 0.3, 2.0 * p[..., 1]], dim=-1)
    slope, intercept = moment_calibration(p, y, None, 1.0, 0.0)
    torch.testing.assert_close(slope, torch.tensor([-0.5, 2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(intercept, torch.tensor([0.3, 0.0]), atol=0.01, rtol=0)
    # Least squares would flatten noisy labels by their correlation; moments do not.
    noisy = 2.0 * p + torch.randn(1, 200, 2, generator=g) * 2.0
    assert (moment_calibration(p, noisy, None, 1.0, 0.0)[0] >
            ridge_calibration(p, noisy, None, 0.0, 0.0)[0] + 0.5).all()
    # Unrelated labels barely move the slope; flat predictions are not stretched far.
    unrelated = torch.randn(1, 200, 2, generator=g)
    assert (moment_calibration(p, unrelated, None, 200.0, 0.0)[0] > 0.7).all()
    flat = moment_calibration(1e-4 * p, y, None, 0.0, 0.0)[0].abs()
    assert (flat <= MAX_STRETCH + 1e-6).all()
