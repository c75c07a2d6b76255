"""Scores and diagnostics of pdmer.evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from pdmer.evaluation import COLLAPSE_RATIO, prediction_spread, score_episodes
from pdmer.scoring import ccc, rmse


def test_score_episodes_averages_songs_or_listeners():
    rng = np.random.default_rng(0)
    truth = [rng.normal(size=(n, 2)) for n in (8, 9, 10, 11)]
    predictions = [t + rng.normal(scale=0.5, size=t.shape) for t in truth]
    listeners = ["a", "a", "a", "b"]
    songs = score_episodes(truth, predictions, listeners, metric=["ccc", "neg_rmse_valence"])
    assert songs["ccc"] == pytest.approx(ccc(truth, predictions))
    assert songs["neg_rmse_valence"] == pytest.approx(
        -rmse(truth, predictions, dimension="valence"))
    by_listener = score_episodes(truth, predictions, listeners, metric="ccc",
                                 average="listeners")
    assert by_listener == pytest.approx(np.mean([ccc(truth[:3], predictions[:3]),
                                                 ccc(truth[3:], predictions[3:])]))
    assert by_listener != pytest.approx(songs["ccc"])


def test_score_episodes_errors_name_the_listener_and_parameter():
    truth = [np.zeros((4, 2))]
    with pytest.raises(ValueError, match="listener 'b'.*shape"):
        score_episodes(truth, [np.zeros((3, 2))], ["b"])
    with pytest.raises(ValueError, match="metric='rmse'.*'neg_rmse'"):
        score_episodes(truth, truth, ["b"], metric="rmse")
    with pytest.raises(ValueError, match="average must be one of"):
        score_episodes(truth, truth, ["b"], average="frames")


def test_prediction_spread_flags_a_collapsed_model():
    t = np.linspace(-1, 1, 20)
    truth = [np.stack([t, -t], axis=1), np.stack([t ** 2, t], axis=1)]
    assert prediction_spread(truth, truth) == pytest.approx(1.0)
    flat = [0.05 * p + 0.3 for p in truth]
    assert prediction_spread(truth, flat) == pytest.approx(0.05)
    assert prediction_spread(truth, flat) < COLLAPSE_RATIO
    # NaN label frames are left out with their predictions; constant labels give NaN.
    with_nan = [np.vstack([truth[0], [[np.nan, np.nan]]]), truth[1]]
    wild = [np.vstack([truth[0], [[50.0, 50.0]]]), truth[1]]
    assert prediction_spread(with_nan, wild) == pytest.approx(1.0)
    assert np.isnan(prediction_spread([np.zeros((5, 2))], [np.ones((5, 2))]))
