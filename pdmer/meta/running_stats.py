"""BatchNorm running statistics of tasks run apart, folded as if run one after another.

Batched tasks (:mod:`pdmer.meta.vmapped`) and distributed training
(:mod:`pdmer.meta.distributed`) run the tasks of an episode side by side,
each from the same running statistics. A BatchNorm update with momentum
``m`` is ``r <- (1 - m) r + m s``; a block of ``L`` consecutive updates
from ``r`` ends at ``(1 - m)^L r + sum_j (1 - m)^(L - 1 - j) m s_j``. So the
result of all blocks one after another follows from each block's end state
alone: :func:`block_contribution` of every block, summed, plus
``(1 - m)^n r`` (:func:`fold_blocks`).
"""

from __future__ import annotations

import torch
from torch import nn


def running_stat_momenta(network: nn.Module) -> dict:
    """Momentum of every running-statistics buffer, by buffer name.

    ``num_batches_tracked`` counters map to None (they add up).

    Raises
    ------
    NotImplementedError
        For BatchNorm with ``momentum=None`` (a cumulative average), whose
        updates depend on the count and cannot be folded this way.
    """
    momenta = {}
    for prefix, module in network.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            if module.momentum is None:
                raise NotImplementedError(
                    f"{prefix}: BatchNorm with momentum=None (cumulative average) cannot be "
                    "trained with tasks run side by side (batched or on several processes); "
                    "give it a momentum, or use one process and the sequential loop.")
            base = f"{prefix}." if prefix else ""
            momenta[base + "running_mean"] = module.momentum
            momenta[base + "running_var"] = module.momentum
            momenta[base + "num_batches_tracked"] = None
    return momenta


def block_contribution(start: torch.Tensor, end: torch.Tensor, momentum: float | None,
                       n_updates: int, n_later: int) -> torch.Tensor:
    """One block's share of the folded statistics.

    Parameters
    ----------
    start : Tensor
        The statistics every block started from.
    end : Tensor
        This block's statistics after its updates.
    momentum : float or None
        The BatchNorm momentum; None for a counter (its increments add up).
    n_updates : int
        Updates this block made.
    n_later : int
        Updates the blocks after this one made.

    Returns
    -------
    Tensor
        ``(1 - m)^n_later (end - (1 - m)^n_updates start)``; for a counter
        ``end - start``.
    """
    if momentum is None:
        return end - start
    keep = 1.0 - momentum
    return keep ** n_later * (end - keep ** n_updates * start)


def fold_blocks(start: torch.Tensor, contributions: torch.Tensor, momentum: float | None,
                n_updates: int) -> torch.Tensor:
    """The statistics after all blocks one after another.

    Parameters
    ----------
    start : Tensor
    contributions : Tensor
        The sum of every block's :func:`block_contribution`.
    momentum : float or None
    n_updates : int
        Updates of all blocks together.
    """
    if momentum is None:
        return start + contributions
    return (1.0 - momentum) ** n_updates * start + contributions
