"""First-order MAML whose personalization calibrates the output in closed form, then adapts."""

from __future__ import annotations

import math

from pdmer.meta.methods.base import MetaLearningMethod
from pdmer.meta.methods.calibrated import CalibratedFOMAML, ListenerCalibration
from pdmer.nn.calibration import CALIBRATION_FITS as FITS


class CalibrateThenAdapt(CalibratedFOMAML):
    """FOMAML meta-training; a listener is first calibrated in closed form, then adapted.

    Meta-training is :class:`~pdmer.meta.methods.FOMAML`'s, unchanged (and
    batched under vmap like it). Personalization first fits the listener's
    affine map per dimension of the population model's predictions of the
    support song (:data:`~pdmer.nn.calibration.CALIBRATION_FITS`, pulled toward
    the identity by ``strength`` frames): the shift, scale or reversal that
    sets a listener apart, which a few gradient steps may not find (a
    reversed valence needs the output layer to change sign). The inner
    steps then adapt the network under that map, for what it cannot
    express. The listener file holds both.

    With ``strength="auto"`` the method chooses after meta-training, by
    the mean CCC of the training listeners held out for validation, between
    a full calibration (0) and none (``inf``, plain FOMAML personalization,
    where calibrating does not help them, e.g. when the network has learned
    to follow listeners by itself) (:attr:`AUTO_STRENGTHS`); the model file
    keeps the choice, and the estimator's ``personalization_choices_``
    reports it. Without validation listeners "auto" personalizes as FOMAML.
    Cost: one more forward pass of the support song per personalization,
    and one validation run per strength after fitting.

    Parameters
    ----------
    strength : "auto" or float, default="auto"
        Frames (0.5 s each) of the pull toward the identity: 0 calibrates
        fully, ``inf`` not at all.
    fit : {"moments", "least-squares"}, default="moments"
        How the map is fitted (see :class:`CalibratedFOMAML`).

    Examples
    --------
    >>> from pdmer import DSAMLRegressor
    >>> model = DSAMLRegressor(size="small", meta_learning="calibrate-then-adapt")
    """

    name = "calibrate-then-adapt"
    batchable = True

    AUTO_STRENGTHS = (0.0, math.inf)
    """What ``strength="auto"`` chooses from. Not the intermediate strengths:
    the moment fit's pull toward the identity passes a reversed listener's
    slope through 0, and the inner steps cannot move a flattened output
    (measured: a cell of the robustness suite where strength 30 was chosen
    lost its reversed listeners, 0.70 -> 0.49)."""

    def __init__(self, strength="auto", fit="moments"):
        self.strength = strength
        self.fit = fit

    def attach(self, network, adapted_names, inner_lr):
        strength = self.strength
        if strength == "auto":
            strength = math.inf  # until tune() chooses
        elif not (isinstance(strength, (int, float)) and not isinstance(strength, bool)
                  and strength >= 0 and not math.isnan(strength)):
            raise ValueError(f"CalibrateThenAdapt's strength must be 'auto' or a number of "
                             f"frames >= 0 (inf: no calibration); got {self.strength!r}.")
        if self.fit not in FITS:
            raise ValueError(f"CalibrateThenAdapt's fit must be one of {', '.join(FITS)}; got "
                             f"{self.fit!r}.")
        network.listener_calibration = ListenerCalibration(float(strength), learned=False)

    # Meta-training is FOMAML's: the calibration is the identity there.
    task_backward = MetaLearningMethod.task_backward
    tasks_backward = MetaLearningMethod.tasks_backward

    def tune(self, learner, score):
        if self.strength != "auto":
            return {}
        calibration = learner.network.listener_calibration
        scores = {}
        for strength in self.AUTO_STRENGTHS:
            calibration.set_strength(strength)
            scores[strength] = score()
        best = max(scores, key=lambda s: (scores[s], s))  # ties: the weaker calibration
        calibration.set_strength(best)
        return {"calibrate": best != math.inf,
                "validation_ccc": {"calibrated": round(scores[0.0], 4),
                                   "not calibrated": round(scores[math.inf], 4)}}
