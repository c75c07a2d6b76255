"""From the songs given to an estimator to the tensors its network takes.

The front end an estimator extracts with (:func:`front_end_for`), each
distinct song extracted once (:func:`read_songs`), rows cropped to their
labels (:func:`to_songs`), and the shapes the network is built for
(:func:`feature_spec`, :func:`check_features`, :func:`check_spec`).
"""

from __future__ import annotations

import warnings

import torch
from sklearn.base import clone

from pdmer.estimators.validation import song_key
from pdmer.estimators.exceptions import FrameOffsetWarning
from pdmer.estimators._params import DEFAULT_WAVEFORM_RATE
from pdmer.features.container import SongFeatures
from pdmer.meta.batch import Song


def front_end_for(front_end, frame_offset=None, encoder=None):
    """``front_end`` set to extract as a model needs: its frame offset, its global encoder.

    ``frame_offset`` (None: the front end's own) is where label frame 0
    starts; ``encoder`` is a fitted model's (``encoder_``), which a front end
    saying "auto" keeps, whatever weights this machine has installed since.
    Not a copy when nothing has to change.
    """
    changes = {}
    if frame_offset is not None and front_end.frame_offset != frame_offset:
        changes["frame_offset"] = float(frame_offset)
    if front_end.global_encoder == "auto" and encoder in ("imagebind", "logmel-stats"):
        changes["global_encoder"] = encoder
    return clone(front_end).set_params(**changes) if changes else front_end


def read_songs(X, y, make_front_end, offset_given=False) -> list:
    """Features of every row as :class:`~pdmer.meta.batch.Song`, extracting each distinct song once.

    ``make_front_end()`` gives the extractor; it is called only when some
    row is not :class:`~pdmer.features.SongFeatures`. ``offset_given``: the
    estimator's ``frame_offset`` was set (see :func:`to_songs`).
    """
    keys = [song_key(item) for item in X]
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    todo = [X[i] for i in first.values()]
    front_end = None
    if all(isinstance(item, SongFeatures) for item in todo):
        extracted = todo
    else:
        front_end = make_front_end()
        extracted = front_end.transform(todo)
    by_key = dict(zip(first, extracted))
    explicit = offset_given or bool(front_end and front_end.frame_offset)
    return to_songs([by_key[key] for key in keys], y, explicit_offset=explicit)


def to_songs(features, y=None, explicit_offset=False) -> list:
    """One :class:`~pdmer.meta.batch.Song` per row, cropped to its labels.

    Parameters
    ----------
    features : list of SongFeatures
        One per row.
    y : list of ndarray of shape (n_frames_i, 2), optional
    explicit_offset : bool, default=False
        Whether the user chose the frame offset; if not, labels shorter than
        their audio by more than one frame give a :class:`FrameOffsetWarning`.

    Returns
    -------
    list of Song
    """
    songs, short = [], []
    for i, feats in enumerate(features):
        labels = None
        if y is not None:
            n = len(y[i])
            if n > feats.n_frames:
                raise ValueError(
                    f"y[{i}] has {n} frames but song {feats.source} only has "
                    f"{feats.n_frames} frames of audio after its frame offset "
                    f"({feats.frame_offset:g} s). Labels and audio do not line up: "
                    "check the song, the labels and frame_offset."
                )
            if feats.n_frames - n > 1 and not (explicit_offset or feats.frame_offset):
                short.append((i, n, feats.n_frames))
            feats = feats.crop(0, n)
            labels = torch.from_numpy(y[i])
        songs.append(Song(
            torch.from_numpy(feats.local_patches), torch.from_numpy(feats.global_embeddings),
            labels, encoder=feats.encoder,
            waveforms=None if feats.waveforms is None else torch.from_numpy(feats.waveforms)))
    if short:
        i, n, m = short[0]
        warnings.warn(
            f"{len(short)} of {len(features)} label curves are shorter than their audio by "
            f"more than one frame (e.g. y[{i}]: {n} label frames, {m} audio frames from 0 s) "
            "and no frame offset was given, so they are paired with the first seconds of "
            "the audio. If the labels start later (DEAM and PMEmo labels start at 15 s), "
            "set frame_offset; set frame_offset=0 to say they start with the audio.",
            FrameOffsetWarning, stacklevel=4)
    return songs


def feature_spec(songs) -> dict:
    """Input shapes shared by all songs, as in the fitted ``feature_spec_``."""
    kinds = {(tuple(s.local_patches.shape[1:]), s.global_embeddings.shape[1], s.encoder,
              0 if s.waveforms is None else s.waveforms.shape[1]) for s in songs}
    if len(kinds) != 1:
        raise ValueError(
            f"All songs must have features of one kind; got (patch, global size, "
            f"encoder, waveform samples per frame) = {sorted(kinds)}. Extract every "
            "song with the same AudioFeatures settings.")
    (patch, global_dim, encoder, wave_samples), = kinds
    return {"n_patch_times": patch[0], "n_mels": patch[1], "global_dim": global_dim,
            "encoder": encoder, "n_waveform_samples": wave_samples}


def check_features(spec: dict, name: str, kind: str) -> None:
    """Refuse features a model cannot use: raw-audio models (``kind="wave"``) need waveforms."""
    if kind == "wave" and not spec["n_waveform_samples"]:
        raise ValueError(
            f"{name} learns from raw audio, but these features hold no "
            "waveforms. Extract them with AudioFeatures(waveform_rate="
            f"{DEFAULT_WAVEFORM_RATE}) (or pass such a front end as front_end=, or audio "
            "paths with front_end=None).")


def check_spec(songs, fitted_spec: dict) -> None:
    """Refuse songs whose features are unlike those a model was trained on."""
    spec = feature_spec(songs)
    if spec != fitted_spec:
        raise ValueError(
            f"These features do not match the ones the model was trained on: "
            f"{spec} vs {fitted_spec}. Extract them with the same "
            "AudioFeatures settings and global encoder."
        )


def mean_label_rows(X, songs) -> list:
    """One row per distinct song with labels averaged over its annotators."""
    groups: dict = {}
    for item, song in zip(X, songs):
        groups.setdefault(song_key(item), []).append(song)
    out = []
    for rows in groups.values():
        n = min(r.n_frames for r in rows)
        y = torch.stack([r.y[:n] for r in rows]).mean(0)
        first = rows[0].crop(0, n)
        out.append(Song(first.local_patches, first.global_embeddings, y, first.encoder,
                        first.waveforms))
    return out


def distinct(songs) -> list:
    """The songs with distinct feature tensors (rows of one song share them)."""
    seen, out = set(), []
    for song in songs:
        key = song.global_embeddings.data_ptr()
        if key not in seen:
            seen.add(key)
            out.append(song)
    return out
