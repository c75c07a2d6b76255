"""From extracted features and label curves to the tensors the networks train on."""

from __future__ import annotations

import warnings

import torch

from pdmer.estimators.validation import song_key
from pdmer.estimators.exceptions import FrameOffsetWarning
from pdmer.meta.batch import Song


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
            FrameOffsetWarning, stacklevel=3)
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
