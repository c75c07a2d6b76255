"""Input validation and batching shared by all estimators."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from pdmer.features.container import SongFeatures
from pdmer.labels import DIMENSIONS


@dataclass
class SongBatch:
    """Padded tensors of several songs.

    ``local`` (B, T, P, M), ``glob`` (B, T, G), ``y`` (B, T, 2) or None,
    ``lengths`` (B,), ``mask`` (B, T), True on real frames, and ``wave``
    (B, T, S) raw audio per frame or None.
    """

    local: torch.Tensor
    glob: torch.Tensor
    y: torch.Tensor | None
    lengths: torch.Tensor
    mask: torch.Tensor
    wave: torch.Tensor | None = None


@dataclass
class Song:
    """One song's features (and labels) as tensors, ready to crop and batch."""

    local: torch.Tensor
    glob: torch.Tensor
    y: torch.Tensor | None = None
    encoder: str = "unknown"
    wave: torch.Tensor | None = None

    def to(self, device) -> "Song":
        return Song(self.local.to(device), self.glob.to(device),
                    None if self.y is None else self.y.to(device), self.encoder,
                    None if self.wave is None else self.wave.to(device))

    def crop(self, start: int, stop: int) -> "Song":
        """Frames ``[start, stop)`` (views)."""
        return Song(self.local[start:stop], self.glob[start:stop],
                    None if self.y is None else self.y[start:stop], self.encoder,
                    None if self.wave is None else self.wave[start:stop])

    @property
    def n_frames(self) -> int:
        return self.local.shape[0]

    def window(self, n_frames: int | None, rng: np.random.Generator | None) -> "Song":
        """A random ``n_frames`` crop (the whole song if shorter or None)."""
        if n_frames is None or self.n_frames <= n_frames:
            return self
        start = int(rng.integers(0, self.n_frames - n_frames + 1)) if rng is not None else 0
        return self.crop(start, start + n_frames)


def collate(songs: list[Song], device, labels: bool = True) -> SongBatch:
    """Pad songs to the longest one and move them to ``device``."""
    lengths = torch.tensor([s.n_frames for s in songs], dtype=torch.long)
    longest = int(lengths.max())

    def pad(tensors):
        out = tensors[0].new_zeros((len(tensors), longest) + tuple(tensors[0].shape[1:]))
        for i, t in enumerate(tensors):
            out[i, : t.shape[0]] = t
        return out.to(device, non_blocking=True)

    mask = torch.arange(longest)[None, :] < lengths[:, None]
    y = pad([s.y for s in songs]) if labels and songs[0].y is not None else None
    wave = pad([s.wave for s in songs]) if songs[0].wave is not None else None
    return SongBatch(pad([s.local for s in songs]), pad([s.glob for s in songs]), y,
                     lengths.to(device), mask.to(device), wave)


def song_key(item):
    """Identity of a song in ``X``: rows with the same key are the same song."""
    if isinstance(item, (str, os.PathLike)):
        return os.path.abspath(os.fspath(item))
    if isinstance(item, SongFeatures) and item.source != "<array>":
        # Crops of one file are different songs to the model.
        return (item.source, item.frame_offset, item.n_frames, item.encoder)
    if isinstance(item, tuple):
        return ("array", id(item[0]))
    return ("object", id(item))


def check_X(X, name="X") -> list:
    """A non-empty list of audio items."""
    if isinstance(X, (str, os.PathLike, SongFeatures)) or (
            isinstance(X, tuple) and len(X) == 2 and np.isscalar(X[1])):
        raise TypeError(
            f"{name} must be a sequence of songs; wrap a single song in a list: [{name}]."
        )
    if isinstance(X, np.ndarray) and X.dtype != object:
        raise TypeError(
            f"{name} must be a sequence of songs (paths, (waveform, sample_rate) "
            f"tuples or SongFeatures), not a numeric array of shape {X.shape}."
        )
    try:
        X = list(X)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of songs; got {type(X).__name__}.") from None
    if not X:
        raise ValueError(f"{name} is empty: give at least one song.")
    return X


def check_y(y, n_songs: int) -> list[np.ndarray]:
    """A list of finite (n_frames, 2) label arrays, one per song."""
    if y is None:
        raise ValueError("y is required: one (n_frames, 2) array of (arousal, valence) per song.")
    if isinstance(y, np.ndarray) and y.ndim == 2:
        raise ValueError(
            "y must be a sequence of (n_frames, 2) arrays, one per song; got a "
            f"single 2-D array of shape {y.shape}. Wrap one song's labels in a list."
        )
    y = list(y)
    if len(y) != n_songs:
        raise ValueError(f"X has {n_songs} songs but y has {len(y)} label arrays.")
    out = []
    for i, labels in enumerate(y):
        labels = np.ascontiguousarray(labels, dtype=np.float32)
        if labels.ndim != 2 or labels.shape[1] != len(DIMENSIONS) or labels.shape[0] == 0:
            raise ValueError(
                f"y[{i}] must have shape (n_frames, 2) with columns {DIMENSIONS}; "
                f"got shape {labels.shape}."
            )
        bad = ~np.isfinite(labels).all(axis=1)
        if bad.any():
            frames = np.flatnonzero(bad)
            raise ValueError(
                f"y[{i}] has NaN or infinite labels at {len(frames)} frame(s) "
                f"(first: {frames[:5].tolist()}). Trim the curve to its annotated "
                "frames or interpolate the gaps before fitting."
            )
        out.append(labels)
    return out


def check_annotators(annotators, n_songs: int) -> np.ndarray | None:
    """Annotator ids as strings, aligned with ``X``."""
    if annotators is None:
        return None
    annotators = np.asarray(annotators)
    if annotators.ndim != 1 or len(annotators) != n_songs:
        raise ValueError(
            f"annotators must hold one id per song: X has {n_songs} songs but "
            f"annotators has shape {annotators.shape}."
        )
    if annotators.dtype.kind == "f" and np.isnan(annotators).any():
        raise ValueError("annotators contains NaN; give every row an annotator id.")
    return annotators.astype(str)
