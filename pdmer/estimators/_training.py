"""The estimators' link to :mod:`pdmer.meta`: the network, the learner, the training loop."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from pdmer.estimators.exceptions import CollapseWarning, SlowTrainingWarning
from pdmer.meta import distributed
from pdmer.meta.callbacks import Checkpoint, ProgressBar, Validation, run_digest
from pdmer.evaluation import collapse_problems, prediction_spread, run_episodes
from pdmer.evaluation.personalized import listener_ccc
from pdmer.meta.learner import MetaLearner, TensorEpisodes, seeded
from pdmer.meta.methods import get_method
from pdmer.meta.trainer import Trainer
from pdmer.nn.device import resolve_device
from pdmer.nn.normalization import InputNormalization
from pdmer.nn.precision import resolve_precision


PROGRESS_DELAY = 3.0
"""Seconds before ``verbose="auto"`` shows the training bar (quick fits show none)."""


class MetaTrainingMixin:
    """What :class:`~pdmer.estimators.base.BaseEmotionRegressor` hands to pdmer.meta.

    It attaches the estimator's additions to a network (input statistics,
    Meta-SGD's rates), builds the :class:`~pdmer.meta.learner.MetaLearner`
    and the :class:`~pdmer.meta.trainer.Trainer` with its callbacks, joins
    the other training processes (:mod:`pdmer.meta.distributed`), and
    checks the fitted model for collapse.
    """

    # Whether the network can run under torch.func.vmap (task_batching="vmap").
    _batchable_tasks: bool = False
    # Seconds of one meta-training task on one CPU thread, for the size presets
    # that take hours on a CPU (benchmarks/scale.md): fit warns with an estimate.
    _cpu_seconds_per_task: dict = {}

    def _warn_if_slow(self, settings) -> None:
        per_task = self._cpu_seconds_per_task.get(self.size)
        if per_task is None or self.device_.type != "cpu" or not self._is_main():
            return
        hours = per_task * settings["n_episodes"] * settings["tasks_per_step"] / 3600
        warnings.warn(
            f"{type(self).__name__}(size={self.size!r}) is the paper's model, meant for a GPU: "
            f"on this CPU expect about {hours:.0f} hours for {settings['n_episodes']} "
            f"episodes of {settings['tasks_per_step']} tasks (about {per_task:g} s per task "
            "on one core; more threads help less than linearly). size='small' is the CPU "
            "preset and trains in minutes.", SlowTrainingWarning, stacklevel=4)

    def _assemble(self, network: torch.nn.Module, spec: dict) -> torch.nn.Module:
        """Attach what the estimator adds to a network: input statistics, the method's modules.

        Both are submodules, so the network's ``state_dict`` (model files,
        the model id, checkpoints) carries them.
        """
        settings = self._settings()
        if settings["input_normalization"]:
            network.input_normalization = InputNormalization(spec["n_mels"], spec["global_dim"])
        self._method().attach(network, self._adapted_names(network), settings["inner_lr"])
        return network

    def _method(self):
        """The resolved meta-learning method (:mod:`pdmer.meta.methods`), a fresh copy."""
        return get_method(self._settings()["meta_learning"])

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
        self._check_task_batching()
        # Says once per fit when "bf16" falls back to float32.
        resolve_precision(self.precision, self.device_, warn=self._is_main(), stacklevel=4)
        processes = self._processes()
        digest = self._run_digest(songs)
        if processes is not None:
            processes.check_same(digest, "data or parameters")
        learner = self.meta_learner()
        window = None if settings["train_window"] == "full" else settings["train_window"]
        seed = self.seed_
        n_tasks = settings["tasks_per_step"]
        shard = None if processes is None else processes.shard(n_tasks)

        def step(episode):
            rng = np.random.default_rng([seed, episode])
            tasks = sampler.sample(n_tasks, rng)
            return learner.episode_backward(tasks, prepared, window, rng, shard=shard)

        def score():
            return self._validation_score(learner, prepared, validation)

        callbacks = []
        if validation:
            callbacks.append(Validation(score, settings["validation_interval"],
                                        settings["patience"]))
        if self.checkpoint_path:
            callbacks.append(Checkpoint(self.checkpoint_path, self.checkpoint_interval, digest,
                                        extra={"seed": self.seed_},
                                        verbose=bool(self.verbose)))
        callbacks.append(ProgressBar(f"{type(self).__name__} ({self._method().name})",
                                     enabled=bool(self.verbose),
                                     delay=PROGRESS_DELAY if self.verbose == "auto" else 0))
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=settings["outer_lr"])
        return Trainer(self.network_, optimizer, step, settings["n_episodes"],
                       max_grad_norm=settings["max_grad_norm"] or None, callbacks=callbacks,
                       distributed=processes)

    def meta_learner(self) -> MetaLearner:
        """The fitted network's :class:`~pdmer.meta.learner.MetaLearner`.

        Its losses, inner loops, adaptation and prediction on song tensors,
        with this estimator's settings: for custom training loops and
        benchmarks of single meta-learning tasks.
        """
        settings = self._settings()
        task_batching, tasks_per_call = self._task_batching()
        return MetaLearner(
            self.network_, self._forward, self._adapted_names(self.network_),
            method=self._method(), inner_steps=settings["inner_steps"],
            inner_lr=settings["inner_lr"], device=self.device_,
            precision=self.precision, adapt_mode=self._adapt_mode,
            task_batching=task_batching, tasks_per_call=tasks_per_call)

    def _task_batching(self) -> tuple:
        """``(task_batching, tasks_per_call)`` of the learner: "auto" resolved."""
        choice = self.task_batching
        batchable = self._batchable_tasks and self._method().batchable
        if choice == "sequential" or not batchable:
            return "sequential", None
        if choice == "auto":
            on_gpu = self.device_.type == "cuda"
            return ("vmap" if on_gpu else "sequential"), None
        return "vmap", (None if choice == "vmap" else int(choice))

    def _check_task_batching(self) -> None:
        if self.task_batching in ("auto", "sequential"):
            return
        if not self._batchable_tasks:
            raise ValueError(
                f"{type(self).__name__} cannot batch tasks with vmap (its network packs "
                f"padded sequences); use task_batching='sequential' or 'auto', not "
                f"{self.task_batching!r}.")
        method = self._method()
        if not method.batchable:
            raise ValueError(
                f"The meta-learning method {method.name!r} cannot batch tasks with vmap; use "
                f"task_batching='sequential' or 'auto' with it, not {self.task_batching!r}.")

    def _processes(self):
        """The other training processes (:class:`~pdmer.meta.distributed.Distributed`) or None."""
        if self.distributed is False:
            return None
        return distributed.join(self.device_)

    def _is_main(self) -> bool:
        processes = self._processes()
        return processes is None or processes.is_main

    def _adapted_names(self, network) -> list:
        own = self._method().own_prefixes
        names = [n for n, _ in network.named_parameters() if not (own and n.startswith(own))]
        if self._settings()["inner_params"] == "head":
            names = [n for n in names if n.startswith(self._head_prefixes)]
        return names

    def _run_digest(self, songs) -> str:
        """Identity of a run's settings and data: the checkpoint of another run is refused."""
        # Settings that change how a run is computed, not what it computes
        # (batched tasks differ only in dropout draws, processes in rounding).
        skip = {"verbose", "checkpoint_path", "checkpoint_interval", "device", "n_episodes",
                "predict_batch_size", "front_end", "frame_offset", "task_batching",
                "distributed"}
        settings = {**self.get_params(deep=False), **self._settings(),
                    "feature_spec": self.feature_spec_}
        tensors = [t for s in songs for t in (s.local_patches, s.global_embeddings, s.y,
                                              s.waveforms) if t is not None]
        return run_digest({k: v for k, v in settings.items() if k not in skip}, tensors)

    def _device_and_seed(self) -> tuple:
        """The run's device and seed, agreed with the other training processes.

        Under ``torchrun`` this joins the other processes; each takes its
        own GPU when ``device`` names none, and all take the first
        process's seed (random_state, the interrupted run's, or a fresh one).
        """
        device = resolve_device(self.device)
        processes = None
        if self.distributed is not False:
            processes = distributed.join(device)
            if processes is not None:
                device = distributed.process_device(device)
        if self.random_state is not None:
            return device, int(self.random_state)
        state = Checkpoint.read(self.checkpoint_path)
        seed = (int(state["seed"]) if state is not None else
                int(np.random.SeedSequence().entropy % (2**31)))
        if processes is not None:
            seed = int(processes.broadcast(seed))  # < 2**31: exact as a float
        return device, seed

    def _validation_score(self, learner, prepared, validation) -> float:
        """Mean CCC over the held-out listeners, personalized; processes split them."""
        processes = self._processes()
        names = sorted({e.listener for e in validation})
        mine = set(names if processes is None else names[processes.rank::processes.world_size])
        truth, predictions, listeners = self._run_episodes(
            learner, prepared, [e for e in validation if e.listener in mine])
        scores = list(listener_ccc(truth, predictions, listeners).values())
        if processes is None:
            return float(np.mean(scores))
        return processes.sum(float(np.sum(scores))) / len(names)

    def _seeded(self, step: int):
        """Seed torch for one step, leaving the caller's global RNG untouched."""
        return seeded((self.seed_ * 1_000_003 + step) % (2**63), self.device_)

    def _run_episodes(self, learner, songs, episodes) -> tuple:
        """The evaluation protocol's episodes on prepared song tensors, seeded for validation."""
        # The protocol reads labels as arrays: copy those of the episodes' rows off the device.
        rows = {r for episode in episodes for r in (*episode.support, *episode.query)}
        labels = [song.y.cpu().numpy() if r in rows else None for r, song in enumerate(songs)]
        with self._seeded(-3):
            return run_episodes(TensorEpisodes(learner, self.predict_batch_size), songs, labels,
                                episodes)

    def _check_collapse(self, songs, episodes):
        """Record the prediction / label spread and warn when the model barely moves.

        Judged as the benchmark judges its rows
        (:func:`pdmer.evaluation.collapse_problems`), on the validation songs
        (the training songs without a validation split).
        """
        truth, predictions, _ = self._run_episodes(self.meta_learner(), songs, episodes)
        self.prediction_std_ratio_ = prediction_spread(truth, predictions, per_dimension=True)
        problems = collapse_problems(self.prediction_std_ratio_, self.best_validation_ccc_)
        if problems and self._is_main():
            warnings.warn(
                f"{type(self).__name__} may have collapsed to a near-constant output: "
                f"{' and '.join(problems)} (best of {self.n_episodes_run_} episodes, at "
                f"{self.best_episode_}). Try a lower outer_lr, input_normalization=True, "
                "max_grad_norm, or more episodes.", CollapseWarning, stacklevel=4)
