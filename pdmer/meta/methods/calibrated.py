"""First-order MAML with a closed-form listener calibration of the output in its inner loop."""

from __future__ import annotations

import math

import torch
from torch import nn

from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.methods.base import MetaLearningMethod
from pdmer.nn.calibration import CALIBRATION_FITS as FITS
from pdmer.nn.calibration import best_lag, delay

_PREFIX = "listener_calibration."
SLOPE, INTERCEPT, LAG = _PREFIX + "slope", _PREFIX + "intercept", _PREFIX + "lag"


class PersonalizationStart(nn.Module):
    """Where a listener's inner steps start, when not at the meta-parameters.

    One buffer per adapted parameter (``.`` in names becomes ``__``) and
    ``ready``, False until :meth:`set` (the start is then the
    meta-parameters). See :class:`~pdmer.meta.methods.CalibrateThenAdapt`'s
    ``recenter``.
    """

    def __init__(self, parameters: dict) -> None:
        super().__init__()
        self.names = list(parameters)
        for name, value in parameters.items():
            self.register_buffer(_buffer_name(name), torch.zeros_like(value))
        self.register_buffer("ready", torch.tensor(False))

    def values(self) -> dict:
        return {n: getattr(self, _buffer_name(n)) for n in self.names}

    @torch.no_grad()
    def set(self, values: dict) -> None:
        for name, value in values.items():
            getattr(self, _buffer_name(name)).copy_(value)
        self.ready.fill_(True)


def ready_start(network) -> "PersonalizationStart | None":
    """``network``'s :class:`PersonalizationStart` once it is set, else None."""
    start = getattr(network, "personalization_start", None)
    return start if start is not None and bool(start.ready) else None


def _buffer_name(parameter_name: str) -> str:
    return parameter_name.replace(".", "__")


class ListenerCalibration(nn.Module):
    """A listener's affine map of the output and the pull toward the identity.

    The buffers ``slope`` and ``intercept`` (one per output dimension) are
    the identity in the population model; a listener's adaptation replaces
    them. ``log_strength`` (dimensions x (slope, intercept)) holds the
    strengths of the pull toward the identity
    (:data:`~pdmer.nn.calibration.CALIBRATION_FITS`) as log pseudo-frames:
    a meta-parameter trained by the outer loop when ``learned``; else
    buffers set by :meth:`set_strength`, where the buffer ``uncalibrated``
    stands for an infinite strength (model files hold finite numbers only).
    With ``max_lag`` (:class:`~pdmer.meta.methods.CalibrateThenAdapt`) the
    buffer ``max_lag`` holds the longest delay of the output (frames) that a
    listener's calibration may find (see
    :func:`~pdmer.nn.calibration.best_lag`; the delay itself, ``lag``,
    lives in listeners' states only: the population model has none).
    """

    def __init__(self, strength: float, n_dims: int = 2, learned: bool = True,
                 max_lag: int | None = None) -> None:
        super().__init__()
        if max_lag is not None:
            self.register_buffer("max_lag", torch.tensor(int(max_lag)))
        self.register_buffer("slope", torch.ones(n_dims))
        self.register_buffer("intercept", torch.zeros(n_dims))
        if learned:
            self.log_strength = nn.Parameter(torch.full((n_dims, 2), math.log(strength)))
        else:
            self.register_buffer("log_strength", torch.zeros(n_dims, 2))
            self.register_buffer("uncalibrated", torch.tensor(False))
            self.set_strength(strength)

    @torch.no_grad()
    def set_strength(self, strength: float) -> None:
        """Set every strength to ``strength`` frames (0: a full fit; ``inf``: the identity)."""
        self.uncalibrated.fill_(strength == math.inf)
        self.log_strength.fill_(math.log(min(max(strength, _MIN_STRENGTH), _MAX_STRENGTH)))

    def strengths(self, state: dict | None = None) -> tuple:
        state = state or {}
        log_strength = state.get(_PREFIX + "log_strength", self.log_strength)
        strength = log_strength.float().exp()
        uncalibrated = state.get(_PREFIX + "uncalibrated", getattr(self, "uncalibrated", None))
        if uncalibrated is not None:
            strength = torch.where(uncalibrated, torch.full_like(strength, math.inf), strength)
        return strength[:, 0], strength[:, 1]


_MIN_STRENGTH, _MAX_STRENGTH = 1e-12, 1e12
"""Finite stand-ins for a strength of 0 and a huge one in ``log_strength``."""


class CalibratedFOMAML(MetaLearningMethod):
    """FOMAML whose inner loop starts by calibrating the output to the listener in closed form.

    For each task (and each listener at personalization) an affine map per
    dimension of the population model's predictions of the support song to
    the listener's labels is fitted in closed form and pulled toward the
    identity (:data:`~pdmer.nn.calibration.CALIBRATION_FITS`): one song
    can give the shift, scale or reversal
    that separates a listener from the population, which a few gradient
    steps on the network may not (a reversed valence needs the head's output
    layer to change sign). The inner SGD steps then adapt the network under
    that calibration, and the query loss is taken through it. The strengths
    of the pull are meta-learned: the query loss reaches them through the
    closed-form solution. The
    calibration is fitted on predictions computed without gradient, so it
    adds one forward pass of the support song per task and nothing to the
    backward pass.

    Listener files hold the two calibration vectors besides the adapted
    parameters; the population model's calibration is the identity.

    Parameters
    ----------
    strength : float, default=10.0
        Starting strength in frames (0.5 s each) of the pull of the slope
        and the intercept toward the identity: how much evidence moves the
        calibration halfway.
    fit : {"moments", "least-squares"}, default="moments"
        How the calibration is fitted
        (:data:`~pdmer.nn.calibration.CALIBRATION_FITS`). Least squares flattens
        the curves by the correlation it finds (measured: the method then
        lost to plain FOMAML, see the personalization guide).

    Examples
    --------
    >>> from pdmer import DSAMLRegressor
    >>> from pdmer.meta.methods import CalibratedFOMAML
    >>> model = DSAMLRegressor(size="small", meta_learning=CalibratedFOMAML(strength=20.0))
    """

    name = "calibrated"
    batchable = False
    own_prefixes = (_PREFIX,)

    def __init__(self, strength=10.0, fit="moments"):
        self.strength = strength
        self.fit = fit

    def attach(self, network, adapted_names, inner_lr):
        if not (isinstance(self.strength, (int, float)) and 0 < self.strength < math.inf):
            raise ValueError(f"CalibratedFOMAML's strength must be a positive finite number "
                             f"of frames; got {self.strength!r}.")
        if self.fit not in FITS:
            raise ValueError(f"CalibratedFOMAML's fit must be one of {', '.join(FITS)}; got "
                             f"{self.fit!r}.")
        network.listener_calibration = ListenerCalibration(float(self.strength))

    def output(self, network, state, prediction):
        calibration = network.listener_calibration
        state = state or {}
        slope = state.get(SLOPE, calibration.slope)
        intercept = state.get(INTERCEPT, calibration.intercept)
        if LAG in state:
            prediction = delay(prediction, int(state[LAG]))
        return prediction * slope.to(prediction.dtype) + intercept.to(prediction.dtype)

    def calibrate(self, support, state, batch) -> dict:
        """The listener's calibration fitted on ``batch`` at ``state`` (graph to the strengths).

        ``support`` is the batch's :class:`~pdmer.meta.learner.SupportPass`.

        Where the calibration has a ``max_lag``, the listener's delay first
        (:func:`~pdmer.nn.calibration.best_lag`), and the map is fitted to
        the delayed predictions.
        """
        prediction = support.prediction(state, batch)
        calibration = support.learner.network.listener_calibration
        delayed = {}
        max_lag = getattr(calibration, "max_lag", None)
        if max_lag is not None:
            lag = best_lag(prediction, batch.y, batch.mask, int(max_lag))
            prediction, delayed = delay(prediction, lag), {LAG: torch.tensor(lag)}
        slope, intercept = FITS[self.fit](prediction, batch.y, batch.mask,
                                          *calibration.strengths(state))
        return {SLOPE: slope, INTERCEPT: intercept, **delayed}

    def task_backward(self, learner, support, query, steps, weight):
        params = dict(learner.network.named_parameters())
        support_pass = learner.support_pass()
        calibration = self.calibrate(support_pass, params, support)
        fixed = {n: t.detach() for n, t in calibration.items()}
        return maml_task_backward(
            lambda state, batch: support_pass.loss({**state, **fixed}, batch),
            lambda state, batch: learner.query_loss({**state, **calibration}, batch),
            params, learner.names, support, query, steps, learner.rates(), first_order=True,
            weight=weight, bf16_names=learner.bf16_names())

    def adapt(self, learner, batch, steps, lr, progress=None):
        return self.calibrate_and_adapt(learner, batch, steps, lr, progress)

    def calibrate_and_adapt(self, learner, batch, steps, lr, progress=None, rounds=1,
                            refit_after=False) -> dict:
        """A listener's state: ``steps`` inner steps in ``rounds``, each after a calibration fit.

        With ``refit_after``, refitted once more on the adapted network. The
        closed-form fit is the map for the network as it is (with the moment
        fit, the map of the best CCC), and the steps improve the network under
        that map: alternating them keeps the map current with the network.
        """
        params = learner.parameter_copies()
        support = learner.support_pass()
        rounds = max(1, min(int(rounds), steps))
        done = 0
        for i in range(rounds):
            n_steps = steps * (i + 1) // rounds - done
            with torch.no_grad():
                calibration = self.calibrate(support, params, batch)
            # Progress counts the steps of all rounds together.
            counted = progress and (lambda step, _, d=done: progress(d + step, steps))
            with torch.enable_grad():
                params = adapt(lambda state, b, c=calibration: support.loss({**state, **c}, b),
                               params, learner.names, batch, n_steps, lr, progress=counted,
                               in_place=not isinstance(lr, dict), bf16_names=learner.bf16_names())
            done += n_steps
        if refit_after:
            with torch.no_grad():
                calibration = self.calibrate(support, params, batch)
        return {**{n: params[n].detach() for n in learner.names}, **calibration}
