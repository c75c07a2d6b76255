""":func:`generate`: write (or reuse) a synthetic data set under given data conditions."""

from __future__ import annotations

import os
import re
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from pdmer.labels import DEFAULT_FRAME_OFFSET, FRAME_OFFSET_CONSTRAINT, FRAME_SECONDS
from pdmer.sklearn_compat import Interval, validate_params
from pdmer_datasets.synthetic.files import (FORMAT, FORMAT_VERSION, GENERATOR_VERSION, META_JSON,
                                            load, read_meta, write_meta, write_tables)
from pdmer_datasets.synthetic._seeds import NOISE, stream
from pdmer_datasets.synthetic.curves import song_curves, song_frames
from pdmer_datasets.synthetic.dataset import AUDIO_DIR, SyntheticDataset
from pdmer_datasets.synthetic.listeners import (LISTENER_KINDS, assign_songs, draw_listeners,
                                                smooth_noise)
from pdmer_datasets.synthetic.synth import CUES, write_song

_DEFAULT_REVERSED = 0.25
_DEFAULT_NOISE = (0.03, 0.1)


@validate_params(
    {
        "root": [str, os.PathLike],
        "n_songs": [Interval(Integral, 1, None, closed="left")],
        "n_listeners": [Interval(Integral, 1, None, closed="left")],
        "songs_per_listener": [Interval(Integral, 1, None, closed="left")],
        "duration": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "sample_rate": [Interval(Integral, 4000, None, closed="left")],
        "frame_offset": [FRAME_OFFSET_CONSTRAINT],
        "reversed_fraction": [Interval(Real, 0, 1, closed="both"), None],
        "listener_mix": [dict, None],
        "noise_std": [Interval(Real, 0, None, closed="left"), tuple, list],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "overwrite": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def generate(root, n_songs=40, n_listeners=24, songs_per_listener=12,
             duration=20.0, sample_rate=22050, frame_offset=DEFAULT_FRAME_OFFSET,
             reversed_fraction=None, listener_mix=None, noise_std=_DEFAULT_NOISE,
             cues="default", random_state=0, n_jobs=None,
             overwrite=False) -> SyntheticDataset:
    """Write (or reuse) a synthetic data set of songs and simulated listeners.

    When ``root`` already holds a complete data set made with the same
    parameters, it is loaded instead of regenerated (no file is touched).
    Otherwise (other parameters, missing or damaged files, a newer
    generator, or ``overwrite=True``) every file is rewritten: each under a
    temporary name that is then renamed, with ``meta.json`` last, so an
    interrupted run never leaves a data set that :func:`load` accepts (two
    processes must not generate into the same ``root`` at once).

    The data conditions a robustness study varies are parameters: sample
    rate, song length (fixed or a range), label start (``frame_offset``),
    the mixture of listener kinds (:data:`LISTENER_KINDS`) and the rater
    noise. The defaults give the data set of earlier pdmer versions, file
    for file (audio, songs.csv and annotations.csv byte-identical).

    Parameters
    ----------
    root : str or path-like
        Folder to write to; created if needed.
    n_songs : int, default=40
        Number of songs (ids ``"S000"``, ``"S001"``, ...).
    n_listeners : int, default=24
        Number of simulated listeners (ids ``"L00"``, ``"L01"``, ...).
    songs_per_listener : int, default=12
        Songs each listener annotates, drawn at random so that every song
        gets at least one listener and song counts differ by at most one.
        ``n_listeners * songs_per_listener`` must be at least ``n_songs``.
    duration : float or (float, float), default=20.0
        Labelled length of each song in seconds, a multiple of 0.5; or a
        ``(low, high)`` range from which each song's length is drawn
        (uniformly on the 0.5 s grid, one draw per song, so songs differ).
    sample_rate : int, default=22050
        Sample rate of the WAV files (e.g. 16000, 22050 or 44100).
    frame_offset : float, default=0.0
        Seconds of unlabelled audio before label frame 0, as DEAM's 15 s
        (the music there follows the emotion of frame 0). Each file lasts
        ``frame_offset + duration`` seconds.
    reversed_fraction : float, optional
        Shorthand for ``listener_mix={"typical": 1 - f, "reversed": f}``;
        0.25 when neither is given. Give this or ``listener_mix``, not both.
    listener_mix : dict of str to float, optional
        Weight of each listener kind (see :data:`LISTENER_KINDS`), e.g.
        ``{"typical": .4, "reversed": .2, "shifted": .2, "compressed": .1,
        "lagged": .1}``; weights are normalised to sum to 1. Each kind other
        than ``"typical"`` gets ``round(weight * n_listeners)`` listeners,
        ``"typical"`` (or, without it, the heaviest kind) the rest.
    noise_std : float or (float, float), default=(0.03, 0.1)
        Rater noise: the standard deviation of each listener's smooth
        annotation noise, the same for all, or drawn per listener from a
        ``(low, high)`` range.
    cues : {"default", "swapped"}, default="default"
        Which musical cues carry which dimension (:data:`CUES`): by default
        arousal sets tempo, note rate, loudness, articulation and
        percussion, and valence mode, dissonance, brightness and register;
        "swapped" exchanges them, a mapping from audio to emotion a model
        tuned on the default one has not seen.
    random_state : int, default=0
        Seed; the same seed and parameters give identical files.
    n_jobs : int or None, default=None
        Threads used to synthesize audio; None means 1 (unless inside a
        :func:`joblib.parallel_config` context), -1 all cores. The output
        does not depend on it.
    overwrite : bool, default=False
        Regenerate even if a matching data set exists.

    Returns
    -------
    dataset : SyntheticDataset
        The data set, as :func:`load` reads it from ``root``. Its
        ``annotator_table(split="train" | "test")`` holds out listeners and
        songs (:func:`~pdmer_datasets.split_listeners_and_songs`).

    Raises
    ------
    ValueError
        If a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> from pdmer_datasets import synthetic
    >>> root = tempfile.mkdtemp()
    >>> data = synthetic.generate(root, n_songs=4, n_listeners=3,
    ...                           songs_per_listener=2, duration=4.0)
    >>> data  # doctest: +ELLIPSIS
    SyntheticDataset(root=..., 4 songs x 8 frames, 3 listeners, 6 annotated curves)
    >>> table = data.annotator_table()
    >>> X, y, annotators = table
    >>> len(X), y[0].shape, str(annotators[0])
    (6, (8, 2), 'L00')
    >>> data.mean_table()
    AnnotationTable(4 rows, 4 songs, mean labels)

    A DEAM-like condition: 16 kHz, songs of 30-60 s labelled from 15 s, a
    mixture of listener kinds and noisier raters::

        data = synthetic.generate(
            root, sample_rate=16000, duration=(30, 60), frame_offset=15.0,
            listener_mix={"typical": .4, "reversed": .2, "shifted": .2,
                          "compressed": .1, "lagged": .1},
            noise_std=0.15, random_state=1)
        train = data.annotator_table(split="train")
        test = data.annotator_table(split="test")  # unseen listeners, unseen songs
    """
    params = _check_params(n_songs, n_listeners, songs_per_listener, duration,
                           sample_rate, frame_offset, reversed_fraction, listener_mix,
                           noise_std, cues, random_state)
    root = Path(root)
    if not overwrite and _matches(root, params):
        try:
            return load(root)
        except (OSError, ValueError):
            pass  # damaged: regenerate below

    root.mkdir(parents=True, exist_ok=True)
    (root / META_JSON).unlink(missing_ok=True)
    audio_dir = root / AUDIO_DIR
    audio_dir.mkdir(exist_ok=True)

    song_w = max(3, len(str(n_songs - 1)))
    lis_w = max(2, len(str(n_listeners - 1)))
    song_ids = [f"S{i:0{song_w}d}" for i in range(n_songs)]
    curves = {sid: song_curves(random_state, i, song_frames(params["duration"],
                                                            random_state, i))
              for i, sid in enumerate(song_ids)}

    # Audio (the slow part), written file by file.
    from joblib import Parallel, delayed

    Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(write_song)(audio_dir / f"{sid}.wav", curve, frame_offset,
                            sample_rate, random_state, i, cues)
        for i, (sid, curve) in enumerate(curves.items()))
    _remove_leftovers(root, audio_dir, keep={f"{sid}.wav" for sid in song_ids})

    listeners = draw_listeners(n_listeners, params["listener_mix"], params["noise_std"],
                               random_state, lis_w)
    assignment = assign_songs(n_songs, n_listeners, songs_per_listener, random_state)
    annotations = {}
    for li, (lis, songs) in enumerate(zip(listeners, assignment)):
        for si in songs:
            curve = curves[song_ids[si]]
            noise = smooth_noise(stream(random_state, NOISE, li, int(si)), len(curve),
                                 lis.noise_std, lis.noise_smoothness)
            annotations[(lis.id, song_ids[si])] = np.clip(lis.perceive(curve) + noise,
                                                          -1.0, 1.0)
    write_tables(root, curves, listeners, annotations)
    write_meta(root, params)
    return load(root)


def _remove_leftovers(root: Path, audio_dir: Path, keep):
    """Songs of an earlier, larger generation and temporary files of a killed run."""
    for p in audio_dir.iterdir():
        if p.is_file() and p.name not in keep and p.suffix in (".wav", ".tmp"):
            p.unlink(missing_ok=True)
    for p in root.iterdir():
        if p.is_file() and re.fullmatch(r"(\..+\.\d+|tmp\w+)\.tmp", p.name):
            p.unlink(missing_ok=True)


def _on_grid(seconds, name) -> float:
    seconds = float(seconds)
    n = round(seconds / FRAME_SECONDS)
    if n < 1 or abs(n * FRAME_SECONDS - seconds) > 1e-9:
        raise ValueError(f"{name} must be a positive multiple of {FRAME_SECONDS} s; "
                         f"got {seconds}.")
    return seconds


def _pair(value, name, check) -> list:
    """A ``(low, high)`` range as a checked list."""
    if len(value) != 2:
        raise ValueError(f"{name} must be a number or a (low, high) pair; got {value!r}.")
    low, high = (check(v, name) for v in value)
    if low > high:
        raise ValueError(f"{name}: low {low} exceeds high {high}.")
    return [low, high]


def _non_negative(value, name) -> float:
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} values must be >= 0; got {value}.")
    return value


def _mix(listener_mix, reversed_fraction) -> dict:
    if listener_mix is not None and reversed_fraction is not None:
        raise ValueError("Give reversed_fraction or listener_mix, not both "
                         "(listener_mix={'typical': 1 - f, 'reversed': f} is the same).")
    if listener_mix is None:
        f = _DEFAULT_REVERSED if reversed_fraction is None else float(reversed_fraction)
        listener_mix = {"typical": 1.0 - f, "reversed": f}
    unknown = [k for k in listener_mix if k not in LISTENER_KINDS]
    if unknown:
        raise ValueError(f"listener_mix: unknown kind(s) {unknown}; choose from "
                         f"{list(LISTENER_KINDS)}.")
    weights = {k: float(listener_mix[k]) for k in LISTENER_KINDS if k in listener_mix}
    if not all(w >= 0 for w in weights.values()) or not sum(weights.values()) > 0:
        raise ValueError(f"listener_mix weights must be >= 0 with a positive sum; "
                         f"got {listener_mix}.")
    total = sum(weights.values())
    return {k: round(w / total, 9) for k, w in weights.items() if w > 0}


def _check_params(n_songs, n_listeners, songs_per_listener, duration, sample_rate,
                  frame_offset, reversed_fraction, listener_mix, noise_std, cues,
                  random_state) -> dict:
    """The parameters as stored in meta.json, after the checks types cannot express."""
    if cues not in CUES:
        raise ValueError(f"cues must be one of {', '.join(CUES)}; got {cues!r}.")
    if songs_per_listener > n_songs:
        raise ValueError(f"songs_per_listener={songs_per_listener} exceeds "
                         f"n_songs={n_songs}.")
    if n_listeners * songs_per_listener < n_songs:
        raise ValueError(
            f"{n_listeners} listeners x {songs_per_listener} songs each cannot "
            f"cover all {n_songs} songs; raise n_listeners or songs_per_listener.")
    duration = (_pair(duration, "duration", _on_grid) if np.ndim(duration)
                else _on_grid(duration, "duration"))
    noise_std = (_pair(noise_std, "noise_std", _non_negative) if np.ndim(noise_std)
                 else float(noise_std))
    return {"n_songs": int(n_songs), "n_listeners": int(n_listeners),
            "songs_per_listener": int(songs_per_listener), "duration": duration,
            "sample_rate": int(sample_rate), "frame_offset": float(frame_offset),
            "listener_mix": _mix(listener_mix, reversed_fraction), "noise_std": noise_std,
            # Absent from data sets made before cues existed (all "default").
            **({} if cues == "default" else {"cues": cues}),
            "random_state": int(random_state)}


def _matches(root: Path, params: dict) -> bool:
    meta = read_meta(root)
    return (meta is not None and meta.get("format") == FORMAT
            and meta.get("version") == FORMAT_VERSION
            and meta.get("generator_version") == GENERATOR_VERSION
            and meta.get("params") == params)
