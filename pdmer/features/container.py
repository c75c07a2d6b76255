"""The per-song feature container that every estimator consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pdmer.labels import DEFAULT_FRAME_OFFSET, frame_time


@dataclass(frozen=True, eq=False)
class SongFeatures:
    """Precomputed model input for one song, one row per 0.5 s label frame.

    Estimators accept these in place of audio, so expensive extraction
    (ImageBind over a catalogue) runs once and is reused across fits, grid
    searches and listeners.

    Parameters
    ----------
    local_patches : ndarray of shape (n_frames, n_patch_times, n_mels)
        One log-mel patch per label frame (the local branch's input).
    global_embeddings : ndarray of shape (n_frames, n_global)
        One global-context embedding per label frame (the global branch's
        input), e.g. ImageBind over a window centred on the frame.
    frame_offset : float, default=0.0
        Audio time in seconds where frame 0 starts.
    encoder : str, default="unknown"
        Name of the global encoder that produced ``global_embeddings``.
    source : str, default="<array>"
        Where the audio came from (a path, or ``"<array>"``).
    waveforms : ndarray of shape (n_frames, n_samples), optional
        Each frame's raw audio, for models that learn from the waveform
        (``AudioFeatures(waveform_rate=...)`` fills it).
    waveform_rate : int, optional
        Sample rate of ``waveforms``.
    """

    local_patches: np.ndarray
    global_embeddings: np.ndarray
    frame_offset: float = DEFAULT_FRAME_OFFSET
    encoder: str = "unknown"
    source: str = "<array>"
    waveforms: np.ndarray | None = field(default=None, repr=False)
    waveform_rate: int | None = None

    def __post_init__(self):
        local = np.ascontiguousarray(self.local_patches, dtype=np.float32)
        glob = np.ascontiguousarray(self.global_embeddings, dtype=np.float32)
        if local.ndim != 3:
            raise ValueError(
                f"local_patches of {self.source} must have shape (n_frames, "
                f"n_patch_times, n_mels); got shape {local.shape}."
            )
        if glob.ndim != 2:
            raise ValueError(
                f"global_embeddings of {self.source} must have shape "
                f"(n_frames, n_global); got shape {glob.shape}."
            )
        if local.shape[0] != glob.shape[0]:
            raise ValueError(
                f"{self.source}: local_patches has {local.shape[0]} frames but "
                f"global_embeddings has {glob.shape[0]}."
            )
        if local.shape[0] == 0:
            raise ValueError(f"{self.source}: a song needs at least one frame.")
        object.__setattr__(self, "local_patches", local)
        object.__setattr__(self, "global_embeddings", glob)
        if self.waveforms is not None:
            waves = np.ascontiguousarray(self.waveforms, dtype=np.float32)
            if waves.ndim != 2 or waves.shape[0] != local.shape[0]:
                raise ValueError(
                    f"waveforms of {self.source} must have shape ({local.shape[0]}, "
                    f"n_samples), one row per frame; got shape {waves.shape}."
                )
            if self.waveform_rate is None or int(self.waveform_rate) <= 0:
                raise ValueError(
                    f"{self.source}: waveforms need their waveform_rate (a positive "
                    f"sample rate); got {self.waveform_rate!r}."
                )
            object.__setattr__(self, "waveforms", waves)
            object.__setattr__(self, "waveform_rate", int(self.waveform_rate))

    @property
    def n_waveform_samples(self) -> int:
        """Raw samples per frame (0 without waveforms)."""
        return 0 if self.waveforms is None else self.waveforms.shape[1]

    @property
    def n_frames(self) -> int:
        """Number of 0.5 s label frames."""
        return self.local_patches.shape[0]

    def __len__(self) -> int:
        return self.n_frames

    def crop(self, start: int, stop: int) -> "SongFeatures":
        """Frames ``[start, stop)`` as a new container (views, no copy)."""
        if not 0 <= start < stop <= self.n_frames:
            raise ValueError(
                f"crop [{start}, {stop}) is outside the {self.n_frames} frames "
                f"of {self.source}."
            )
        return SongFeatures(
            self.local_patches[start:stop],
            self.global_embeddings[start:stop],
            frame_offset=frame_time(start, self.frame_offset),
            encoder=self.encoder,
            source=self.source,
            waveforms=None if self.waveforms is None else self.waveforms[start:stop],
            waveform_rate=self.waveform_rate,
        )
