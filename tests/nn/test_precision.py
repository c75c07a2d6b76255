"""pdmer's one precision policy (pdmer.nn.precision): vocabulary, resolution, fallback."""

from __future__ import annotations

import warnings

import pytest
import torch

from pdmer.nn import precision
from pdmer.nn.precision import PRECISIONS, autocast, check_precision, resolve_precision

BF16, FP32 = torch.bfloat16, torch.float32


def hardware(monkeypatch, cpu, cuda):
    """Pretend this CPU does (not) compute bfloat16 natively, and a CUDA GPU with(out) it."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bool(cuda))


@pytest.mark.parametrize("cpu", [False, True])
@pytest.mark.parametrize("cuda", [None, False, True])
def test_resolution_table(monkeypatch, cpu, cuda):
    hardware(monkeypatch, cpu, cuda)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # auto: bf16 on CUDA GPUs with it; float32 on every CPU (the default
        # awaits the robustness comparison: CPU_BF16_BY_DEFAULT).
        assert resolve_precision("auto", "cpu") is FP32
        assert resolve_precision("auto", "cuda") is (BF16 if cuda else FP32)
        assert resolve_precision("auto", "cuda:0") is (BF16 if cuda else FP32)
        # bf16: wherever native.
        assert resolve_precision("bf16", "cpu") is (BF16 if cpu else FP32)
        assert resolve_precision("bf16", torch.device("cuda")) is (BF16 if cuda else FP32)
        assert resolve_precision("bf16", "meta") is FP32
        # fp32: everywhere.
        for device in ("cpu", "cuda"):
            assert resolve_precision("fp32", device) is FP32


def test_the_cpu_default_is_one_constant(monkeypatch):
    hardware(monkeypatch, cpu=True, cuda=None)
    assert precision.CPU_BF16_BY_DEFAULT is False  # until the accuracy comparison decides
    monkeypatch.setattr(precision, "CPU_BF16_BY_DEFAULT", True)
    assert resolve_precision("auto", "cpu") is BF16
    with autocast("cpu"):
        assert torch.is_autocast_enabled("cpu")
    hardware(monkeypatch, cpu=False, cuda=None)
    assert resolve_precision("auto", "cpu") is FP32  # never emulated


def test_bf16_without_native_support_falls_back_to_float32_with_one_warning(monkeypatch):
    hardware(monkeypatch, cpu=False, cuda=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") is FP32  # silent unless asked
        with autocast("cpu", "bf16"):
            assert not torch.is_autocast_enabled("cpu")
    with pytest.warns(UserWarning, match="precision='bf16' runs float32 on cpu") as record:
        assert resolve_precision("bf16", "cpu", warn=True) is FP32
    assert len(record) == 1 and record[0].filename == __file__
    hardware(monkeypatch, cpu=True, cuda=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu", warn=True) is BF16


def test_autocast_follows_the_resolution(monkeypatch):
    hardware(monkeypatch, cpu=True, cuda=None)
    for value, enabled in (("auto", False), ("bf16", True), ("fp32", False)):
        with autocast("cpu", value):
            assert torch.is_autocast_enabled("cpu") is enabled
            if enabled:
                assert torch.get_autocast_dtype("cpu") == BF16
                assert torch.nn.Linear(4, 2)(torch.ones(1, 4)).dtype == BF16


@pytest.mark.parametrize("value", [True, False, None, "fp16", "BF16", "float32"])
def test_one_vocabulary(value):
    assert PRECISIONS == ("auto", "bf16", "fp32")
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'bf16', 'fp32'"):
        check_precision(value)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision(value, "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", value)
