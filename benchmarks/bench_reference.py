#!/usr/bin/env python
"""A reference-style MAML loop on pdmer's DSAML network, to compare pdmer against.

The authors' implementation meta-trains DSAML with learn2learn's ``MAML``:
per task it clones the module (``clone()``: a copy of the module tree whose
parameters are ``torch.clone``-d from the meta-parameters, so the graph leads
back to them; buffers are shared), takes inner SGD steps with ``adapt(loss)``
(``torch.autograd.grad`` of the support loss with respect to the clone's
parameters, then each parameter is replaced by ``p + (-lr * g)``), and calls
``backward()`` on the query loss, which flows through the clone into the
meta-parameters. learn2learn 0.2.0 does not build on Python 3.11, so this
file re-implements exactly that behaviour (it is not learn2learn's code).

It runs on pdmer's :class:`~pdmer.nn.DSAMLNet` in float32, in training mode,
with the paper's task shape: 1 support song and 15 query songs of 60 frames,
16 inner steps, lr 5e-3, task loss + diagonal attention loss. Run it against
an older pdmer (e.g. the commit before the network was banded) with
``--pdmer-path``::

    git archive fb3a0f9 pdmer | tar -x -C /tmp/pdmer-fb3a0f9
    python benchmarks/bench_reference.py --pdmer-path /tmp/pdmer-fb3a0f9

Usage::

    python benchmarks/bench_reference.py                     # paper size, FOMAML, 1 thread
    python benchmarks/bench_reference.py --threads 2 --repeats 3
    python benchmarks/bench_reference.py --inner-params head

``benchmarks/bench_scale.py`` imports :func:`reference_task` and times it
interleaved with pdmer's own loop.

The authors' own model (github Littleor/Personalized-DMER) runs the same
loop (:class:`MAML`, as their ``train.py`` uses learn2learn) from their
files: ``reference_code.py`` (alone), and ``bench_scale.py task|personalize
--reference-code DIR`` (interleaved with pdmer's rows).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import sys
import time

N_SUPPORT, N_QUERY, N_FRAMES, INNER_STEPS, INNER_LR = 1, 15, 60, 16, 5e-3
HEAD_PREFIXES = ("lstm.", "head.")
SIZES = {
    "paper": dict(d_model=1024, n_heads=16, n_layers=3, d_ff=2048, lstm_hidden=256,
                  head_hidden=256),
    "small": dict(d_model=128, n_heads=4, n_layers=2, d_ff=256, lstm_hidden=64,
                  head_hidden=64),
}
GLOBAL_DIM = {"paper": 1024, "small": 128}
PATCH = (51, 128)


# ------------------------------------------------------------- the reference loop
def clone_module(module, memo=None):
    """A copy of the module tree whose parameters are differentiable clones.

    As learn2learn's ``clone_module``: every module object is copied (its
    ``__dict__`` shallowly), each parameter tensor is cloned once, however
    many modules hold it (``memo``: the authors' model runs one encoder
    under three names, and its clone must stay one encoder), buffers are
    shared.
    """
    import torch

    memo = {} if memo is None else memo
    clone = copy.copy(module)
    clone._parameters = {}
    for k, p in module._parameters.items():
        if p is not None and id(p) not in memo:
            memo[id(p)] = (p, p.clone())  # the source kept alive: its id stays unique
        clone._parameters[k] = None if p is None else memo[id(p)][1]
    clone._buffers = dict(module._buffers)  # shared, as learn2learn does
    clone._modules = {k: (None if m is None else clone_module(m, memo))
                      for k, m in module._modules.items()}
    if isinstance(clone, torch.nn.RNNBase):
        clone._init_flat_weights()  # RNNs cache their weight list
    return clone


def update_module(module, updates: dict, memo=None):
    """Replace each parameter ``p`` by ``p + update`` throughout the tree.

    ``updates`` maps ``id(p)`` to ``(p, update)``; a parameter held by
    several modules is updated once and stays shared (learn2learn's memo).
    """
    import torch

    memo = {} if memo is None else memo
    for key, p in module._parameters.items():
        if p is None:
            continue
        if id(p) not in memo and updates.get(id(p)) is not None:
            memo[id(p)] = (p, p + updates[id(p)][1])
        if id(p) in memo:
            module._parameters[key] = memo[id(p)][1]
    for child in module._modules.values():
        if child is not None:
            update_module(child, updates, memo)
    if isinstance(module, torch.nn.RNNBase):
        module._init_flat_weights()
    return module


def adapt(learner, loss, lr, names=None, first_order=True):
    """learn2learn's ``MAML.adapt``: one SGD step on the clone's parameters.

    The gradient is taken with respect to each parameter tensor once
    (``named_parameters`` drops repeats, as learn2learn's
    ``module.parameters()`` does), restricted to ``names`` when given.
    """
    import torch

    # A clone's parameters are plain tensors; named_parameters still lists them.
    chosen = [p for n, p in learner.named_parameters() if names is None or n in names]
    grads = torch.autograd.grad(loss, chosen, retain_graph=not first_order,
                                create_graph=not first_order, allow_unused=True)
    return update_module(learner, {id(p): (p, -lr * g)
                                   for p, g in zip(chosen, grads) if g is not None})


class MAML:
    """learn2learn's ``MAML`` wrapper, as far as the authors' code uses it.

    ``MAML(model, lr, first_order)``; ``clone()`` gives a learner,
    ``learner.adapt(loss)`` takes one SGD step on it, calling it calls the
    wrapped module, ``parameters()`` are the meta-parameters.
    """

    def __init__(self, module, lr, first_order=False, names=None):
        self.module, self.lr, self.first_order, self.names = module, lr, first_order, names

    def clone(self):
        return MAML(clone_module(self.module), self.lr, self.first_order, self.names)

    def adapt(self, loss):
        self.module = adapt(self.module, loss, self.lr, self.names, self.first_order)

    def parameters(self):
        return self.module.parameters()

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def network_loss(net, batch):
    """Task loss + diagonal attention loss, for the network API of either pdmer version."""
    from pdmer.nn import diagonal_attention_loss, emotion_loss

    local, glob, lengths, y, mask = batch
    forward = inspect.signature(type(net).forward).parameters
    if "return_attention" in forward:
        out = net(local, glob, lengths, return_attention=True)
        aux = diagonal_attention_loss(out.local_attention, out.global_attention, lengths,
                                      layout="band")
    else:  # pdmer before banded attention: dense maps, always returned
        out = net(local, glob, lengths)
        aux = diagonal_attention_loss(out.local_attention, out.global_attention, lengths)
    return emotion_loss(out.prediction, y, mask) + aux


def reference_task(net, support, query, steps=INNER_STEPS, lr=INNER_LR, first_order=True,
                   inner_params="all") -> float:
    """One task of learn2learn-style (FO)MAML; accumulates into ``net``'s ``.grad``."""
    names = None if inner_params == "all" else {
        n for n, _ in net.named_parameters() if n.startswith(HEAD_PREFIXES)}
    learner = MAML(net, lr, first_order, names).clone()
    for _ in range(steps):
        learner.adapt(network_loss(learner.module, support))
    loss = network_loss(learner.module, query)
    loss.backward()
    return float(loss.detach())


# -------------------------------------------------------------------- inputs
def build_network(size, seed=0):
    import torch

    from pdmer.nn import DSAMLNet

    torch.manual_seed(seed)
    return DSAMLNet(*PATCH, GLOBAL_DIM[size], **SIZES[size]).train()


def make_batch(n_songs, size, seed, n_frames=N_FRAMES):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_songs, n_frames, *PATCH, generator=g),
            torch.randn(n_songs, n_frames, GLOBAL_DIM[size], generator=g),
            torch.full((n_songs,), n_frames, dtype=torch.long),
            torch.rand(n_songs, n_frames, 2, generator=g),
            torch.ones(n_songs, n_frames, dtype=torch.bool))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="paper")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--order", choices=("fomaml", "maml"), default="fomaml")
    parser.add_argument("--inner-params", choices=("all", "head"), default="all")
    parser.add_argument("--pdmer-path", help="import pdmer from this directory instead")
    args = parser.parse_args(argv)
    if args.pdmer_path:
        sys.path.insert(0, args.pdmer_path)
    import torch

    import pdmer

    torch.set_num_threads(args.threads)
    net = build_network(args.size)
    support = make_batch(N_SUPPORT, args.size, 1)
    query = make_batch(N_QUERY, args.size, 2)

    def run():
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        reference_task(net, support, query, first_order=args.order == "fomaml",
                       inner_params=args.inner_params)
        return time.perf_counter() - start

    run()  # warm-up
    times = [run() for _ in range(args.repeats)]
    print(f"pdmer from {pdmer.__file__}")
    print(f"reference-style {args.order} task, {args.size}, inner_params={args.inner_params}, "
          f"{args.threads} thread(s): min {min(times):.2f} s, median "
          f"{statistics.median(times):.2f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
