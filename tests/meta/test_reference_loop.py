"""The reference-style loop of benchmarks/bench_reference.py computes pdmer's meta-gradient.

The speed comparison in benchmarks/scale.md is only fair if both loops do
the same work: here they must give the same first-order and second-order
meta-gradients (dropout off, same tasks).
"""

import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from pdmer.meta.maml import maml_task_backward
from pdmer.nn import diagonal_attention_loss, emotion_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_reference  # noqa: E402


def small_network():
    torch.manual_seed(0)
    from pdmer.nn import DSAMLNet

    return DSAMLNet(*bench_reference.PATCH, 8, d_model=8, n_heads=2, n_layers=1, d_ff=16,
                    dropout=0.0, local_context=1, global_context=3, lstm_hidden=8,
                    head_hidden=8).train()


def batch(n_songs, seed, n_frames=6):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_songs, n_frames, *bench_reference.PATCH, generator=g),
            torch.randn(n_songs, n_frames, 8, generator=g),
            torch.full((n_songs,), n_frames), torch.rand(n_songs, n_frames, 2, generator=g),
            torch.ones(n_songs, n_frames, dtype=torch.bool))


@pytest.mark.parametrize("order", ["fomaml", "maml"])
@pytest.mark.parametrize("inner", ["all", "head"])
def test_reference_loop_gives_pdmers_meta_gradient(order, inner):
    support, query = batch(1, 1), batch(2, 2)
    reference = small_network()
    loss = bench_reference.reference_task(reference, support, query, steps=2, lr=0.1,
                                          first_order=order == "fomaml", inner_params=inner)

    net = small_network()
    params = dict(net.named_parameters())
    names = [n for n in params if inner == "all" or n.startswith(bench_reference.HEAD_PREFIXES)]

    def loss_fn(state, b):
        local, glob, lengths, y, mask = b
        out = functional_call(net, state, (local, glob, lengths), {"return_attention": True})
        return emotion_loss(out.prediction, y, mask) + diagonal_attention_loss(
            out.local_attention, out.global_attention, lengths, layout="band")

    expected = maml_task_backward(loss_fn, loss_fn, params, names, support, query, 2, 0.1,
                                  first_order=order == "fomaml")
    assert loss == pytest.approx(expected, rel=1e-5)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-4,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_clone_and_adapt_keep_a_shared_parameter_shared():
    # learn2learn's memo: a module held under two names (as the authors'
    # PDMERModel holds its encoder) is cloned and updated as one.
    torch.manual_seed(0)
    net = torch.nn.Module()
    net.first = net.second = torch.nn.Linear(3, 3)
    x = torch.randn(4, 3)

    def loss_of(module):
        return module.second(module.first(x)).pow(2).sum()

    learner = bench_reference.MAML(net, lr=0.1, first_order=True).clone()
    learner.adapt(loss_of(learner.module))
    assert learner.module.first.weight is learner.module.second.weight
    assert learner.module.first is not net.first
    grads = torch.autograd.grad(loss_of(net), [net.first.weight, net.first.bias])
    torch.testing.assert_close(learner.module.second.weight, net.first.weight - 0.1 * grads[0])
    torch.testing.assert_close(learner.module.second.bias, net.first.bias - 0.1 * grads[1])
    loss_of(learner.module).backward()  # the query loss reaches the meta-parameters
    assert net.first.weight.grad is not None
