"""Banded attention equals the dense masked attention it replaces.

``dense_attention`` and ``dense_network`` below are copies of pdmer's
attention and DSAMLNet forward before attention was banded (commit
fb3a0f9): full (T, T) scores under a band mask, every layer's map kept, the
adapter's ReLU before its pooling, padding frames indexed out of the
adapter, packed LSTM. They are the reference the banded code must match.
"""

import math

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode

from pdmer.nn import (
    DSAMLNet,
    RelativeSelfAttention,
    TransformerEncoder,
    band_mask,
    band_to_dense,
    diagonal_attention_loss,
    emotion_loss,
)

D_MODEL, N_HEADS = 16, 2


# --- the dense reference -----------------------------------------------------


def dense_attention(module, x, allowed=None, key_padding_mask=None):
    """RelativeSelfAttention.forward as of fb3a0f9: (output, (B, H, T, T) weights)."""
    batch, n_frames, _ = x.shape
    q = module._split_heads(module.query(x))
    k = module._split_heads(module.key(x))
    v = module._split_heads(module.value(x))
    scores = q @ k.transpose(-1, -2)
    relative = q @ module.distance_embedding.weight.T
    position = torch.arange(n_frames, device=x.device)
    limit = module.max_relative_position
    distance = (position[:, None] - position[None, :]).clamp(-limit, limit) + limit
    scores = scores + relative.gather(
        -1, distance.expand(batch, module.n_heads, n_frames, n_frames))
    scores = scores / math.sqrt(module.head_dim)
    blocked = None
    if allowed is not None:
        blocked = ~allowed
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]
        blocked = padding if blocked is None else blocked | padding
    if blocked is not None:
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    context = module.dropout(weights) @ v
    context = context.transpose(1, 2).reshape(batch, n_frames, module.d_model)
    return module.output(context), weights


def dense_encoder(encoder, x, allowed, padding):
    maps = []
    for layer in encoder.layers:
        attended, weights = dense_attention(layer.attention, x, allowed, padding)
        h = layer.attention_norm(x + layer.attention_dropout(attended))
        x = layer.feed_forward_norm(h + layer.feed_forward_dropout(layer.feed_forward(h)))
        maps.append(weights)
    return x, maps


def dense_network(net, local, global_, lengths=None):
    """DSAMLNet.forward as of fb3a0f9: (prediction, local map, global map)."""
    batch, n_frames, _ = global_.shape
    padding = None
    if lengths is not None:
        padding = torch.arange(n_frames) >= lengths[:, None]
    fused = net.global_proj(global_)
    if net.adapter is not None:
        if padding is None:
            features = net.adapter.features(local.reshape(batch * n_frames, 1, *local.shape[2:]))
            features = features.reshape(batch, n_frames, -1)
        else:
            valid = ~padding
            chosen = local[valid]
            flat = net.adapter.features(chosen.reshape(len(chosen), 1, *local.shape[2:]))
            features = flat.new_zeros(batch, n_frames, flat[0].numel()).index_put(
                (valid,), flat.reshape(len(chosen), -1))
        fused = fused + net.spec_proj(features)
    hidden = net.fuse_proj(torch.sigmoid(fused))
    passes, local_map, global_map = [], None, None
    if net.local_attention:
        out, maps = dense_encoder(net.encoder, hidden, band_mask(n_frames, net.local_context),
                                  padding)
        passes.append(out)
        local_map = maps[-1]
    if net.global_attention:
        out, maps = dense_encoder(net.encoder, hidden, band_mask(n_frames, net.global_context),
                                  padding)
        passes.append(out)
        global_map = maps[-1]
    attended = torch.sigmoid(sum(passes))
    if lengths is None:
        sequence, _ = net.lstm(attended)
    else:
        packed = pack_padded_sequence(attended, lengths, batch_first=True, enforce_sorted=False)
        sequence, _ = pad_packed_sequence(net.lstm(packed)[0], batch_first=True,
                                          total_length=n_frames)
    return net.head(sequence), local_map, global_map


# --- helpers -----------------------------------------------------------------


def make_attention(limit=30):
    torch.manual_seed(0)
    return RelativeSelfAttention(D_MODEL, N_HEADS, dropout=0.0, max_relative_position=limit)


def make_net(**params):
    torch.manual_seed(0)
    defaults = dict(d_model=D_MODEL, n_heads=N_HEADS, n_layers=2, d_ff=32, dropout=0.0,
                    local_context=2, global_context=6, lstm_hidden=8, head_hidden=8)
    defaults.update(params)
    return DSAMLNet(11, 16, 12, **defaults)


def make_inputs(batch, n_frames, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n_frames, 11, 16, generator=generator),
            torch.randn(batch, n_frames, 12, generator=generator))


def padding_of(lengths, n_frames):
    return torch.arange(n_frames) >= torch.as_tensor(lengths)[:, None]


def assert_valid_rows_close(banded, dense, lengths, **tolerance):
    for b, n in enumerate(lengths):
        torch.testing.assert_close(banded[b, ..., :n, :], dense[b, ..., :n, :], **tolerance)


# --- attention module ----------------------------------------------------------


@pytest.mark.parametrize("n_frames", [1, 2, 5, 16, 33, 61, 100])
@pytest.mark.parametrize("band, limit", [(0, 30), (2, 30), (5, 30), (30, 30), (8, 3),
                                         (None, 30)])
def test_banded_attention_equals_dense(n_frames, band, limit):
    attention = make_attention(limit)
    x = torch.randn(2, n_frames, D_MODEL)
    allowed = None if band is None else band_mask(n_frames, band)
    expected_out, expected_weights = dense_attention(attention, x, allowed)
    out, weights = attention(x, band, need_weights=True)
    torch.testing.assert_close(out, expected_out, atol=1e-6, rtol=1e-5)
    width = 2 * (n_frames - 1 if band is None else band) + 1
    assert weights.shape == (2, N_HEADS, n_frames, width)
    torch.testing.assert_close(band_to_dense(weights), expected_weights, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("n_frames, lengths", [(9, [9, 6]), (47, [47, 20]), (64, [3, 64]),
                                               (100, [1, 77])])
@pytest.mark.parametrize("band", [1, 5, 30])
def test_banded_attention_equals_dense_with_padding(n_frames, lengths, band):
    attention = make_attention()
    x = torch.randn(2, n_frames, D_MODEL)
    padding = padding_of(lengths, n_frames)
    expected_out, expected_weights = dense_attention(
        attention, x, band_mask(n_frames, band), padding)
    out, weights = attention(x, band, padding, need_weights=True)
    # Rows of padding queries are meaningless in both; valid rows must agree.
    assert_valid_rows_close(out, expected_out, lengths, atol=1e-6, rtol=1e-5)
    assert_valid_rows_close(band_to_dense(weights), expected_weights, lengths,
                            atol=1e-7, rtol=1e-5)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()


def test_query_without_allowed_keys_gets_zero_weights():
    attention = make_attention()
    padding = padding_of([3], 40)
    out, weights = attention(torch.randn(1, 40, D_MODEL), 5, padding, need_weights=True)
    # Frame 20 is more than 5 frames from every valid frame.
    assert (weights[0, :, 20] == 0).all()
    assert torch.isfinite(out).all()
    # Valid queries' weights are distributions over valid keys.
    torch.testing.assert_close(weights[0, :, :3].sum(-1), torch.ones(N_HEADS, 3))


class LargestTensor(TorchDispatchMode):
    """Records the number of elements of the largest tensor any operation returns."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_attention_memory_is_linear_in_length():
    attention = make_attention()
    n_frames = 3000
    x = torch.randn(1, n_frames, D_MODEL)
    with torch.no_grad(), LargestTensor() as mode:
        attention(x, 30)
    # Dense scores would hold n_heads * T * T = 18 M values.
    assert mode.largest <= N_HEADS * n_frames * 4 * 30


def test_band_must_be_an_int():
    attention = make_attention()
    with pytest.raises(TypeError, match="band must be a non-negative int"):
        attention(torch.randn(1, 4, D_MODEL), band_mask(4, 1))


def test_band_to_dense():
    weights = torch.arange(1.0, 16.0).reshape(1, 5, 3)  # T = 5, band = 1
    dense = band_to_dense(weights)
    assert dense.shape == (1, 5, 5)
    for i in range(5):
        for j in range(5):
            expected = weights[0, i, j - i + 1] if abs(i - j) <= 1 else 0.0
            assert dense[0, i, j] == expected
    with pytest.raises(ValueError, match="odd"):
        band_to_dense(torch.zeros(3, 4))


def test_encoder_passes_equal_separate_dense_passes():
    torch.manual_seed(0)
    encoder = TransformerEncoder(3, D_MODEL, N_HEADS, 32, 0.0, 6)
    x = torch.randn(2, 23, D_MODEL)
    padding = padding_of([23, 11], 23)
    outputs, maps = encoder(x, [2, 6], padding, need_weights=True)
    for band, out, weights in zip([2, 6], outputs, maps):
        expected, expected_maps = dense_encoder(encoder, x, band_mask(23, band), padding)
        assert_valid_rows_close(out, expected, [23, 11], atol=1e-5, rtol=1e-4)
        assert_valid_rows_close(band_to_dense(weights), expected_maps[-1], [23, 11],
                                atol=1e-6, rtol=1e-4)
    _, no_maps = encoder(x, [2, 6], padding)
    assert no_maps == [None, None]


# --- network -------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, [13, 13], [13, 7], [4, 2], [1, 13]])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_network_equals_dense_network(lengths, mode):
    net = make_net()
    net.train(mode == "train")
    local, global_ = make_inputs(2, 13)
    lengths_t = None if lengths is None else torch.tensor(lengths)
    expected, local_ref, global_ref = dense_network(net, local, global_, lengths_t)
    out = net(local, global_, lengths_t, return_attention=True)
    valid = [13, 13] if lengths is None else lengths
    assert_valid_rows_close(out.prediction, expected, valid, atol=1e-5, rtol=1e-4)
    for banded, dense in ((out.local_attention, local_ref), (out.global_attention, global_ref)):
        assert_valid_rows_close(band_to_dense(banded), dense, valid, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(
        diagonal_attention_loss(out.local_attention, out.global_attention, lengths_t,
                                layout="band"),
        diagonal_attention_loss(local_ref, global_ref, lengths_t), atol=1e-7, rtol=1e-5)


def test_network_keeps_attention_maps_only_on_request():
    net = make_net()
    out = net(*make_inputs(1, 9))
    assert out.local_attention is None and out.global_attention is None


def test_second_order_gradients_equal_dense():
    net = make_net().train()
    local, global_ = make_inputs(2, 17)
    lengths = torch.tensor([17, 9])
    mask = torch.arange(17)[None, :] < lengths[:, None]
    target = torch.randn(2, 17, 2)
    params = [p for p in net.parameters()]

    def loss_banded():
        out = net(local, global_, lengths, return_attention=True)
        return emotion_loss(out.prediction, target, mask) + diagonal_attention_loss(
            out.local_attention, out.global_attention, lengths, layout="band")

    def loss_dense():
        prediction, local_map, global_map = dense_network(net, local, global_, lengths)
        return emotion_loss(prediction, target, mask) + diagonal_attention_loss(
            local_map, global_map, lengths)

    def second_order(loss_fn):
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        penalty = sum(g.square().sum() for g in grads)
        return torch.autograd.grad(penalty, params)

    for banded, dense in zip(second_order(loss_banded), second_order(loss_dense)):
        torch.testing.assert_close(banded, dense, atol=1e-5, rtol=1e-3)


def test_long_song_in_one_pass_equals_dense():
    net = make_net().eval()
    local, global_ = make_inputs(1, 400)
    with torch.no_grad():
        out = net(local, global_)
        expected, _, _ = dense_network(net, local, global_)
    torch.testing.assert_close(out.prediction, expected, atol=1e-5, rtol=1e-4)
