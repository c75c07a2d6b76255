"""Model-agnostic meta-learning on :func:`torch.func.functional_call`.

Parameters are plain dicts of tensors, so one network serves the
meta-parameters, every task's fast weights and every listener's adaptation
without copying modules.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

LossFn = Callable[[dict, object], torch.Tensor]
"""``loss_fn(params, batch) -> scalar``: the model's loss with the given parameters."""


def adapt(loss_fn: LossFn, params: dict, names: Iterable[str], batch, steps: int,
          lr, create_graph: bool = False, progress=None, in_place: bool = False,
          bf16_names: Iterable[str] = ()) -> dict:
    """Plain SGD on ``batch`` for the parameters in ``names``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, batch)`` returns the scalar training loss.
    params : dict of str -> Tensor
        Starting point; left unchanged.
    names : iterable of str
        Parameters to adapt; the others stay fixed.
    batch : object
        Passed to ``loss_fn``.
    steps : int
    lr : float or dict of str -> Tensor
        Step size, or one tensor of step sizes per adapted parameter
        (Meta-SGD's learned rates; gradients reach them through the update).
    create_graph : bool, default=False
        Keep the graph of the updates (second-order MAML).
    progress : callable, optional
        Called as ``progress(step, steps)`` after each step.
    in_place : bool, default=False
        Update the tensors of ``params`` in ``names`` in place instead of
        creating new ones each step (they must be leaf tensors the caller
        owns; without ``create_graph`` only; learned rates are never applied
        in place, since they need the update's graph). Saves allocating and
        writing a full parameter set per step, most of an update's cost.
    bf16_names : iterable of str, default=()
        Adapted parameters that ``loss_fn`` uses only in bfloat16 (matrix
        product weights under bfloat16 autocast). With ``in_place``, each
        step differentiates bfloat16 copies of them, which autocast then
        uses as they are, and adds their bfloat16 gradients to the float32
        parameters: the values of autocast's own cast, without casting
        every gradient back to float32 first.

    Returns
    -------
    dict of str -> Tensor
        The adapted parameters (fixed ones are the same tensors as in ``params``).
    """
    if in_place and create_graph:
        raise ValueError("in_place updates cannot keep the graph of the updates; "
                         "use create_graph=False.")
    names = list(names)
    fast = dict(params)
    bf16_names = set(bf16_names) if in_place else set()
    for step in range(steps):
        inputs = _bf16_copies(fast, bf16_names)
        loss = loss_fn(inputs, batch)
        grads = torch.autograd.grad(loss, [inputs[n] for n in names],
                                    create_graph=create_graph, allow_unused=True)
        for name, grad in zip(names, grads):
            if grad is None:
                continue
            if isinstance(lr, dict):
                # Learned rates get their gradient through the update itself.
                fast[name] = fast[name] - lr[name] * grad
            elif in_place:
                with torch.no_grad():
                    fast[name].add_(grad, alpha=-lr)
            else:
                # One fused operation: p - lr * g would allocate two tensors.
                fast[name] = torch.add(fast[name], grad, alpha=-lr)
        if progress is not None:
            progress(step + 1, steps)
    return fast


def maml_task_backward(support_loss: LossFn, query_loss: LossFn, params: dict,
                       names: list, support, query, steps: int, lr,
                       first_order: bool, weight: float = 1.0,
                       bf16_names: Iterable[str] = (), n_tasks: int | None = None):
    """Accumulate one task's (or several stacked tasks') meta-gradient into ``params[*].grad``.

    Second-order MAML differentiates through the inner updates. First-order
    MAML starts the inner loop from detached copies, so the query gradient at
    the adapted weights is applied to the meta-parameters as it is. With
    learned rates (``lr`` a dict of tensors that require grad, Meta-SGD) the
    query loss also reaches the rates through the updates; first-order, the
    inner gradients are constants there, so each rate gets
    ``-sum_k grad_k * grad_query``. ``bf16_names`` is passed to
    :func:`adapt`; first-order, the query pass uses such copies too.

    With ``n_tasks``, the adapted parameters get a leading axis of that many
    tasks (each task its own copy of the start), ``support_loss`` returns the
    tasks' summed loss and ``query_loss`` their (n_tasks,) losses: the same
    loop serves :mod:`pdmer.meta.vmapped`, where the losses are
    :func:`torch.func.vmap`-ped over tasks.

    Returns the task's query loss (a list of the tasks' with ``n_tasks``).
    """
    def task_start(p):
        if n_tasks is not None:
            p = p.unsqueeze(0).expand(n_tasks, *p.shape)
        return p.detach().clone().requires_grad_(True) if first_order else p

    start = {n: task_start(p) if n in names else p for n, p in params.items()}
    # First order: the detached copies are this task's own, so they are
    # updated in place.
    in_place = first_order and not isinstance(lr, dict)
    bf16_names = set(bf16_names) if in_place else set()
    fast = adapt(support_loss, start, names, support, steps, lr, create_graph=not first_order,
                 in_place=in_place, bf16_names=bf16_names)
    inputs = _bf16_copies(fast, bf16_names)
    loss = query_loss(inputs, query)
    (loss * weight).sum().backward()
    if first_order:
        for n in names:
            grad = (inputs if n in bf16_names else start)[n].grad
            if grad is None:
                continue
            if n_tasks is not None:
                grad = grad.sum(0)
            if params[n].grad is None:
                params[n].grad = grad.to(params[n].dtype, copy=True)
            else:
                params[n].grad += grad
    return float(loss.detach()) if n_tasks is None else loss.detach().tolist()


def _bf16_copies(params: dict, names: set) -> dict:
    """``params`` with those in ``names`` replaced by bfloat16 leaf copies that require grad."""
    if not names:
        return params
    return {n: p.detach().to(torch.bfloat16).requires_grad_(True) if n in names else p
            for n, p in params.items()}
