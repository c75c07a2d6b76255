"""Global-context encoders: one embedding per label frame from a long window.

An encoder sees the whole song once and returns, for every label frame, an
embedding of the audio in a window centred on that frame. Any object with the
attributes and method of :class:`GlobalEncoder` plugs in.
"""

from __future__ import annotations

import numpy as np
import torch

from pdmer.features.logmel import frame_segments, log_mel
from pdmer.labels import FRAME_SECONDS


class GlobalEncoder:
    """Interface of a global encoder.

    Attributes
    ----------
    name : str
        Recorded in every :class:`~pdmer.features.SongFeatures` it makes.
    sample_rate : int
        Rate of the waveform :meth:`embed` receives.
    dim : int
        Size of one embedding.
    """

    name = "base"
    sample_rate = 16000
    dim = 0

    def embed(self, waveform: np.ndarray, frame_starts: np.ndarray,
              window: float) -> np.ndarray:
        """Embeddings of the windows centred on each label frame.

        Parameters
        ----------
        waveform : ndarray of shape (n_samples,)
            The whole song, mono, at :attr:`sample_rate`.
        frame_starts : ndarray of shape (n_frames,)
            Start time in seconds of each 0.5 s label frame.
        window : float
            Window length in seconds, centred on each frame's centre.

        Returns
        -------
        ndarray of shape (n_frames, dim)
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogMelStatsEncoder(GlobalEncoder):
    """Weight-free global descriptor: log-mel mean and standard deviation.

    Statistics are accumulated once per 0.5 s cell of a grid aligned with the
    label frames, then summed over each frame's window with cumulative sums,
    so the cost does not grow with the window length. Windows are clipped to
    the song: at the edges the statistics cover the audio that exists.

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

    def embed(self, waveform, frame_starts, window):
        frame_starts = np.asarray(frame_starts, dtype=np.float64)
        # Grid cells from the first whole cell of the song, aligned with frame 0.
        first = frame_starts[0] - FRAME_SECONDS * np.floor(frame_starts[0] / FRAME_SECONDS + 1e-9)
        n_cells = int(np.floor((len(waveform) / self.sample_rate - first) / FRAME_SECONDS + 1e-9))
        cells = frame_segments(waveform, self.sample_rate, first, n_cells)
        with torch.no_grad():
            mel = log_mel(torch.from_numpy(cells), self.sample_rate, self.n_mels,
                          window_seconds=0.025, hop_seconds=0.010).double()
        count = mel.shape[1]
        cum_sum = np.concatenate([np.zeros((1, self.n_mels)), mel.sum(1).numpy().cumsum(0)])
        cum_sq = np.concatenate([np.zeros((1, self.n_mels)),
                                 mel.square().sum(1).numpy().cumsum(0)])
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


def get_global_encoder(encoder) -> GlobalEncoder:
    """Resolve a name or an encoder object to a :class:`GlobalEncoder`."""
    if isinstance(encoder, str):
        if encoder == "logmel-stats":
            return LogMelStatsEncoder()
        raise ValueError(
            f"Unknown global_encoder {encoder!r}; available: 'logmel-stats', "
            "or pass an object with name, sample_rate, dim and embed()."
        )
    missing = [a for a in ("name", "sample_rate", "dim", "embed") if not hasattr(encoder, a)]
    if missing:
        raise TypeError(
            f"global_encoder {encoder!r} lacks {', '.join(missing)}; see "
            "pdmer.features.GlobalEncoder for the interface."
        )
    return encoder
