"""The interface every global encoder follows, and what it asks of the audio."""

from __future__ import annotations

import numpy as np

from pdmer.features.audio import CHANNEL_MODES, RESAMPLERS, Signal


class GlobalEncoder:
    """Interface of a global encoder.

    An encoder sees the whole song once and returns, for every label frame,
    an embedding of the audio in a window centred on that frame.

    Attributes
    ----------
    name : str
        Recorded in every :class:`~pdmer.features.SongFeatures` it makes.
    sample_rate : int
        Rate of the waveform :meth:`embed` receives.
    dim : int
        Size of one embedding.
    channels : {"mean", "first"}
        Which mono signal :meth:`embed` receives: the mix of all channels
        (default) or channel 0.
    resampler : {"soxr", "sinc"}
        How the audio is brought to :attr:`sample_rate`: soxr (default) or
        torchaudio's sinc interpolation (:mod:`pdmer.features.resample`).
    cache_token : str or None
        Identifies the encoder *and its weights* in feature-cache keys; None
        (the default for objects that lack it) disables the cache.
    in_process : bool
        True for heavy models (loaded once, batched, maybe on a GPU) that
        should run in the calling process rather than in joblib workers.
    """

    name = "base"
    sample_rate = 16000
    dim = 0
    channels = "mean"
    resampler = "soxr"
    cache_token = None
    in_process = False

    def embed(self, waveform: np.ndarray, frame_starts: np.ndarray,
              window: float) -> np.ndarray:
        """Embeddings of the windows centred on each label frame.

        Parameters
        ----------
        waveform : ndarray of shape (n_samples,)
            The whole song, mono (see :attr:`channels`), at :attr:`sample_rate`.
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


def encoder_input(encoder) -> Signal:
    """The signal ``encoder`` asks of the audio (defaults for objects that do not say)."""
    signal = Signal(getattr(encoder, "channels", "mean"), int(encoder.sample_rate),
                    getattr(encoder, "resampler", "soxr"))
    if signal.channels not in CHANNEL_MODES or signal.resampler not in RESAMPLERS:
        raise ValueError(f"global encoder {encoder.name!r}: channels must be one of "
                         f"{CHANNEL_MODES} and resampler one of {RESAMPLERS}; got "
                         f"{signal.channels!r} and {signal.resampler!r}.")
    return signal
