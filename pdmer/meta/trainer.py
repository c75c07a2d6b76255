"""The training loop: outer steps, gradient clipping, history and callbacks.

The loop knows nothing of songs or meta-learning: each episode it asks a
``step`` function to put gradients into the parameters (one meta-learning
episode, see :meth:`pdmer.meta.learner.MetaLearner.episode_backward`) and
takes an optimizer step. Validation with best-state selection and early
stopping, checkpoints and the progress bar are callbacks
(:mod:`pdmer.meta.callbacks`), in the manner of skorch. On several
processes (:mod:`pdmer.meta.distributed`) each step computes this
process's share of the episode and the loop sums the gradients over the
processes before the optimizer steps.
"""

from __future__ import annotations

import math

import torch


class Trainer:
    """Run ``n_episodes`` optimizer steps with callbacks.

    Parameters
    ----------
    network : torch.nn.Module
    optimizer : torch.optim.Optimizer
    step : callable
        ``step(episode) -> float``: accumulate the episode's gradients into
        the parameters' ``.grad`` and return its loss.
    n_episodes : int
    max_grad_norm : float or None, default=None
        Clip the gradients' global L2 norm to this before every step; None
        or 0 does not clip.
    callbacks : list of Callback, default=()
        Called in order: at the start, after every episode and at the end.
    distributed : Distributed, optional
        This process's place among several training processes
        (:class:`pdmer.meta.distributed.Distributed`); ``step`` then
        computes this process's share of the episode and returns its share
        of the loss. Gradients, the loss and BatchNorm statistics are
        combined over the processes every episode, and the parameters are
        made identical on every process at the start and at the end.

    Attributes
    ----------
    episode : int
        Episodes done (the next episode's index).
    history : dict of str -> list
        ``episode``, ``loss`` and ``grad_norm`` (before clipping) per
        episode; callbacks add their own lists.
    stop : bool
        Set by a callback to end training after the current episode.
    """

    def __init__(self, network, optimizer, step, n_episodes, *, max_grad_norm=None,
                 callbacks=(), distributed=None):
        self.network = network
        self.optimizer = optimizer
        self.step = step
        self.n_episodes = n_episodes
        self.max_grad_norm = max_grad_norm
        self.callbacks = list(callbacks)
        self.distributed = distributed
        self.episode = 0
        self.history = {"episode": [], "loss": [], "grad_norm": []}
        self.stop = False

    def fit(self) -> "Trainer":
        """Train until ``n_episodes`` or until a callback stops it; returns self."""
        for callback in self.callbacks:
            callback.on_train_begin(self)
        processes = self.distributed
        if processes is not None:
            processes.broadcast_module(self.network)
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        while self.episode < self.n_episodes and not self.stop:
            episode = self.episode
            self.network.train()
            self.optimizer.zero_grad(set_to_none=True)
            if processes is None:
                loss = self.step(episode)
            else:
                start = processes.running_stats(self.network)
                loss = processes.sum(self.step(episode))
                processes.reduce_gradients(parameters)
                processes.merge_running_stats(self.network, start)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"The training loss became {loss} at episode {episode}; lower outer_lr "
                    "or inner_lr, or set max_grad_norm.")
            norm = torch.nn.utils.clip_grad_norm_(
                parameters, self.max_grad_norm or math.inf, error_if_nonfinite=False)
            norm = float(norm)
            if not math.isfinite(norm):
                raise FloatingPointError(
                    f"The gradients became {norm} at episode {episode}; lower outer_lr or "
                    "inner_lr.")
            self.optimizer.step()
            self.episode = episode + 1
            self.history["episode"].append(episode)
            self.history["loss"].append(loss)
            self.history["grad_norm"].append(norm)
            for callback in self.callbacks:
                callback.on_episode_end(self, episode)
        for callback in self.callbacks:
            callback.on_train_end(self)
        if processes is not None:
            # Identical on every process whatever rounding the collectives did.
            processes.broadcast_module(self.network)
        self.network.eval()
        return self

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress (always, on one process)."""
        return self.distributed is None or self.distributed.is_main

    @property
    def last_episode(self) -> bool:
        """Whether the episode just done ends training (the last one, or stopped)."""
        return self.stop or self.episode >= self.n_episodes

    def state_dict(self) -> dict:
        """Everything needed to resume exactly: weights, optimizer, history, callbacks."""
        return {
            "episode": self.episode,
            "stop": self.stop,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "callbacks": [callback.state_dict() for callback in self.callbacks],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the callbacks must be the same, in order)."""
        self.episode = int(state["episode"])
        self.stop = bool(state["stop"])
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = state["history"]
        for callback, callback_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(callback_state)
