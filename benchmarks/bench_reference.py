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
def clone_module(module):
    """A copy of the module tree whose parameters are differentiable clones."""
    import torch

    clone = copy.copy(module)
    clone._parameters = {k: (None if p is None else p.clone())
                         for k, p in module._parameters.items()}
    clone._buffers = dict(module._buffers)  # shared, as learn2learn does
    clone._modules = {k: (None if m is None else clone_module(m))
                      for k, m in module._modules.items()}
    if isinstance(clone, torch.nn.RNNBase):
        clone._init_flat_weights()  # RNNs cache their weight list
    return clone


def update_module(module, updates: dict, prefix=""):
    """Replace each parameter ``p`` by ``p + updates[name]`` throughout the tree."""
    import torch

    for key, p in module._parameters.items():
        name = prefix + key
        if p is not None and updates.get(name) is not None:
            module._parameters[key] = p + updates[name]
    for key, child in module._modules.items():
        if child is not None:
            update_module(child, updates, f"{prefix}{key}.")
    if isinstance(module, torch.nn.RNNBase):
        module._init_flat_weights()
    return module


def adapt(learner, loss, lr, names, first_order=True):
    """learn2learn's ``MAML.adapt``: one SGD step on the clone's parameters."""
    import torch

    # A clone's parameters are plain tensors; named_parameters still lists them.
    params = dict(learner.named_parameters(remove_duplicate=False))
    chosen = [n for n in params if n in names]
    grads = torch.autograd.grad(loss, [params[n] for n in chosen],
                                retain_graph=not first_order, create_graph=not first_order,
                                allow_unused=True)
    return update_module(learner, {n: (None if g is None else -lr * g)
                                   for n, g in zip(chosen, grads)})


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
    names = {n for n, _ in net.named_parameters()
             if inner_params == "all" or n.startswith(HEAD_PREFIXES)}
    learner = clone_module(net)
    for _ in range(steps):
        learner = adapt(learner, network_loss(learner, support), lr, names, first_order)
    loss = network_loss(learner, query)
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
