"""A network's losses, inner loops and predictions on song tensors.

:class:`MetaLearner` is what the estimators and the trainer share: one
meta-training episode's gradient (:meth:`~MetaLearner.episode_backward`),
adaptation to one listener from the meta-parameters
(:meth:`~MetaLearner.adapt`) and prediction (:meth:`~MetaLearner.predict`);
:class:`TensorEpisodes` lends it to the evaluation protocol's episode loop
(:func:`pdmer.evaluation.run_episodes`) for training validation. It holds no
training state: the estimator builds one around its network whenever it
needs it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import numpy as np
import torch

from pdmer.meta.batch import collate
from pdmer.meta.vmapped import vmapped_tasks_backward
from pdmer.meta.methods import get_method
from pdmer.meta.methods.calibrated import ready_start
from pdmer.nn.losses import emotion_loss
from pdmer.nn.precision import autocast, check_precision, resolve_precision

ADAPT_MODES = ("eval", "train")
"""Module mode of inner loops and personalization: ``"eval"`` (dropout off,
BatchNorm running statistics, as at prediction) or ``"train"``."""

TASK_BATCHING = ("sequential", "vmap")
"""How the tasks of an episode run: one after another, or together in one
:func:`torch.func.vmap` (:mod:`pdmer.meta.vmapped`)."""


@contextlib.contextmanager
def seeded(seed, device):
    """Run with torch's global generators seeded with ``seed``, then restore them.

    Saves and restores the CPU generator and, on CUDA, ``device``'s.
    """
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


_LOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock]" = \
    weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def forward_lock(network) -> threading.Lock:
    """The lock that serializes forward passes through ``network``.

    :func:`torch.func.functional_call` runs a module with other parameters by
    swapping them into the module for the duration of the call, so two
    threads running one network at once would see each other's parameters.
    Backward passes need no lock: the graph holds the tensors it needs.
    """
    with _LOCKS_LOCK:
        lock = _LOCKS.get(network)
        if lock is None:
            lock = _LOCKS[network] = threading.Lock()
        return lock


class MetaLearner:
    """Losses, inner loops and predictions of one network.

    Parameters
    ----------
    network : torch.nn.Module
        The network, with the submodules its method attached (e.g.
        Meta-SGD's rates).
    forward : callable
        ``forward(network, state, batch, context)`` returns ``(prediction
        (B, T, 2), auxiliary loss or None, context or None)``; ``state`` is
        None (the module's own parameters) or a dict of parameters.
    adapted_names : list of str
        Parameters the inner loop and personalization change.
    method : str or MetaLearningMethod
        The meta-learning method (:mod:`pdmer.meta.methods`): its inner
        loop, meta-gradient and adaptation.
    inner_steps : int
    inner_lr : float
    device : torch.device
    precision : {"auto", "bf16", "fp32"}, default="auto"
        Where losses, inner loops and predictions run under bfloat16
        autocast: pdmer's one precision policy
        (:func:`pdmer.nn.precision.resolve_precision`).
    adapt_mode : {"eval", "train"}, default="eval"
        Module mode of every inner loop and adaptation. In ``"eval"`` mode
        adaptation sees the network exactly as prediction does and changes
        no module state; with forward passes serialized by
        :func:`forward_lock`, several threads may adapt and predict with one
        network at once. ``"train"`` switches the network to training mode
        while it adapts (not thread-safe).
    task_batching : {"sequential", "vmap"}, default="sequential"
        Run the tasks of an episode one after another, or together with
        :func:`pdmer.meta.vmapped.vmapped_tasks_backward` (the network's
        forward must be batchable by :func:`torch.func.vmap`, and the method
        :attr:`~pdmer.meta.methods.MetaLearningMethod.batchable`).
    tasks_per_call : int, optional
        With ``"vmap"``: at most this many tasks in one call (bounds
        memory); None runs all of a process's tasks together.
    """

    def __init__(self, network, forward, adapted_names, *, method, inner_steps,
                 inner_lr, device, precision="auto", adapt_mode="eval",
                 task_batching="sequential", tasks_per_call=None):
        method = get_method(method)
        if adapt_mode not in ADAPT_MODES or task_batching not in TASK_BATCHING:
            raise ValueError(
                f"adapt_mode must be one of {ADAPT_MODES} and task_batching one of "
                f"{TASK_BATCHING}; got {adapt_mode!r} and {task_batching!r}.")
        if task_batching == "vmap" and not method.batchable:
            raise ValueError(
                f"{type(method).__name__} cannot run the tasks of an episode together "
                f"(task_batching='vmap'); use task_batching='sequential'.")
        self.network = network
        self.forward = forward
        self.names = list(adapted_names)
        self.method = method
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.device = device
        self.precision = check_precision(precision)
        self.adapt_mode = adapt_mode
        self.task_batching = task_batching
        self.tasks_per_call = tasks_per_call

    # ---------------------------------------------------------------- losses
    def autocast(self):
        """bfloat16 autocast where ``precision`` resolves to it on the device."""
        return autocast(self.device, self.precision)

    def bf16_names(self) -> list:
        """Adapted weights of linear layers when bfloat16 autocast runs, else none.

        Autocast computes every :class:`torch.nn.Linear` in bfloat16; inner
        loops then differentiate bfloat16 copies of these weights (see
        :func:`pdmer.meta.maml.adapt`).
        """
        if resolve_precision(self.precision, self.device) != torch.bfloat16:
            return []
        adapted = set(self.names)
        return [f"{prefix}.{name}" for prefix, module in self.network.named_modules()
                if isinstance(module, torch.nn.Linear)
                for name, _ in module.named_parameters(recurse=False)
                if f"{prefix}.{name}" in adapted]

    def loss(self, state, batch, buffers=None, context=None):
        """``(loss, context)``: the emotion loss (plus any auxiliary loss) of ``batch``."""
        full = state if buffers is None else {**state, **buffers}
        with forward_lock(self.network), self.autocast():
            prediction, aux, context = self.forward(self.network, full, batch, context)
            # Under the lock: a method's output may read buffers that another
            # thread's functional_call has swapped in.
            prediction = self.method.output(self.network, full, prediction.float())
        loss = emotion_loss(prediction, batch.y, batch.mask)
        return (loss if aux is None else loss + aux.float()), context

    def query_loss(self, state, batch):
        """The loss ``(params, batch) -> loss`` of a query set (or of plain training)."""
        return self.loss(state, batch)[0]

    def support_loss(self, keep_graph: bool = False):
        """The inner-loop loss ``(params, batch) -> loss``, run in the adaptation mode.

        Parameters
        ----------
        keep_graph : bool, default=False
            Keep the graph of the frozen part's output (second-order MAML).
        """
        return self.support_pass(keep_graph).loss

    def support_pass(self, keep_graph: bool = False) -> "SupportPass":
        """The loss and the prediction of one support batch, sharing what stays fixed.

        See :class:`SupportPass`; ``keep_graph`` as for :meth:`support_loss`.
        """
        return SupportPass(self, keep_graph)

    def _head_only(self) -> bool:
        """Whether some parameters stay fixed in the inner loop (the trunk's output is reusable)."""
        adapted = set(self.names)
        own = self.method.own_prefixes
        return any(n not in adapted and not (own and n.startswith(own))
                   for n, _ in self.network.named_parameters())

    def rates(self, lr=None):
        """The inner step size: ``lr``, or the method's (``inner_lr`` or learned rates)."""
        return lr if lr is not None else self.method.step_sizes(self.network, self.inner_lr)

    def parameter_copies(self) -> dict:
        """Detached copies of the parameters adaptation starts from (adapted ones require grad).

        The meta-parameters, or for the adapted ones the network's
        ``personalization_start`` once it is set (see
        :class:`~pdmer.meta.methods.CalibrateThenAdapt`'s ``recenter``).
        """
        start = ready_start(self.network)
        start = start.values() if start is not None else {}
        with forward_lock(self.network):  # not while another thread swapped its own in
            return {n: start.get(n, p).detach().clone().requires_grad_(n in self.names)
                    for n, p in self.network.named_parameters()}

    def _second_order_context(self):
        # cuDNN's LSTM has no double backward.
        second_order = self.method.second_order and self.device.type == "cuda"
        return (torch.backends.cudnn.flags(enabled=False) if second_order
                else contextlib.nullcontext())

    @contextlib.contextmanager
    def _mode(self, training: bool):
        """Run in training or eval mode, then restore.

        Nothing is written when the network is already in that mode (eval
        adaptation and prediction of a fitted model), so concurrent callers
        never race on it.
        """
        was = self.network.training
        if was != training:
            self.network.train(training)
        try:
            yield
        finally:
            if self.network.training != was:
                self.network.train(was)

    # -------------------------------------------------------------- training
    def episode_backward(self, tasks, songs, window, rng, shard=None) -> float:
        """Accumulate one episode's (meta-)gradient into the parameters' ``.grad``.

        Every task draws its crops and its own torch seed (dropout) from
        ``rng`` in order, so a task gives the same gradient whichever
        process computes it and whatever else that process computes.

        Parameters
        ----------
        tasks : list of Task
        songs : list of Song
            Rows the tasks index, on ``device``.
        window : int or None
            Frames of the random crop of every song (None: whole songs).
        rng : numpy.random.Generator
            Draws the crops and the tasks' seeds.
        shard : sequence of int, optional
            Indices of the tasks to compute here (distributed training: the
            other processes compute the rest); None computes all.

        Returns
        -------
        float
            The computed tasks' share of the episode's mean query loss
            (the mean itself when all are computed).
        """
        plain = not self.method.inner_loop
        seeds = rng.integers(0, 2**62, size=len(tasks))
        crops = []
        for task in tasks:
            # Plain training: the songs of a meta-learning task in one batch.
            parts = [np.r_[task.support, task.query]] if plain else [task.support, task.query]
            crops.append([[songs[i].window(window, rng) for i in rows] for rows in parts])
        selected = list(range(len(tasks)) if shard is None else shard)
        if not selected:
            return 0.0

        def batches(i):
            return [collate(part, self.device) for part in crops[i]]

        weight = 1.0 / len(tasks)
        if self.task_batching == "vmap":
            with seeded(seeds[selected[0]], self.device), self._second_order_context():
                task_batches = [b[0] if plain else tuple(b) for b in map(batches, selected)]
                return sum(self.method.tasks_backward(self, task_batches, weight)) / len(tasks)
        loss = 0.0
        for i in selected:
            with seeded(seeds[i], self.device):
                # Plain training: one task per batch with accumulated
                # gradients, the mean loss over all songs at the memory of one task.
                loss += self.task_backward(*batches(i), weight=weight) / len(tasks)
        return loss

    def vmapped_backward(self, tasks, mode, weight) -> list:
        """Tasks together in :func:`~pdmer.meta.vmapped.vmapped_tasks_backward` (``mode``)."""
        training = self.adapt_mode == "train"

        def loss_fn(state, batch, context):
            return self.loss(state, batch, None, context)

        def support_loss_fn(state, batch, context):
            with self._mode(training):
                return self.loss(state, batch, None, context)

        plain = mode == "none"
        return vmapped_tasks_backward(
            loss_fn, self.network, self.names, tasks, mode, 0 if plain else self.inner_steps,
            0.0 if plain else self.inner_lr, weight=weight, reuse_context=self._head_only(),
            tasks_per_call=self.tasks_per_call, support_loss_fn=support_loss_fn)

    def task_backward(self, support, query=None, steps=None, weight=1.0) -> float:
        """Accumulate one task's meta-gradient (weighted) into the parameters' ``.grad``.

        Parameters
        ----------
        support, query : SongBatch
            Plain training (a method without inner loop): all the task's
            songs in ``support``, ``query`` None.
        steps : int, optional
            Inner steps; defaults to ``inner_steps``.
        weight : float, default=1.0
            Scale of this task's gradient (1 / tasks per episode).

        Returns
        -------
        float
            The task's query loss.
        """
        with self._second_order_context():
            return self.method.task_backward(
                self, support, query, self.inner_steps if steps is None else steps, weight)

    # ---------------------------------------------------------- adaptation
    def adapt(self, songs, steps=None, lr=None, progress=None) -> dict:
        """Parameters adapted to support songs, starting from the meta-parameters.

        Parameters
        ----------
        songs : list of Song
        steps : int, optional
            Defaults to :meth:`personalization_steps`.
        lr : float, optional
            Defaults to Meta-SGD's learned rates, or ``inner_lr``.
        progress : callable, optional
            ``progress(step, steps)`` after every step.

        Returns
        -------
        dict of str -> Tensor
            The adapted parameters (detached), by name.
        """
        steps = self.personalization_steps() if steps is None else steps
        rates = self.rates(lr)
        if isinstance(rates, dict):
            rates = {n: r.detach() for n, r in rates.items()}
        return self.method.adapt(self, collate(songs, self.device), steps, rates, progress)

    def personalization_steps(self) -> int:
        """Inner steps of a personalization by default: the method's (usually ``inner_steps``)."""
        return self.method.personalization_steps(self)

    @torch.no_grad()
    def predict(self, songs, state=None, batch_size=8) -> list:
        """Predictions ``(n_frames_i, 2)`` per song; ``state`` overrides parameters."""
        order = np.argsort([s.n_frames for s in songs], kind="stable")
        out = [None] * len(songs)
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            batch = collate([songs[i] for i in idx], self.device, labels=False)
            with self._mode(False), forward_lock(self.network), self.autocast():
                prediction, _, _ = self.forward(self.network, state, batch, None)
                prediction = self.method.output(self.network, state, prediction.float())
            prediction = prediction.cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = prediction[j, : songs[i].n_frames]
        return out


class SupportPass:
    """One support batch as the inner loop sees it: its loss and its prediction.

    Both run in the learner's adaptation mode; in training mode on copies of
    the buffers (adapting to one song must not drift the population
    statistics used at test time; eval mode never updates them). With only
    the head adapting, the rest of the network gives the same output (the
    context) at every step and for every prediction, so it is computed once
    for the batch, whichever comes first (a closed-form calibration predicts
    before the first step). Every call must pass the same batch. In training
    mode a prediction computes its own context: dropout draws differ from
    the loss's.

    Parameters
    ----------
    learner : MetaLearner
    keep_graph : bool, default=False
        Keep the graph of the frozen part's output (second-order MAML).
    """

    def __init__(self, learner: MetaLearner, keep_graph: bool = False):
        self.learner = learner
        self.keep_graph = keep_graph
        self.training = learner.adapt_mode == "train"
        network = learner.network
        self.buffers = ({n: b.clone() for n, b in network.named_buffers()} if self.training
                        else None)
        self.head_only = learner._head_only()
        self.context = None

    def loss(self, state, batch):
        """The emotion loss of ``batch`` at ``state`` (parameters by name)."""
        with self.learner._mode(self.training):
            value, context = self.learner.loss(state, batch, self.buffers, self.context)
        self._keep(context, detach=not self.keep_graph)
        return value

    @torch.no_grad()
    def prediction(self, state, batch):
        """The prediction of ``batch`` at ``state`` (None: the network's), with the method's output."""
        learner, network = self.learner, self.learner.network
        full = {**(state or dict(network.named_parameters())),
                **({n: b.clone() for n, b in self.buffers.items()} if self.training else {})}
        context = None if self.training else self.context
        with learner._mode(self.training), forward_lock(network), learner.autocast():
            prediction, _, context = learner.forward(network, full, batch, context)
            prediction = learner.method.output(network, full, prediction.float())
        if not self.training and not self.keep_graph:  # a no-grad context has no graph
            self._keep(context, detach=True)
        return prediction

    def _keep(self, context, detach: bool) -> None:
        if self.head_only and self.context is None and context is not None:
            self.context = context.detach() if detach else context


class TensorEpisodes:
    """A :class:`MetaLearner` as the estimator of :func:`pdmer.evaluation.run_episodes`.

    Training validation scores held-out listeners with the evaluation
    protocol's one episode loop, on songs already prepared as tensors: the
    learner adapts to the support songs (their labels travel inside them)
    and predicts the query songs with the adapted parameters, never
    changing the meta-parameters.

    Parameters
    ----------
    learner : MetaLearner
    batch_size : int, default=8
        Songs per prediction batch.
    """

    def __init__(self, learner: MetaLearner, batch_size: int = 8):
        self.learner = learner
        self.batch_size = batch_size

    def adapt_listener(self, X, y=None, steps=None, lr=None) -> dict:
        """The parameters adapted to songs ``X`` (``y`` is unused: the songs hold their labels)."""
        return self.learner.adapt(X, steps, lr)

    def predict(self, X, listener=None) -> list:
        """Predictions per song, with adapted parameters ``listener`` (None: the meta-parameters)."""
        return self.learner.predict(X, listener, self.batch_size)
