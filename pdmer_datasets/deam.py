"""DEAM: the MediaEval Database for Emotional Analysis in Music (mirdata-style loader).

1802 songs with valence and arousal annotated continuously (2 Hz, in [-1, 1],
from 15 s) and per song (1-9 scale): 1744 clips of about 45 s (2013 and 2014
editions, ids 2-2000) and 58 full songs (2015 edition, ids 2001-2058).

Layout under ``data_home`` (the official archives, extracted as they are)::

    MEMD_audio/<song_id>.mp3
    annotations/annotations averaged per song/dynamic (per second annotations)/
        arousal.csv, valence.csv
    annotations/annotations averaged per song/song_level/
        static_annotations_averaged_songs_1_2000.csv, ..._2000_2058.csv
    annotations/annotations per each rater/dynamic (per second annotations)/
        arousal/<song_id>.csv, valence/<song_id>.csv
    annotations/annotations per each rater/song_level/
        static_annotations_songs_1_2000.csv, ..._2000_2058.csv
    metadata/metadata_2013.csv, metadata_2014.csv, metadata_2015.csv

Conventions and decisions
-------------------------
- Label frame ``i`` (column ``sample_{15000 + 500 i}ms``) covers audio
  ``[15 + 0.5 i, 15.5 + 0.5 i]`` s: tables have ``frame_offset = 15.0``, as
  in the reference implementation of DSAML. Labels are ``(n_frames, 2)``
  float32 arrays with columns (arousal, valence).
- Rows of the CSV files are padded with empty cells after a song's last
  value; padding is not a frame. A missing value inside a curve is linearly
  interpolated between its neighbours (a missing first value takes the first
  present one). Where arousal and valence curves of a song differ in length
  (7 full songs in the averaged files differ by one frame), the common
  frames are kept.
- Per-rater dynamic files of the 2014 and 2015 songs have a ``WorkerId``
  column; their arousal and valence rows are paired by WorkerId. The 2013
  files (744 songs, ids <= 1000) have no rater id: their rows are paired by
  position and keyed ``"#0"``, ``"#1"``, ... (anonymous, not comparable
  across songs), and they never enter annotator-level tables.
- Per-rater curves are cut to the length of the song's averaged curve, the
  label grid the audio is aligned to.
- The index lists, per song, the audio and the two per-rater dynamic files,
  plus the dataset-wide annotation and metadata files. Nobody publishes
  per-file checksums for DEAM, so the index stores None: :meth:`Dataset.validate`
  checks that files exist and are not empty; the archives themselves are
  verified by SHA-256 when downloaded.
- Some clips are decoded slightly shorter than 45.0 s (44.6-45.6 s), so
  their 60th frame is not fully covered by audio. With ``trim_to_audio=True``
  (the default) tables drop label frames that do not lie entirely within the
  decoded audio; each file is decoded once and its length cached in
  ``<data_home>/.pdmer/audio_durations.json``.
- Splits (``Track.split``, ``Dataset.get_track_splits()``): the paper's,
  ``"train"`` the 1744 clips and ``"test"`` the 58 full songs;
  :meth:`Dataset.split_song_ids` also draws validation songs from training.
- Test annotators are not guaranteed to be new listeners: a WorkerId may
  have rated training clips too. :meth:`Dataset.test_annotators_seen_in_training`
  lists them, and ``annotator_table(split="test", unseen_only=True)`` drops
  them, for an evaluation on listeners the model has never seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mirdata import core

from pdmer_datasets._csv import read_csv_rows
# The readers of DEAM's files are part of this module's API (deam.read_metadata, ...).
from pdmer_datasets._deam_formats import (  # noqa: F401
    FRAME_OFFSET, INDEX_VERSION, Dynamic, averaged_dynamic, make_index, rater_dynamic,
    read_averaged_dynamic, read_metadata, read_rater_dynamic, read_static_averaged,
    read_static_raters, static_averaged, static_raters, year_of)
from pdmer_datasets._loader import (LoaderDataset, LoaderTrack, PackageIndex, choose_indexes,
                                    hold_out_validation, write_index)
from pdmer_datasets.registry import DATASETS
from pdmer_datasets.table import AnnotationTable

__all__ = ["Dataset", "Track", "REMOTES", "FRAME_OFFSET", "make_index"]

NAME = "deam"

BIBTEX = """@article{aljanaki2017deam,
  author = {Aljanaki, Anna and Yang, Yi-Hsuan and Soleymani, Mohammad},
  title = {Developing a benchmark for emotional analysis of music},
  journal = {PLoS ONE},
  volume = {12},
  number = {3},
  pages = {e0173392},
  year = {2017},
  doi = {10.1371/journal.pone.0173392}
}"""

LICENSE_INFO = DATASETS[NAME].license

REMOTES = DATASETS[NAME].remotes
"""The official archives by part: file name, URL, SHA-256 and size (from
:data:`pdmer_datasets.DATASETS`)."""

INDEXES = {"default": INDEX_VERSION, INDEX_VERSION: PackageIndex(f"deam_index_{INDEX_VERSION}.json")}


def write_package_index(averaged_arousal_csv) -> Path:
    """Regenerate the shipped index from the official averaged ``arousal.csv``."""
    ids = [row[0] for row in read_csv_rows(averaged_arousal_csv)[1]]
    index = make_index(ids)
    path = Path(INDEXES[INDEX_VERSION].get_path())
    write_index(path, index["tracks"], index["metadata"], INDEX_VERSION)
    return path


# --------------------------------------------------------------------------
# Track and Dataset
# --------------------------------------------------------------------------
class Track(LoaderTrack):
    """One DEAM song.

    Attributes
    ----------
    track_id : str
        The DEAM song id.
    audio_path : str
        ``MEMD_audio/<song_id>.mp3`` under data_home.
    year : int
        Edition (subset): 2013, 2014 or 2015.
    split : str
        ``"train"`` (the 1744 clips) or ``"test"`` (the 58 full songs).

    Cached properties
    -----------------
    dynamic : Dynamic
        Averaged dynamic labels: ``times`` (s, from 15.0) and ``labels``
        (n_frames, 2) float32 (arousal, valence) in [-1, 1].
    rater_dynamic : dict of str to ndarray (n_frames, 2)
        Each rater's curve, keyed by WorkerId, or by ``"#<row>"`` where the
        file has no rater id (the 2013 songs; see ``has_rater_ids``).
    static : dict
        Averaged song-level labels (1-9 scale): ``arousal_mean``,
        ``arousal_std``, ``valence_mean``, ``valence_std`` (and min/max columns
        for the 2015 songs).
    rater_static : list of dict
        Song-level labels per rater: ``rater``, ``arousal``, ``valence``, ...
    metadata : dict
        The song's row of ``metadata/metadata_<year>.csv``.
    """

    def __init__(self, track_id, data_home, dataset_name, index, metadata):
        super().__init__(track_id, data_home, dataset_name, index, metadata)
        self.year = year_of(track_id)

    @property
    def has_rater_ids(self) -> bool:
        """Whether the per-rater files identify raters (those of 2014 and 2015)."""
        return self._raters[0]

    @core.cached_property
    def dynamic(self) -> Dynamic:
        """Dynamic: averaged (times, labels (n_frames, 2)) from 15 s"""
        dynamic = self._value("dynamic", "arousal_averaged", "valence_averaged")
        if dynamic is None:
            raise KeyError(f"DEAM song {self.track_id} has no row in the averaged "
                           "dynamic annotation files.")
        return dynamic

    @property
    def rater_dynamic(self) -> dict:
        """dict: rater key -> (n_frames, 2) float32 curve (arousal, valence)"""
        return self._raters[1]

    @core.cached_property
    def _raters(self):
        return rater_dynamic(self._file("arousal_raters"), self._file("valence_raters"))

    @core.cached_property
    def static(self) -> dict:
        """dict: averaged song-level labels (1-9 scale)"""
        return self._value("static", "static_averaged_1_2000", "static_averaged_2000_2058",
                           default={})

    @core.cached_property
    def rater_static(self) -> list:
        """list: song-level labels per rater"""
        return self._value("rater_static", "static_raters_1_2000", "static_raters_2000_2058",
                           default=[])

    @core.cached_property
    def metadata(self) -> dict:
        """dict: the song's metadata row"""
        return self._value("metadata", f"metadata_{self.year}", default={})


class Dataset(LoaderDataset):
    """The DEAM data set.

    Parameters
    ----------
    data_home : str, optional
        Where DEAM lives; default ``~/mir_datasets/deam``.
    version : str, default="default"
    index : str or Path, optional
        A mirdata index JSON to use instead of the shipped one (a subset of
        the songs, or a custom copy; see :func:`make_index`).

    Examples
    --------
    >>> import pdmer_datasets
    >>> deam = pdmer_datasets.initialize("deam")  # doctest: +SKIP
    >>> deam.download()                           # doctest: +SKIP
    >>> X, y, annotators = deam.annotator_table(split="train")  # doctest: +SKIP
    """

    frame_offset = FRAME_OFFSET

    def __init__(self, data_home=None, version="default", index=None):
        super().__init__(data_home, version, name=NAME, track_class=Track, bibtex=BIBTEX,
                         indexes=choose_indexes(INDEXES, index, version), remotes=REMOTES,
                         license_info=LICENSE_INFO)
        self.readme = DATASETS[NAME].homepage

    @core.cached_property
    def _metadata(self) -> dict:
        """{song_id: {"split", "dynamic", "static", "rater_static", "metadata"}}.

        Built from the dataset-wide files that are installed; a value whose
        file is missing is absent (its Track property then says what to install).
        """
        songs = {sid: {"split": "test" if year_of(sid) == 2015 else "train"}
                 for sid in self.track_ids}

        def add(key, file_keys, read):
            paths = [self._present(k) for k in file_keys]
            if all(paths):
                for sid, value in read(*paths).items():
                    if sid in songs:
                        songs[sid][key] = value

        add("dynamic", ("arousal_averaged", "valence_averaged"), averaged_dynamic)
        add("static", ("static_averaged_1_2000", "static_averaged_2000_2058"),
            static_averaged)
        add("rater_static", ("static_raters_1_2000", "static_raters_2000_2058"),
            static_raters)
        for year in (2013, 2014, 2015):
            add("metadata", (f"metadata_{year}",), read_metadata)
        return songs

    # ---------------------------------------------------------------- tables
    def split_song_ids(self, split, validation_size=0.1, random_state=0) -> list:
        """Song ids of a split: the paper's, plus validation songs from training.

        ``"train"`` and ``"validation"`` partition the 1744 clips (the
        ``"train"`` songs of :meth:`get_track_splits`; ``validation_size`` of
        them, drawn with ``random_state``, go to validation); ``"test"`` is
        the 58 full songs.
        """
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test'; got {split!r}.")
        official = self.get_track_splits()
        if split == "test":
            return sorted(official.get("test", []), key=int)
        if not 0 <= validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1); got {validation_size!r}.")
        clips = sorted(official.get("train", []), key=int)
        return hold_out_validation(clips, split, validation_size, random_state)

    def mean_table(self, split="train", *, validation_size=0.1, random_state=0,
                   trim_to_audio=True, max_frames=None, progress=True) -> AnnotationTable:
        """Averaged labels, one row per song (traditional DMER).

        Parameters
        ----------
        split : {"train", "validation", "test"}
        validation_size : float, default=0.1
            Fraction of the 1744 training clips held out for validation.
        random_state : int, default=0
            Seed of the validation draw.
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
            X audio paths, y (n_frames, 2) float32, annotators None,
            frame_offset 15.0.
        """
        ids = self.split_song_ids(split, validation_size, random_state)
        return self._mean_label_table(ids, lambda track: track.dynamic, trim_to_audio,
                                      max_frames, progress)

    def _rater_rows(self, song_ids, flat_threshold, flat_frames, max_frames) -> list:
        """(song, rater, curve) of the songs' identified raters, flat curves dropped."""
        rows = []
        for sid in song_ids:
            track = self.track(sid)
            if track.year == 2013 or not track.has_rater_ids:
                continue  # anonymous raters cannot form per-annotator tasks
            n = len(track.dynamic.labels)
            for rater, curve in track.rater_dynamic.items():
                curve = curve[:n][:max_frames]
                if len(curve) and not _is_flat(curve, flat_threshold, flat_frames):
                    rows.append((sid, rater, curve))
        return rows

    def test_annotators_seen_in_training(self, *, flat_threshold=0.01, flat_frames=60) -> list:
        """WorkerIds of the test songs who also rated a training clip, sorted.

        A rater counts as seen when any of their curves on the 1744 training
        clips (validation included) passes the flat-curve filter, whether or
        not ``min_songs`` keeps them in the training table: their ratings
        were in the training files. Scoring personalization on them mixes
        known and new listeners; ``annotator_table(split="test",
        unseen_only=True)`` drops them.

        Parameters
        ----------
        flat_threshold, flat_frames
            As in :meth:`annotator_table`.

        Returns
        -------
        list of str
        """
        def raters(split):
            ids = self.split_song_ids(split, validation_size=0.0)
            return {r for _, r, _ in self._rater_rows(ids, flat_threshold, flat_frames, None)}

        return sorted(raters("test") & raters("train"))

    def annotator_table(self, split="train", *, validation_size=0.1, random_state=0,
                        flat_threshold=0.01, flat_frames=60, min_songs=16,
                        min_test_songs=1, unseen_only=False, trim_to_audio=True,
                        max_frames=None, progress=True) -> AnnotationTable:
        """Per-rater labels, one row per (song, rater) curve (personalized DMER).

        Only songs whose per-rater files carry a WorkerId are used: 1000 of the
        1744 training clips (the 2014 edition) and the 58 test songs.

        Parameters
        ----------
        split : {"train", "validation", "test"}
            As in :meth:`split_song_ids`.
        validation_size : float, default=0.1
        random_state : int, default=0
        flat_threshold : float, default=0.01
            Drop a rater's curve when, for arousal or valence,
            ``mean(|x - mean(x)|)`` over its first ``flat_frames`` values is
            below this (a slider left untouched). 0 keeps every curve.
        flat_frames : int, default=60
        min_songs : int, default=16
            Keep raters with at least this many kept training songs (counted
            over train and validation together, so both splits see the same
            raters). The reference drops raters with <= 15 songs.
        min_test_songs : int, default=1
            The same for the test split, counted over the test songs.
        unseen_only : bool, default=False
            Test split only: drop the raters who also rated training clips
            (:meth:`test_annotators_seen_in_training`), so that every test
            listener is new to a model trained on this data set. The paper's
            protocol keeps them (False).
        trim_to_audio : bool, default=True
            Drop label frames not entirely within the decoded audio (applied
            after the filters; see :meth:`mean_table`).
        max_frames : int, optional
            Keep at most this many frames per curve.
        progress : bool, default=True

        Returns
        -------
        AnnotationTable
            X audio paths, y (n_frames, 2) float32 curves, annotators
            WorkerIds, frame_offset 15.0.
        """
        for name, value in (("min_songs", min_songs), ("min_test_songs", min_test_songs),
                            ("flat_frames", flat_frames)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if unseen_only and split != "test":
            raise ValueError("unseen_only applies to split='test' only (training and "
                             "validation raters are the same listeners by design).")
        chosen = set(self.split_song_ids(split, validation_size, random_state))
        if split == "test":
            pool, minimum = self.split_song_ids("test"), min_test_songs
        else:  # raters are counted over all training clips
            pool, minimum = self.split_song_ids("train", validation_size=0.0), min_songs
        rows = self._rater_rows(pool, flat_threshold, flat_frames, max_frames)
        if unseen_only:
            seen = set(self.test_annotators_seen_in_training(
                flat_threshold=flat_threshold, flat_frames=flat_frames))
            rows = [r for r in rows if r[1] not in seen]
        counts = {}
        for _, rater, _ in rows:
            counts[rater] = counts.get(rater, 0) + 1
        rows = [r for r in rows if counts[r[1]] >= minimum and r[0] in chosen]
        limit = self._audio_frames(sorted({r[0] for r in rows}, key=int), trim_to_audio,
                                   progress)
        rows = [(sid, rater, curve[:limit[sid]]) for sid, rater, curve in rows]
        rows = [r for r in rows if len(r[2])]
        return AnnotationTable(
            X=[self.track(sid).audio_path for sid, _, _ in rows],
            y=[curve for _, _, curve in rows],
            annotators=np.array([rater for _, rater, _ in rows], dtype=str),
            song_ids=np.array([sid for sid, _, _ in rows], dtype=str),
            frame_offset=FRAME_OFFSET)


def _is_flat(curve, threshold, n_frames) -> bool:
    head = curve[:n_frames]
    spread = np.mean(np.abs(head - head.mean(axis=0)), axis=0)
    return bool(np.any(spread < threshold))
