"""True emotion curves of synthetic songs: smooth, varied, arousal and valence
nearly independent within each song, and each song's labelled length."""

from __future__ import annotations

import numpy as np

from pdmer.labels import FRAME_SECONDS
from pdmer_datasets.synthetic._seeds import CURVE, DURATION, stream


def song_frames(duration, random_state: int, index: int) -> int:
    """Label frames of song ``index``: ``duration`` seconds, or a draw from a
    ``(low, high)`` range on the 0.5 s grid (one draw per song)."""
    if np.ndim(duration):
        low, high = (int(round(d / FRAME_SECONDS)) for d in duration)
        return int(stream(random_state, DURATION, index).integers(low, high + 1))
    return int(round(float(duration) / FRAME_SECONDS))


def emotion_curve(rng, n_frames):
    """Smooth curve in [-0.95, 0.95] with a few segments of distinct levels."""
    n_seg = int(np.clip(round(n_frames / rng.uniform(8, 14)), 3, 12))
    n_seg = min(n_seg, max(1, n_frames // 4))  # 2 s or more on average
    lengths = rng.dirichlet(np.full(n_seg, 4.0)) * n_frames
    bounds = np.round(np.cumsum(lengths)[:-1]).astype(int)
    level = rng.uniform(-0.8, 0.8)
    levels = [level]
    for _ in range(n_seg - 1):
        step = rng.uniform(0.5, 1.1) * rng.choice([-1.0, 1.0])
        if not -0.85 <= level + step <= 0.85:
            step = -step
        level = float(np.clip(level + step, -0.85, 0.85))
        levels.append(level)
    seg = np.searchsorted(bounds, np.arange(n_frames), side="right")
    curve = np.asarray(levels)[seg]
    width = int(rng.integers(4, 10))  # transitions of about 2-5 s
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = np.pad(curve, width, mode="edge")
    curve = np.convolve(pad, kernel, mode="same")[width:-width]
    t = np.arange(n_frames)
    curve = curve + 0.08 * np.sin(2 * np.pi * t / rng.uniform(10, 30)
                                  + rng.uniform(0, 2 * np.pi))
    return np.clip(curve, -0.95, 0.95)


def song_curves(random_state, index, n_frames, min_range=0.8, max_corr=0.4):
    """(n_frames, 2) true curves of one song.

    Each dimension is stretched to span at least ``min_range``, and valence
    is redrawn (up to 50 times, keeping the best) until it correlates with
    arousal by less than ``max_corr`` in magnitude within the song, so that
    a single song tells how a listener's labels depend on each dimension.
    Songs shorter than 6 s only get the stretch.
    """
    rng = stream(random_state, CURVE, index)
    arousal = _stretch(emotion_curve(rng, n_frames), min_range)
    best, best_r = None, np.inf
    for _ in range(50):
        valence = _stretch(emotion_curve(rng, n_frames), min_range)
        for cand in (valence, valence[::-1]):
            r = abs(np.corrcoef(arousal, cand)[0, 1]) if n_frames >= 12 else 0.0
            if not r >= best_r:  # also takes a NaN correlation (flat curve)
                best, best_r = cand, r
        if best_r < max_corr:
            break
    return np.round(np.stack([arousal, best], axis=1), 6)


def _stretch(curve, min_range, limit=0.95):
    """Scale ``curve`` about its mid-range to span at least ``min_range``."""
    lo, hi = curve.min(), curve.max()
    if len(curve) < 4 or hi - lo >= min_range:
        return curve
    mid = 0.5 * (lo + hi)
    curve = mid + (curve - mid) * (min_range / max(hi - lo, 1e-6))
    curve -= max(curve.max() - limit, 0.0)
    curve += max(-limit - curve.min(), 0.0)
    return curve

