"""One fit's meta-training: the checks around it, the training loop, what follows it.

:meth:`~pdmer.estimators.base.BaseEmotionRegressor.fit` calls these in
order, on the fitted network's :class:`~pdmer.estimators._session.NetworkSession`:

1. :func:`warn_if_slow` before any work (the paper's model on a CPU);
   :func:`initial_network`, the network training starts from;
2. :func:`make_trainer`: the :class:`~pdmer.meta.trainer.Trainer` with its
   validation, checkpoint and progress callbacks, identified by
   :func:`run_digest`;
3. :func:`tune_personalization`: the method's personalization settings,
   chosen on the validation listeners once the best state is back;
4. :func:`prediction_std_ratio` and :func:`warn_if_collapsed`: whether the
   model barely moves.

Each takes what it needs as arguments: nothing here reads the estimator.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from pdmer.estimators.exceptions import CollapseWarning, SlowTrainingWarning
from pdmer.estimators._session import STEPS, is_main, seeded_step
from pdmer.estimators._songs import distinct
from pdmer.evaluation import collapse_problems, prediction_spread
from pdmer.evaluation.protocol import listener_episodes
from pdmer.meta.callbacks import Checkpoint, ProgressBar, Validation, run_digest as digest_of
from pdmer.meta.trainer import Trainer
from pdmer.nn.precision import resolve_precision

PROGRESS_DELAY = 3.0
"""Seconds before ``verbose="auto"`` shows the training bar (quick fits show none)."""

TUNING_DRAWS = 3
"""Support songs per validation listener where the method chooses its
personalization settings after training (validation itself uses one)."""

DIGEST_SKIPS = frozenset({"verbose", "checkpoint_path", "checkpoint_interval", "device",
                          "n_episodes", "predict_batch_size", "front_end", "frame_offset",
                          "task_batching", "distributed"})
"""Parameters that change how a run is computed, not what it computes (batched
tasks differ only in dropout draws, processes in rounding): left out of
:func:`run_digest`, so a checkpoint serves a run that differs in them."""


def warn_if_slow(name, size, seconds_per_task, settings, device, mode) -> None:
    """Warn with an estimate when a preset meant for a GPU is fitted on a CPU.

    ``seconds_per_task`` is the estimator's measured time of one task on
    one CPU thread for this ``size`` (None: never slow); ``mode`` its
    ``distributed`` parameter (only the main process warns).
    """
    if seconds_per_task is None or device.type != "cpu" or not is_main(device, mode):
        return
    hours = seconds_per_task * settings["n_episodes"] * settings["tasks_per_step"] / 3600
    warnings.warn(
        f"{name}(size={size!r}) is the paper's model, meant for a GPU: "
        f"on this CPU expect about {hours:.0f} hours for {settings['n_episodes']} "
        f"episodes of {settings['tasks_per_step']} tasks (about {seconds_per_task:g} s per "
        "task on one core; more threads help less than linearly). size='small' is the CPU "
        "preset and trains in minutes.", SlowTrainingWarning, stacklevel=4)


def initial_network(build, spec, settings, seed, device, train_songs) -> torch.nn.Module:
    """The network training starts from, on ``device``.

    ``build(spec)`` runs under the run's initialisation seed
    (``STEPS["initialisation"]``); input statistics, where the settings
    ask for them, come from the distinct songs among ``train_songs``.
    """
    with seeded_step(seed, STEPS["initialisation"], device):
        network = build(spec)
    if settings["input_normalization"]:
        train_songs = distinct(train_songs)
        network.input_normalization.fit([s.local_patches for s in train_songs],
                                        [s.global_embeddings for s in train_songs])
    return network.to(device)


def run_digest(params: dict, settings: dict, feature_spec: dict, songs) -> str:
    """Identity of a run's settings and data: the checkpoint of another run is refused.

    ``params`` are the estimator's (``get_params(deep=False)``), ``songs``
    the rows as extracted.
    """
    settings = {**params, **settings, "feature_spec": feature_spec}
    tensors = [t for s in songs for t in (s.local_patches, s.global_embeddings, s.y,
                                          s.waveforms) if t is not None]
    return digest_of({k: v for k, v in settings.items() if k not in DIGEST_SKIPS}, tensors)


def make_trainer(session, prepared, sampler, validation, *, digest, checkpoint_path,
                 checkpoint_interval, verbose) -> Trainer:
    """The training loop of ``session``'s network, with its callbacks.

    Parameters
    ----------
    session : NetworkSession
    prepared : list of Song
        The rows standardised on the device (:meth:`NetworkSession.prepare`).
    sampler : TaskSampler
        Draws each episode's tasks.
    validation : list of Episode
        The held-out listeners' episodes; empty: no validation callback.
    digest : str
        :func:`run_digest` of the run: names its checkpoint, and the
        processes check that they all train the same.
    checkpoint_path, checkpoint_interval, verbose
        The estimator's parameters of these names.
    """
    settings = session.settings
    session.check_task_batching()
    # Says once per fit when "bf16" falls back to float32.
    resolve_precision(session.precision, session.device, warn=session.is_main(), stacklevel=4)
    processes = session.processes()
    if processes is not None:
        processes.check_same(digest, "data or parameters")
    learner = session.learner()
    window = None if settings["train_window"] == "full" else settings["train_window"]
    seed = session.seed
    n_tasks = settings["tasks_per_step"]
    shard = None if processes is None else processes.shard(n_tasks)

    def step(episode):
        rng = np.random.default_rng([seed, episode])
        tasks = sampler.sample(n_tasks, rng)
        return learner.episode_backward(tasks, prepared, window, rng, shard=shard)

    def score():
        return session.validation_score(learner, prepared, validation)

    callbacks = []
    if validation:
        callbacks.append(Validation(score, settings["validation_interval"],
                                    settings["patience"]))
    if checkpoint_path:
        callbacks.append(Checkpoint(checkpoint_path, checkpoint_interval, digest,
                                    extra={"seed": seed}, verbose=bool(verbose)))
    callbacks.append(ProgressBar(f"{session.name} ({session.method().name})",
                                 enabled=bool(verbose),
                                 delay=PROGRESS_DELAY if verbose == "auto" else 0))
    optimizer = torch.optim.Adam(session.network.parameters(), lr=settings["outer_lr"])
    return Trainer(session.network, optimizer, step, settings["n_episodes"],
                   max_grad_norm=settings["max_grad_norm"] or None, callbacks=callbacks,
                   distributed=processes)


def tune_personalization(session, prepared, annotators, listeners, validation) -> dict:
    """The method's personalization choices (``personalization_choices_``).

    Chosen with the network as it is (the best state back) on the
    validation ``listeners``, :data:`TUNING_DRAWS` support songs each (the
    ``validation`` episodes where the tasks are songs, not listeners).
    """
    learner = session.learner()
    tuning = (listener_episodes(annotators, listeners, TUNING_DRAWS, session.seed)
              if listeners else validation)
    return learner.method.tune(
        learner, lambda: session.validation_score(learner, prepared, tuning))


def after_training(session, prepared, annotators, verbose=False) -> None:
    """Give the method every training listener's songs once more (its ``after_training``).

    None (no listeners) where the model was trained on mean labels. With
    ``verbose``, a tqdm bar of the listeners the method adapts, if any
    (``"auto"``: only when it lasts, as for training).
    """
    learner = session.learner()
    listeners = [] if annotators is None else [
        [prepared[i] for i in np.flatnonzero(annotators == a)] for a in np.unique(annotators)]
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"{session.name}: after training", unit="listener",
                       disable=not (verbose and session.is_main()),
                       delay=PROGRESS_DELAY if verbose == "auto" else 0)
        bar.update(done - bar.n)

    try:
        learner.method.after_training(learner, listeners, progress)
    finally:
        if bar is not None:
            bar.close()


def prediction_std_ratio(session, prepared, episodes) -> list:
    """How much predictions move within songs relative to the labels (``prediction_std_ratio_``).

    Judged as the benchmark judges its rows, on the songs of ``episodes``:
    the validation songs (the training songs without a validation split).
    """
    truth, predictions, _ = session.run_episodes(session.learner(), prepared, episodes)
    return prediction_spread(truth, predictions, per_dimension=True)


def warn_if_collapsed(session, spread, best_score, n_episodes_run, best_episode) -> None:
    """Warn when the model barely moves (:func:`pdmer.evaluation.collapse_problems`)."""
    problems = collapse_problems(spread, best_score)
    if problems and session.is_main():
        warnings.warn(
            f"{session.name} may have collapsed to a near-constant output: "
            f"{' and '.join(problems)} (best of {n_episodes_run} episodes, at "
            f"{best_episode}). Try a lower outer_lr, input_normalization=True, "
            "max_grad_norm, or more episodes.", CollapseWarning, stacklevel=4)
