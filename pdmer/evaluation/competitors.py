"""The strongest simple competitors of personalization, with settings chosen fairly.

A sceptical reader compares a personalized model with two things a
practitioner would try first:

- *listener calibration*: the population model's (arousal, valence) output,
  mapped per dimension by an affine map fitted in closed form on the
  listener's support song and shrunk toward the identity, by least squares
  (:func:`pdmer.nn.calibration.ridge_calibration`) or matching the labels'
  mean and spread (:func:`pdmer.nn.calibration.moment_calibration`);
- *fine-tuning at its best*: the model fine-tuned on the support song with
  the steps, step size and parameters that served other listeners best.

Their settings are chosen here on *training* listeners the model did not
train on (:func:`tuning_episodes`: the estimator's validation listeners),
never on the listeners a table scores.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import torch

from pdmer.evaluation.personalized import score_episodes
from pdmer.evaluation.protocol import listener_episodes, run_episodes
from pdmer.nn.calibration import CALIBRATION_FITS, CALIBRATION_STRENGTHS

__all__ = ["DEFAULT_CALIBRATION_FIT", "DEFAULT_CALIBRATION_STRENGTH", "FINE_TUNING_GRID",
           "CalibratedPredictor", "choose_calibration", "choose_fine_tuning", "fine_tuned",
           "tuning_episodes"]

DEFAULT_CALIBRATION_FIT = "moments"
"""The fit used where none can be chosen on training listeners (``pdmer
evaluate`` of a saved model): the one the robustness suite chose for all 33
of its meta-trained networks (2026-12-05)."""

DEFAULT_CALIBRATION_STRENGTH = 0.0
"""The strength used where none can be chosen on training listeners: the one
the robustness suite chose most often (for 23 of its 33 meta-trained
networks, 2026-12-05)."""

FINE_TUNING_GRID = dict(steps=(8, 16, 32), lr=(0.01, 0.05, 0.2), inner_params=("head", "all"))
"""Fine-tuning settings tried: every combination."""


class CalibratedPredictor:
    """A fitted model whose output is calibrated to each listener in closed form.

    ``personalize(X, y)`` fits the listener's per-dimension affine map of the
    model's (not personalized) predictions on ``X``; ``predict`` applies it.
    The wrapped model is never changed.

    Parameters
    ----------
    estimator : fitted estimator
        Anything with ``predict(X)``.
    strength : float
        Strength in frames pulling slope and intercept to the identity
        (``inf``: none).
    fit : {"least-squares", "moments"}, default="least-squares"
        How the map is fitted (:data:`~pdmer.nn.calibration.CALIBRATION_FITS`).
    """

    def __init__(self, estimator, strength, fit="least-squares"):
        if fit not in CALIBRATION_FITS:
            raise ValueError(f"fit must be one of {', '.join(CALIBRATION_FITS)}; got {fit!r}.")
        self.estimator = estimator
        self.strength = strength
        self.fit = fit
        self.calibration_ = None

    def personalize(self, X, y):
        predictions = self.estimator.predict(X)
        lengths = [min(len(p), len(t)) for p, t in zip(predictions, y)]
        stacked = [torch.as_tensor(np.concatenate([a[:n] for a, n in zip(arrays, lengths)])[None])
                   for arrays in (predictions, y)]
        self.calibration_ = CALIBRATION_FITS[self.fit](stacked[0], stacked[1], None,
                                                       self.strength, self.strength)
        return self

    def predict(self, X):
        predictions = self.estimator.predict(X)
        if self.calibration_ is None:
            return predictions
        slope, intercept = (t.numpy() for t in self.calibration_)
        return [p * slope + intercept for p in predictions]

    def reset_personalization(self):
        self.calibration_ = None
        return self


def tuning_episodes(estimator, table, draws=2, random_state=0) -> list:
    """Episodes of the training listeners the estimator held out for validation.

    Parameters
    ----------
    estimator : fitted pdmer estimator
        Its ``validation_listeners_`` are the listeners used.
    table : AnnotationTable
        The training data the estimator was fitted on.
    draws : int, default=2
        Episodes per listener, each with another support song.
    random_state : int, default=0

    Returns
    -------
    list of Episode
        Rows index ``table``; empty when the estimator held out no listener.
    """
    held = getattr(estimator, "validation_listeners_", None) or ()
    if not held or table.annotators is None:
        return []
    return listener_episodes(table.annotators, held, draws, random_state)


def _mean_ccc(truth, predictions, listeners) -> float:
    return float(score_episodes(truth, predictions, listeners, metric="ccc"))


def choose_calibration(estimator, X, y, episodes, strengths=CALIBRATION_STRENGTHS,
                       fits=tuple(CALIBRATION_FITS)):
    """The calibration (fit and strength) that scores best on ``episodes``; every one's score.

    Returns
    -------
    choice : dict
        ``fit`` and ``strength``; strength ``inf`` (no calibration) when
        nothing beats the model as it is, or when there are no episodes.
    scores : dict of (fit, strength) -> float
    """
    if not episodes:
        return {"fit": fits[0], "strength": math.inf}, {}
    scores = {}
    population = _RememberedPredictions(estimator)  # one forward pass per song for all
    for fit in fits:
        for strength in strengths:
            scores[(fit, strength)] = _mean_ccc(*run_episodes(
                CalibratedPredictor(population, strength, fit), X, y, episodes))
    # Ties: the weaker calibration, then the first fit.
    fit, strength = max(scores, key=lambda k: (scores[k], k[1], -fits.index(k[0])))
    if strength == math.inf:
        fit = fits[0]
    return {"fit": fit, "strength": strength}, scores


class _RememberedPredictions:
    """A fitted model's ``predict``, remembered per song object (the model does not change)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self._memory = {}

    def predict(self, X):
        missing = [x for x in X if id(x) not in self._memory]
        if missing:
            for x, prediction in zip(missing, self.estimator.predict(missing)):
                self._memory[id(x)] = (x, prediction)  # x kept alive: its id stays its own
        return [self._memory[id(x)][1] for x in X]


def fine_tuned(estimator, inner_params):
    """A view of a fitted pdmer estimator whose adaptation changes ``inner_params``.

    Shares the network; the estimator itself is not changed.
    """
    view = copy.copy(estimator)
    view.resolved_params_ = {**estimator.resolved_params_, "inner_params": inner_params}
    return view


def choose_fine_tuning(estimator, X, y, episodes, grid=None):
    """The fine-tuning settings that score best on ``episodes``; and every setting's score.

    Parameters
    ----------
    estimator : fitted pdmer estimator
    X, y : the rows ``episodes`` index
    episodes : list of Episode
    grid : dict, optional
        ``steps``, ``lr`` and ``inner_params`` values to combine; defaults
        to :data:`FINE_TUNING_GRID`.

    Returns
    -------
    settings : dict
        ``steps``, ``lr`` and ``inner_params``; the estimator's own
        personalization settings when there are no episodes.
    scores : dict of tuple -> float
    """
    grid = FINE_TUNING_GRID if grid is None else grid
    resolved = estimator.resolved_params_
    if not episodes:
        return {"steps": estimator.personalization_steps_, "lr": resolved["inner_lr"],
                "inner_params": resolved["inner_params"]}, {}
    scores = {}
    for params in grid["inner_params"]:
        view = fine_tuned(estimator, params)
        for steps, lr in itertools.product(grid["steps"], grid["lr"]):
            scores[(steps, lr, params)] = _mean_ccc(*run_episodes(view, X, y, episodes,
                                                                  steps=steps, lr=lr))
    steps, lr, params = max(scores, key=scores.get)
    return {"steps": steps, "lr": lr, "inner_params": params}, scores
