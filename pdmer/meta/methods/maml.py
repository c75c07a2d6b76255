"""MAML (Finn, Abbeel and Levine, 2017) and its first-order approximation."""

from __future__ import annotations

from pdmer.meta.methods.base import MetaLearningMethod


class FOMAML(MetaLearningMethod):
    """First-order MAML: the query gradient at the adapted weights updates the meta-weights.

    The paper's (and the reference code's) meta-learning. With
    ``inner_params="head"`` only the recurrent layers and the head adapt
    (ANIL, Raghu et al., 2020).

    Examples
    --------
    >>> from pdmer import DSAMLRegressor
    >>> from pdmer.meta.methods import FOMAML
    >>> DSAMLRegressor(size="small", meta_learning=FOMAML()).check_params().meta_learning
    FOMAML()
    """

    name = "fomaml"


class MAML(MetaLearningMethod):
    """Second-order MAML: the meta-gradient differentiates through the inner steps.

    About 2-5x the time and memory of :class:`FOMAML` per task.
    """

    name = "maml"
    second_order = True
