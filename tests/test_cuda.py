"""The GPU path and reduced precision.

The CUDA tests run only where a CUDA GPU is present and are skipped
otherwise (no GPU was available where pdmer was developed: they were
written for the GPU path and have not run yet). The bfloat16 tests run on
the CPU too: CPU autocast works everywhere (natively fast only with
AVX512-BF16 or AMX).

Stated tolerance of bfloat16 against float32 (8 significant bits): on a
small random DSAML network, predictions within 0.05 + 5 % of the float32
value and the training loss within 3 %; second-order meta-gradients on CUDA
equal the CPU's to float32 rounding (1e-4 relative).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.func import functional_call

from helpers import TINY_MODEL, make_annotator_table
from pdmer import CRNNRegressor, DAMFFRegressor, DNNRegressor, DSAMLRegressor, MCRNNRegressor
from pdmer.meta.vmapped import vmapped_tasks_backward
from pdmer.meta.maml import maml_task_backward
from pdmer.nn import DSAMLNet, band_to_dense, diagonal_attention_loss, emotion_loss
from pdmer.nn.precision import autocast, bf16_supported, cpu_has_native_bf16

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]

TINY = {
    DSAMLRegressor: {k: v for k, v in TINY_MODEL.items() if k != "device"},
    CRNNRegressor: dict(size="small", conv_channels=4, rnn_hidden=4),
    DNNRegressor: dict(size="small", conv_channels=4, rnn_hidden=4),
    MCRNNRegressor: dict(size="small", view_kernels=(8, 32), conv_channels=4, fusion_dim=8,
                         rnn_hidden=4),
    DAMFFRegressor: dict(size="small", conv_channels=4, scales=(3, 5), rnn_hidden=4),
}
TRAINING = dict(n_episodes=2, tasks_per_step=2, n_query=2, inner_steps=2, inner_lr=0.05,
                outer_lr=1e-3, validation_interval=2, random_state=0)


def small_net(dropout=0.0):
    torch.manual_seed(0)
    return DSAMLNet(11, 16, 12, d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=dropout,
                    local_context=2, global_context=6, lstm_hidden=8, head_hidden=8)


def inputs(batch, n_frames, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    local = torch.randn(batch, n_frames, 11, 16, generator=g) * 2 - 5
    glob = torch.randn(batch, n_frames, 12, generator=g)
    y = torch.rand(batch, n_frames, 2, generator=g)
    return local.to(device), glob.to(device), y.to(device)


# --------------------------------------------------------------- precision


def test_bf16_support_follows_the_hardware():
    assert bf16_supported("cpu") == cpu_has_native_bf16()
    assert bf16_supported("cuda") == (CUDA and torch.cuda.is_bf16_supported())
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cuda", "auto"):  # bf16 on a GPU that has it
        assert torch.is_autocast_enabled("cuda") == bf16_supported("cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_within_stated_tolerance_of_fp32(device):
    net = small_net().to(device).train()
    local, glob, y = inputs(3, 40, device)
    lengths = torch.tensor([40, 31, 17], device=device)
    mask = torch.arange(40, device=device)[None, :] < lengths[:, None]

    def run(bf16):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            out = net(local, glob, lengths, return_attention=True)
            aux = diagonal_attention_loss(out.local_attention, out.global_attention, lengths,
                                          layout="band")
        loss = emotion_loss(out.prediction.float(), y, mask) + aux.float()
        return out.prediction.float(), loss

    expected, expected_loss = run(False)
    prediction, loss = run(True)
    assert prediction.dtype == torch.float32
    torch.testing.assert_close(prediction[mask], expected[mask], atol=0.05, rtol=0.05)
    loss, expected_loss = float(loss.detach()), float(expected_loss.detach())
    assert abs(loss - expected_loss) <= 0.03 * abs(expected_loss)


# -------------------------------------------------------------------- CUDA


@needs_cuda
def test_banded_attention_on_cuda_equals_cpu():
    net = small_net().eval()
    local, glob, _ = inputs(2, 150, "cpu")
    lengths = torch.tensor([150, 77])
    with torch.no_grad():
        expected = net(local, glob, lengths, return_attention=True)
        out = net.cuda()(local.cuda(), glob.cuda(), lengths.cuda(), return_attention=True)
    torch.testing.assert_close(out.prediction.cpu()[1, :77], expected.prediction[1, :77],
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(band_to_dense(out.global_attention).cpu()[0],
                               band_to_dense(expected.global_attention)[0], atol=1e-5,
                               rtol=1e-4)


def _second_order_grads(device):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    net = small_net().to(device).train()
    local, glob, y = inputs(2, 20, device)
    lengths = torch.tensor([20, 13], device=device)
    mask = torch.arange(20, device=device)[None, :] < lengths[:, None]
    support = (local[:1], glob[:1], lengths[:1], y[:1], mask[:1])
    query = (local, glob, lengths, y, mask)
    params = dict(net.named_parameters())

    def loss_fn(state, batch):
        local_, glob_, lengths_, y_, mask_ = batch
        out = functional_call(net, state, (local_, glob_, lengths_), {"return_attention": True})
        return emotion_loss(out.prediction, y_, mask_) + diagonal_attention_loss(
            out.local_attention, out.global_attention, lengths_, layout="band")

    # cuDNN's LSTM has no double backward; the math SDPA backend is what
    # meta-learning code must use wherever fused attention could be chosen.
    # The inner loop runs on copies of the BatchNorm statistics, as the
    # estimators do (the query pass updates the real ones).
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    with torch.backends.cudnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH):
        maml_task_backward(lambda s, b: loss_fn({**s, **buffers}, b), loss_fn, params,
                           list(params), support, query, 2, 0.05, first_order=False)
    return {n: p.grad.detach().cpu() for n, p in params.items()}


@needs_cuda
def test_second_order_maml_on_cuda_equals_cpu():
    expected = _second_order_grads("cpu")
    grads = _second_order_grads("cuda")
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], atol=1e-5, rtol=1e-4)


@needs_cuda
@pytest.mark.parametrize("mode", ["fomaml", "maml", "none"])
def test_batched_tasks_on_cuda_equal_cpu(mode):
    from pdmer.meta.batch import SongBatch

    def run(device):
        net = small_net().to(device).train()
        tasks = []
        for t in range(3):
            local, glob, y = inputs(3, 12, device, seed=t)
            lengths = torch.tensor([12, 12, 9], device=device)
            mask = torch.arange(12, device=device)[None, :] < lengths[:, None]
            batch = SongBatch(local, glob, y, lengths, mask)
            support = dataclasses.replace(batch, **{f: getattr(batch, f)[:1] for f in
                                                    ("local_patches", "global_embeddings", "y",
                                                     "lengths", "mask")})
            tasks.append(batch if mode == "none" else (support, batch))

        def loss_fn(state, batch, context=None):
            out = functional_call(net, state, (batch.local_patches, batch.global_embeddings,
                                               batch.lengths, context, context is None))
            loss = emotion_loss(out.prediction, batch.y, batch.mask)
            if context is None:
                loss = loss + diagonal_attention_loss(out.local_attention, out.global_attention,
                                                      batch.lengths, layout="band")
            return loss, out.context

        losses = vmapped_tasks_backward(loss_fn, net, [n for n, _ in net.named_parameters()],
                                        tasks, mode, 2, 0.05, weight=1 / 3)
        return losses, {n: p.grad.detach().cpu() for n, p in net.named_parameters()}

    expected_losses, expected = run("cpu")
    losses, grads = run("cuda")
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-4)
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], atol=1e-5, rtol=1e-3)


@needs_cuda
@pytest.mark.parametrize("meta_learning", ["fomaml", "maml", "none"])
@pytest.mark.parametrize("cls", list(TINY), ids=[c.__name__ for c in TINY])
def test_every_estimator_fits_personalizes_and_predicts_on_cuda(cls, meta_learning):
    X, y, annotators = make_annotator_table()
    if cls._input == "wave":
        rng = np.random.default_rng(0)
        X = [dataclasses.replace(s, waveforms=rng.normal(scale=0.1, size=(s.n_frames, 256))
                                 .astype(np.float32), waveform_rate=512) for s in X]
    model = cls(**{**TINY[cls], **TRAINING}, device="cuda", meta_learning=meta_learning)
    model.fit(X, y, annotators=annotators)
    assert next(model.network_.parameters()).is_cuda
    before = model.predict(X[:2])
    model.personalize(X[:1], y[:1])
    after = model.predict(X[:2])
    assert all(np.isfinite(p).all() for p in before + after)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    # The adaptation is stored on the CPU, so listener files load anywhere.
    assert all(not t.is_cuda for t in model.listener_.params.values())
