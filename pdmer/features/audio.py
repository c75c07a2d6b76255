"""Reading audio files into mono float32 waveforms at a chosen sample rate."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """An audio item cannot be used: unreadable, empty, silent or too short."""


def load_audio(path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 waveform.

    Parameters
    ----------
    path : str or os.PathLike
        Any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1).
    sample_rate : int, optional
        Resample to this rate (soxr, high quality). None keeps the file's rate.

    Returns
    -------
    waveform : ndarray of shape (n_samples,)
        Channels averaged to mono.
    sample_rate : int
        The waveform's sample rate.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Audio file not found: {path}")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"Cannot decode audio file {path}: {err}. Check that it is a "
            "complete WAV/FLAC/OGG/MP3 file (re-download or re-encode it)."
        ) from err
    return to_mono(data, file_rate, sample_rate, source=path)


def to_mono(data, data_rate: int, sample_rate: int | None = None,
            source: str = "<array>") -> tuple[np.ndarray, int]:
    """Mix a (n_samples,) or (n_samples, n_channels) array to mono and resample."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        # Channels-last is the soundfile convention; a (channels, samples)
        # array with few rows is the librosa/torch one.
        if data.shape[0] <= 8 < data.shape[1]:
            data = data.T
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError(
            f"{source}: a waveform must be 1-D or (n_samples, n_channels); "
            f"got shape {data.shape}."
        )
    if data.size == 0:
        raise AudioError(f"{source}: the audio is empty.")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{source}: the waveform contains NaN or infinite samples.")
    if int(data_rate) <= 0:
        raise AudioError(f"{source}: invalid sample rate {data_rate}.")
    if sample_rate is not None and int(sample_rate) != int(data_rate):
        data = soxr.resample(data, int(data_rate), int(sample_rate), quality="HQ")
        data_rate = int(sample_rate)
    return np.ascontiguousarray(data, dtype=np.float32), int(data_rate)
