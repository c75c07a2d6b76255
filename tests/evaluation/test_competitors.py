"""The simple competitors of personalization and the fair choice of their settings."""

import math

import numpy as np
import pytest

from pdmer import DSAMLRegressor
from pdmer.evaluation import plan_episodes, run_episodes, score_episodes
from pdmer.evaluation.competitors import (
    CalibratedPredictor,
    choose_calibration,
    choose_fine_tuning,
    fine_tuned,
    tuning_episodes,
)
from pdmer_datasets.table import AnnotationTable

from helpers import TINY_MODEL, make_annotator_table


class Population:
    """Predicts the population's curve: each listener's truth is an affine map of it."""

    def __init__(self, curves):
        self.curves = curves

    def predict(self, X):
        return [self.curves[int(x)] for x in X]


def listeners(maps, n_songs=6, n_frames=30, seed=0):
    rng = np.random.default_rng(seed)
    curves = [np.cumsum(rng.normal(scale=0.1, size=(n_frames, 2)), axis=0) for _ in range(n_songs)]
    X, y, who = [], [], []
    for name, (slope, intercept) in maps.items():
        for i in range(n_songs):
            X.append(i)
            y.append(curves[i] * slope + intercept + rng.normal(scale=0.01, size=(n_frames, 2)))
            who.append(name)
    return Population(curves), X, y, np.array(who)


def test_calibration_learns_a_listeners_affine_map_from_one_song():
    model, X, y, who = listeners({"reversed": ([1.0, -1.0], [0.0, 0.2]),
                                  "typical": ([1.0, 1.0], [0.0, 0.0])})
    episodes = plan_episodes(who, random_state=0)
    plain = score_episodes(*run_episodes(model, X, y, episodes, adapt=False))
    calibrated = score_episodes(*run_episodes(CalibratedPredictor(model, 1.0), X, y, episodes))
    assert plain < 0.6 and calibrated > 0.95
    # Without calibration (infinite strength) nothing changes.
    same = run_episodes(CalibratedPredictor(model, math.inf), X, y, episodes)[1]
    assert all(np.array_equal(a, b) for a, b in
               zip(same, run_episodes(model, X, y, episodes, adapt=False)[1]))


def test_calibration_fit_and_strength_are_chosen_on_the_given_episodes():
    model, X, y, who = listeners({"a": ([1.0, -1.0], [0.0, 0.0]), "b": ([1.0, -1.0], [0, 0])})
    choice, scores = choose_calibration(model, X, y, plan_episodes(who, random_state=0))
    assert choice["strength"] < 30
    assert scores[(choice["fit"], choice["strength"])] == max(scores.values())
    assert {fit for fit, _ in scores} == {"least-squares", "moments"}
    only, scores = choose_calibration(model, X, y, plan_episodes(who, random_state=0),
                                      fits=("moments",))
    assert only["fit"] == "moments" and {fit for fit, _ in scores} == {"moments"}
    # A population that needs no calibration keeps the identity.
    model, X, y, who = listeners({"a": ([1.0, 1.0], [0.0, 0.0]), "b": ([1.0, 1.0], [0, 0])})
    y = [model.curves[x] for x in X]  # exactly the population's curves
    assert choose_calibration(model, X, y, plan_episodes(who, random_state=0))[0][
        "strength"] == math.inf
    assert choose_calibration(model, X, y, [])[0]["strength"] == math.inf


def test_moment_calibration_competitor_keeps_the_labels_spread():
    # Predictions that move half as much as a reversed listener's labels, with noise:
    # least squares shrinks the slope by the correlation, the moment fit does not.
    model, X, y, who = listeners({"a": ([2.0, -2.0], [0.0, 0.0])})
    rng = np.random.default_rng(0)
    y = [v + rng.normal(0, 0.3, v.shape) for v in y]
    episodes = plan_episodes(who, random_state=0)
    spreads = {}
    for fit in ("least-squares", "moments"):
        truth, predictions, _ = run_episodes(CalibratedPredictor(model, 0.0, fit), X, y, episodes)
        spreads[fit] = np.mean([p.std(0) / t.std(0) for t, p in zip(truth, predictions)])
    assert spreads["moments"] > spreads["least-squares"]
    assert abs(spreads["moments"] - 1) < 0.25
    with pytest.raises(ValueError, match="fit must be one of"):
        CalibratedPredictor(model, 0.0, "median")


@pytest.fixture(scope="module")
def fitted():
    X, y, annotators = make_annotator_table(n_annotators=8, songs_per_annotator=4)
    est = DSAMLRegressor(**{**TINY_MODEL, "validation_fraction": 0.25, "n_episodes": 2})
    return est.fit(X, y, annotators=annotators), AnnotationTable(X, y, annotators,
                                                                 [x.source for x in X])


def test_tuning_episodes_use_only_the_held_out_training_listeners(fitted):
    est, table = fitted
    assert len(est.validation_listeners_) == 2
    episodes = tuning_episodes(est, table, draws=2)
    assert {e.listener for e in episodes} == set(est.validation_listeners_)
    assert len(episodes) == 4
    for e in episodes:
        assert {str(table.annotators[r]) for r in (*e.support, *e.query)} == {e.listener}


def test_fine_tuning_is_chosen_from_the_grid_without_changing_the_model(fitted):
    est, table = fitted
    before = {k: v.clone() for k, v in est.network_.state_dict().items()}
    grid = dict(steps=(1, 3), lr=(0.01, 0.3), inner_params=("head", "all"))
    settings, scores = choose_fine_tuning(est, table.X, table.y,
                                          tuning_episodes(est, table), grid)
    assert len(scores) == 8 and scores[tuple(settings.values())] == max(scores.values())
    assert all((before[k] == v).all() for k, v in est.network_.state_dict().items())
    assert est.resolved_params_["inner_params"] == "head"
    all_params = fine_tuned(est, "all").meta_learner().names
    assert len(all_params) > len(est.meta_learner().names)
