"""Kaldi-compatible log mel filter bank features in torch, batched.

ImageBind's audio input is ``torchaudio.compliance.kaldi.fbank``. torchaudio
cannot be a dependency here (each release pins one torch build, and its file
loading needs torchcodec), and kaldi-native-fbank refuses ImageBind's setting
of 128 mel bins at 16 kHz (the lowest bins are empty at a 512-point FFT, which
torchaudio silently keeps at the log floor). So this module re-implements the
part of torchaudio's function that ImageBind uses, operation for operation
(including the float32 mel bank arithmetic), and ``tests/features/test_fbank.py``
checks it against values produced with torchaudio itself.

Only what ImageBind needs is offered: no dither, no energy column, frames
snipped at the edges (Kaldi's ``snip_edges=True``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

# torchaudio floors mel energies at float32's machine epsilon before the log,
# whatever the dtype: log(eps) = -15.9424 is the value of empty mel bins.
_EPSILON = torch.finfo(torch.float32).eps

_WINDOWS = ("hanning", "povey", "hamming", "rectangular")


def _mel(freq):
    # Kaldi's (HTK) mel scale with the natural log.
    return 1127.0 * (1.0 + freq / 700.0).log()


@lru_cache(maxsize=8)
def kaldi_mel_banks(num_bins: int, padded_window: int, sample_rate: float,
                    low_freq: float = 20.0, high_freq: float = 0.0) -> torch.Tensor:
    """Triangular mel filters of shape (num_bins, padded_window // 2 + 1), float32.

    Same arithmetic, in float32, as torchaudio's ``get_mel_banks`` without VTLN,
    plus the zero column for the Nyquist bin that ``fbank`` appends.
    """
    if num_bins <= 3:
        raise ValueError(f"num_mel_bins must be more than 3; got {num_bins}.")
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"low_freq={low_freq} and high_freq={high_freq} must satisfy "
                         f"0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz).")
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    centre = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _mel(sample_rate / padded_window * torch.arange(padded_window / 2)).unsqueeze(0)
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.max(torch.zeros(1), torch.min(up, down))
    return torch.nn.functional.pad(banks, (0, 1))


def _window(kind: str, size: int, device, dtype) -> torch.Tensor:
    if kind == "hanning":
        return torch.hann_window(size, periodic=False, device=device, dtype=dtype)
    if kind == "povey":
        return torch.hann_window(size, periodic=False, device=device, dtype=dtype).pow(0.85)
    if kind == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46,
                                    device=device, dtype=dtype)
    return torch.ones(size, device=device, dtype=dtype)


def kaldi_fbank(waveforms: torch.Tensor, sample_rate: float = 16000.0, num_mel_bins: int = 23,
                frame_length: float = 25.0, frame_shift: float = 10.0,
                window_type: str = "povey", low_freq: float = 20.0, high_freq: float = 0.0,
                preemphasis: float = 0.97, remove_dc_offset: bool = True,
                round_to_power_of_two: bool = True, use_power: bool = True,
                use_log_fbank: bool = True) -> torch.Tensor:
    """Kaldi log mel filter bank energies of a batch of equal-length waveforms.

    Equals ``torchaudio.compliance.kaldi.fbank(w[None], ...)`` for each row
    ``w`` with the same arguments (``dither=0``, ``use_energy=False``,
    ``snip_edges=True``; ``htk_compat`` only moves the energy column, so it
    has no effect here). The defaults are torchaudio's.

    Parameters
    ----------
    waveforms : Tensor of shape (n_samples,) or (batch, n_samples)
        Raw samples (Kaldi conventionally uses the int16 range; ImageBind
        passes floats in [-1, 1]).
    sample_rate : float, default=16000.0
    num_mel_bins : int, default=23
    frame_length, frame_shift : float, default=25.0, 10.0
        Window and hop in milliseconds.
    window_type : {"povey", "hanning", "hamming", "rectangular"}, default="povey"
    low_freq, high_freq : float, default=20.0, 0.0
        Filter bank edges in Hz; ``high_freq <= 0`` counts from the Nyquist
        frequency.
    preemphasis : float, default=0.97
    remove_dc_offset, round_to_power_of_two, use_power, use_log_fbank : bool, default=True

    Returns
    -------
    Tensor of shape (batch, n_frames, num_mel_bins)
        ``n_frames = 1 + (n_samples - window) // shift`` (0 if shorter than
        one window), or (n_frames, num_mel_bins) for a 1-D input.
    """
    if window_type not in _WINDOWS:
        raise ValueError(f"window_type must be one of {_WINDOWS}; got {window_type!r}.")
    squeeze = waveforms.dim() == 1
    if squeeze:
        waveforms = waveforms.unsqueeze(0)
    if waveforms.dim() != 2:
        raise ValueError(f"waveforms must have shape (n_samples,) or (batch, n_samples); "
                         f"got {tuple(waveforms.shape)}.")
    device, dtype = waveforms.device, waveforms.dtype
    shift = int(sample_rate * frame_shift * 0.001)
    size = int(sample_rate * frame_length * 0.001)
    padded = 1 if size == 0 else 2 ** (size - 1).bit_length()
    if not round_to_power_of_two:
        padded = size
    if size < 2 or shift < 1 or padded % 2:
        raise ValueError(f"frame_length={frame_length} ms and frame_shift={frame_shift} ms "
                         f"give a window of {size} and a shift of {shift} samples at "
                         f"{sample_rate} Hz; need a window of at least 2 samples, an even "
                         "padded window and a shift of at least 1.")
    n_frames = 0 if waveforms.shape[1] < size else 1 + (waveforms.shape[1] - size) // shift
    if n_frames == 0:
        out = waveforms.new_zeros((waveforms.shape[0], 0, num_mel_bins))
        return out[0] if squeeze else out
    frames = waveforms.unfold(1, size, shift)  # (batch, n_frames, size)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=2, keepdim=True)
    if preemphasis != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=2)
        frames = frames - preemphasis * previous
    frames = frames * _window(window_type, size, device, dtype)
    if padded != size:
        frames = torch.nn.functional.pad(frames, (0, padded - size))
    spectrum = torch.fft.rfft(frames).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded, float(sample_rate), float(low_freq),
                            float(high_freq)).to(device=device, dtype=dtype)
    energies = torch.matmul(spectrum, banks.T)
    if use_log_fbank:
        energies = torch.clamp_min(energies, _EPSILON).log()
    return energies[0] if squeeze else energies
