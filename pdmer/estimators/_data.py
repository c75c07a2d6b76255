"""Input validation shared by all estimators."""

from __future__ import annotations

import os

import numpy as np

from pdmer.features.container import SongFeatures
from pdmer.labels import DIMENSIONS


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
