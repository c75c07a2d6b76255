"""ImageBind's input exactly as Meta's pipeline makes it: torchaudio's resampling, then the fbank.

The reference values come from torchaudio itself
(tests/data/make_resample_reference.py, run once in a throwaway venv).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from pdmer.features import AudioFeatures, ImageBindEncoder
from pdmer.features.audio import load_audio
from pdmer.features.fbank import kaldi_fbank
from pdmer.features.resample import sinc_resample
from test_imagebind import TINY, write_official_checkpoint

DATA = Path(__file__).resolve().parents[1] / "data"
RATES = (44100, 48000, 22050)


def _reference_script():
    spec = importlib.util.spec_from_file_location("make_resample_reference",
                                                  DATA / "make_resample_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports torchaudio only in main()
    return module


signal = _reference_script().signal


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "resample_reference.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("rate", RATES)
def test_resampling_equals_torchaudio(reference, rate):
    x = signal(rate)
    np.testing.assert_array_equal(x[:64], reference[f"{rate}/input_head"])  # same input
    got = sinc_resample(x, rate, 16000)
    ref = reference[f"{rate}/resampled"]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) < 1e-5


def imagebind_fbank(y):
    y = torch.from_numpy(np.asarray(y))
    return kaldi_fbank(y - y.mean(), sample_rate=16000, num_mel_bins=128, frame_length=25,
                       frame_shift=10, window_type="hanning").numpy()


@pytest.mark.parametrize("rate", RATES)
def test_fbank_of_the_resampled_signal_equals_torchaudio(reference, rate):
    ref = reference[f"{rate}/fbank"]
    # The fbank of torchaudio's 16 kHz signal: torchaudio's fbank to 1e-4.
    exact = imagebind_fbank(reference[f"{rate}/resampled"])
    assert exact.shape == ref.shape == (73, 128)
    assert np.max(np.abs(exact - ref)) < 1e-4
    # End to end (pdmer's resampling, then its fbank): 1e-4 wherever a band
    # holds energy; bands near the log floor (energy < 5e-5) amplify float32
    # rounding of the waveform (~1e-7) to ~1e-3, 1e-4 after ImageBind's / 9.138.
    got = imagebind_fbank(sinc_resample(signal(rate), rate, 16000))
    assert np.max(np.abs(got - ref)[ref > -10]) < 1e-4
    assert np.max(np.abs(got - ref)) < 2e-3


@pytest.mark.parametrize("rate", RATES)
def test_chunks_do_not_change_the_result(reference, rate):
    # 10 ms chunks: hundreds of chunk borders in 0.75 s.
    got = sinc_resample(signal(rate), rate, 16000, chunk_seconds=0.01)
    assert np.max(np.abs(got - reference[f"{rate}/resampled"])) < 1e-5


def test_soxr_is_not_what_imagebind_sees(reference):
    # The reason for this module: soxr differs by far more than the tolerance.
    x = signal(44100)
    other = soxr.resample(x, 44100, 16000, quality="HQ")[:12003]
    assert np.max(np.abs(other - reference["44100/resampled"])) > 1e-3


def test_bad_rates_and_shapes():
    with pytest.raises(ValueError, match="whole numbers"):
        sinc_resample(np.zeros(100, np.float32), 44100.5, 16000)
    with pytest.raises(ValueError, match="1-D"):
        sinc_resample(np.zeros((2, 100), np.float32), 44100, 16000)
    same = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(sinc_resample(same, 16000, 16000), same)


def test_load_audio_offers_the_sinc_resampler_and_channel_0(tmp_path):
    rate = 44100
    x = signal(rate)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), rate, subtype="FLOAT")
    wave, out_rate = load_audio(path, 16000, channels="first", resampler="sinc")
    assert out_rate == 16000
    np.testing.assert_allclose(wave, sinc_resample(x, rate, 16000), atol=1e-7)
    mix, _ = load_audio(path, 16000, resampler="sinc")
    np.testing.assert_allclose(mix, 0.75 * wave, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    weights = tmp_path_factory.mktemp("ib") / "imagebind_huge.pth"
    write_official_checkpoint(weights, seed=5, **TINY)
    return ImageBindEncoder(weights, config=TINY, batch_size=8)


@pytest.mark.parametrize("rate", RATES)
def test_imagebind_path_resamples_as_torchaudio(tmp_path, tiny_encoder, reference, rate):
    # A file at `rate` gives the embeddings of torchaudio's 16 kHz signal.
    path = tmp_path / f"song_{rate}.wav"
    sf.write(path, signal(rate), rate, subtype="FLOAT")
    front = AudioFeatures(global_encoder=tiny_encoder, global_window=0.6, n_mels=16)
    [from_file], [from_reference] = front.transform([path]), front.transform(
        [(reference[f"{rate}/resampled"], 16000)])
    np.testing.assert_allclose(from_file.global_embeddings, from_reference.global_embeddings,
                               atol=1e-5)
    assert tiny_encoder.resampler == "sinc" and "resampler=sinc" in tiny_encoder.cache_token
