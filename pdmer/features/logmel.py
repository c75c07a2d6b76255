"""Log-mel spectrogram patches on the 2 Hz label grid, computed in torch."""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


def log_mel(segments: torch.Tensor, sample_rate: int, n_mels: int,
            window_seconds: float, hop_seconds: float) -> torch.Tensor:
    """Log-mel spectrograms of a batch of equal-length segments.

    Matches ``log(librosa.feature.melspectrogram(y, sr, n_fft, hop_length,
    n_mels) + 1e-6)`` (Hann window, centred frames, power 2, Slaney mel
    filters), the reference implementation's local feature.

    Parameters
    ----------
    segments : Tensor of shape (n_segments, n_samples)
    sample_rate, n_mels : int
    window_seconds, hop_seconds : float
        STFT window (also the FFT size) and hop in seconds.

    Returns
    -------
    Tensor of shape (n_segments, n_times, n_mels)
    """
    n_fft = int(round(window_seconds * sample_rate))
    hop = int(round(hop_seconds * sample_rate))
    window = torch.hann_window(n_fft, device=segments.device, dtype=segments.dtype)
    spec = torch.stft(segments, n_fft=n_fft, hop_length=hop, window=window,
                      center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    basis = torch.as_tensor(_mel_basis(sample_rate, n_fft, n_mels),
                            device=segments.device, dtype=segments.dtype)
    mel = torch.matmul(basis, power)  # (n_segments, n_mels, n_times)
    return torch.log(mel + 1e-6).transpose(1, 2)


def frame_segments(waveform: np.ndarray, sample_rate: int, start: float,
                   n_frames: int, frame_seconds: float = 0.5) -> np.ndarray:
    """Cut ``n_frames`` consecutive frames of ``frame_seconds`` from ``start`` s.

    Returns an array of shape (n_frames, round(frame_seconds * sample_rate)).
    Frame boundaries are rounded to the nearest sample from the absolute
    time, so rounding never accumulates over a long song.
    """
    length = int(round(frame_seconds * sample_rate))
    starts = np.round((start + frame_seconds * np.arange(n_frames)) * sample_rate)
    starts = starts.astype(np.int64)
    if n_frames and starts[-1] + length > len(waveform):
        # Sub-sample rounding at the very end: pad with silence.
        waveform = np.pad(waveform, (0, starts[-1] + length - len(waveform)))
    index = starts[:, None] + np.arange(length)[None, :]
    return waveform[index]


def log_mel_frames(waveform: np.ndarray, sample_rate: int, start: float, n_frames: int,
                   n_mels: int, window_seconds: float, hop_seconds: float,
                   frame_seconds: float = 0.5, device="cpu", chunk: int = 100) -> np.ndarray:
    """:func:`log_mel` of ``n_frames`` consecutive frames from ``start`` s, in chunks.

    Chunks of ``chunk`` frames bound the STFT's memory: all frames of a song
    at once cost about 175 MB per minute of audio at 44.1 kHz, and were slower.

    Returns an array of shape (n_frames, n_times, n_mels).
    """
    out = []
    for lo in range(0, n_frames, chunk):
        count = min(chunk, n_frames - lo)
        segments = frame_segments(waveform, sample_rate, start + lo * frame_seconds, count,
                                  frame_seconds)
        with torch.no_grad():
            mel = log_mel(torch.from_numpy(segments).to(device), sample_rate, n_mels,
                          window_seconds, hop_seconds)
        out.append(mel.cpu().numpy())
    return np.concatenate(out)
