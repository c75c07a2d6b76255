"""The network session: an estimator's network at work on its device.

This module is the estimators' one link to :mod:`pdmer.meta` for tensor
work. A :class:`NetworkSession` holds what running the network needs (the
network, the forward pass, the resolved settings, the device, the run's
seed) and offers one interface to the estimator's ``fit``, ``predict`` and
``meta_learner``, to its training (:mod:`pdmer.estimators._training`) and to
personalization (:mod:`pdmer.estimators._personalization`):

- :meth:`~NetworkSession.prepare`: songs standardised as the network
  expects, on its device;
- :meth:`~NetworkSession.seeded`: torch seeded for one step of the run;
- :meth:`~NetworkSession.learner`: the :class:`~pdmer.meta.learner.MetaLearner`
  (losses, inner loops, adaptation, prediction);
- :meth:`~NetworkSession.predict`, :meth:`~NetworkSession.run_episodes` and
  :meth:`~NetworkSession.validation_score` on songs;
- :meth:`~NetworkSession.processes` and :meth:`~NetworkSession.is_main`: the
  other training processes (:mod:`pdmer.meta.distributed`).

A session holds no state of its own: the estimator makes one from its
parameters and fitted attributes whenever it needs one
(``BaseEmotionRegressor._session()``). Before a network exists the module's
functions serve the same settings: :func:`device_and_seed` (the run's device
and seed), :func:`seeded_step`, and :func:`assemble` (what the estimator adds
to a subclass's network) with :func:`adapted_names`.
"""

from __future__ import annotations

import numpy as np
import torch

from pdmer.evaluation import run_episodes
from pdmer.evaluation.personalized import listener_ccc
from pdmer.meta import distributed
from pdmer.meta.callbacks import Checkpoint
from pdmer.meta.learner import MetaLearner, TensorEpisodes, seeded
from pdmer.meta.methods import MetaLearningMethod, get_method
from pdmer.nn.device import resolve_device
from pdmer.nn.normalization import InputNormalization

STEPS = {"personalization": -1, "initialisation": -2, "episodes": -3}
"""The run's own seeded steps (:func:`seeded_step`): adaptation in train mode,
the network's initialisation, and the evaluation episodes (validation, the
collapse check). Training episodes seed themselves by their number."""


# ------------------------------------------------------------ the network
def method_of(settings: dict) -> MetaLearningMethod:
    """The resolved meta-learning method (:mod:`pdmer.meta.methods`), a fresh copy."""
    return get_method(settings["meta_learning"])


def adapted_names(network: torch.nn.Module, settings: dict, head_prefixes: tuple) -> list:
    """The parameters adapted per listener: all but the method's own (the head's with ANIL)."""
    own = method_of(settings).own_prefixes
    names = [n for n, _ in network.named_parameters() if not (own and n.startswith(own))]
    if settings["inner_params"] == "head":
        names = [n for n in names if n.startswith(head_prefixes)]
    return names


def assemble(network: torch.nn.Module, spec: dict, settings: dict,
             head_prefixes: tuple) -> torch.nn.Module:
    """Attach what the estimator adds to a network: input statistics, the method's modules.

    Both are submodules, so the network's ``state_dict`` (model files, the
    model id, checkpoints) carries them.
    """
    if settings["input_normalization"]:
        network.input_normalization = InputNormalization(spec["n_mels"], spec["global_dim"])
    method_of(settings).attach(network, adapted_names(network, settings, head_prefixes),
                               settings["inner_lr"])
    return network


# ------------------------------------------------------- device and seed
def join(device, mode) -> "distributed.Distributed | None":
    """The other training processes, or None (always None with ``distributed=False``)."""
    if mode is False:
        return None
    return distributed.join(device)


def is_main(device, mode) -> bool:
    """Whether this process speaks for the run (warnings, files): alone, or rank 0."""
    processes = join(device, mode)
    return processes is None or processes.is_main


def device_and_seed(device, mode, random_state, checkpoint_path) -> tuple:
    """The run's device and seed, agreed with the other training processes.

    Under ``torchrun`` this joins the other processes; each takes its own
    GPU when ``device`` names none, and all take the first process's seed
    (``random_state``, the interrupted run's from ``checkpoint_path``, or a
    fresh one). ``mode`` is the estimator's ``distributed`` parameter.
    """
    device = resolve_device(device)
    processes = join(device, mode)
    if processes is not None:
        device = distributed.process_device(device)
    if random_state is not None:
        return device, int(random_state)
    state = Checkpoint.read(checkpoint_path)
    seed = (int(state["seed"]) if state is not None else
            int(np.random.SeedSequence().entropy % (2**31)))
    if processes is not None:
        seed = int(processes.broadcast(seed))  # < 2**31: exact as a float
    return device, seed


def seeded_step(seed: int, step: int, device):
    """Seed torch for one step of the run (:data:`STEPS`), leaving the caller's RNG untouched."""
    return seeded((seed * 1_000_003 + step) % (2**63), device)


# -------------------------------------------------------------- session
class NetworkSession:
    """A network on its device with the settings and seed of its run.

    Parameters
    ----------
    network : torch.nn.Module
        Assembled (:func:`assemble`) and on ``device``.
    forward : callable
        The estimator's ``_forward(network, state, batch, context)``.
    settings : dict
        The resolved settings (``resolved_params_``).
    name : str
        The estimator's class name, for messages.
    device : torch.device
    seed : int or None
        The run's seed (``seed_``); None where nothing is seeded.
    head_prefixes : tuple of str
        The head's parameters (``inner_params="head"``).
    adapt_mode : {"eval", "train"}
        Module mode of inner loops and personalization.
    batchable_tasks : bool
        Whether the network runs under :func:`torch.func.vmap`.
    precision, task_batching, distributed, predict_batch_size
        The estimator's parameters of these names.
    """

    def __init__(self, network, forward, settings, *, name, device, seed=None, head_prefixes=(),
                 adapt_mode="eval", batchable_tasks=False, precision="auto",
                 task_batching="auto", distributed="auto", predict_batch_size=8):
        self.network = network
        self.forward = forward
        self.settings = settings
        self.name = name
        self.device = device
        self.seed = seed
        self.head_prefixes = head_prefixes
        self.adapt_mode = adapt_mode
        self.batchable_tasks = batchable_tasks
        self.precision = precision
        self.task_batching = task_batching
        self.distributed = distributed
        self.predict_batch_size = predict_batch_size

    def method(self) -> MetaLearningMethod:
        """The meta-learning method of the settings, a fresh copy."""
        return method_of(self.settings)

    def learner(self) -> MetaLearner:
        """The network's :class:`~pdmer.meta.learner.MetaLearner` with these settings."""
        task_batching, tasks_per_call = self.resolved_task_batching()
        return MetaLearner(
            self.network, self.forward,
            adapted_names(self.network, self.settings, self.head_prefixes),
            method=self.method(), inner_steps=self.settings["inner_steps"],
            inner_lr=self.settings["inner_lr"], device=self.device,
            precision=self.precision, adapt_mode=self.adapt_mode,
            task_batching=task_batching, tasks_per_call=tasks_per_call)

    def resolved_task_batching(self) -> tuple:
        """``(task_batching, tasks_per_call)`` of the learner: "auto" resolved."""
        choice = self.task_batching
        batchable = self.batchable_tasks and self.method().batchable
        if choice == "sequential" or not batchable:
            return "sequential", None
        if choice == "auto":
            on_gpu = self.device.type == "cuda"
            return ("vmap" if on_gpu else "sequential"), None
        return "vmap", (None if choice == "vmap" else int(choice))

    def check_task_batching(self) -> None:
        """Refuse ``task_batching`` asking for vmap where the network or method cannot."""
        if self.task_batching in ("auto", "sequential"):
            return
        if not self.batchable_tasks:
            raise ValueError(
                f"{self.name} cannot batch tasks with vmap (its network packs "
                f"padded sequences); use task_batching='sequential' or 'auto', not "
                f"{self.task_batching!r}.")
        method = self.method()
        if not method.batchable:
            raise ValueError(
                f"The meta-learning method {method.name!r} cannot batch tasks with vmap; use "
                f"task_batching='sequential' or 'auto' with it, not {self.task_batching!r}.")

    def processes(self):
        """The other training processes (:class:`~pdmer.meta.distributed.Distributed`) or None."""
        return join(self.device, self.distributed)

    def is_main(self) -> bool:
        """:func:`is_main` on the session's device."""
        return is_main(self.device, self.distributed)

    def seeded(self, step: int):
        """:func:`seeded_step` with the run's seed and device."""
        return seeded_step(self.seed, step, self.device)

    def prepare(self, songs) -> list:
        """Songs standardised as the network expects, on its device."""
        normalization = getattr(self.network, "input_normalization", None)
        out = []
        for song in songs:
            song = song.to(self.device)
            if normalization is not None and normalization.fitted:
                local, glob = normalization(song.local_patches, song.global_embeddings)
                song = type(song)(local, glob, song.y, song.encoder, song.waveforms)
            out.append(song)
        return out

    def predict(self, songs, params=None) -> list:
        """Predictions for songs, with a listener's adapted tensors ``params`` (None: none)."""
        state = None if params is None else {n: t.to(self.device) for n, t in params.items()}
        return self.learner().predict(self.prepare(songs), state, self.predict_batch_size)

    def run_episodes(self, learner, prepared, episodes) -> tuple:
        """The evaluation protocol's episodes on prepared songs, seeded (``STEPS["episodes"]``)."""
        # The protocol reads labels as arrays: copy those of the episodes' rows off the device.
        rows = {r for episode in episodes for r in (*episode.support, *episode.query)}
        labels = [song.y.cpu().numpy() if r in rows else None for r, song in enumerate(prepared)]
        with self.seeded(STEPS["episodes"]):
            return run_episodes(TensorEpisodes(learner, self.predict_batch_size), prepared,
                                labels, episodes)

    def validation_score(self, learner, prepared, validation) -> float:
        """Mean CCC over the held-out listeners, personalized; processes split them."""
        processes = self.processes()
        names = sorted({e.listener for e in validation})
        mine = set(names if processes is None else names[processes.rank::processes.world_size])
        truth, predictions, listeners = self.run_episodes(
            learner, prepared, [e for e in validation if e.listener in mine])
        scores = list(listener_ccc(truth, predictions, listeners).values())
        if processes is None:
            return float(np.mean(scores))
        return processes.sum(float(np.sum(scores))) / len(names)
