"""Simulated listeners: how each perceives a song's emotion, and who rates what."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pdmer_datasets.synthetic._seeds import ASSIGN, LISTENER, POPULATION, stream

__all__ = ["LISTENER_KINDS", "Listener", "delay"]

LISTENER_KINDS = ("typical", "reversed", "shifted", "compressed", "lagged")
"""Kinds of listener :func:`~pdmer_datasets.synthetic.generate` can mix.

Every listener starts from the same broad population draw (the ``typical``
listener: arousal and valence offsets ~ N(0, 0.22) and N(0, 0.25) clipped to
+-0.45 / +-0.5, gains in [0.55, 1.3], arousal leaking into valence
~ N(0, 0.2), a lag of 0-3 frames); the other kinds change one trait:

- ``reversed``: perceives valence reversed (dark, minor music as pleasant);
- ``shifted``: arousal and valence offsets of 0.35-0.6 in magnitude (random
  signs), far from the population's;
- ``compressed``: arousal and valence gains of 0.25-0.5, a narrow range;
- ``lagged``: reacts 1-3 s late (a lag of 2-6 frames).
"""


@dataclass(frozen=True)
class Listener:
    """One simulated listener's way of perceiving emotion.

    For a song with true curves ``a`` and ``v`` (one value per frame) the
    listener's noise-free perception is::

        arousal = arousal_offset + arousal_gain * a
        valence = valence_offset + s * valence_gain * v + valence_from_arousal * a

    with ``s = -1`` if ``valence_reversed`` else ``+1``, delayed by
    ``lag_frames`` frames. Their annotations add smooth Gaussian noise of
    standard deviation ``noise_std`` (smoothed over ``noise_smoothness``
    frames) and are clipped to [-1, 1].

    Parameters
    ----------
    id : str
        Annotator id, e.g. ``"L00"``.
    arousal_offset, arousal_gain : float
        Bias and scale of perceived arousal.
    valence_offset, valence_gain : float
        Bias and (positive) scale of perceived valence.
    valence_reversed : bool
        Whether the listener hears minor, dark, dissonant passages as
        pleasant and major, bright ones as unpleasant.
    valence_from_arousal : float
        How much arousal leaks into perceived valence (positive: energetic
        music feels pleasant).
    lag_frames : int
        Reaction delay in 0.5 s frames.
    noise_std : float
        Standard deviation of the annotation noise.
    noise_smoothness : float
        Width (Gaussian sigma, in frames) of the noise smoothing.
    kind : str, default="typical"
        The kind of listener drawn (one of :data:`LISTENER_KINDS`).
    """

    id: str
    arousal_offset: float
    arousal_gain: float
    valence_offset: float
    valence_gain: float
    valence_reversed: bool
    valence_from_arousal: float
    lag_frames: int
    noise_std: float
    noise_smoothness: float
    kind: str = "typical"

    def perceive(self, curve) -> np.ndarray:
        """Noise-free labels this listener would give a song.

        Parameters
        ----------
        curve : array-like of shape (n_frames, 2)
            True (arousal, valence) curve of the song.

        Returns
        -------
        labels : ndarray of shape (n_frames, 2), float32
            Perceived (arousal, valence), lagged and clipped to [-1, 1].
        """
        curve = np.asarray(curve, dtype=np.float64)
        a, v = curve[:, 0], curve[:, 1]
        sign = -1.0 if self.valence_reversed else 1.0
        out = np.stack([
            self.arousal_offset + self.arousal_gain * a,
            self.valence_offset + sign * self.valence_gain * v
            + self.valence_from_arousal * a,
        ], axis=1)
        out = delay(out, self.lag_frames)
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def delay(x: np.ndarray, lag: int) -> np.ndarray:
    """Delay rows by ``lag``, repeating the first row at the start."""
    if lag <= 0:
        return x
    lag = min(lag, len(x))
    return np.concatenate([np.repeat(x[:1], lag, axis=0), x[:len(x) - lag]])


def kind_counts(mix: dict, n_listeners: int) -> dict:
    """Listeners per kind: ``round(weight * n)`` each, the base kind takes the rest.

    The base kind is ``"typical"`` when mixed in, else the heaviest kind.
    """
    base = "typical" if "typical" in mix else max(
        mix, key=lambda k: (mix[k], -LISTENER_KINDS.index(k)))
    counts = {k: int(round(w * n_listeners)) for k, w in mix.items()}
    others = [k for k in counts if k != base]
    counts[base] = n_listeners - sum(counts[k] for k in others)
    while counts[base] < 0:  # several kinds rounded up past n_listeners
        counts[max(others, key=counts.get)] -= 1
        counts[base] += 1
    return counts


def draw_listeners(n_listeners, mix, noise_std, random_state, width) -> list:
    """The listener population (see :data:`LISTENER_KINDS`)."""
    counts = kind_counts(mix, n_listeners)
    # Kinds with a trait pick their listeners in a fixed order; "typical" is the rest.
    kinds = np.full(n_listeners, "typical", dtype=object)
    pop = stream(random_state, POPULATION, 0)
    remaining = np.arange(n_listeners)
    for kind in LISTENER_KINDS:
        if kind in _TRAITS and counts.get(kind, 0) > 0:
            chosen = pop.choice(remaining, size=counts[kind], replace=False)
            kinds[chosen] = kind
            remaining = np.setdiff1d(remaining, chosen)
    return [_draw_one(f"L{i:0{width}d}", kinds[i], noise_std, stream(random_state, LISTENER, i))
            for i in range(n_listeners)]


def _draw_one(listener_id, kind, noise_std, rng) -> Listener:
    params = dict(
        arousal_offset=np.clip(rng.normal(0.0, 0.22), -0.45, 0.45),
        arousal_gain=rng.uniform(0.55, 1.3),
        valence_offset=np.clip(rng.normal(0.0, 0.25), -0.5, 0.5),
        valence_gain=rng.uniform(0.55, 1.3),
        valence_reversed=kind == "reversed",
        valence_from_arousal=np.clip(rng.normal(0.0, 0.2), -0.4, 0.4),
        lag_frames=int(rng.integers(0, 4)),
    )
    # Always one draw, so that a fixed noise level leaves the others unchanged.
    unit = rng.random()
    if np.ndim(noise_std):
        low, high = noise_std
        params["noise_std"] = low + (high - low) * unit
    else:
        params["noise_std"] = noise_std
    params["noise_smoothness"] = rng.uniform(1.0, 3.0)
    # A kind's own trait is drawn last: the shared draws above stay the same.
    params.update(_TRAITS.get(kind, _no_trait)(rng))
    return Listener(id=listener_id, kind=kind, **{
        k: _r6(v) if isinstance(v, (float, np.floating)) else v for k, v in params.items()})


def _no_trait(rng) -> dict:
    return {}


def _shifted(rng) -> dict:
    sign = rng.choice([-1.0, 1.0], size=2)
    return {"arousal_offset": sign[0] * rng.uniform(0.35, 0.6),
            "valence_offset": sign[1] * rng.uniform(0.35, 0.6)}


def _compressed(rng) -> dict:
    return {"arousal_gain": rng.uniform(0.25, 0.5), "valence_gain": rng.uniform(0.25, 0.5)}


def _lagged(rng) -> dict:
    return {"lag_frames": int(rng.integers(2, 7))}


# The kinds that change a trait; "typical" and "reversed" (whose trait is the
# valence_reversed flag) draw nothing more.
_TRAITS = {"reversed": _no_trait, "shifted": _shifted, "compressed": _compressed,
           "lagged": _lagged}


def assign_songs(n_songs, n_listeners, songs_per_listener, random_state) -> list:
    """Songs per listener, spread so song counts differ by at most one."""
    rng = stream(random_state, ASSIGN, 0)
    counts = np.zeros(n_songs, dtype=int)
    out = []
    for _ in range(n_listeners):
        # Least-annotated songs first, ties broken at random.
        order = np.lexsort((rng.random(n_songs), counts))
        chosen = np.sort(order[:songs_per_listener])
        counts[chosen] += 1
        out.append(chosen)
    return out


def smooth_noise(rng, n_frames, std, sigma) -> np.ndarray:
    """(n_frames, 2) Gaussian noise smoothed over ``sigma`` frames, std ``std``."""
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel ** 2))  # unit variance after smoothing
    white = rng.standard_normal((2, n_frames + 2 * half))
    return std * np.stack([np.convolve(w, kernel, mode="valid") for w in white], axis=1)


def _r6(x) -> float:
    return round(float(x), 6)
