"""The estimators' link to :mod:`pdmer.meta`: the network, the learner, the training loop."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from pdmer.estimators._params import COLLAPSE_CCC, COLLAPSE_STD_RATIO
from pdmer.estimators.exceptions import CollapseWarning
from pdmer.meta.callbacks import Checkpoint, ProgressBar, Validation, fingerprint
from pdmer.meta.learner import MetaLearner
from pdmer.meta.metasgd import LearnedInnerRates
from pdmer.meta.trainer import Trainer
from pdmer.metrics import ccc
from pdmer.nn.normalization import InputNormalization


class MetaTrainingMixin:
    """What :class:`~pdmer.estimators.base.BaseEmotionRegressor` hands to pdmer.meta.

    It attaches the estimator's additions to a network (input statistics,
    Meta-SGD's rates), builds the :class:`~pdmer.meta.learner.MetaLearner`
    and the :class:`~pdmer.meta.trainer.Trainer` with its callbacks, seeds
    each step, and checks the fitted model for collapse.
    """

    def _assemble(self, network: torch.nn.Module, spec: dict) -> torch.nn.Module:
        """Attach what the estimator adds to a network: input statistics, learned rates.

        Both are submodules, so the network's ``state_dict`` (model files,
        the model fingerprint, checkpoints) carries them.
        """
        settings = self._settings()
        if settings["input_normalization"]:
            network.input_normalization = InputNormalization(spec["n_mels"], spec["global_dim"])
        if self.meta_learning == "metasgd":
            shapes = {n: p.shape for n, p in network.named_parameters()
                      if n in self._adapted_names(network)}
            network.inner_rates = LearnedInnerRates(shapes, settings["inner_lr"])
        return network

    def _prepare(self, songs) -> list:
        """Songs standardised as the network expects, on its device."""
        normalization = getattr(self.network_, "input_normalization", None)
        out = []
        for song in songs:
            song = song.to(self.device_)
            if normalization is not None and normalization.fitted:
                local, glob = normalization(song.local_patches, song.global_embeddings)
                song = type(song)(local, glob, song.y, song.encoder, song.waveforms)
            out.append(song)
        return out

    def _trainer(self, songs, prepared, sampler, validation) -> Trainer:
        """The training loop with its callbacks.

        ``songs`` are the rows as extracted (their digest identifies the
        run's checkpoint), ``prepared`` the same standardised on the device.
        """
        settings = self._settings()
        learner = self.meta_learner()
        window = None if settings["train_window"] == "full" else settings["train_window"]
        seed = self.seed_

        def step(episode):
            rng = np.random.default_rng([seed, episode])
            tasks = sampler.sample(settings["tasks_per_step"], rng)
            with self._seeded(episode):
                return learner.episode_backward(tasks, prepared, window, rng)

        def score():
            with self._seeded(-3):
                truth, predictions, listeners = learner.run_episodes(
                    prepared, validation, self.predict_batch_size)
            listeners = np.asarray(listeners)
            return float(np.mean([
                ccc([t for t, k in zip(truth, listeners) if k == who],
                    [p for p, k in zip(predictions, listeners) if k == who])
                for who in np.unique(listeners)]))

        callbacks = []
        if validation:
            callbacks.append(Validation(score, settings["validation_interval"],
                                        settings["patience"]))
        if self.checkpoint_path:
            callbacks.append(Checkpoint(self.checkpoint_path, self.checkpoint_interval,
                                        self._fingerprint(songs), extra={"seed": self.seed_},
                                        verbose=bool(self.verbose)))
        callbacks.append(ProgressBar(f"{type(self).__name__} ({self.meta_learning})",
                                     enabled=bool(self.verbose)))
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=settings["outer_lr"])
        return Trainer(self.network_, optimizer, step, settings["n_episodes"],
                       max_grad_norm=settings["max_grad_norm"] or None, callbacks=callbacks)

    def meta_learner(self) -> MetaLearner:
        """The fitted network's :class:`~pdmer.meta.learner.MetaLearner`.

        Its losses, inner loops, adaptation and prediction on song tensors,
        with this estimator's settings: for custom training loops and
        benchmarks of single meta-learning tasks.
        """
        settings = self._settings()
        return MetaLearner(
            self.network_, self._forward, self._adapted_names(self.network_),
            meta_learning=self.meta_learning, inner_steps=settings["inner_steps"],
            inner_lr=settings["inner_lr"], device=self.device_,
            mixed_precision=self.mixed_precision, adapt_mode=self._adapt_mode)

    def _adapted_names(self, network) -> list:
        names = [n for n, _ in network.named_parameters() if not n.startswith("inner_rates.")]
        if self._settings()["inner_params"] == "head":
            names = [n for n in names if n.startswith(self._head_prefixes)]
        return names

    def _fingerprint(self, songs) -> str:
        """Identity of a run's settings and data: the checkpoint of another run is refused."""
        skip = {"verbose", "checkpoint_path", "checkpoint_interval", "device", "n_episodes",
                "predict_batch_size", "features", "front_end", "frame_offset"}
        settings = {**self.get_params(deep=False), **self._settings(),
                    "feature_spec": self.feature_spec_}
        tensors = [t for s in songs for t in (s.local_patches, s.global_embeddings, s.y,
                                              s.waveforms) if t is not None]
        return fingerprint({k: v for k, v in settings.items() if k not in skip}, tensors)

    def _initial_seed(self) -> int:
        """The run's seed: random_state, or the interrupted run's, or a fresh one."""
        if self.random_state is not None:
            return int(self.random_state)
        state = Checkpoint.read(self.checkpoint_path)
        if state is not None:
            return int(state["seed"])
        return int(np.random.SeedSequence().entropy % (2**31))

    @contextlib.contextmanager
    def _seeded(self, step: int):
        """Seed torch for one step, leaving the caller's global RNG untouched."""
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self.seed_ * 1_000_003 + step) % (2**63))
            yield

    def _check_collapse(self, songs, episodes):
        """Record the prediction / label spread and warn when the model barely moves."""
        with self._seeded(-3):
            truth, predictions, _ = self.meta_learner().run_episodes(songs, episodes,
                                                                 self.predict_batch_size)
        label_std = np.concatenate(truth).std(axis=0)
        prediction_std = np.concatenate(predictions).std(axis=0)
        ratio = prediction_std / np.maximum(label_std, 1e-8)
        self.prediction_std_ratio_ = [float(r) for r in ratio]
        flat = [f"{d} {r:.2f}" for d, r in zip(("arousal", "valence"), ratio)
                if r < COLLAPSE_STD_RATIO]
        low = self.best_validation_ccc_ is not None and self.best_validation_ccc_ < COLLAPSE_CCC
        if flat or low:
            where = "training" if self.best_validation_ccc_ is None else "validation"
            problems = ([f"its predictions vary {', '.join(flat)} times as much as the labels "
                         f"on the {where} songs"] if flat else []) + (
                [f"its best validation CCC is {self.best_validation_ccc_:.3f}"] if low else [])
            warnings.warn(
                f"{type(self).__name__} may have collapsed to a near-constant output: "
                f"{' and '.join(problems)} (best of {self.n_episodes_run_} episodes, at "
                f"{self.best_episode_}). Try a lower outer_lr, input_normalization=True, "
                "max_grad_norm, or more episodes.", CollapseWarning, stacklevel=4)
