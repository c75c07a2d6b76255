"""Batched meta-training equals the sequential per-task loop."""

import pytest
import torch
from torch.func import functional_call

from pdmer.meta.batch import Song, collate
from pdmer.meta.vmapped import vmapped_tasks_backward, stack_batches
from pdmer.meta.maml import maml_task_backward
from pdmer.nn import DSAMLNet, diagonal_attention_loss, emotion_loss

N_TASKS, STEPS, LR = 3, 2, 0.05
HEAD = ("lstm.", "head.")


def make_net():
    torch.manual_seed(0)
    # dropout 0: the batched and the sequential loop draw different masks.
    return DSAMLNet(7, 8, 6, d_model=8, n_heads=2, n_layers=2, d_ff=16, dropout=0.0,
                    local_context=1, global_context=4, lstm_hidden=8, head_hidden=8)


def song(n_frames, seed):
    g = torch.Generator().manual_seed(seed)
    return Song(torch.randn(n_frames, 7, 8, generator=g), torch.randn(n_frames, 6, generator=g),
                torch.rand(n_frames, 2, generator=g))


def make_tasks(lengths):
    """(support, query) batches per task: 1 support song, 2 query songs."""
    tasks = []
    for t, (n_support, n_query) in enumerate(lengths):
        support = collate([song(n_support, 10 * t)], "cpu")
        query = collate([song(n_query, 10 * t + 1), song(max(n_query - 2, 1), 10 * t + 2)],
                        "cpu")
        tasks.append((support, query))
    return tasks


def loss_and_context(net):
    """The estimator's loss: emotion loss + diagonal attention loss (train mode)."""

    def loss_fn(state, batch, context=None):
        need = context is None
        out = functional_call(net, state, (batch.local_patches, batch.global_embeddings, batch.lengths, context, need))
        loss = emotion_loss(out.prediction, batch.y, batch.mask)
        if need:
            loss = loss + diagonal_attention_loss(out.local_attention, out.global_attention,
                                                  batch.lengths, layout="band")
        return loss, out.context

    return loss_fn


def sequential(net, tasks, mode, names, reuse_context):
    """The per-task loop of BaseEmotionRegressor._train at fb3a0f9."""
    loss_fn = loss_and_context(net)
    params = dict(net.named_parameters())
    losses = []
    for task in tasks:
        if mode == "none":
            loss = loss_fn(params, task)[0]
            (loss / len(tasks)).backward()
            losses.append(float(loss.detach()))
            continue
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        cache = {}

        def support_loss(state, batch):
            value, context = loss_fn({**state, **buffers}, batch, cache.get("context"))
            if reuse_context and "context" not in cache:
                cache["context"] = context if mode == "maml" else context.detach()
            return value

        support, query = task
        losses.append(maml_task_backward(
            support_loss, lambda s, b: loss_fn(s, b)[0], params, names, support, query, STEPS,
            LR, first_order=mode == "fomaml", weight=1 / len(tasks)))
    return losses


def run_both(mode, lengths, inner="all", tasks_per_call=None):
    tasks = make_tasks(lengths)
    if mode == "none":
        tasks = [query for _, query in tasks]
    results = []
    for runner in ("sequential", "batched"):
        net = make_net().train()
        names = [n for n, _ in net.named_parameters() if inner == "all" or n.startswith(HEAD)]
        reuse = inner == "head"
        if runner == "sequential":
            losses = sequential(net, tasks, mode, names, reuse)
        else:
            losses = vmapped_tasks_backward(
                loss_and_context(net), net, names, tasks, mode, STEPS, LR,
                weight=1 / len(tasks), reuse_context=reuse, tasks_per_call=tasks_per_call)
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        results.append((losses, grads, buffers))
    return results


def assert_same(results):
    (losses, grads, buffers), (b_losses, b_grads, b_buffers) = results
    torch.testing.assert_close(torch.tensor(b_losses), torch.tensor(losses), atol=1e-5,
                               rtol=1e-5)
    assert b_grads.keys() == grads.keys() and grads
    # Every parameter gets a gradient (a test network with constant outputs
    # would leave most of them at zero and prove little), except the first
    # convolution's bias: training-mode BatchNorm cancels it, exactly so
    # where pdmer folds the batch statistics into that convolution.
    assert all(g.abs().sum() > 0 for name, g in grads.items()
               if name != "adapter.features.0.bias")
    for name in grads:
        torch.testing.assert_close(b_grads[name], grads[name], atol=1e-5, rtol=1e-3,
                                   msg=lambda m, name=name: f"{name}: {m}")
    for name in buffers:
        torch.testing.assert_close(b_buffers[name], buffers[name], atol=1e-6, rtol=1e-5)


EQUAL = [(6, 6)] * N_TASKS            # no padding anywhere
UNEQUAL = [(6, 6), (4, 5), (6, 3)]    # tasks and songs of different lengths


@pytest.mark.parametrize("mode", ["fomaml", "maml", "none"])
@pytest.mark.parametrize("lengths", [EQUAL, UNEQUAL], ids=["equal", "padded"])
def test_batched_equals_sequential(mode, lengths):
    assert_same(run_both(mode, lengths))


@pytest.mark.parametrize("mode", ["fomaml", "maml"])
def test_batched_head_only_reuses_context_and_equals_sequential(mode):
    assert_same(run_both(mode, UNEQUAL, inner="head"))


def test_tasks_per_call_groups_give_the_same_result():
    assert_same(run_both("fomaml", UNEQUAL, tasks_per_call=2))


def test_running_statistics_merge_like_sequential_updates():
    # The test above checks the buffers; make sure they really moved.
    (_, _, buffers), _ = run_both("fomaml", EQUAL)
    fresh = dict(make_net().named_buffers())
    assert not torch.equal(buffers["adapter.features.1.running_mean"],
                           fresh["adapter.features.1.running_mean"])
    assert int(buffers["adapter.features.1.num_batches_tracked"]) == N_TASKS


def test_stack_batches_drops_masks_without_padding():
    template, tensors = stack_batches([query for _, query in make_tasks([(6, 6)] * 2)])
    # The query songs have 6 and 4 frames: padding, so lengths stay.
    assert tensors["lengths"].shape == (2, 2) and tensors["local_patches"].shape == (2, 2, 6, 7, 8)
    template, tensors = stack_batches([support for support, _ in make_tasks(EQUAL)])
    assert template.lengths is None and template.mask is None and "lengths" not in tensors


def test_bad_input():
    net = make_net()
    tasks = make_tasks(EQUAL)
    with pytest.raises(ValueError, match="mode must be one of"):
        vmapped_tasks_backward(loss_and_context(net), net, [], tasks, "sgd", 1, 0.1)
    with pytest.raises(ValueError, match="steps >= 1"):
        vmapped_tasks_backward(loss_and_context(net), net, [], tasks, "fomaml", 0, 0.1)
    uneven = [tasks[0], (tasks[1][0], collate([song(6, 99)], "cpu"))]
    with pytest.raises(ValueError, match="same number of songs"):
        vmapped_tasks_backward(loss_and_context(net), net, [], uneven, "fomaml", 1, 0.1)


def test_dropout_draws_per_task_masks():
    torch.manual_seed(0)
    net = DSAMLNet(7, 8, 6, d_model=8, n_heads=2, n_layers=1, d_ff=16, dropout=0.5,
                   local_context=1, global_context=4, lstm_hidden=8, head_hidden=8).train()
    names = [n for n, _ in net.named_parameters()]
    # Two identical tasks: only their dropout masks can tell them apart.
    task = make_tasks([(6, 6)])[0]
    losses = vmapped_tasks_backward(loss_and_context(net), net, names, [task, task], "fomaml",
                                    STEPS, LR)
    assert losses[0] != losses[1]
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("runner", ["sequential", "batched"])
def test_first_order_updates_leave_the_meta_parameters_alone(runner):
    # Both loops update their inner-loop copies in place.
    net = make_net().train()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    names = list(before)
    tasks = make_tasks(EQUAL)
    if runner == "sequential":
        sequential(net, tasks, "fomaml", names, False)
    else:
        vmapped_tasks_backward(loss_and_context(net), net, names, tasks, "fomaml", STEPS, LR)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=0)


def test_in_place_adaptation_refuses_second_order():
    from pdmer.meta.maml import adapt

    with pytest.raises(ValueError, match="in_place"):
        adapt(lambda s, b: s["w"].sum(), {"w": torch.ones(2, requires_grad=True)}, ["w"],
              None, 1, 0.1, create_graph=True, in_place=True)
