"""Tests of the DSAML network modules and losses in pdmer.nn."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from pdmer.nn import (
    DSAMLNet,
    DSAMLOutput,
    LocalSpectrogramAdapter,
    RelativeSelfAttention,
    TransformerEncoder,
    band_mask,
    band_to_dense,
    diagonal_attention_loss,
    emotion_loss,
    sequence_metrics,
)

N_PATCH_TIMES, N_MELS, GLOBAL_DIM = 11, 16, 12
D_MODEL, N_HEADS = 16, 2


def make_net(**params):
    torch.manual_seed(0)
    defaults = dict(
        d_model=D_MODEL,
        n_heads=N_HEADS,
        n_layers=2,
        d_ff=32,
        local_context=2,
        global_context=6,
        lstm_hidden=8,
        head_hidden=8,
    )
    defaults.update(params)
    return DSAMLNet(N_PATCH_TIMES, N_MELS, GLOBAL_DIM, **defaults)


def make_inputs(batch, n_frames, seed=1):
    generator = torch.Generator().manual_seed(seed)
    local = torch.randn(batch, n_frames, N_PATCH_TIMES, N_MELS, generator=generator)
    global_ = torch.randn(batch, n_frames, GLOBAL_DIM, generator=generator)
    return local, global_


# --- adapter -----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(11, 16), (51, 128), (1, 1), (50, 64)])
def test_adapter_out_dim_matches_output(shape):
    adapter = LocalSpectrogramAdapter(*shape)
    out = adapter(torch.randn(2, 3, *shape))
    assert out.shape == (2, 3, adapter.out_dim)


def test_adapter_reference_patch_gives_476_features():
    assert LocalSpectrogramAdapter(51, 128).out_dim == 476


def test_adapter_rejects_wrong_patch_shape():
    with pytest.raises(ValueError, match="11, 16"):
        LocalSpectrogramAdapter(11, 16)(torch.randn(1, 2, 16, 11))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_adapter_equals_its_layers_in_declared_order(mode):
    # features holds conv, BN, ReLU, pool, ...: the adapter pools before its
    # ReLUs and folds BN in eval mode; values and gradients must not change.
    torch.manual_seed(0)
    adapter = LocalSpectrogramAdapter(11, 16)
    with torch.no_grad():  # non-trivial running statistics and affine terms
        for norm in (adapter.features[1], adapter.features[5]):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.uniform_(-2, 2)
            norm.bias.uniform_(-1, 1)
    adapter.train(mode == "train")
    patches = torch.randn(2, 5, 11, 16)
    out = adapter(patches)
    expected = adapter.features(patches.reshape(10, 1, 11, 16)).reshape(2, 5, -1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    grads = torch.autograd.grad(out.square().sum(), list(adapter.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(adapter.parameters()))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (-50.0, 10.0), (-80.0, 0.5)])
def test_adapter_batch_statistics_from_the_input_are_accurate(offset, scale):
    # In training mode the first BatchNorm's statistics come in closed form
    # from sums over the input: inputs far from zero (log-mel values) must
    # not lose float32 accuracy to cancellation. Reference: float64.
    import copy

    torch.manual_seed(0)
    adapter = LocalSpectrogramAdapter(11, 16).train()
    reference = copy.deepcopy(adapter).double()
    patches = torch.randn(2, 20, 11, 16) * scale + offset
    out = adapter(patches)
    expected = reference.features(patches.double().reshape(40, 1, 11, 16)).reshape(2, 20, -1)
    torch.testing.assert_close(out.double(), expected, atol=2e-5 * float(expected.abs().max()),
                               rtol=1e-4)
    grads = torch.autograd.grad(out.square().sum(), list(adapter.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(),
                                         list(reference.parameters()))
    # Biases before BatchNorm have zero gradients, up to rounding: absolute
    # tolerance on the scale of all gradients.
    scale = max(float(g.abs().max()) for g in expected_grads)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad.double(), expected_grad, atol=1e-6 * scale, rtol=1e-4)
    for buffer, expected_buffer in zip(adapter.buffers(), reference.buffers()):
        torch.testing.assert_close(buffer.double(), expected_buffer.double(), rtol=1e-5,
                                   atol=1e-6)


def test_first_convolution_gradients_under_bf16_autocast():
    # Under CPU bfloat16 autocast the first convolution computes its weight
    # gradient as a matrix product over input windows: first- and
    # second-order gradients must match the convolution's own (float64 here),
    # to bfloat16 accuracy.
    from pdmer.nn.adapter import _first_conv

    torch.manual_seed(0)
    x = torch.randn(6, 1, 11, 16)
    weight = torch.randn(8, 1, 3, 1, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(6, 8, 13, 18, dtype=torch.float64)

    def grads(conv):
        out = conv(weight.float(), bias.float()).double()
        loss = ((out - target) ** 2).sum() / 2  # gradient depends on the weights
        first = torch.autograd.grad(loss, [weight, bias], create_graph=True)
        second = torch.autograd.grad(sum(g.square().sum() for g in first), [weight, bias])
        return first + second

    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = grads(lambda w, b: _first_conv(x, w, b, (2, 1)))
    expected = grads(lambda w, b: torch.nn.functional.conv2d(x.double(), w.double(),
                                                             b.double(), padding=(2, 1)))
    for got, want in zip(fast, expected):
        torch.testing.assert_close(got, want, rtol=0.03, atol=0.03 * float(want.abs().max()))


def test_adapter_long_input_without_gradients_is_chunked_exactly(monkeypatch):
    import pdmer.nn.adapter as adapter_module

    adapter = LocalSpectrogramAdapter(11, 16).eval()
    patches = torch.randn(1, 23, 11, 16)
    with torch.no_grad():
        whole = adapter(patches)
        monkeypatch.setattr(adapter_module, "_CHUNK_FRAMES", 5)
        chunked = adapter(patches)
    torch.testing.assert_close(chunked, whole)


def test_adapter_without_gradients_never_holds_a_whole_song(monkeypatch):
    import pdmer.nn.adapter as adapter_module
    from test_attention import LargestTensor

    monkeypatch.setattr(adapter_module, "_CHUNK_FRAMES", 4)
    adapter = LocalSpectrogramAdapter(11, 16).eval()
    patches = torch.randn(1, 40, 11, 16)
    with torch.no_grad(), LargestTensor() as mode:
        out = adapter(patches)
    # The first feature map is 8 x 13 x 18 per frame; a whole song's would
    # be 40 frames of it.
    assert mode.largest <= 4 * 8 * 13 * 18 + patches.numel()
    assert out.shape == (1, 40, adapter.out_dim)


def test_adapter_padding_stays_out_of_batch_statistics():
    torch.manual_seed(0)
    adapter = LocalSpectrogramAdapter(11, 16).train()
    reference = LocalSpectrogramAdapter(11, 16).train()
    reference.load_state_dict(adapter.state_dict())
    patches = torch.randn(2, 6, 11, 16)
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    patches[1, 4:] = 1e4  # padding content must not matter
    out = adapter(patches, valid)
    expected = reference(patches[valid][None])[0]
    torch.testing.assert_close(out[valid], expected, atol=1e-5, rtol=1e-4)
    for name, buffer in adapter.named_buffers():
        torch.testing.assert_close(buffer, dict(reference.named_buffers())[name])


# --- attention ---------------------------------------------------------------


def test_band_mask():
    mask = band_mask(6, 2)
    expected = np.abs(np.subtract.outer(np.arange(6), np.arange(6))) <= 2
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert band_mask(4, 0).equal(torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError):
        band_mask(4, -1)


def test_attention_weights_are_distributions_that_respect_masks():
    torch.manual_seed(0)
    attention = RelativeSelfAttention(
        D_MODEL, N_HEADS, dropout=0.0, max_relative_position=3
    )
    n_frames = 9
    allowed = band_mask(n_frames, 2)
    padding = torch.zeros(2, n_frames, dtype=torch.bool)
    padding[1, 6:] = True
    out, weights = attention(torch.randn(2, n_frames, D_MODEL), 2, padding, need_weights=True)
    assert weights.shape == (2, N_HEADS, n_frames, 5)  # band layout
    weights = band_to_dense(weights)

    assert out.shape == (2, n_frames, D_MODEL)
    assert weights.shape == (2, N_HEADS, n_frames, n_frames)
    assert torch.isfinite(weights).all() and torch.isfinite(out).all()
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(N_HEADS, n_frames))
    torch.testing.assert_close(weights[1, :, :8].sum(-1), torch.ones(N_HEADS, 8))
    # Row 8 of the padded sequence is fully blocked (checked below).
    assert (weights[0][:, ~allowed] < 1e-12).all()
    assert (weights[1, :, :8][:, ~allowed[:8]] < 1e-12).all()
    # Valid queries of the padded sequence never look at padding...
    assert (weights[1, :, :6, 6:] < 1e-12).all()
    # ...and a query whose whole band is padding gets finite zero weights
    # (it attends to nothing; padding rows are meaningless downstream).
    torch.testing.assert_close(weights[1, :, 8], torch.zeros(N_HEADS, n_frames))


@pytest.mark.parametrize("n_frames", [4, 12])
def test_relative_scores_match_bert_relative_key(n_frames):
    # BERT's einsum over a (T, T, head_dim) table of clipped distances.
    torch.manual_seed(0)
    limit = 5
    attention = RelativeSelfAttention(
        D_MODEL, N_HEADS, dropout=0.0, max_relative_position=limit
    )
    x = torch.randn(2, n_frames, D_MODEL)
    _, weights = attention(x, need_weights=True)
    weights = band_to_dense(weights)

    head_dim = D_MODEL // N_HEADS
    q = attention.query(x).view(2, n_frames, N_HEADS, head_dim).transpose(1, 2)
    k = attention.key(x).view(2, n_frames, N_HEADS, head_dim).transpose(1, 2)
    position = torch.arange(n_frames)
    distance = (position[:, None] - position[None, :]).clamp(-limit, limit)
    table = attention.distance_embedding(distance + limit)
    scores = q @ k.transpose(-1, -2) + torch.einsum("bhld,lrd->bhlr", q, table)
    expected = (scores / math.sqrt(head_dim)).softmax(-1)
    torch.testing.assert_close(weights, expected)


def test_attention_rejects_heads_not_dividing_d_model():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        RelativeSelfAttention(10, 3)


def test_encoder_returns_one_output_and_last_map_per_band():
    encoder = TransformerEncoder(3, D_MODEL, N_HEADS, 32, 0.1, 4)
    outs, weights = encoder(torch.randn(2, 7, D_MODEL), [1, 4], need_weights=True)
    assert [o.shape for o in outs] == [(2, 7, D_MODEL)] * 2
    assert [w.shape for w in weights] == [(2, N_HEADS, 7, 3), (2, N_HEADS, 7, 9)]


# --- network -----------------------------------------------------------------


def test_forward_shapes():
    net = make_net()
    output = net(*make_inputs(3, 10), return_attention=True)
    assert isinstance(output, DSAMLOutput)
    prediction, local_map, global_map, context = output
    assert prediction.shape == (3, 10, 2)
    # Band layout: 2 * local_context + 1 and 2 * global_context + 1 columns.
    assert local_map.shape == (3, N_HEADS, 10, 5)
    assert global_map.shape == (3, N_HEADS, 10, 13)
    assert context.shape == (3, 10, D_MODEL)
    # The local pass attends within its narrower band only.
    assert (band_to_dense(local_map)[:, :, ~band_mask(10, 2)] < 1e-12).all()


def test_context_runs_only_the_head():
    net = make_net().eval()
    local, global_ = make_inputs(2, 9)
    lengths = torch.tensor([9, 6])
    full = net(local, global_, lengths)
    head_only = net(None, None, lengths, context=full.context)
    assert torch.allclose(head_only.prediction, full.prediction)
    assert head_only.local_attention is None and head_only.global_attention is None


def test_any_sequence_length_works():
    net = make_net().eval()
    n_frames = 200  # far beyond global_context
    with torch.no_grad():
        output = net(*make_inputs(1, n_frames))
    assert output.prediction.shape == (1, n_frames, 2)
    assert torch.isfinite(output.prediction).all()


def test_prediction_does_not_depend_on_padding():
    net = make_net().eval()
    local, global_ = make_inputs(2, 12)
    with torch.no_grad():
        alone = net(local[:1, :7], global_[:1, :7], return_attention=True)
        batched = net(local, global_, torch.tensor([7, 12]), return_attention=True)
    torch.testing.assert_close(
        batched.prediction[0, :7], alone.prediction[0], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        band_to_dense(batched.global_attention)[0, :, :7, :7],
        band_to_dense(alone.global_attention)[0],
        atol=1e-6,
        rtol=1e-5,
    )


def test_padding_content_is_ignored_in_training_mode():
    # In training mode BatchNorm uses batch statistics: padding must not
    # enter them either.
    net = make_net(dropout=0.0).train()
    local, global_ = make_inputs(2, 12)
    lengths = torch.tensor([7, 12])
    noisy_local, noisy_global = local.clone(), global_.clone()
    noisy_local[0, 7:] = 1e3 * torch.randn(5, N_PATCH_TIMES, N_MELS)
    noisy_global[0, 7:] = -50.0
    clean = net(local, global_, lengths).prediction
    noisy = net(noisy_local, noisy_global, lengths).prediction
    torch.testing.assert_close(noisy[0, :7], clean[0, :7])
    torch.testing.assert_close(noisy[1], clean[1])


def test_global_projection_only_when_sizes_differ():
    assert isinstance(make_net().global_proj, torch.nn.Linear)
    net = DSAMLNet(
        N_PATCH_TIMES, N_MELS, D_MODEL, d_model=D_MODEL, n_heads=N_HEADS, d_ff=32
    )
    assert isinstance(net.global_proj, torch.nn.Identity)


def test_without_adapter_has_no_local_branch():
    net = make_net(adapter=False)
    assert net.adapter is None and net.spec_proj is None
    assert not any(isinstance(m, LocalSpectrogramAdapter) for m in net.modules())
    n_with_adapter = sum(p.numel() for p in make_net().parameters())
    assert sum(p.numel() for p in net.parameters()) < n_with_adapter
    _, global_ = make_inputs(2, 5)
    assert net(None, global_).prediction.shape == (2, 5, 2)
    with pytest.raises(ValueError, match="adapter=False"):
        make_net()(None, global_)


@pytest.mark.parametrize(
    "switch, disabled", [("local_attention", "local"), ("global_attention", "global")]
)
def test_single_attention_pass(switch, disabled):
    net = make_net(**{switch: False})
    calls = []
    net.encoder.register_forward_hook(lambda *args: calls.append(1))
    output = net(*make_inputs(2, 9), return_attention=True)
    assert len(calls) == 1
    assert getattr(output, f"{disabled}_attention") is None
    kept = output.global_attention if disabled == "local" else output.local_attention
    assert band_to_dense(kept).shape == (2, N_HEADS, 9, 9)
    assert output.prediction.shape == (2, 9, 2)


def test_both_passes_disabled_raises():
    with pytest.raises(ValueError, match="local_attention and global_attention"):
        make_net(local_attention=False, global_attention=False)


@pytest.mark.parametrize("lengths", [None, [7, 7, 7], [7, 3, 1]])
def test_unrolled_lstm_equals_packed_lstm(lengths):
    from pdmer.nn.recurrent import bidirectional_lstm, unrolled_lstm, vmappable

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    x = torch.randn(3, 7, 5)
    lengths = None if lengths is None else torch.tensor(lengths)
    expected = bidirectional_lstm(lstm, x, lengths)
    with vmappable():
        out = bidirectional_lstm(lstm, x, lengths)
    torch.testing.assert_close(out, unrolled_lstm(lstm, x, lengths))
    valid = [7, 7, 7] if lengths is None else lengths.tolist()
    for b, n in enumerate(valid):
        torch.testing.assert_close(out[b, :n], expected[b, :n], atol=1e-6, rtol=1e-5)


# --- losses ------------------------------------------------------------------


def numpy_metrics(pred, target, lengths):
    ccc, pcc, rmse = (np.zeros(pred.shape[::2]) for _ in range(3))
    for b, n in enumerate(lengths):
        for d in range(pred.shape[2]):
            p, y = pred[b, :n, d], target[b, :n, d]
            cov = np.mean((p - p.mean()) * (y - y.mean()))
            ccc[b, d] = 2 * cov / (p.var() + y.var() + (p.mean() - y.mean()) ** 2)
            pcc[b, d] = np.corrcoef(p, y)[0, 1]
            rmse[b, d] = np.sqrt(np.mean((p - y) ** 2))
    return {"ccc": ccc, "pcc": pcc, "rmse": rmse}


def test_metrics_match_numpy_reference():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(4, 15, 2))
    target = 0.5 * pred + rng.normal(size=(4, 15, 2))
    lengths = np.array([15, 9, 4, 12])
    mask = torch.arange(15)[None, :] < torch.as_tensor(lengths)[:, None]
    # Padding must be ignored, even when it is not finite.
    pred[~mask.numpy()] = np.nan
    metrics = sequence_metrics(torch.tensor(pred), torch.tensor(target), mask)
    expected = numpy_metrics(pred, target, lengths)
    for name in ("ccc", "pcc", "rmse"):
        np.testing.assert_allclose(metrics[name].numpy(), expected[name], atol=1e-6)

    loss = emotion_loss(torch.tensor(pred), torch.tensor(target), mask)
    score = (expected["ccc"] + expected["pcc"] + 1 - expected["rmse"]) / 3
    np.testing.assert_allclose(loss.item(), 1 - score.mean(), atol=1e-6)


def test_perfect_prediction_gives_zero_loss():
    target = torch.randn(3, 20, 2)
    metrics = sequence_metrics(target, target)
    torch.testing.assert_close(metrics["ccc"], torch.ones(3, 2))
    torch.testing.assert_close(metrics["pcc"], torch.ones(3, 2))
    assert (metrics["rmse"] < 1e-3).all()
    assert abs(emotion_loss(target, target).item()) < 1e-3


@pytest.mark.parametrize("constant_target", [True, False])
def test_constant_sequences_give_finite_loss_and_gradients(constant_target):
    pred = torch.full((2, 10, 2), 0.3, requires_grad=True)
    target = torch.full((2, 10, 2), 0.5) if constant_target else torch.randn(2, 10, 2)
    loss = emotion_loss(pred, target)
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_diagonal_loss_is_zero_at_targets():
    batch, n_frames = 2, 6
    local_map = torch.full((batch, N_HEADS, n_frames, n_frames), 0.02)
    global_map = torch.full((batch, N_HEADS, n_frames, n_frames), 0.18)
    local_map.diagonal(dim1=-2, dim2=-1).fill_(0.9)
    global_map.diagonal(dim1=-2, dim2=-1).fill_(0.1)
    assert diagonal_attention_loss(local_map, global_map).item() == pytest.approx(0.0)

    # Diagonal entries at padding frames do not count.
    local_map[1, :, 4:, 4:] = 0.5
    global_map[1, :, 4:, 4:] = 0.5
    lengths = torch.tensor([6, 4])
    loss = diagonal_attention_loss(local_map, global_map, lengths)
    assert loss.item() == pytest.approx(0.0)
    assert diagonal_attention_loss(local_map, global_map).item() > 0


def test_diagonal_loss_averages_each_position_over_sequences_that_have_it():
    local_map = torch.zeros(2, 1, 3, 3)
    local_map[0, 0].diagonal().copy_(torch.tensor([0.5, 0.7, 0.3]))
    local_map[1, 0].diagonal().copy_(torch.tensor([0.9, 0.0, 0.0]))
    lengths = torch.tensor([3, 1])
    loss = diagonal_attention_loss(local_map, None, lengths, local_target=0.9)
    mean_diagonal = np.array([0.7, 0.7, 0.3])
    assert loss.item() == pytest.approx(np.mean((mean_diagonal - 0.9) ** 2))
    assert diagonal_attention_loss(None, None).item() == 0.0


# --- meta-learning compatibility ---------------------------------------------


def test_second_order_gradients_through_functional_call():
    net = make_net().train()
    local, global_ = make_inputs(2, 8)
    lengths = torch.tensor([8, 5])
    mask = torch.arange(8)[None, :] < lengths[:, None]
    target = torch.randn(2, 8, 2)
    params = dict(net.named_parameters())

    def loss_fn(parameters):
        output = functional_call(net, parameters, (local, global_, lengths),
                                 {"return_attention": True})
        task = emotion_loss(output.prediction, target, mask)
        return task + diagonal_attention_loss(
            output.local_attention, output.global_attention, lengths, layout="band"
        )

    # functional_call must really swap the LSTM weights (RNNs cache them).
    swapped = dict(params)
    swapped["lstm.weight_hh_l0"] = torch.zeros_like(net.lstm.weight_hh_l0)
    original = functional_call(net.eval(), params, (local, global_, lengths)).prediction
    changed = functional_call(net, swapped, (local, global_, lengths)).prediction
    assert not torch.allclose(original, changed)
    net.train()

    def outer_grads(first_order):
        torch.manual_seed(0)  # same dropout masks in both variants
        grads = torch.autograd.grad(
            loss_fn(params), list(params.values()), create_graph=not first_order
        )
        adapted = {
            name: p - 0.1 * (g.detach() if first_order else g)
            for (name, p), g in zip(params.items(), grads)
        }
        return torch.autograd.grad(loss_fn(adapted), list(params.values()))

    second = outer_grads(first_order=False)
    first = outer_grads(first_order=True)
    assert all(torch.isfinite(g).all() for g in second)
    # A convolution's bias before training-mode BatchNorm has no effect on
    # the output: its gradient is zero (exactly so where pdmer folds the
    # batch statistics into the convolution).
    before_batch_norm = {"adapter.features.0.bias", "adapter.features.4.bias"}
    assert all(g.abs().sum() > 0 for name, g in zip(params, second)
               if name not in before_batch_norm)
    # The second-order terms are really there.
    assert any(not torch.allclose(s, f) for s, f in zip(second, first))


def test_lstm_stays_float32_under_cpu_autocast():
    # oneDNN's bfloat16 LSTM backward is slower than float32 on CPUs.
    from pdmer.nn.recurrent import bidirectional_lstm

    lstm = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
    x = torch.randn(2, 5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bidirectional_lstm(lstm, x.bfloat16(), torch.tensor([5, 3]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, bidirectional_lstm(lstm, x.bfloat16().float(),
                                                       torch.tensor([5, 3])))
