"""Differentiable sequence metrics and the DSAML training losses."""

from __future__ import annotations

import torch
from torch import Tensor


def sequence_metrics(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8
) -> dict[str, Tensor]:
    """CCC, PCC and RMSE of each sequence, computed over its time axis.

    Parameters
    ----------
    pred : Tensor of shape (batch, n_frames, n_dims)
        Predicted curves, e.g. ``n_dims = 2`` for (arousal, valence).
    target : Tensor of shape (batch, n_frames, n_dims)
        True curves.
    mask : Tensor of shape (batch, n_frames) and dtype bool, default=None
        True at valid frames; the others are ignored. None means all valid.
    eps : float, default=1e-8
        Added to every denominator and square root, so constant sequences
        give finite values and gradients.

    Returns
    -------
    dict of str to Tensor of shape (batch, n_dims)
        ``"ccc"`` (concordance correlation), ``"pcc"`` (Pearson correlation)
        and ``"rmse"`` (root mean squared error) of each sequence and
        dimension, with population (biased) variances.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape; got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}."
        )
    if mask is None:
        mask = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
    valid = mask[..., None]
    zero = pred.new_zeros(())
    # torch.where rather than multiplying by the mask, so non-finite values
    # at padding frames cannot leak into the sums.
    count = valid.sum(dim=1).clamp_min(1).to(pred.dtype)
    mean_pred = torch.where(valid, pred, zero).sum(dim=1) / count
    mean_target = torch.where(valid, target, zero).sum(dim=1) / count
    dev_pred = torch.where(valid, pred - mean_pred[:, None], zero)
    dev_target = torch.where(valid, target - mean_target[:, None], zero)
    var_pred = dev_pred.square().sum(dim=1) / count
    var_target = dev_target.square().sum(dim=1) / count
    cov = (dev_pred * dev_target).sum(dim=1) / count
    mse = torch.where(valid, pred - target, zero).square().sum(dim=1) / count

    ccc = 2 * cov / (var_pred + var_target + (mean_pred - mean_target).square() + eps)
    pcc = cov / torch.sqrt((var_pred + eps) * (var_target + eps))
    rmse = torch.sqrt(mse + eps)
    return {"ccc": ccc, "pcc": pcc, "rmse": rmse}


def emotion_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """DSAML's task loss: one minus the mean of CCC, PCC and 1 - RMSE.

    Each metric is computed per sequence and dimension by
    :func:`sequence_metrics`; the loss averages
    ``(CCC + PCC + 1 - RMSE) / 3`` over the batch and the dimensions.

    Parameters
    ----------
    pred : Tensor of shape (batch, n_frames, n_dims)
        Predicted curves.
    target : Tensor of shape (batch, n_frames, n_dims)
        True curves.
    mask : Tensor of shape (batch, n_frames) and dtype bool, default=None
        True at valid frames. None means all valid.

    Returns
    -------
    Tensor of shape ()
        The loss; 0 for a perfect prediction of non-constant curves.
    """
    metrics = sequence_metrics(pred, target, mask)
    score = (metrics["ccc"] + metrics["pcc"] + 1 - metrics["rmse"]) / 3
    return 1 - score.mean()


def _mean_diagonal(attention: Tensor, lengths: Tensor | None, layout: str) -> tuple[Tensor, Tensor]:
    """Diagonal of the head- and batch-averaged map, and which positions have one.

    Each position is averaged over the sequences long enough to have it;
    positions no sequence reaches are marked absent. Masks, not indexing,
    so this runs under :func:`torch.func.vmap`.
    """
    if layout == "band":
        diagonal = attention[..., attention.shape[-1] // 2].mean(dim=1)
    else:
        diagonal = attention.diagonal(dim1=-2, dim2=-1).mean(dim=1)
    n_frames = diagonal.shape[1]
    if lengths is None:
        return diagonal.mean(dim=0), torch.ones(n_frames, dtype=torch.bool,
                                                device=diagonal.device)
    lengths = torch.as_tensor(lengths, device=diagonal.device)
    valid = torch.arange(n_frames, device=diagonal.device) < lengths[:, None]
    count = valid.sum(dim=0)
    total = torch.where(valid, diagonal, diagonal.new_zeros(())).sum(dim=0)
    return total / count.clamp_min(1), count > 0


def diagonal_attention_loss(
    local_attention: Tensor | None,
    global_attention: Tensor | None,
    lengths: Tensor | None = None,
    local_target: float = 0.9,
    global_target: float = 0.1,
    layout: str = "dense",
) -> Tensor:
    """Diagonal attention map loss pushing the two passes to different scales.

    Each map is averaged over heads and over the batch, and the squared
    distance of its diagonal (each frame's attention to itself) from the
    target is averaged over positions:
    ``MSE(diag(local), local_target) + MSE(diag(global), global_target)``.
    A high local target keeps the local pass focused on nearby frames, a low
    global target spreads the global pass's attention.

    Parameters
    ----------
    local_attention : Tensor or None
        Attention weights of the local pass, of shape
        (batch, n_heads, n_frames, n_frames) or, with ``layout="band"``,
        (batch, n_heads, n_frames, 2 * band + 1); None contributes nothing.
    global_attention : Tensor or None
        Attention weights of the global pass, in the same layout.
    lengths : LongTensor of shape (batch,), default=None
        Valid frames per sequence; only the diagonal entries of valid frames
        count. None means every frame is valid.
    local_target : float, default=0.9
        Target diagonal value of the local map.
    global_target : float, default=0.1
        Target diagonal value of the global map.
    layout : {"dense", "band"}, default="dense"
        ``"band"`` for maps in the band layout of
        :class:`pdmer.nn.DSAMLNet` (the diagonal is the middle column).

    Returns
    -------
    Tensor of shape ()
        The loss; 0 when both maps are None.
    """
    if layout not in ("dense", "band"):
        raise ValueError(f"layout must be 'dense' or 'band'; got {layout!r}.")
    terms = []
    for attention, target in (
        (local_attention, local_target),
        (global_attention, global_target),
    ):
        if attention is not None:
            diagonal, present = _mean_diagonal(attention, lengths, layout)
            error = torch.where(present, (diagonal - target).square(), 0.0)
            terms.append(error.sum() / present.sum())
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()
