"""The base of every meta-learning method: what it adapts, its inner loop, its meta-gradient."""

from __future__ import annotations

from typing import ClassVar

import torch
from sklearn.base import BaseEstimator

from pdmer.meta.maml import adapt, maml_task_backward


class MetaLearningMethod(BaseEstimator):
    """One way of meta-training a network and of adapting it to a listener.

    A method is a small scikit-learn-style object: ``__init__`` stores its
    own settings (none for most), ``get_params``/``set_params``/``clone``
    work, and an estimator takes it as ``meta_learning=`` (or takes its
    registered name, :data:`pdmer.meta.methods.METHODS`). The settings every
    inner loop shares (``inner_steps``, ``inner_lr``, ``inner_params``) stay
    the estimator's: they come from its ``size`` preset.

    The default implementation is first-order MAML over the adapted
    parameters with plain SGD steps; subclasses change what they need. The
    :class:`~pdmer.meta.learner.MetaLearner` gives every hook the network,
    its losses and its settings.

    To add a method, subclass this in a new module of
    :mod:`pdmer.meta.methods`, give it a ``name`` and register it in
    :data:`~pdmer.meta.methods.METHODS`.
    """

    name: ClassVar[str] = ""
    """The registered name, as ``meta_learning=`` takes it."""

    inner_loop: ClassVar[bool] = True
    """False: plain training on each task's support and query songs as one batch."""

    second_order: ClassVar[bool] = False
    """The meta-gradient differentiates through the inner updates."""

    batchable: ClassVar[bool] = True
    """The tasks of an episode can run together under :func:`torch.func.vmap`
    (:mod:`pdmer.meta.vmapped`)."""

    own_prefixes: ClassVar[tuple] = ()
    """Names (prefixes) of the submodules :meth:`attach` adds: their
    parameters are meta-parameters of the method, never adapted per listener."""

    def __eq__(self, other):
        """The same class with the same settings (so presets and parameters compare by value)."""
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_params().items()))))

    def attach(self, network: torch.nn.Module, adapted_names: list, inner_lr: float) -> None:
        """Add the method's own meta-parameters to ``network`` as submodules.

        They are then trained by the outer loop and saved with the model.
        The default adds nothing.
        """

    def step_sizes(self, network: torch.nn.Module, inner_lr: float):
        """The inner loop's step size: ``inner_lr``, or a tensor per adapted parameter."""
        return inner_lr

    def output(self, network: torch.nn.Module, state: dict | None, prediction):
        """The network's prediction as this method's model gives it (default: unchanged).

        ``state`` is the dict of parameters and buffers the forward ran with,
        or None for the module's own.
        """
        return prediction

    def task_backward(self, learner, support, query, steps: int, weight: float) -> float:
        """Accumulate one task's meta-gradient (times ``weight``) into ``.grad``; its query loss."""
        return maml_task_backward(
            learner.support_loss(keep_graph=self.second_order), learner.query_loss,
            dict(learner.network.named_parameters()), learner.names, support, query, steps,
            learner.rates(), first_order=not self.second_order, weight=weight,
            bf16_names=learner.bf16_names())

    def tasks_backward(self, learner, tasks: list, weight: float) -> list:
        """The tasks together under :func:`torch.func.vmap` (when :attr:`batchable`)."""
        return learner.vmapped_backward(tasks, "maml" if self.second_order else "fomaml",
                                        weight)

    def tune(self, learner, score) -> dict:
        """Choose the method's personalization settings on held-out training listeners.

        Called once after meta-training when the estimator held out
        validation listeners. A method that chooses something stores it in
        the network (so model files carry it) and returns what it chose;
        the estimator keeps that as ``personalization_choices_``. The
        default chooses nothing.

        Parameters
        ----------
        learner : MetaLearner
        score : callable
            ``score()`` is the mean CCC of the validation listeners,
            personalized with the network as it is now.

        Returns
        -------
        dict
            JSON-serialisable.
        """
        return {}

    def after_training(self, learner, listeners: list, progress=None) -> None:
        """Use the training listeners once more after meta-training (and :meth:`tune`).

        Called with every training listener's songs (a list of lists of
        :class:`~pdmer.meta.batch.Song`; empty when the estimator trained on
        mean labels). A method that learns something from them stores it in
        the network, so model files carry it, and reports how far it got as
        ``progress(done, total)`` when given. The default does nothing.
        """

    def personalization_steps(self, learner) -> int:
        """Inner steps of a personalization when the caller names none (default ``inner_steps``)."""
        return learner.inner_steps

    def adapt(self, learner, batch, steps: int, lr, progress=None) -> dict:
        """A listener's adapted tensors, from the meta-parameters and a support batch.

        Parameters
        ----------
        learner : MetaLearner
        batch : SongBatch
            The listener's annotated song(s).
        steps : int
        lr : float or dict of str -> Tensor
            A step size, or Meta-SGD's rates (detached).
        progress : callable, optional
            ``progress(step, steps)`` after every step.

        Returns
        -------
        dict of str -> Tensor
            Everything a listener file stores (detached), by name.
        """
        params = learner.parameter_copies()
        with torch.enable_grad():
            # The copies are ours: a scalar rate updates them in place (no new
            # parameter set per step). Learned rates need the update's graph.
            fast = adapt(learner.support_loss(), params, learner.names, batch, steps, lr,
                         progress=progress, in_place=not isinstance(lr, dict),
                         bf16_names=learner.bf16_names())
        return {n: fast[n].detach() for n in learner.names}
