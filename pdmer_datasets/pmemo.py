"""PMEmo 2019: popular-music chorus clips with dynamic and static emotion labels.

794 chorus clips (11-88 s), 767 of them annotated; valence and arousal in
[0, 1]. Dynamic labels are 2 Hz MEAN and STD over the annotators: the 2019
release has **no per-annotator** valence/arousal, so PMEmo serves mean-label
DMER, not personalized DMER (:meth:`Dataset.annotator_table` says so).

Layout under ``data_home`` (``PMEmo2019.zip`` extracted as it is)::

    PMEmo2019/metadata.csv
    PMEmo2019/chorus/<musicId>.mp3
    PMEmo2019/annotations/dynamic_annotations.csv        musicId,frameTime,Arousal(mean),Valence(mean)
    PMEmo2019/annotations/dynamic_annotations_std.csv    musicId,frameTime,Arousal(std),Valence(std)
    PMEmo2019/annotations/static_annotations.csv         musicId,Arousal(mean),Valence(mean)
    PMEmo2019/annotations/static_annotations_std.csv

The frame grid (a decision, with its evidence)
----------------------------------------------
PMEmo's ``frameTime`` runs from 15.5 s to the end of the clip: in all four
real clips we checked (108, 372, 634, 683) the last frameTime lies within
0.04 s of the decoded end of the audio (108: labels 15.5-49.0 s, audio
49.03 s), and over all 767 songs ``metadata.duration - last frameTime`` is
0.13 s on average (the metadata durations exceed the decoded lengths by about
0.1 s). A value at ``frameTime = t`` therefore rates the half second that
ENDS at ``t``: label frame ``i`` covers audio ``[15.0 + 0.5 i, 15.5 + 0.5 i]``
and tables have ``frame_offset = 15.0``, the same as DEAM (both data sets
drop the first 15 s of annotation). Read as frame starts (offset 15.5), the
last label of every checked clip would lie past the end of the audio.

Three songs (109, 126, 150) have labels 0.33-0.35 s past their metadata
duration, and the audio of a few others may end a few hundredths of a second
before their last frameTime. With ``trim_to_audio=True`` (the default) the
tables drop label frames not entirely within the decoded audio; each clip is
decoded once and its length cached in ``<data_home>/.pdmer/audio_durations.json``.

The paper's split (``Track.split``, ``Dataset.get_track_splits()``): songs
shorter than 25 s are dropped (95 annotated songs, split None, as are the 27
unannotated ones), the 40 songs longer than 65 s are the test set, the other
632 train. Durations are those of ``metadata.csv``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
from mirdata import core

from pdmer.labels import DATASET_FRAME_OFFSET
from pdmer_datasets._csv import column, read_csv_rows, song_id, to_float
from pdmer_datasets._install import installed
from pdmer_datasets._loader import (LoaderDataset, LoaderTrack, PackageIndex, choose_indexes,
                                    hold_out_validation, require_file, write_index)
from pdmer_datasets.registry import DATASETS
from pdmer_datasets.table import AnnotationTable

__all__ = ["Dataset", "Track", "REMOTES", "FRAME_OFFSET", "make_index", "MANUAL_STEPS"]

NAME = "pmemo"
FRAME_OFFSET = DATASET_FRAME_OFFSET
"""Audio time of label frame 0: frameTime 15.5 s is the END of [15.0, 15.5] s."""

MIN_DURATION = 25.0
"""The paper drops songs shorter than this (seconds)."""
TEST_DURATION = 65.0
"""The paper tests on the songs longer than this (seconds)."""

BIBTEX = """@inproceedings{zhang2018pmemo,
  author = {Zhang, Kejun and Zhang, Hui and Li, Simeng and Yang, Changyuan and Sun, Lingyun},
  title = {The PMEmo Dataset for Music Emotion Recognition},
  booktitle = {Proceedings of the 2018 ACM International Conference on Multimedia Retrieval},
  pages = {135--142},
  year = {2018},
  doi = {10.1145/3206025.3206037}
}"""

LICENSE_INFO = DATASETS[NAME].license

REMOTES = DATASETS[NAME].remotes
"""The release archive on Google Drive (from :data:`pdmer_datasets.DATASETS`).
No checksum is published: after installing, :meth:`Dataset.validate` checks
the files and their counts."""

GDRIVE_ID = REMOTES["all"].url.split("id=", 1)[1]

MANUAL_STEPS = f"""\
PMEmo is distributed through Google Drive, which plain HTTP cannot download
reliably. Either install the optional helper and run the command again:

    pip install gdown
    pdmer download pmemo

or download it by hand:

  1. Open https://drive.google.com/file/d/{GDRIVE_ID}/view in a browser
     (linked from https://github.com/HuiZhangDB/PMEmo) and download
     PMEmo2019.zip (about 0.7 GB).
  2. Run:  pdmer download pmemo --from /path/to/PMEmo2019.zip
     (or --from the folder you extracted it to, the one holding PMEmo2019/).
     The archive is extracted safely and the files are validated.
"""

_ROOT = "PMEmo2019"
INDEX_VERSION = "2019"
INDEXES = {"default": INDEX_VERSION,
           INDEX_VERSION: PackageIndex(f"pmemo_index_{INDEX_VERSION}.json")}

Dynamic = namedtuple("Dynamic", ["times", "labels"])
Dynamic.__doc__ = ("Dynamic labels: frameTime in s (the END of each 0.5 s frame) and "
                   "(n_frames, 2) float32 (arousal, valence).")


def make_index(metadata_csv) -> dict:
    """The mirdata index of all songs in PMEmo's ``metadata.csv`` (checksums unknown)."""
    header, rows = read_csv_rows(metadata_csv)
    id_col = column(header, "musicId", metadata_csv)
    file_col = column(header, "fileName", metadata_csv)
    tracks = {}
    for r in sorted(rows, key=lambda r: int(r[id_col])):
        tracks[song_id(r[id_col])] = {"audio": [f"{_ROOT}/chorus/{r[file_col]}", None]}
    metadata = {
        "metadata": [f"{_ROOT}/metadata.csv", None],
        "dynamic_annotations": [f"{_ROOT}/annotations/dynamic_annotations.csv", None],
        "dynamic_annotations_std": [f"{_ROOT}/annotations/dynamic_annotations_std.csv", None],
        "static_annotations": [f"{_ROOT}/annotations/static_annotations.csv", None],
        "static_annotations_std": [f"{_ROOT}/annotations/static_annotations_std.csv", None],
    }
    return {"version": INDEX_VERSION, "tracks": tracks, "metadata": metadata}


def write_package_index(metadata_csv) -> Path:
    """Regenerate the shipped index from the official ``metadata.csv``."""
    index = make_index(metadata_csv)
    path = Path(INDEXES[INDEX_VERSION].get_path())
    write_index(path, index["tracks"], index["metadata"], INDEX_VERSION)
    return path


def read_dynamic(path, kind="mean") -> dict:
    """{musicId: Dynamic} of ``dynamic_annotations[_std].csv`` (kind "mean" or "std")."""
    header, rows = read_csv_rows(path)
    id_col, time_col, a_col, v_col = (column(header, name, path) for name in (
        "musicId", "frameTime", f"Arousal({kind})", f"Valence({kind})"))
    grouped = {}
    for r in rows:
        grouped.setdefault(song_id(r[id_col]), []).append(
            (float(r[time_col]), to_float(r[a_col]), to_float(r[v_col])))
    out = {}
    for sid, values in grouped.items():
        values.sort()
        arr = np.asarray(values, dtype=np.float64)
        if np.any(~np.isfinite(arr[:, 1:])):
            raise ValueError(f"{path}: song {sid} has missing {kind} values.")
        if not np.allclose(np.diff(arr[:, 0]), 0.5):
            raise ValueError(f"{path}: song {sid}'s frameTime values are not every 0.5 s.")
        out[sid] = Dynamic(arr[:, 0], arr[:, 1:].astype(np.float32))
    return out


def read_static(path, kind="mean") -> dict:
    """{musicId: {"arousal": x, "valence": y}} of ``static_annotations[_std].csv``."""
    header, rows = read_csv_rows(path)
    id_col, a_col, v_col = (column(header, name, path) for name in (
        "musicId", f"Arousal({kind})", f"Valence({kind})"))
    return {song_id(r[id_col]): {"arousal": to_float(r[a_col]), "valence": to_float(r[v_col])}
            for r in rows}


def read_metadata(path) -> dict:
    """{musicId: row dict} of ``metadata.csv``; ``duration`` as float seconds."""
    header, rows = read_csv_rows(path)
    id_col = column(header, "musicId", path)
    out = {}
    for r in rows:
        entry = {header[i]: r[i] for i in range(min(len(r), len(header))) if i != id_col}
        if "duration" in entry:
            entry["duration"] = to_float(entry["duration"])
        out[song_id(r[id_col])] = entry
    return out


def paper_split(entry: dict, min_duration=MIN_DURATION, test_duration=TEST_DURATION):
    """"train", "test" or None (dropped or unannotated) for a song's metadata entry."""
    duration = float(entry.get("metadata", {}).get("duration", np.nan))
    if "dynamic" not in entry or not duration >= min_duration:
        return None
    return "test" if duration > test_duration else "train"


class Track(LoaderTrack):
    """One PMEmo chorus clip.

    Attributes
    ----------
    track_id : str
        The musicId.
    audio_path : str
        ``PMEmo2019/chorus/<musicId>.mp3`` under data_home.
    split : str or None
        The paper's split: ``"train"``, ``"test"``, or None (shorter than
        25 s, or not annotated).

    Cached properties
    -----------------
    dynamic, dynamic_std : Dynamic or None
        Mean and standard deviation over annotators: ``times`` (frameTime,
        from 15.5 s, the end of each frame) and ``labels`` (n_frames, 2)
        float32 (arousal, valence) in [0, 1]; None for the 27 songs without
        annotations.
    static, static_std : dict or None
        Song-level ``{"arousal", "valence"}``.
    metadata : dict
        The song's row of ``metadata.csv`` (``duration`` in seconds).
    """

    @core.cached_property
    def dynamic(self):
        """Dynamic or None: mean over annotators"""
        return self._value("dynamic", "dynamic_annotations")

    @core.cached_property
    def dynamic_std(self):
        """Dynamic or None: standard deviation over annotators"""
        return self._value("dynamic_std", "dynamic_annotations_std")

    @core.cached_property
    def static(self):
        """dict or None: song-level means"""
        return self._value("static", "static_annotations")

    @core.cached_property
    def static_std(self):
        """dict or None: song-level standard deviations"""
        return self._value("static_std", "static_annotations_std")

    @core.cached_property
    def metadata(self) -> dict:
        """dict: the song's metadata row"""
        return self._value("metadata", "metadata", default={})

    @property
    def duration(self) -> float:
        """Clip duration in seconds according to metadata.csv."""
        return float(self.metadata.get("duration", np.nan))


class Dataset(LoaderDataset):
    """The PMEmo 2019 data set (mean labels only).

    Parameters
    ----------
    data_home : str, optional
        The folder holding ``PMEmo2019/``; default ``~/mir_datasets/pmemo``.
    version : str, default="default"
    index : str or Path, optional
        A mirdata index JSON to use instead of the shipped one (a subset of
        the songs, or a custom copy; see :func:`make_index`).

    Examples
    --------
    >>> import pdmer_datasets
    >>> pmemo = pdmer_datasets.initialize("pmemo")        # doctest: +SKIP
    >>> X, y, _ = pmemo.mean_table(split="train")          # doctest: +SKIP
    """

    frame_offset = FRAME_OFFSET

    def __init__(self, data_home=None, version="default", index=None):
        super().__init__(data_home, version, name=NAME, track_class=Track, bibtex=BIBTEX,
                         indexes=choose_indexes(INDEXES, index, version), remotes=REMOTES,
                         license_info=LICENSE_INFO, download_info=MANUAL_STEPS)
        self.readme = DATASETS[NAME].homepage

    @core.cached_property
    def _metadata(self) -> dict:
        """{musicId: {"split", "metadata", "dynamic", "dynamic_std", "static", "static_std"}}.

        Built from the files that are installed; a value whose file is
        missing is absent (its Track property then says what to install).
        """
        songs = {sid: {} for sid in self.track_ids}
        readers = {"metadata": ("metadata", read_metadata),
                   "dynamic": ("dynamic_annotations", read_dynamic),
                   "dynamic_std": ("dynamic_annotations_std",
                                   lambda p: read_dynamic(p, "std")),
                   "static": ("static_annotations", read_static),
                   "static_std": ("static_annotations_std", lambda p: read_static(p, "std"))}
        for key, (file_key, read) in readers.items():
            path = self._present(file_key)
            for sid, value in (read(path) if path else {}).items():
                if sid in songs:
                    songs[sid][key] = value
        for entry in songs.values():
            entry["split"] = paper_split(entry)
        return songs

    def download(self, partial_download=None, force_overwrite=False, cleanup=False,
                 allow_invalid_checksum=False, *, mirror=None, from_path=None,
                 remotes=None, progress=True):
        """Install PMEmo into ``data_home``.

        With ``from_path`` (the downloaded ``PMEmo2019.zip``, or a folder
        holding it or an extracted ``PMEmo2019/``) or ``mirror`` (a plain HTTP
        host serving ``PMEmo2019.zip``), no Google Drive access is needed.
        Otherwise the optional ``gdown`` package fetches it from Google Drive;
        without gdown a RuntimeError gives the manual steps. No checksum is
        published: the installed files are validated instead.

        Returns
        -------
        list of str
            The parts installed by this call (empty when already installed).
        """
        remotes = remotes or self.remotes
        if from_path is None and mirror is None:
            if installed(self.data_home, remotes["all"]) and not force_overwrite:
                if progress:
                    print(f"pmemo: already installed in {self.data_home}", file=sys.stderr)
                return []
            if importlib.util.find_spec("gdown") is None:
                raise RuntimeError("The optional package gdown is not installed.\n"
                                   + MANUAL_STEPS)
            from_path = self._gdown(remotes["all"], progress)
        return super().download(partial_download, force_overwrite, cleanup,
                                allow_invalid_checksum, mirror=mirror, from_path=from_path,
                                remotes=remotes, progress=progress)

    def _gdown(self, remote, progress) -> Path:  # pragma: no cover - needs Google Drive
        import gdown

        target = Path(self.data_home) / remote.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        out = gdown.download(id=GDRIVE_ID, output=str(target), quiet=not progress,
                             resume=True)
        if out is None or not target.is_file():
            raise RuntimeError("gdown could not download PMEmo2019.zip from Google Drive "
                               "(quota or access limits).\n" + MANUAL_STEPS)
        return target

    # ---------------------------------------------------------------- tables
    def split_song_ids(self, split, *, min_duration=MIN_DURATION, test_duration=TEST_DURATION,
                       validation_size=0.1, random_state=0) -> list:
        """Annotated song ids of a split (the paper's, plus validation).

        Songs shorter than ``min_duration`` s are dropped; songs longer than
        ``test_duration`` s form ``"test"``; the rest is split into
        ``"train"`` and ``"validation"`` (``validation_size`` of them, drawn
        with ``random_state``). Durations come from metadata.csv. With the
        default durations, ``"train"`` + ``"validation"`` and ``"test"`` are
        the ``Track.split`` groups of :meth:`get_track_splits`.
        """
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test'; got {split!r}.")
        if not 0 <= validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1); got {validation_size!r}.")
        for file_key in ("metadata", "dynamic_annotations"):
            if self._present(file_key) is None:
                require_file(str(Path(self.data_home) / self._index["metadata"][file_key][0]),
                             NAME, self.data_home)
        songs = self._metadata
        ids = sorted(self.track_ids, key=int)
        if split == "test":
            return [s for s in ids if paper_split(songs[s], min_duration, test_duration)
                    == "test"]
        pool = [s for s in ids if paper_split(songs[s], min_duration, test_duration)
                == "train"]
        return hold_out_validation(pool, split, validation_size, random_state)

    def mean_table(self, split="train", *, std=False, min_duration=MIN_DURATION,
                   test_duration=TEST_DURATION, validation_size=0.1, random_state=0,
                   trim_to_audio=True, max_frames=None, progress=True) -> AnnotationTable:
        """Mean dynamic labels, one row per song.

        Parameters
        ----------
        split : {"train", "validation", "test"}
            See :meth:`split_song_ids`.
        std : bool, default=False
            Return the standard deviation over annotators instead of the mean.
        min_duration, test_duration, validation_size, random_state
            See :meth:`split_song_ids`.
        trim_to_audio : bool, default=True
            Drop label frames not entirely within the decoded audio (needs
            the audio; lengths are cached after the first call).
        max_frames : int, optional
            Keep at most this many frames per song.
        progress : bool, default=True
            Show a progress bar while measuring audio lengths.

        Returns
        -------
        AnnotationTable
            X audio paths, y (n_frames, 2) float32 in [0, 1], annotators None,
            frame_offset 15.0 (frameTime t is the end of frame [t - 0.5, t]).
        """
        ids = self.split_song_ids(split, min_duration=min_duration,
                                  test_duration=test_duration,
                                  validation_size=validation_size, random_state=random_state)
        return self._mean_label_table(
            ids, lambda track: track.dynamic_std if std else track.dynamic, trim_to_audio,
            max_frames, progress)

    def annotator_table(self, *args, **kwargs):
        """Not available: PMEmo 2019 has no per-annotator dynamic labels."""
        raise ValueError(
            "PMEmo has no annotator-level labels: the 2019 release publishes only the "
            "mean and standard deviation of the dynamic valence/arousal over its "
            "annotators, so it cannot train or evaluate personalized (per-listener) "
            "models. Use pmemo.mean_table(split=...) for mean-label DMER, or DEAM's "
            "annotator_table() for personalization.")
