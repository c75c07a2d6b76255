"""Log-mel spectrograms on the 2 Hz label grid (torch), and the log-mel statistics encoder."""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch

from pdmer.features.base import GlobalEncoder
from pdmer.labels import FRAME_SECONDS


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
    time, so rounding never accumulates over a long song. Samples past the
    end (sub-sample rounding of the last frame) are silence.
    """
    length = int(round(frame_seconds * sample_rate))
    starts = np.round((start + frame_seconds * np.arange(n_frames)) * sample_rate)
    segments = np.zeros((n_frames, length), dtype=waveform.dtype)
    for row, first in zip(segments, starts.astype(np.int64)):  # slices: no index arrays
        piece = waveform[first:first + length]
        row[:len(piece)] = piece
    return segments


def log_mel_chunks(waveform: np.ndarray, sample_rate: int, start: float, n_frames: int,
                   n_mels: int, window_seconds: float, hop_seconds: float,
                   frame_seconds: float = 0.5, device="cpu", chunk: int = 25):
    """Yield ``(first_frame, log_mel)`` for ``n_frames`` frames from ``start`` s, in chunks.

    Each ``log_mel`` is the :func:`log_mel` of up to ``chunk`` consecutive
    frames, an array of shape (count, n_times, n_mels). Chunks bound the
    STFT's working memory (frames, spectrum and power of 25 frames at 44.1
    kHz: about 50 MB); all frames of a song at once cost about 175 MB per
    minute of audio, and chunks of 25 to 50 frames were the fastest measured.
    """
    for lo in range(0, n_frames, chunk):
        count = min(chunk, n_frames - lo)
        segments = frame_segments(waveform, sample_rate, start + lo * frame_seconds, count,
                                  frame_seconds)
        with torch.no_grad():
            mel = log_mel(torch.from_numpy(segments).to(device), sample_rate, n_mels,
                          window_seconds, hop_seconds)
        yield lo, mel.cpu().numpy()


def log_mel_frames(waveform: np.ndarray, sample_rate: int, start: float, n_frames: int,
                   n_mels: int, window_seconds: float, hop_seconds: float,
                   frame_seconds: float = 0.5, device="cpu", chunk: int = 25) -> np.ndarray:
    """:func:`log_mel` of ``n_frames`` consecutive frames from ``start`` s.

    Computed in chunks (:func:`log_mel_chunks`) into one preallocated array.

    Returns an array of shape (n_frames, n_times, n_mels).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1; got {n_frames}.")
    out = None
    for lo, mel in log_mel_chunks(waveform, sample_rate, start, n_frames, n_mels,
                                  window_seconds, hop_seconds, frame_seconds, device, chunk):
        if out is None:
            out = np.empty((n_frames,) + mel.shape[1:], np.float32)
        out[lo:lo + len(mel)] = mel
    return out


class LogMelStatsEncoder(GlobalEncoder):
    """Weight-free global descriptor: log-mel mean and standard deviation.

    Statistics are accumulated once per 0.5 s cell of a grid aligned with the
    label frames, then summed over each frame's window with cumulative sums,
    so the cost does not grow with the window length, and the memory is one
    row of sums per cell. Windows are clipped to the song: at the edges the
    statistics cover the audio that exists.

    Parameters
    ----------
    n_mels : int, default=64
    sample_rate : int, default=16000
    """

    name = "logmel-stats"

    def __init__(self, n_mels: int = 64, sample_rate: int = 16000):
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.dim = 2 * n_mels
        self.cache_token = f"logmel-stats/n_mels={n_mels}/sample_rate={sample_rate}"

    def embed(self, waveform, frame_starts, window):
        frame_starts = np.asarray(frame_starts, dtype=np.float64)
        # Grid cells from the first whole cell of the song, aligned with frame 0.
        first = frame_starts[0] - FRAME_SECONDS * np.floor(frame_starts[0] / FRAME_SECONDS + 1e-9)
        n_cells = int(np.floor((len(waveform) / self.sample_rate - first) / FRAME_SECONDS + 1e-9))
        sums = np.zeros((n_cells + 1, self.n_mels))
        squares = np.zeros((n_cells + 1, self.n_mels))
        for lo, mel in log_mel_chunks(waveform, self.sample_rate, first, n_cells, self.n_mels,
                                      window_seconds=0.025, hop_seconds=0.010):
            mel = mel.astype(np.float64)
            count = mel.shape[1]
            sums[lo + 1:lo + 1 + len(mel)] = mel.sum(1)
            squares[lo + 1:lo + 1 + len(mel)] = np.square(mel).sum(1)
        cum_sum, cum_sq = sums.cumsum(0), squares.cumsum(0)
        centre_cell = (frame_starts - first) / FRAME_SECONDS + 0.5
        half = window / FRAME_SECONDS / 2
        lo = np.clip(np.floor(centre_cell - half + 1e-9), 0, n_cells - 1).astype(int)
        hi = np.clip(np.ceil(centre_cell + half - 1e-9), lo + 1, n_cells).astype(int)
        n = ((hi - lo) * count)[:, None]
        mean = (cum_sum[hi] - cum_sum[lo]) / n
        var = np.maximum((cum_sq[hi] - cum_sq[lo]) / n - mean**2, 0.0)
        return np.concatenate([mean, np.sqrt(var)], axis=1).astype(np.float32)

    def __repr__(self) -> str:
        return f"LogMelStatsEncoder(n_mels={self.n_mels}, sample_rate={self.sample_rate})"
