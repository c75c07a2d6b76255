"""A listener's affine calibration of (arousal, valence) and delay, fitted in closed form.

Listeners differ from the population most simply by an affine map per
dimension: a shift (they rate higher), a compression (they rate less
extremely), or a reversal (valence read the other way). One annotated song
is enough to estimate such a map if it is pulled toward the identity: a
ridge regression of the labels on the population model's predictions whose
penalty counts as ``strength`` frames that say "slope 1, intercept 0".
The slope's penalty is scaled by the variance of the predictions, so a
strength means the same whatever their scale: with the intercept free, the
slope is the least-squares slope and 1 averaged with weights n_frames and
``slope_strength``.

Listeners also react late, each by their own delay: :func:`delay` shifts a
prediction later, and :func:`best_lag` finds the delay that follows a
listener's labels best.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["CALIBRATION_FITS", "CALIBRATION_STRENGTHS", "best_lag", "delay",
           "moment_calibration", "ridge_calibration"]

CALIBRATION_STRENGTHS = (0.0, 3.0, 10.0, 30.0, 100.0, 300.0, math.inf)
"""Strengths (frames) tried wherever a calibration's strength is chosen on
training listeners; ``inf`` is no calibration."""


def ridge_calibration(prediction: Tensor, target: Tensor, mask: Tensor | None,
                      slope_strength, intercept_strength) -> tuple[Tensor, Tensor]:
    """Per-dimension ``target ~ slope * prediction + intercept``, shrunk toward the identity.

    Minimises, per dimension, ``sum_t (slope p_t + intercept - y_t)^2 +
    slope_strength var(p) (slope - 1)^2 + intercept_strength intercept^2``
    over the valid frames (a 2 x 2 linear system, differentiable in every
    input).

    Parameters
    ----------
    prediction, target : Tensor of shape (batch, n_frames, n_dims)
        The model's predictions and the listener's labels; NaN labels are
        ignored.
    mask : Tensor of shape (batch, n_frames) and dtype bool, optional
        True at real frames (None: all).
    slope_strength, intercept_strength : float or Tensor of shape (n_dims,)
        Pseudo-frames pulling the slope to 1 and the intercept to 0;
        ``inf`` keeps that coefficient at the identity. A zero slope
        strength with constant predictions leaves the slope undetermined
        (it is then 1).

    Returns
    -------
    slope, intercept : Tensor of shape (n_dims,)
        In the dtype of ``prediction``.

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.calibration import ridge_calibration
    >>> p = torch.linspace(-1, 1, 20).reshape(1, 20, 1)
    >>> slope, intercept = ridge_calibration(p, -p + 0.5, None, 0.0, 0.0)
    >>> [round(float(slope), 3), round(float(intercept), 3)]
    [-1.0, 0.5]
    """
    dtype = prediction.dtype
    p, y, weight = _valid_frames(prediction, target, mask)
    n = weight.sum((0, 1))
    sp, sy = p.sum((0, 1)), y.sum((0, 1))
    spp, spy = (p * p).sum((0, 1)), (p * y).sum((0, 1))
    ls = torch.as_tensor(slope_strength, dtype=torch.float64, device=p.device)
    li = torch.as_tensor(intercept_strength, dtype=torch.float64, device=p.device)
    mean_p = sp / n.clamp(min=1)
    # Centred sums: the determinant below loses no precision to cancellation.
    cpp = spp - sp * mean_p
    cpy = spy - sp * sy / n.clamp(min=1)
    # Solve the 2 x 2 normal equations with the intercept eliminated:
    # intercept = (sy - slope sp) / (n + li); with li -> inf it stays 0.
    finite_li = torch.isfinite(li)
    li_safe = torch.where(finite_li, li, torch.zeros_like(li))
    shrink = torch.where(finite_li, n / (n + li_safe).clamp(min=1e-12), torch.zeros_like(n))
    # sum (p - shrink * mean_p)^2-like terms of the reduced problem:
    a = torch.where(finite_li, cpp + (1 - shrink) * sp * mean_p, spp)
    b = torch.where(finite_li, cpy + (1 - shrink) * sp * sy / n.clamp(min=1), spy)
    finite_ls = torch.isfinite(ls)
    ls_safe = torch.where(finite_ls, ls, torch.zeros_like(ls)) * cpp / n.clamp(min=1)
    denominator = a + ls_safe
    solvable = finite_ls & (denominator > 1e-12)
    slope = torch.where(solvable, (b + ls_safe) / torch.where(solvable, denominator, 1.0),
                        torch.ones_like(a))
    intercept = torch.where(finite_li, (sy - slope * sp) / (n + li_safe).clamp(min=1e-12),
                            torch.zeros_like(a))
    return slope.to(dtype), intercept.to(dtype)


MAX_STRETCH = 4.0
"""The most :func:`moment_calibration` widens the predictions' spread."""


def moment_calibration(prediction: Tensor, target: Tensor, mask: Tensor | None,
                       slope_strength, intercept_strength) -> tuple[Tensor, Tensor]:
    """Per-dimension affine map that matches the labels' spread, shrunk toward the identity.

    Least squares (:func:`ridge_calibration`) shrinks the slope by the
    correlation between predictions and labels, flattening the curves that
    CCC then penalises. The CCC-optimal map matches mean and standard
    deviation instead, with the sign of the correlation:
    ``slope = sign(r) std(y) / std(p)``. How far the slope moves there from
    1 grows with the evidence for that direction, ``n r^2`` (a correlation's
    test statistic over ``n`` frames): ``w = n r^2 / (n r^2 +
    slope_strength)``; the intercept then matches the means, pulled to 0 as
    ``n / (n + intercept_strength)``. The spread is widened at most
    :data:`MAX_STRETCH` times. Differentiable in every input.

    Parameters and returns are those of :func:`ridge_calibration`.

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.calibration import moment_calibration
    >>> p = torch.linspace(-1, 1, 40).reshape(1, 40, 1)
    >>> slope, intercept = moment_calibration(p, -0.5 * p + 0.2, None, 1.0, 0.0)
    >>> [round(float(slope), 2), round(float(intercept), 2)]
    [-0.46, 0.2]
    """
    dtype = prediction.dtype
    n, mean_p, mean_y, var_p, var_y, cov = _moments(*_valid_frames(prediction, target, mask))
    eps = 1e-12
    r = cov / torch.sqrt(var_p * var_y + eps)
    # Flat predictions would be stretched without bound, and their noise with them.
    target_slope = torch.sign(r) * torch.sqrt((var_y + eps) / (var_p + eps)).clamp(max=MAX_STRETCH)
    ls = torch.as_tensor(slope_strength, dtype=torch.float64, device=prediction.device)
    li = torch.as_tensor(intercept_strength, dtype=torch.float64, device=prediction.device)
    evidence = n * r * r
    w = torch.where(torch.isfinite(ls), evidence / (evidence + torch.where(
        torch.isfinite(ls), ls, 0.0) + eps), torch.zeros_like(evidence))
    slope = w * target_slope + (1 - w)
    shrink = torch.where(torch.isfinite(li), n / (n + torch.where(torch.isfinite(li), li, 0.0)),
                         torch.zeros_like(n))
    intercept = shrink * (mean_y - slope * mean_p)
    return slope.to(dtype), intercept.to(dtype)


def _moments(p, y, weight):
    """Per dimension over valid frames: their number, the means, variances and covariance."""
    n = weight.sum((0, 1)).clamp(min=1)
    mean_p, mean_y = p.sum((0, 1)) / n, y.sum((0, 1)) / n
    dp, dy = (p - mean_p) * weight, (y - mean_y) * weight
    var_p, var_y = (dp * dp).sum((0, 1)) / n, (dy * dy).sum((0, 1)) / n
    return n, mean_p, mean_y, var_p, var_y, (dp * dy).sum((0, 1)) / n


def _valid_frames(prediction, target, mask):
    """Predictions and labels in float64 with invalid frames zeroed, and the valid-frame weights.

    Valid: inside ``mask`` with a finite label.
    """
    p, y = prediction.double(), target.double()
    valid = torch.isfinite(y)
    if mask is not None:
        valid = valid & mask.unsqueeze(-1)
    return torch.where(valid, p, 0.0), torch.where(valid, y, 0.0), valid.double()


def delay(prediction: Tensor, lag: int) -> Tensor:
    """Each song's prediction ``lag`` frames later, its first frame repeated before it.

    A listener who reacts late rates at frame ``t`` what the music did at
    ``t - lag``; the model's frame ``t - lag`` then predicts their frame ``t``.

    Parameters
    ----------
    prediction : Tensor of shape (n_songs, n_frames, n_dims)
    lag : int
        Frames (0.5 s each), >= 0.

    Returns
    -------
    Tensor
        Same shape as ``prediction``.

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.calibration import delay
    >>> delay(torch.arange(4.0).reshape(1, 4, 1), 2).flatten().tolist()
    [0.0, 0.0, 0.0, 1.0]
    """
    lag = min(int(lag), prediction.shape[1])
    if lag <= 0:
        return prediction
    return torch.cat([prediction[:, :1].expand(-1, lag, -1), prediction[:, :-lag]], dim=1)


@torch.no_grad()
def best_lag(prediction: Tensor, target: Tensor, mask: Tensor | None, max_lag: int) -> int:
    """The delay of the prediction, 0 to ``max_lag`` frames, that follows the labels best.

    Best: the largest mean over dimensions of the absolute correlation
    between the delayed prediction and the labels on valid frames, which
    is the CCC a moment-fitted calibration then reaches
    (:func:`moment_calibration`); ties go to the shorter delay.

    Parameters
    ----------
    prediction, target : Tensor of shape (n_songs, n_frames, n_dims)
    mask : bool Tensor of shape (n_songs, n_frames) or None
        Valid frames (labels must also be finite).
    max_lag : int
        Longest delay tried, in frames.

    Returns
    -------
    int

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.calibration import best_lag, delay
    >>> p = torch.sin(torch.arange(60.0) / 4).reshape(1, 60, 1)
    >>> best_lag(p, delay(p, 3), None, 6)
    3
    """
    scores = []
    for lag in range(int(max_lag) + 1):
        _, _, _, var_p, var_y, cov = _moments(*_valid_frames(delay(prediction, lag), target, mask))
        scale = torch.sqrt(var_p * var_y)  # no epsilon: any scale of prediction counts alike
        scores.append(float(torch.where(scale > 0, cov.abs() / scale, 0.0).mean()))
    return max(range(len(scores)), key=lambda lag: (scores[lag], -lag))


CALIBRATION_FITS = {"moments": moment_calibration, "least-squares": ridge_calibration}
"""How a calibration is fitted, by name: matching the labels' mean and spread
(:func:`moment_calibration`) or least squares (:func:`ridge_calibration`)."""
