"""Meta-SGD (Li et al., 2017): learned per-parameter inner-loop learning rates."""

from __future__ import annotations

import torch
from torch import nn

from pdmer.meta.methods.base import MetaLearningMethod


class LearnedInnerRates(nn.Module):
    """One learning rate per adapted scalar, meta-learned with the model.

    Meta-SGD (Li, Zhou, Chen and Li, "Meta-SGD: learning to learn quickly
    for few-shot learning", arXiv:1707.09835) replaces the inner loop's
    single step size by a tensor ``alpha`` of the parameter's shape:
    ``theta' = theta - alpha * grad``. The rates are meta-parameters: the
    outer optimizer updates them with the network, they are saved with it,
    and personalization uses them.

    Parameters
    ----------
    shapes : dict of str -> torch.Size
        Shapes of the adapted parameters, by parameter name.
    init : float
        Starting value of every rate (the preset's ``inner_lr``).
    """

    def __init__(self, shapes: dict, init: float) -> None:
        super().__init__()
        self._keys = {name: name.replace(".", "__") for name in shapes}
        self.rates = nn.ParameterDict({
            key: nn.Parameter(torch.full(tuple(shapes[name]), float(init)))
            for name, key in self._keys.items()})

    def as_dict(self) -> dict:
        """The rates by adapted parameter name (the tensors themselves, not copies)."""
        return {name: self.rates[key] for name, key in self._keys.items()}

    def extra_repr(self) -> str:
        return f"{len(self._keys)} adapted tensors"


class MetaSGD(MetaLearningMethod):
    """First-order Meta-SGD: MAML whose inner step sizes are meta-learned per scalar.

    The rates (:class:`LearnedInnerRates`, started at ``inner_lr``) are
    saved with the model and used by personalization unless it is given an
    ``lr``. Runs its tasks one after another (no vmap form).
    """

    name = "metasgd"
    batchable = False
    own_prefixes = ("inner_rates.",)

    def attach(self, network, adapted_names, inner_lr):
        shapes = {n: p.shape for n, p in network.named_parameters() if n in adapted_names}
        network.inner_rates = LearnedInnerRates(shapes, inner_lr)

    def step_sizes(self, network, inner_lr):
        return network.inner_rates.as_dict()
