"""Checks of the songs, labels and annotator ids every estimator is given.

The estimators call them at the edge (``fit``, ``personalize``, ``predict``);
applications that take labels from users (the listener app, the CLI) call
them too, so that a bad upload gets the same message as a bad ``fit``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from pdmer.features.container import SongFeatures
from pdmer.labels import DIMENSIONS

__all__ = ["check_X", "check_annotators", "check_y", "song_key"]


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


# Labels are documented in [-1, 1] (DEAM's slider; PMEmo's [0, 1] fits in it).
# Beyond 1.5 in magnitude no slider curve, smoothing or rescaling overshoot
# explains a value, while every common wrong scale does (SAM ratings 1-9,
# percentages 0-100, a factor 10): warn there, not at the first overshoot.
LABEL_RANGE = (-1.0, 1.0)
LABEL_TOLERANCE = 1.5


def check_y(y, n_songs: int) -> list[np.ndarray]:
    """A list of finite (n_frames, 2) label arrays, one per song.

    Warns (``UserWarning``) when a label lies outside ``[-1.5, 1.5]``: the
    documented range is ``[-1, 1]``, and values that far out are nearly
    always another scale (SAM ratings 1-9, percentages).
    """
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
    _warn_out_of_range(out)
    return out


def _warn_out_of_range(y: list[np.ndarray]) -> None:
    outside = [i for i, labels in enumerate(y) if np.abs(labels).max() > LABEL_TOLERANCE]
    if not outside:
        return
    low = min(float(labels.min()) for labels in y)
    high = max(float(labels.max()) for labels in y)
    rows = ", ".join(f"y[{i}]" for i in outside[:3]) + (
        f" and {len(outside) - 3} more" if len(outside) > 3 else "")
    warnings.warn(
        f"{rows} {'has' if len(outside) == 1 else 'have'} labels outside the documented "
        f"range [{LABEL_RANGE[0]:g}, {LABEL_RANGE[1]:g}] (y spans [{low:.3g}, {high:.3g}]). "
        "Rescale them, e.g. SAM ratings r in 1-9 as (r - 5) / 4; predictions come out in "
        "the scale of the labels.", UserWarning, stacklevel=4)


def check_annotators(annotators, n_songs: int) -> np.ndarray | None:
    """Annotator ids as strings, aligned with ``X``.

    Ids are compared as strings, ``str(id)``: ``1`` and ``"1"`` are the same
    listener (a ``UserWarning`` says so when both spellings occur), while
    ``1`` and ``1.0`` are not. ``None`` and NaN are refused: every row needs
    an id.
    """
    if annotators is None:
        return None
    values = annotators.tolist() if isinstance(annotators, np.ndarray) else None
    if values is None:
        try:
            values = list(annotators)
        except TypeError:
            raise TypeError("annotators must be a sequence of ids, one per song; got "
                            f"{type(annotators).__name__}.") from None
    array = np.asarray(annotators)
    if array.ndim != 1 or len(values) != n_songs:
        raise ValueError(
            f"annotators must hold one id per song: X has {n_songs} songs but "
            f"annotators has shape {array.shape}."
        )
    missing = {i: "None" if v is None else "NaN" for i, v in enumerate(values)
               if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v))}
    if missing:
        rows = list(missing)
        raise ValueError(
            f"annotators contains {' and '.join(sorted(set(missing.values())))} at row(s) "
            f"{rows[:5]}{' ...' if len(rows) > 5 else ''}; give every row an annotator id.")
    spellings = {}
    for v in values:
        spellings.setdefault(str(v), set()).add(type(v).__name__)
    mixed = {k: sorted(kinds) for k, kinds in spellings.items() if len(kinds) > 1}
    if mixed:
        key, kinds = next(iter(mixed.items()))
        warnings.warn(
            f"annotators holds the id {key!r} as {' and as '.join(kinds)}; ids are compared "
            f"as strings, so these rows are one listener ({len(mixed)} such id(s)). Use one "
            "type for all ids if they are different people.", UserWarning, stacklevel=3)
    if array.dtype != object:
        return array.astype(str)
    return np.array([str(v) for v in values])
