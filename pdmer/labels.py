"""The label grid shared by every part of pdmer.

Dynamic emotion labels are one (arousal, valence) pair every 0.5 s. Label
frame ``i`` of a song covers audio ``[offset + 0.5 i, offset + 0.5 (i + 1)]``
seconds, where ``offset`` is the time the annotation starts (15 s for DEAM).
This module is the one place that turns frame indices into audio times:
:func:`frame_times`, :func:`whole_frames`, and the one rule for a
``frame_offset`` (:data:`FRAME_OFFSET_CONSTRAINT`, :data:`DEFAULT_FRAME_OFFSET`).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from pdmer.sklearn_compat import StrictInterval

FRAME_RATE = 2.0
"""Label frames per second."""

FRAME_SECONDS = 1.0 / FRAME_RATE
"""Duration of one label frame in seconds."""

DIMENSIONS = ("arousal", "valence")
"""Column order of every label and prediction array."""

AROUSAL = DIMENSIONS.index("arousal")
VALENCE = DIMENSIONS.index("valence")

QUADRANTS = {"happy": (1, 1), "tense": (-1, 1), "sad": (-1, -1), "calm": (1, -1)}
"""Names of the valence-arousal plane's quadrants, after Russell's circumplex,
with their (valence, arousal) signs: happy (pleasant, aroused), tense
(unpleasant, aroused), sad (unpleasant, not aroused), calm (pleasant, not
aroused). The plots and the listener app both name the quadrants from here."""

DEFAULT_FRAME_OFFSET = 0.0
"""Audio time of label frame 0 when nothing says otherwise: labels start
with the audio."""

DATASET_FRAME_OFFSET = 15.0
"""Audio time of label frame 0 in DEAM and PMEmo: both drop the first 15 s
of annotation, while listeners settle."""

FRAME_OFFSET_CONSTRAINT = StrictInterval(Real, 0, np.inf, closed="left")
"""The values a ``frame_offset`` may take (finite, >= 0), as a scikit-learn
parameter constraint: every ``frame_offset`` parameter declares this one."""


def frame_time(index, frame_offset: float = DEFAULT_FRAME_OFFSET):
    """Audio time in seconds at label frame ``index`` (a float index is a point inside a frame).

    Parameters
    ----------
    index : int, float or ndarray
        Frame index: ``i`` is the start of frame ``i``, ``i + 0.5`` its centre.
    frame_offset : float, default=0.0
        Audio time of frame 0 in seconds.

    Returns
    -------
    float or ndarray
        ``frame_offset + 0.5 index``, of ``index``'s shape.

    Examples
    --------
    >>> from pdmer.labels import frame_time
    >>> frame_time(2, 15.0)
    16.0
    """
    return frame_offset + FRAME_SECONDS * index


def frame_times(n_frames: int, frame_offset: float = DEFAULT_FRAME_OFFSET) -> np.ndarray:
    """Start of every label frame in seconds: frame ``i`` covers ``[t_i, t_i + 0.5)``.

    Parameters
    ----------
    n_frames : int
    frame_offset : float, default=0.0
        Audio time of frame 0 in seconds.

    Returns
    -------
    ndarray of shape (n_frames,)
        ``frame_offset + 0.5 i``.

    Examples
    --------
    >>> from pdmer.labels import frame_times
    >>> frame_times(3, 15.0)
    array([15. , 15.5, 16. ])
    """
    return frame_time(np.arange(n_frames), float(frame_offset))


def whole_frames(duration: float, frame_offset: float = DEFAULT_FRAME_OFFSET) -> int:
    """How many whole label frames fit in ``duration`` seconds of audio after ``frame_offset``.

    A frame counts when it ends within the audio; a tolerance of a
    millionth of a frame keeps float rounding of exact durations (``15.5 - 15.0``)
    from dropping the last one.

    Parameters
    ----------
    duration : float
        Length of the audio in seconds.
    frame_offset : float, default=0.0
        Audio time of frame 0 in seconds.

    Returns
    -------
    int
        0 when the audio ends before the first frame does.

    Examples
    --------
    >>> from pdmer.labels import whole_frames
    >>> whole_frames(45.0, 15.0), whole_frames(1.2), whole_frames(10.0, 15.0)
    (60, 2, 0)
    """
    return max(0, int(np.floor((duration - frame_offset) / FRAME_SECONDS + 1e-6)))
