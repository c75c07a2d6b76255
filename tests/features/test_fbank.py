"""pdmer's Kaldi fbank against values produced by torchaudio itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pdmer.features.fbank import kaldi_fbank, kaldi_mel_banks

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "fbank_reference.npz"
# ImageBind's settings, in this module's argument names.
IMAGEBIND = dict(sample_rate=16000, num_mel_bins=128, frame_length=25, frame_shift=10,
                 window_type="hanning")
LOG_FLOOR = float(np.log(np.finfo(np.float32).eps))  # -15.9424


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", ["noisy_sine", "short", "silence_gap"])
def test_imagebind_fbank_equals_torchaudio(reference, name):
    x = torch.from_numpy(reference[f"{name}/input"])
    ref = reference[f"{name}/imagebind"]
    got = kaldi_fbank(x, **IMAGEBIND).numpy()
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) < 1e-4


def test_default_settings_equal_torchaudio(reference):
    # torchaudio's defaults: povey window, 23 bins, int16-range samples.
    x = torch.from_numpy(reference["noisy_sine/input"]) * 32768
    ref = reference["noisy_sine/defaults"]
    got = kaldi_fbank(x).numpy()
    assert got.shape == ref.shape == (38, 23)
    assert np.max(np.abs(got - ref)) < 1e-4 * np.abs(ref).max()


def test_batched_rows_equal_single_calls(reference):
    a = torch.from_numpy(reference["noisy_sine/input"])
    batch = torch.stack([a, a.flip(0), 0.5 * a])
    got = kaldi_fbank(batch, **IMAGEBIND)
    assert got.shape == (3, 38, 128)
    for row in range(3):
        torch.testing.assert_close(got[row], kaldi_fbank(batch[row], **IMAGEBIND))


def test_empty_low_bins_sit_at_the_log_floor(reference):
    # 128 bins at 16 kHz with a 512-point FFT: a low filter narrower than one
    # FFT bin (31.25 Hz) catches none.
    banks = kaldi_mel_banks(128, 512, 16000.0)
    empty = banks.sum(1) == 0
    assert 0 < int(empty.sum()) < 8 and not bool(empty[64:].any())
    got = kaldi_fbank(torch.from_numpy(reference["noisy_sine/input"]), **IMAGEBIND)
    assert np.allclose(got[:, empty].numpy(), LOG_FLOOR, atol=1e-5)
    assert LOG_FLOOR == pytest.approx(-15.9424, abs=1e-4)
    assert reference["noisy_sine/imagebind"][:, empty.numpy()].max() == pytest.approx(LOG_FLOOR)


def test_shorter_than_one_window_gives_no_frames():
    assert kaldi_fbank(torch.zeros(399), **IMAGEBIND).shape == (0, 128)
    assert kaldi_fbank(torch.zeros(2, 400), **IMAGEBIND).shape == (2, 1, 128)


@pytest.mark.parametrize("kwargs, message", [
    (dict(window_type="blackmann"), "window_type"),
    (dict(num_mel_bins=3), "num_mel_bins"),
    (dict(low_freq=9000.0), "low_freq"),
    (dict(frame_length=0.01), "frame_length"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kaldi_fbank(torch.zeros(1600), **kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match="waveforms must have shape"):
        kaldi_fbank(torch.zeros(1, 2, 1600))
