"""The scikit-learn transformer that turns audio items into SongFeatures."""

from __future__ import annotations

import os

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin

from pdmer.features.audio import AudioError, load_audio, to_mono
from pdmer.features.container import SongFeatures
from pdmer.features.encoders import get_global_encoder
from pdmer.features.logmel import frame_segments, log_mel
from pdmer.labels import FRAME_SECONDS

# Peak level below which a song counts as silent (about -100 dBFS).
_SILENCE = 1e-5


class AudioFeatures(TransformerMixin, BaseEstimator):
    """Audio items -> :class:`~pdmer.features.SongFeatures` on the 2 Hz label grid.

    Label frame ``i`` covers audio ``[frame_offset + 0.5 i, frame_offset +
    0.5 (i + 1)]`` seconds. Each frame gets a log-mel patch (the local branch's
    input) and a global embedding of a window centred on it.

    Parameters
    ----------
    sample_rate : int, default=44100
        Rate the local log-mel patches are computed at (audio is resampled).
    n_mels : int, default=128
    window_seconds : float, default=0.06
        STFT window of the local patches (60 ms, the reference setting).
    hop_seconds : float, default=0.01
    frame_offset : float, default=0.0
        Audio time of label frame 0 in seconds (15.0 for DEAM).
    global_encoder : str or GlobalEncoder, default="logmel-stats"
        ``"logmel-stats"`` needs no weights; any object following
        :class:`~pdmer.features.GlobalEncoder` plugs in.
    global_window : float, default=30.0
        Seconds of audio, centred on each frame, the global encoder sees.
    waveform_rate : int, optional
        Also keep each frame's raw audio at this sample rate
        (``SongFeatures.waveforms``), for models that learn from the
        waveform (DNN, MCRNN). None keeps no raw audio.
    n_jobs : int, optional
        Songs extracted in parallel (joblib; the active joblib backend is used).
    device : str, default="cpu"
        Torch device for the spectrograms.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.features import AudioFeatures
    >>> song = (np.random.default_rng(0).normal(size=22050 * 3), 22050)
    >>> [features] = AudioFeatures().transform([song])
    >>> features.n_frames, features.local_patches.shape[1:]
    (6, (51, 128))
    """

    def __init__(self, sample_rate=44100, n_mels=128, window_seconds=0.06,
                 hop_seconds=0.01, frame_offset=0.0, global_encoder="logmel-stats",
                 global_window=30.0, waveform_rate=None, n_jobs=None, device="cpu"):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.frame_offset = frame_offset
        self.global_encoder = global_encoder
        self.global_window = global_window
        self.waveform_rate = waveform_rate
        self.n_jobs = n_jobs
        self.device = device

    def fit(self, X=None, y=None):
        """Nothing to learn; present for the scikit-learn API."""
        get_global_encoder(self.global_encoder)
        self._check_waveform_rate()
        return self

    def _check_waveform_rate(self):
        rate = self.waveform_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, np.integer))
                                 or rate < 1):
            raise ValueError(f"waveform_rate must be None or a positive integer; got {rate!r}.")

    def transform(self, X, n_frames=None):
        """Extract features of every item of ``X``.

        Parameters
        ----------
        X : sequence
            Audio file paths, ``(waveform, sample_rate)`` tuples, or
            SongFeatures (passed through unchanged).
        n_frames : sequence of int, optional
            Frames to extract per item (the length of its labels). By default
            every whole 0.5 s frame after ``frame_offset``.

        Returns
        -------
        list of SongFeatures
        """
        if n_frames is None:
            n_frames = [None] * len(X)
        if len(n_frames) != len(X):
            raise ValueError(f"n_frames has {len(n_frames)} entries for {len(X)} items.")
        n_frames = [_frame_count(n, i) for i, n in enumerate(n_frames)]
        self._check_waveform_rate()
        encoder = get_global_encoder(self.global_encoder)
        jobs = (delayed(self._extract_one)(item, n, encoder) for item, n in zip(X, n_frames))
        return Parallel(n_jobs=self.n_jobs)(jobs)

    def _extract_one(self, item, n_frames, encoder) -> SongFeatures:
        if isinstance(item, SongFeatures):
            if n_frames is not None and n_frames > item.n_frames:
                raise ValueError(
                    f"{item.source}: the labels have {n_frames} frames but the "
                    f"features only {item.n_frames}."
                )
            return item if n_frames is None else item.crop(0, n_frames)
        waveform, rate, source = self._read(item)
        duration = len(waveform) / rate
        available = int(np.floor((duration - self.frame_offset) / FRAME_SECONDS + 1e-6))
        if available < 1:
            raise AudioError(
                f"{source}: the audio lasts {duration:.2f} s, too short for one "
                f"0.5 s frame after frame_offset={self.frame_offset} s."
            )
        if np.max(np.abs(waveform)) < _SILENCE:
            raise AudioError(f"{source}: the audio is silent (all samples ~0).")
        if n_frames is None:
            n_frames = available
        elif n_frames > available:
            raise ValueError(
                f"{source}: the labels have {n_frames} frames ({n_frames * FRAME_SECONDS:g} s "
                f"from {self.frame_offset:g} s) but the audio lasts {duration:.2f} s, "
                f"enough for {available} frames. Check that labels and audio belong "
                "together and that frame_offset is right."
            )
        local = self._local_patches(waveform, rate, n_frames)
        enc_wave, _ = to_mono(waveform, rate, encoder.sample_rate, source=source)
        starts = self.frame_offset + FRAME_SECONDS * np.arange(n_frames)
        glob = np.asarray(encoder.embed(enc_wave, starts, self.global_window), np.float32)
        if glob.shape != (n_frames, encoder.dim):
            raise ValueError(
                f"global encoder {encoder.name!r} returned shape {glob.shape} for "
                f"{source}; expected ({n_frames}, {encoder.dim})."
            )
        waves = None
        if self.waveform_rate is not None:
            raw, _ = to_mono(waveform, rate, self.waveform_rate, source=source)
            waves = frame_segments(raw, self.waveform_rate, self.frame_offset, n_frames)
        return SongFeatures(local, glob, frame_offset=float(self.frame_offset),
                            encoder=encoder.name, source=source, waveforms=waves,
                            waveform_rate=self.waveform_rate)

    def _read(self, item):
        if isinstance(item, (str, os.PathLike)):
            waveform, rate = load_audio(item)
            return waveform, rate, os.fspath(item)
        if isinstance(item, tuple) and len(item) == 2:
            waveform, rate = to_mono(item[0], item[1])
            return waveform, rate, "<array>"
        raise TypeError(
            "Each item of X must be an audio path, a (waveform, sample_rate) "
            f"tuple or SongFeatures; got {type(item).__name__}."
        )

    def _local_patches(self, waveform, rate, n_frames) -> np.ndarray:
        waveform, _ = to_mono(waveform, rate, self.sample_rate)
        segments = frame_segments(waveform, self.sample_rate, self.frame_offset, n_frames)
        with torch.no_grad():
            patches = log_mel(torch.from_numpy(segments).to(self.device), self.sample_rate,
                              self.n_mels, self.window_seconds, self.hop_seconds)
        return patches.cpu().numpy()


def _frame_count(n, index):
    """``n_frames[index]`` as a positive int (None stays None)."""
    if n is None:
        return None
    try:
        count = int(n)
        whole = count == n
    except (TypeError, ValueError):
        whole = False
    if not whole or count < 1:
        raise ValueError(f"n_frames[{index}] must be a positive whole number of frames; "
                         f"got {n!r}.")
    return count
