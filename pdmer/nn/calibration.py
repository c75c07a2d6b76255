"""A listener's affine calibration of (arousal, valence), fitted in closed form.

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
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ridge_calibration"]


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
    p, y = prediction.double(), target.double()
    valid = torch.isfinite(y)
    if mask is not None:
        valid = valid & mask.unsqueeze(-1)
    p = torch.where(valid, p, 0.0)
    y = torch.where(valid, y, 0.0)
    n = valid.double().sum((0, 1))
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
