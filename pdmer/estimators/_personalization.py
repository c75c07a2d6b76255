"""Personalization: adapting a fitted model to listeners and serving their adaptations."""

from __future__ import annotations

import contextlib
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from pdmer.estimators.validation import check_X, check_y
from pdmer.estimators.listener import ListenerAdaptation
from pdmer.estimators._session import STEPS


class PersonalizationMixin:
    """Listener adaptation of :class:`~pdmer.estimators.base.BaseEmotionRegressor`.

    Adaptations start from the meta-parameters and never change them: one
    fitted model serves many listeners, each a small
    :class:`~pdmer.estimators.ListenerAdaptation`.

    The estimator it is mixed into provides ``_session()``, the fitted
    network's :class:`~pdmer.estimators._session.NetworkSession` (which
    adapts), ``_songs(X, y, fitted=True)``, songs as the fitted model takes
    them, and the fitted ``model_id_``. It gives the estimator
    :meth:`_chosen_listener`, the listener ``predict`` serves.
    """

    @property
    def personalization_steps_(self) -> int:
        """Gradient steps of a personalization that names none.

        ``inner_steps``, or the meta-learning method's own number
        (:class:`~pdmer.meta.methods.CalibrateThenAdapt`'s
        ``recentered_steps`` once it recentered the start).
        """
        check_is_fitted(self, "network_")
        return self._session().learner().personalization_steps()

    def adapt_listener(self, X, y, steps=None, lr=None, progress=None) -> ListenerAdaptation:
        """Adapt to one listener and return the adaptation, leaving the model as it is.

        Adaptation always starts from the meta-learned parameters; neither they
        nor the current ``listener_`` change, so one fitted model can serve
        many listeners (pass the result to :meth:`predict` as ``listener=``),
        from several threads at once.

        Parameters
        ----------
        X : sequence of songs
            The listener's annotated song(s); one is enough.
        y : sequence of ndarray of shape (n_frames_i, 2)
            The listener's labels of those songs.
        steps : int, optional
            Gradient steps; defaults to :attr:`personalization_steps_`.
        lr : float, optional
            Step size; defaults to ``inner_lr`` (Meta-SGD: the learned rates).
        progress : callable, optional
            Called as ``progress(step, steps)`` after every gradient step.

        Returns
        -------
        ListenerAdaptation
        """
        check_is_fitted(self, "network_")
        X = check_X(X)
        y = check_y(y, len(X))
        session = self._session()
        learner = session.learner()
        steps = learner.personalization_steps() if steps is None else steps
        if (isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1
                or (lr is not None and (isinstance(lr, bool) or not isinstance(lr, Real)
                                        or not 0 < lr < np.inf))):
            raise ValueError(f"personalize needs steps >= 1 and lr > 0 (finite); got "
                             f"steps={steps!r}, lr={lr!r}.")
        support = self._songs(X, y, fitted=True)
        context = (session.seeded(STEPS["personalization"]) if learner.adapt_mode == "train"
                   else contextlib.nullcontext())
        with context:
            params = learner.adapt(session.prepare(support), int(steps), lr, progress)
        bad = sorted(n for n, p in params.items() if not torch.isfinite(p).all())
        if bad:
            raise FloatingPointError(
                f"Adaptation diverged: {len(bad)} adapted parameter(s) are not finite (e.g. "
                f"{bad[0]}). Use a smaller lr or fewer steps.")
        rates = learner.rates(lr)
        mean_lr = float(lr) if lr is not None else (
            float(rates) if not isinstance(rates, dict) else
            float(torch.cat([r.detach().reshape(-1) for r in rates.values()]).mean()))
        return ListenerAdaptation(
            params={n: p.cpu() for n, p in params.items()},
            model_id=self.model_id_, estimator=type(self).__name__,
            info={"n_songs": len(support), "n_frames": int(sum(s.n_frames for s in support)),
                  "steps": int(steps), "lr": mean_lr,
                  "learned_rates": lr is None and isinstance(rates, dict)},
        )

    def personalize(self, X, y, steps=None, lr=None):
        """Adapt to one listener from the song(s) they annotated.

        Adaptation always starts from the meta-learned parameters, so calling
        it again replaces the previous listener instead of stacking on it.
        The meta-parameters are never changed.

        Parameters
        ----------
        X : sequence of songs
            The listener's annotated song(s); one is enough.
        y : sequence of ndarray of shape (n_frames_i, 2)
            The listener's labels of those songs.
        steps : int, optional
            Gradient steps; defaults to :attr:`personalization_steps_`.
        lr : float, optional
            Step size; defaults to ``inner_lr`` (Meta-SGD: the learned rates).

        Returns
        -------
        self
            With ``listener_`` set (a :class:`ListenerAdaptation`).
        """
        self.listener_ = self.adapt_listener(X, y, steps=steps, lr=lr)
        return self

    def reset_personalization(self):
        """Forget the current listener; predictions use the meta-parameters again."""
        check_is_fitted(self, "network_")
        self.listener_ = None
        return self

    def use_listener(self, listener):
        """Predict for a stored listener (a :class:`ListenerAdaptation` or its file)."""
        self.listener_ = self._check_listener(listener)
        return self

    def _chosen_listener(self, listener=None):
        """The listener ``predict`` serves: ``listener`` (checked), else the current one or None."""
        if listener is None:
            return getattr(self, "listener_", None)
        return self._check_listener(listener)

    def _check_listener(self, listener) -> ListenerAdaptation:
        """``listener`` (or its file) as a ListenerAdaptation of this model, else a ValueError."""
        check_is_fitted(self, "network_")
        if not isinstance(listener, ListenerAdaptation):
            listener = ListenerAdaptation.load(listener)
        if listener.model_id != self.model_id_:
            raise ValueError(
                f"This listener was adapted from model {listener.model_id}, not from "
                f"this one ({self.model_id_}); personalize this model again."
            )
        return listener
