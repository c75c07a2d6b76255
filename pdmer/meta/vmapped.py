"""The tasks of an episode run together: MAML, first-order MAML and plain training.

Here the tasks are stacked and :func:`torch.func.vmap` maps the model's loss
over per-task copies of the adapted parameters, so every inner step is one
pass over all tasks' support songs with batched matrix products; the inner
and outer loops are :func:`pdmer.meta.maml.maml_task_backward`'s, given
the mapped losses. On a GPU, where
one 60-frame song leaves most of the device idle, that is the main speed-up;
on a few CPU cores a task already costs about what it costs in a batch (see
``benchmarks/scale.md``).

The gradients equal those of the sequential loop for the same tasks (to
float rounding; dropout masks differ, since they are drawn per task in one
call). BatchNorm running statistics are updated as if the tasks had run one
after another.

The loss must be written with operations ``vmap`` can batch; pdmer's
networks are, inside :func:`pdmer.nn.recurrent.vmappable`, which this module
enters.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from pdmer.meta.maml import maml_task_backward
from pdmer.meta.running_stats import block_contribution, fold_blocks, running_stat_momenta
from pdmer.nn.recurrent import vmappable

TaskLossFn = Callable[[dict, object, "Tensor | None"], "tuple[Tensor, Tensor | None]"]
"""``loss_fn(state, batch, context) -> (loss, context)`` for one task.

``state`` holds parameters and buffers by name (as for
:func:`torch.func.functional_call`); ``context`` is None or a previous
call's returned context (the output of the part of the network that is not
adapted, reused across inner steps when only the head adapts).
"""

MODES = ("fomaml", "maml", "none")


def vmapped_tasks_backward(
    loss_fn: TaskLossFn,
    network: nn.Module,
    names: Sequence[str],
    tasks: Sequence,
    mode: str,
    steps: int = 0,
    lr: float = 0.0,
    weight: float = 1.0,
    reuse_context: bool = False,
    tasks_per_call: int | None = None,
    support_loss_fn: TaskLossFn | None = None,
) -> list[float]:
    """Accumulate the meta-gradient of several tasks into ``network``'s ``.grad``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(state, batch, context) -> (loss, context)``, see
        :data:`TaskLossFn`; must be batchable by :func:`torch.func.vmap`.
    network : torch.nn.Module
        Holds the meta-parameters (their ``.grad`` receives the result) and
        the buffers (BatchNorm running statistics, updated in place).
    names : sequence of str
        Parameters adapted in the inner loop; the others are shared by all
        tasks and trained by the query loss only.
    tasks : sequence
        ``(support, query)`` pairs of batches for ``"fomaml"`` and
        ``"maml"``; single batches for ``"none"``. A batch is a dataclass
        (e.g. :class:`pdmer.meta.batch.SongBatch`) whose tensor fields
        are (batch,) or (batch, n_frames, ...); every task's batches hold
        the same number of songs. Tasks of different lengths are padded to
        the longest (a ``lengths`` and a ``mask`` field are then required).
    mode : {"fomaml", "maml", "none"}
        First-order MAML, second-order MAML, or plain training on each
        task's batch.
    steps : int, default=0
        Inner SGD steps on the support batch.
    lr : float, default=0.0
        Inner learning rate.
    weight : float, default=1.0
        Each task's loss is multiplied by this in the backward pass (e.g.
        ``1 / n_tasks`` for the episode mean).
    reuse_context : bool, default=False
        Compute the context of the support batch once and pass it back for
        the later inner steps (valid when ``names`` excludes every parameter
        before the context).
    tasks_per_call : int, optional
        Run the tasks in groups of at most this many to bound memory; None
        runs all together.
    support_loss_fn : callable, optional
        The loss of the inner steps, if other than ``loss_fn`` (e.g. run
        with the network in eval mode); same signature.

    Returns
    -------
    list of float
        Each task's unweighted loss: the query loss after adaptation, or the
        batch loss for ``"none"``.

    Examples
    --------
    >>> from pdmer.meta.vmapped import vmapped_tasks_backward
    >>> def loss_fn(state, batch, context):                 # doctest: +SKIP
    ...     return estimator._loss_and_context(state, batch, None, context)
    >>> losses = vmapped_tasks_backward(                     # doctest: +SKIP
    ...     loss_fn, network, names, [(support, query), ...], "fomaml",
    ...     steps=16, lr=5e-3, weight=1 / 16)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if mode != "none" and (steps < 1 or not lr > 0):
        raise ValueError(f"{mode} needs steps >= 1 and lr > 0; got steps={steps}, lr={lr}.")
    if not tasks:
        raise ValueError("tasks is empty: give at least one task.")
    size = len(tasks) if tasks_per_call is None else int(tasks_per_call)
    if size < 1:
        raise ValueError(f"tasks_per_call must be a positive integer; got {tasks_per_call!r}.")
    momenta = running_stat_momenta(network)
    losses = []
    with vmappable():
        for start in range(0, len(tasks), size):
            group = list(tasks[start: start + size])
            losses += _group_backward(loss_fn, support_loss_fn or loss_fn, network,
                                      list(names), group, mode, steps, lr, weight,
                                      reuse_context, momenta)
    return losses


def _group_backward(loss_fn, support_loss_fn, network, names, group, mode, steps, lr, weight,
                    reuse_context, momenta):
    n_tasks = len(group)
    params = dict(network.named_parameters())
    buffers = dict(network.named_buffers())
    map_loss = _mapped(loss_fn, params, names if mode != "none" else [], buffers)
    map_support_loss = (map_loss if support_loss_fn is loss_fn else
                        _mapped(support_loss_fn, params, names, buffers))

    if mode == "none":
        batches = stack_batches(group)
        state = {**params, **_copies(buffers, n_tasks)}
        task_losses = map_loss(state, batches, None)[0]
        (task_losses * weight).sum().backward()
        _merge_buffers(buffers, state, momenta)
        return task_losses.detach().tolist()

    supports = stack_batches([support for support, _ in group])
    queries = stack_batches([query for _, query in group])
    second_order = mode == "maml"
    # Inner loops run on copies of the buffers, as in the sequential loop:
    # adapting to one song must not move the population statistics.
    support_buffers, query_buffers = _copies(buffers, n_tasks), _copies(buffers, n_tasks)
    cache = {}

    def support_loss(state, batch):
        task_losses, context = map_support_loss({**state, **support_buffers}, batch,
                                                cache.get("context"))
        if reuse_context and "context" not in cache and context is not None:
            cache["context"] = context if second_order else context.detach()
        return task_losses.sum()

    def query_loss(state, batch):
        return map_loss({**state, **query_buffers}, batch, None)[0]

    losses = maml_task_backward(support_loss, query_loss, params, names, supports, queries,
                                steps, lr, first_order=not second_order, weight=weight,
                                n_tasks=n_tasks)
    _merge_buffers(buffers, query_buffers, momenta)
    return losses


def _mapped(loss_fn, params, batched_names, buffers):
    """``vmap`` of ``loss_fn`` over tasks: per-task adapted parameters and buffers."""
    batched = set(batched_names) | set(buffers)
    state_dims = {n: (0 if n in batched else None) for n in [*params, *buffers]}

    def call(state, stacked, context):
        template, tensors = stacked

        def one_task(state, tensors, context):
            return loss_fn(state, dataclasses.replace(template, **tensors), context)

        in_dims = (state_dims, 0, None if context is None else 0)
        return vmap(one_task, in_dims=in_dims, randomness="different")(state, tensors, context)

    return call


def _copies(buffers: dict, n_tasks: int) -> dict:
    return {n: b.unsqueeze(0).expand(n_tasks, *b.shape).clone() for n, b in buffers.items()}


def stack_batches(batches: Sequence) -> tuple:
    """Stack one batch per task into ``(template, {field: (n_tasks, ...) tensor})``.

    Tensor fields of shape (batch, n_frames, ...) are padded along the frame
    axis to the longest task (zeros; False for masks). When no task has
    padding, ``lengths`` and ``mask`` become None, so the network skips its
    padding masks.
    """
    template = batches[0]
    fields = [f.name for f in dataclasses.fields(template)
              if isinstance(getattr(template, f.name), Tensor)]
    sizes = {getattr(b, fields[0]).shape[0] for b in batches}
    if len(sizes) != 1:
        raise ValueError(
            f"Every task's batch must hold the same number of songs to run together; got "
            f"{sorted(sizes)}. Give each task the same n_support and n_query.")
    n_frames = max(getattr(b, name).shape[1] for b in batches for name in fields
                   if getattr(b, name).dim() >= 2)
    tensors = {}
    for name in fields:
        values = []
        for batch in batches:
            value = getattr(batch, name)
            if value.dim() >= 2 and value.shape[1] < n_frames:
                pad = [0, 0] * (value.dim() - 2) + [0, n_frames - value.shape[1]]
                value = F.pad(value, pad)
            values.append(value)
        tensors[name] = torch.stack(values)
    lengths = tensors.get("lengths")
    if lengths is not None and bool((lengths == n_frames).all()):
        # No padding anywhere: the network may skip its masks.
        template = dataclasses.replace(template, lengths=None, **(
            {"mask": None} if "mask" in tensors else {}))
        tensors.pop("lengths")
        tensors.pop("mask", None)
    elif lengths is None and any(getattr(b, name).dim() >= 2 and getattr(b, name).shape[1]
                                 != n_frames for b in batches for name in fields):
        raise ValueError("Tasks of different lengths need a lengths field to be padded.")
    return template, tensors


@torch.no_grad()
def _merge_buffers(buffers: dict, state: dict, momenta: dict) -> None:
    """Fold per-task buffer updates into ``buffers`` as sequential updates would."""
    for name, buffer in buffers.items():
        after = state[name]  # (n_tasks, ...): each task's update of the same start
        if torch.equal(after, buffer.unsqueeze(0).expand_as(after)):
            continue
        if name not in momenta:
            raise NotImplementedError(
                f"Buffer {name!r} changed in the tasks and is not a BatchNorm statistic; "
                "batched tasks cannot tell how to combine its updates. Use the sequential loop.")
        # Each task is a block of one update from the same start.
        n_tasks = after.shape[0]
        contributions = sum(block_contribution(buffer, after[t], momenta[name], 1,
                                               n_tasks - 1 - t) for t in range(n_tasks))
        buffer.copy_(fold_blocks(buffer, contributions, momenta[name], n_tasks))
