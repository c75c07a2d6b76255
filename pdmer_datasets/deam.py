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
"""

from __future__ import annotations

import re
from collections import namedtuple
from pathlib import Path

import numpy as np
from mirdata import core

from pdmer_datasets._common import (DatasetFiles, LoaderDataset, PackageIndex, Remote,
                                    choose_indexes, clean_curve, decoded_durations,
                                    fetch_parts, find_column, frames_within, read_csv_rows,
                                    to_float, validate_index, write_index)
from pdmer_datasets.table import AnnotationTable

__all__ = ["Dataset", "Track", "REMOTES", "FRAME_OFFSET", "make_index"]

NAME = "deam"
FRAME_OFFSET = 15.0
"""Audio time in seconds of label frame 0 (column ``sample_15000ms``)."""

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

LICENSE_INFO = (
    "DEAM annotations are free for non-commercial research use; cite Aljanaki, "
    "Yang and Soleymani (2017). The audio comes from freemusicarchive.org, "
    "jamendo.com and the MedleyDB data set under the Creative Commons licenses of "
    "the individual tracks. See https://cvml.unige.ch/databases/DEAM/.")

BASE_URL = "https://cvml.unige.ch/databases/DEAM/"

REMOTES = {
    "audio": Remote(
        "DEAM_audio.zip", BASE_URL + "DEAM_audio.zip",
        sha256="e2814325f573ade8caebc697f0efcfdf7207142b737d72558a416117ca591353",
        size=1343203527, contents=["MEMD_audio"], extracted_size=1_500_000_000),
    "annotations": Remote(
        "DEAM_Annotations.zip", BASE_URL + "DEAM_Annotations.zip",
        sha256="809b0feb4ba6196c1eda9b2b7b33b892b11fa71457cfceb0d47e832ed1a5f15f",
        size=4735283, contents=["annotations"], extracted_size=95_000_000),
    "metadata": Remote(
        "metadata.zip", BASE_URL + "metadata.zip",
        sha256="3d1d5ab42e852803a770f2cfbd685c6b464e1ebe76f26b0e10954597902b90f8",
        size=344760, contents=["metadata"], extracted_size=7_000_000),
}
"""The official archives: file name, URL, SHA-256 and size (third-party values,
2026). The optional ``features.zip`` (openSMILE features) is not used.
``extracted_size`` is an upper bound, not a published value: MP3 audio does
not deflate (a PMEmo MP3: 784,653 -> 782,178 bytes), DEAM's and PMEmo's CSV
files deflate 2.5-4x (measured), so the audio is capped at its archive's size
plus 12 %, the CSV archives at 20x theirs (5x the highest ratio measured)."""

_AVG = "annotations/annotations averaged per song"
_RATER = "annotations/annotations per each rater"
_DYN = "dynamic (per second annotations)"

# Which index keys each downloadable part provides (for partial validation).
PART_KEYS = {
    "audio": ["audio"],
    "annotations": ["arousal_raters", "valence_raters", "arousal_averaged",
                    "valence_averaged", "static_averaged_1_2000",
                    "static_averaged_2000_2058", "static_raters_1_2000",
                    "static_raters_2000_2058"],
    "metadata": ["metadata_2013", "metadata_2014", "metadata_2015"],
}

INDEX_VERSION = "1.0"
INDEXES = {"default": INDEX_VERSION, INDEX_VERSION: PackageIndex(f"deam_index_{INDEX_VERSION}.json")}

_SAMPLE = re.compile(r"sample_(\d+)ms$")

Dynamic = namedtuple("Dynamic", ["times", "labels"])
Dynamic.__doc__ = """Averaged dynamic labels: frame times (s) and (n_frames, 2) (arousal, valence)."""


def make_index(song_ids) -> dict:
    """The mirdata index for the given DEAM song ids (paths; checksums unknown)."""
    tracks = {}
    for sid in sorted({str(int(s)) for s in song_ids}, key=int):
        tracks[sid] = {
            "audio": [f"MEMD_audio/{sid}.mp3", None],
            "arousal_raters": [f"{_RATER}/{_DYN}/arousal/{sid}.csv", None],
            "valence_raters": [f"{_RATER}/{_DYN}/valence/{sid}.csv", None],
        }
    metadata = {
        "arousal_averaged": [f"{_AVG}/{_DYN}/arousal.csv", None],
        "valence_averaged": [f"{_AVG}/{_DYN}/valence.csv", None],
        "static_averaged_1_2000": [
            f"{_AVG}/song_level/static_annotations_averaged_songs_1_2000.csv", None],
        "static_averaged_2000_2058": [
            f"{_AVG}/song_level/static_annotations_averaged_songs_2000_2058.csv", None],
        "static_raters_1_2000": [f"{_RATER}/song_level/static_annotations_songs_1_2000.csv",
                                 None],
        "static_raters_2000_2058": [
            f"{_RATER}/song_level/static_annotations_songs_2000_2058.csv", None],
        "metadata_2013": ["metadata/metadata_2013.csv", None],
        "metadata_2014": ["metadata/metadata_2014.csv", None],
        "metadata_2015": ["metadata/metadata_2015.csv", None],
    }
    return {"version": INDEX_VERSION, "tracks": tracks, "metadata": metadata}


def write_package_index(averaged_arousal_csv) -> Path:
    """Regenerate the shipped index from the official averaged ``arousal.csv``."""
    ids = [row[0] for row in read_csv_rows(averaged_arousal_csv)[1]]
    index = make_index(ids)
    path = Path(INDEXES[INDEX_VERSION].get_path())
    write_index(path, index["tracks"], index["metadata"], INDEX_VERSION)
    return path


def year_of(song_id) -> int:
    """DEAM edition (subset) of a song: 2013 (ids <= 1000), 2014 (<= 2000) or 2015."""
    sid = int(song_id)
    return 2013 if sid <= 1000 else 2014 if sid <= 2000 else 2015


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------
def _sample_columns(header, path):
    """(column indices, times in s) of the ``sample_*ms`` columns from 15 s on."""
    cols, times = [], []
    for i, name in enumerate(header):
        match = _SAMPLE.match(name.replace(" ", ""))
        if match:
            ms = int(match.group(1))
            if ms >= 15000:
                cols.append(i)
                times.append(ms / 1000.0)
    if not cols:
        raise ValueError(f"{path}: no sample_<ms>ms columns in the header.")
    steps = np.diff(times)
    if times[0] != FRAME_OFFSET or (steps.size and not np.allclose(steps, 0.5)):
        raise ValueError(f"{path}: expected sample columns every 500 ms from "
                         f"sample_15000ms; got {header[cols[0]]} ... {header[cols[-1]]}.")
    return cols, np.asarray(times)


def read_averaged_dynamic(path) -> dict:
    """{song_id: 1-D float64 curve} of an averaged dynamic CSV (padding removed)."""
    header, rows = read_csv_rows(path)
    id_col = find_column(header, "song_id", "songid", path=path)
    cols, _ = _sample_columns(header, path)
    return {str(int(float(r[id_col]))): clean_curve([to_float(r[c]) if c < len(r) else np.nan
                                                     for c in cols])
            for r in rows}


def read_rater_dynamic(path):
    """(rater keys, has_ids, curves) of one per-rater dynamic CSV.

    Keys are WorkerIds where the file has a ``WorkerId`` column, else ``"#<row>"``.
    """
    header, rows = read_csv_rows(path)
    worker_col = find_column(header, "WorkerId", required=False)
    cols, _ = _sample_columns(header, path)
    keys, curves = [], []
    for i, r in enumerate(rows):
        key = r[worker_col] if worker_col is not None else f"#{i}"
        curve = clean_curve([to_float(r[c]) if c < len(r) else np.nan for c in cols])
        if key in keys or not curve.size:
            continue  # a repeated WorkerId keeps its first row
        keys.append(key)
        curves.append(curve)
    return keys, worker_col is not None, curves


def _read_float_table(path, id_candidates) -> dict:
    """{song_id: {normalised column: float}} of a CSV with one row per song."""
    header, rows = read_csv_rows(path)
    id_col = find_column(header, *id_candidates, path=path)
    # Normalise names: 'valence_ max_mean' (sic) -> 'valence_max_mean'.
    names = [re.sub(r"\s+", "", h).lower() for h in header]
    out = {}
    for r in rows:
        sid = str(int(float(r[id_col])))
        out[sid] = {names[i]: to_float(r[i]) for i in range(min(len(r), len(names)))
                    if i != id_col and r[i] != ""}
    return out


def read_static_raters(path) -> dict:
    """{song_id: [{"rater", "arousal", "valence", ...}]} of a per-rater static CSV.

    Tolerates both official headers (``workerID, SongId, Valence, Arousal`` and
    ``SongId, WorkerId, Arousal_Average, Valence_Average, ...``).
    """
    header, rows = read_csv_rows(path)
    song = find_column(header, "SongId", "song_id", path=path)
    worker = find_column(header, "WorkerId", path=path)
    arousal = find_column(header, "Arousal", "Arousal_Average", "arousal_mean", path=path)
    valence = find_column(header, "Valence", "Valence_Average", "valence_mean", path=path)
    names = [re.sub(r"\s+", "", h).lower() for h in header]
    out = {}
    for r in rows:
        entry = {"rater": r[worker], "arousal": to_float(r[arousal]),
                 "valence": to_float(r[valence])}
        for i, name in enumerate(names):
            if i not in (song, worker, arousal, valence) and i < len(r) and r[i] != "":
                try:
                    entry[name] = to_float(r[i])
                except ValueError:
                    entry[name] = r[i]
        out.setdefault(str(int(float(r[song]))), []).append(entry)
    return out


def read_metadata(path) -> dict:
    """{song_id: {column: value}} of a DEAM metadata CSV, any of the three editions.

    Column names differ between editions; ``artist``, ``title`` and ``genre``
    are added under these names where a matching column exists.
    """
    header, rows = read_csv_rows(path)
    id_col = find_column(header, "song_id", "songid", "id", path=path)
    aliases = {"artist": ("Artist",), "title": ("Song title", "Title", "Track", "song_title"),
               "genre": ("Genre",)}
    found = {k: find_column(header, *v, required=False) for k, v in aliases.items()}
    out = {}
    for r in rows:
        try:
            sid = str(int(float(r[id_col])))
        except ValueError:
            continue  # not a song row (e.g. an empty or note line)
        entry = {header[i]: r[i] for i in range(min(len(r), len(header))) if i != id_col}
        for key, col in found.items():
            if col is not None and col < len(r):
                entry[key] = r[col]
        out[sid] = entry
    return out


class _Tables(DatasetFiles):
    """Dataset-wide files, each parsed on first use."""

    missing_hint = ("Download DEAM first (`pdmer download deam` or Dataset.download()), "
                    "or point data_home at your copy.")

    @core.cached_property
    def dynamic(self) -> dict:
        arousal = read_averaged_dynamic(self.path("arousal_averaged"))
        valence = read_averaged_dynamic(self.path("valence_averaged"))
        out = {}
        for sid in arousal.keys() & valence.keys():
            n = min(len(arousal[sid]), len(valence[sid]))
            labels = np.stack([arousal[sid][:n], valence[sid][:n]], axis=1)
            out[sid] = Dynamic(FRAME_OFFSET + 0.5 * np.arange(n), labels.astype(np.float32))
        return out

    @core.cached_property
    def static(self) -> dict:
        table = {}
        for key in ("static_averaged_1_2000", "static_averaged_2000_2058"):
            table.update(_read_float_table(self.path(key), ("song_id", "songid")))
        return table

    @core.cached_property
    def static_raters(self) -> dict:
        table = {}
        for key in ("static_raters_1_2000", "static_raters_2000_2058"):
            for sid, entries in read_static_raters(self.path(key)).items():
                table.setdefault(sid, []).extend(entries)
        return table

    @core.cached_property
    def metadata(self) -> dict:
        table = {}
        for year in (2013, 2014, 2015):
            table.update(read_metadata(self.path(f"metadata_{year}")))
        return table


# --------------------------------------------------------------------------
# Track and Dataset
# --------------------------------------------------------------------------
class Track(core.Track):
    """One DEAM song.

    Attributes
    ----------
    track_id : str
        The DEAM song id.
    audio_path : str
        ``MEMD_audio/<song_id>.mp3`` under data_home.
    year : int
        Edition (subset): 2013, 2014 or 2015.

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
        self.audio_path = self.get_path("audio")
        self.year = year_of(track_id)

    @property
    def _tables(self) -> _Tables:
        return self._metadata()

    @property
    def has_rater_ids(self) -> bool:
        """Whether the per-rater files identify raters (those of 2014 and 2015)."""
        return self._raters[0]

    @core.cached_property
    def dynamic(self) -> Dynamic:
        """Dynamic: averaged (times, labels (n_frames, 2)) from 15 s"""
        try:
            return self._tables.dynamic[self.track_id]
        except KeyError:
            raise KeyError(f"DEAM song {self.track_id} has no row in the averaged "
                           "dynamic annotation files.") from None

    @property
    def rater_dynamic(self) -> dict:
        """dict: rater key -> (n_frames, 2) float32 curve (arousal, valence)"""
        return self._raters[1]

    @core.cached_property
    def _raters(self):
        a_keys, a_ids, a_curves = read_rater_dynamic(self.get_path("arousal_raters"))
        v_keys, v_ids, v_curves = read_rater_dynamic(self.get_path("valence_raters"))
        valence = dict(zip(v_keys, v_curves))
        curves = {}
        for key, a in zip(a_keys, a_curves):
            v = valence.get(key)
            if v is None:
                continue  # rater present in only one of the two files
            n = min(len(a), len(v))
            curves[key] = np.stack([a[:n], v[:n]], axis=1).astype(np.float32)
        return a_ids and v_ids, curves

    @core.cached_property
    def static(self) -> dict:
        """dict: averaged song-level labels (1-9 scale)"""
        return self._tables.static.get(self.track_id, {})

    @core.cached_property
    def rater_static(self) -> list:
        """list: song-level labels per rater"""
        return self._tables.static_raters.get(self.track_id, [])

    @core.cached_property
    def metadata(self) -> dict:
        """dict: the song's metadata row"""
        return self._tables.metadata.get(self.track_id, {})


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

    files_class = _Tables

    def __init__(self, data_home=None, version="default", index=None):
        super().__init__(data_home, version, name=NAME, track_class=Track, bibtex=BIBTEX,
                         indexes=choose_indexes(INDEXES, index, version), remotes=REMOTES, license_info=LICENSE_INFO)
        self.readme = "https://cvml.unige.ch/databases/DEAM/"

    def download(self, partial_download=None, force_overwrite=False, cleanup=False,
                 allow_invalid_checksum=False, *, mirror=None, from_path=None,
                 remotes=None, progress=True):
        """Download, verify and extract DEAM into ``data_home``.

        Parameters
        ----------
        partial_download : list of str, optional
            Parts to get: any of ``"annotations"``, ``"audio"``,
            ``"metadata"``; None gets all three.
        force_overwrite : bool, default=False
            Install again even if a part is already installed.
        cleanup : bool, default=False
            Delete each downloaded archive after extracting it.
        allow_invalid_checksum : bool, default=False
            Use an archive whose size or SHA-256 differs from the expected one.
        mirror : str, optional
            Base URL of another host with the same file names.
        from_path : str or Path, optional
            An archive, a folder holding the archives, or an already
            extracted DEAM folder to install from instead of downloading.
        remotes : dict, optional
            Replaces :data:`REMOTES` (other URLs or checksums).
        progress : bool, default=True

        Returns
        -------
        list of str
            The parts installed by this call (empty when all were there).
        """
        parts = list(partial_download or REMOTES)
        return fetch_parts(NAME, self.data_home, remotes or self.remotes, parts,
                           mirror=mirror, from_path=from_path,
                           force_overwrite=force_overwrite, cleanup=cleanup,
                           accept_mismatch=allow_invalid_checksum, progress=progress)

    def validate(self, verbose=True, parts=None):
        """Files of the index that are missing or invalid under ``data_home``.

        Parameters
        ----------
        verbose : bool, default=True
        parts : list of str, optional
            Only the files of these download parts.

        Returns
        -------
        missing, invalid : dict
            ``{"tracks": {id: [paths]}, "metadata": {key: [paths]}}``. Per-file
            checksums of DEAM are unknown, so invalid means empty.
        """
        keys = None if parts is None else [k for p in parts for k in PART_KEYS[p]]
        return validate_index(self._index, self.data_home, keys, verbose)

    # ---------------------------------------------------------------- tables
    def split_song_ids(self, split, validation_size=0.1, random_state=0) -> list:
        """Song ids of a split: the paper's, plus validation songs from training.

        ``"train"`` and ``"validation"`` partition the 1744 clips (ids <= 2000;
        ``validation_size`` of them, drawn with ``random_state``, go to
        validation); ``"test"`` is the 58 full songs (ids > 2000).
        """
        clips = sorted((s for s in self.track_ids if int(s) <= 2000), key=int)
        if split == "test":
            return sorted((s for s in self.track_ids if int(s) > 2000), key=int)
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train', 'validation' or 'test'; got {split!r}.")
        if not 0 <= validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1); got {validation_size!r}.")
        n_val = int(round(validation_size * len(clips)))
        rng = np.random.default_rng(random_state)
        chosen = set(rng.permutation(len(clips))[:n_val].tolist())
        if split == "validation" and not chosen:
            raise ValueError("validation_size=0 leaves no validation songs.")
        keep = (lambda i: i in chosen) if split == "validation" else (lambda i: i not in chosen)
        return [s for i, s in enumerate(clips) if keep(i)]

    def _audio_frames(self, song_ids, trim_to_audio, progress) -> dict:
        """{song: label frames the decoded audio covers} (None: no limit)."""
        if not trim_to_audio:
            return dict.fromkeys(song_ids)
        rel = {sid: self._index["tracks"][sid]["audio"][0] for sid in song_ids}
        seconds = decoded_durations(self.data_home, list(rel.values()), progress)
        return {sid: frames_within(seconds[r], FRAME_OFFSET) for sid, r in rel.items()}

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
        limit = self._audio_frames(ids, trim_to_audio, progress)
        X, y, songs = [], [], []
        for sid in ids:
            track = self.track(sid)
            labels = track.dynamic.labels[:limit[sid]][:max_frames]
            if len(labels):
                X.append(track.audio_path)
                y.append(labels)
                songs.append(sid)
        return AnnotationTable(X=X, y=y, annotators=None, song_ids=np.array(songs, dtype=str),
                               frame_offset=FRAME_OFFSET)

    def annotator_table(self, split="train", *, validation_size=0.1, random_state=0,
                        flat_threshold=0.01, flat_frames=60, min_songs=16,
                        min_test_songs=1, trim_to_audio=True, max_frames=None,
                        progress=True) -> AnnotationTable:
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
        chosen = set(self.split_song_ids(split, validation_size, random_state))
        if split == "test":
            pool, minimum = self.split_song_ids("test"), min_test_songs
        else:  # raters are counted over all training clips
            pool, minimum = self.split_song_ids("train", validation_size=0.0), min_songs
        rows = []  # (song, rater, curve) over the whole pool
        for sid in pool:
            track = self.track(sid)
            if track.year == 2013 or not track.has_rater_ids:
                continue  # anonymous raters cannot form per-annotator tasks
            n = len(track.dynamic.labels)
            for rater, curve in track.rater_dynamic.items():
                curve = curve[:n][:max_frames]
                if len(curve) and not _is_flat(curve, flat_threshold, flat_frames):
                    rows.append((sid, rater, curve))
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
