"""DEAM's official files: the index of expected paths and a reader per file kind.

Only the official files are read, so columns are looked up by their official
names; the documented quirks are handled where they occur (rows padded with
empty cells, arousal.csv one column wider than valence.csv, spaces after the
commas of the song-level headers and the ``valence_ max_mean`` typo, per-rater
dynamic files of 2013 without rater ids, two layouts of the per-rater static
files). See the notes in :mod:`pdmer_datasets.deam`.
"""

from __future__ import annotations

import re
from collections import namedtuple

import numpy as np

from pdmer.labels import DATASET_FRAME_OFFSET, frame_times
from pdmer_datasets._csv import clean_curve, column, read_csv_rows, song_id, to_float

FRAME_OFFSET = DATASET_FRAME_OFFSET
"""Audio time of label frame 0: column ``sample_15000ms`` is frame 0."""
INDEX_VERSION = "1.0"

AVG = "annotations/annotations averaged per song"
RATER = "annotations/annotations per each rater"
DYN = "dynamic (per second annotations)"

_SAMPLE = re.compile(r"sample_(\d+)ms$")

Dynamic = namedtuple("Dynamic", ["times", "labels"])
Dynamic.__doc__ = """Averaged dynamic labels: frame times (s) and (n_frames, 2) (arousal, valence)."""

# The per-rater song-level files of songs 1-2000 and 2000-2058 name their
# columns differently (both official).
_STATIC_RATER_LAYOUTS = (
    {"rater": "workerID", "song": "SongId", "arousal": "Arousal", "valence": "Valence"},
    {"rater": "WorkerId", "song": "SongId", "arousal": "Arousal_Average",
     "valence": "Valence_Average"},
)
# Each edition's metadata file names its columns its own way (2013, 2014, 2015).
_METADATA_LAYOUTS = (
    {"id": "song_id", "artist": "Artist", "title": "Song title", "genre": "Genre"},
    {"id": "Id", "artist": "Artist", "title": "Track", "genre": "Genre"},
    {"id": "id", "artist": "Artist", "title": "Title", "genre": "Genre"},
)


def year_of(song) -> int:
    """DEAM edition (subset) of a song: 2013 (ids <= 1000), 2014 (<= 2000) or 2015."""
    sid = int(song)
    return 2013 if sid <= 1000 else 2014 if sid <= 2000 else 2015


def make_index(song_ids) -> dict:
    """The mirdata index for the given DEAM song ids (paths; checksums unknown)."""
    tracks = {}
    for sid in sorted({str(int(s)) for s in song_ids}, key=int):
        tracks[sid] = {
            "audio": [f"MEMD_audio/{sid}.mp3", None],
            "arousal_raters": [f"{RATER}/{DYN}/arousal/{sid}.csv", None],
            "valence_raters": [f"{RATER}/{DYN}/valence/{sid}.csv", None],
        }
    metadata = {
        "arousal_averaged": [f"{AVG}/{DYN}/arousal.csv", None],
        "valence_averaged": [f"{AVG}/{DYN}/valence.csv", None],
        "static_averaged_1_2000": [
            f"{AVG}/song_level/static_annotations_averaged_songs_1_2000.csv", None],
        "static_averaged_2000_2058": [
            f"{AVG}/song_level/static_annotations_averaged_songs_2000_2058.csv", None],
        "static_raters_1_2000": [f"{RATER}/song_level/static_annotations_songs_1_2000.csv",
                                 None],
        "static_raters_2000_2058": [
            f"{RATER}/song_level/static_annotations_songs_2000_2058.csv", None],
        "metadata_2013": ["metadata/metadata_2013.csv", None],
        "metadata_2014": ["metadata/metadata_2014.csv", None],
        "metadata_2015": ["metadata/metadata_2015.csv", None],
    }
    return {"version": INDEX_VERSION, "tracks": tracks, "metadata": metadata}


def _sample_columns(header, path):
    """(column indices, times in s) of the ``sample_*ms`` columns from 15 s on."""
    cols, times = [], []
    for i, name in enumerate(header):
        match = _SAMPLE.match(name)
        if match and int(match.group(1)) >= 15000:
            cols.append(i)
            times.append(int(match.group(1)) / 1000.0)
    if not cols:
        raise ValueError(f"{path}: no sample_<ms>ms columns in the header.")
    steps = np.diff(times)
    if times[0] != FRAME_OFFSET or (steps.size and not np.allclose(steps, 0.5)):
        raise ValueError(f"{path}: expected sample columns every 500 ms from "
                         f"sample_15000ms; got {header[cols[0]]} ... {header[cols[-1]]}.")
    return cols


def _curve(row, cols) -> np.ndarray:
    return clean_curve([to_float(row[c]) if c < len(row) else np.nan for c in cols])


def read_averaged_dynamic(path) -> dict:
    """{song_id: 1-D float64 curve} of an averaged dynamic CSV (padding removed)."""
    header, rows = read_csv_rows(path)
    id_col = column(header, "song_id", path)
    cols = _sample_columns(header, path)
    return {song_id(r[id_col]): _curve(r, cols) for r in rows}


def averaged_dynamic(arousal_csv, valence_csv) -> dict:
    """{song_id: Dynamic} of the averaged arousal.csv and valence.csv.

    Where a song's two curves differ in length (7 full songs differ by one
    frame), the common frames are kept.
    """
    arousal = read_averaged_dynamic(arousal_csv)
    valence = read_averaged_dynamic(valence_csv)
    out = {}
    for sid in arousal.keys() & valence.keys():
        n = min(len(arousal[sid]), len(valence[sid]))
        labels = np.stack([arousal[sid][:n], valence[sid][:n]], axis=1).astype(np.float32)
        out[sid] = Dynamic(frame_times(n, FRAME_OFFSET), labels)
    return out


def read_rater_dynamic(path):
    """(rater keys, has_ids, curves) of one per-rater dynamic CSV.

    Keys are WorkerIds where the file has a ``WorkerId`` column (2014 and
    2015), else ``"#<row>"`` (2013: no rater ids).
    """
    header, rows = read_csv_rows(path)
    worker_col = header.index("WorkerId") if "WorkerId" in header else None
    cols = _sample_columns(header, path)
    keys, curves = [], []
    for i, r in enumerate(rows):
        key = r[worker_col] if worker_col is not None else f"#{i}"
        curve = _curve(r, cols)
        if key in keys or not curve.size:
            continue  # a repeated WorkerId keeps its first row
        keys.append(key)
        curves.append(curve)
    return keys, worker_col is not None, curves


def rater_dynamic(arousal_csv, valence_csv):
    """(has_ids, {rater: (n_frames, 2) float32}) of a song's two per-rater files.

    Arousal and valence rows are paired by rater key; a rater in one file
    only is left out.
    """
    a_keys, a_ids, a_curves = read_rater_dynamic(arousal_csv)
    v_keys, v_ids, v_curves = read_rater_dynamic(valence_csv)
    valence = dict(zip(v_keys, v_curves))
    curves = {}
    for key, a in zip(a_keys, a_curves):
        v = valence.get(key)
        if v is not None:
            n = min(len(a), len(v))
            curves[key] = np.stack([a[:n], v[:n]], axis=1).astype(np.float32)
    return a_ids and v_ids, curves


def _names(header):
    # 'valence_ max_mean' (sic, in the 2000-2058 file) -> 'valence_max_mean'.
    return [re.sub(r"\s+", "", h) for h in header]


def read_static_averaged(path) -> dict:
    """{song_id: {column: float}} of an averaged song-level CSV (1-9 scale)."""
    header, rows = read_csv_rows(path)
    names = _names(header)
    id_col = column(names, "song_id", path)
    return {song_id(r[id_col]): {names[i]: to_float(r[i])
                                 for i in range(min(len(r), len(names)))
                                 if i != id_col and r[i] != ""}
            for r in rows}


def static_averaged(*paths) -> dict:
    """{song_id: {column: float}} of the averaged song-level files together."""
    out = {}
    for path in paths:
        out.update(read_static_averaged(path))
    return out


def _layout(header, layouts, path):
    for layout in layouts:
        if all(name in header for name in layout.values()):
            return {key: header.index(name) for key, name in layout.items()}
    raise ValueError(f"{path}: the header {header} is not one of the official layouts "
                     f"{[list(layout.values()) for layout in layouts]}.")


def read_static_raters(path) -> dict:
    """{song_id: [{"rater", "arousal", "valence", ...}]} of a per-rater song-level CSV.

    Reads both official layouts (``workerID, SongId, Valence, Arousal`` and
    ``SongId, WorkerId, Arousal_Average, Valence_Average, ...``); other
    columns are added under their lowercased names.
    """
    header, rows = read_csv_rows(path)
    at = _layout(header, _STATIC_RATER_LAYOUTS, path)
    names = [n.lower() for n in _names(header)]
    out = {}
    for r in rows:
        entry = {"rater": r[at["rater"]], "arousal": to_float(r[at["arousal"]]),
                 "valence": to_float(r[at["valence"]])}
        for i, name in enumerate(names):
            if i not in at.values() and i < len(r) and r[i] != "":
                try:
                    entry[name] = to_float(r[i])
                except ValueError:
                    entry[name] = r[i]
        out.setdefault(song_id(r[at["song"]]), []).append(entry)
    return out


def static_raters(*paths) -> dict:
    """{song_id: [rater entries]} of the per-rater song-level files together."""
    out = {}
    for path in paths:
        for sid, entries in read_static_raters(path).items():
            out.setdefault(sid, []).extend(entries)
    return out


def read_metadata(path) -> dict:
    """{song_id: {column: value}} of a DEAM metadata CSV, any of the three editions.

    Each row keeps every column under its own name; ``artist``, ``title``
    and ``genre`` are added from the edition's columns for those. A file in
    none of the known layouts keeps its rows (keyed by the first column)
    without the added names.
    """
    header, rows = read_csv_rows(path)
    try:
        at = _layout(header, _METADATA_LAYOUTS, path)
    except ValueError:
        at = {"id": 0}
    out = {}
    for r in rows:
        try:
            sid = song_id(r[at["id"]])
        except ValueError:
            continue  # not a song row (e.g. an empty or note line)
        entry = {header[i]: r[i] for i in range(min(len(r), len(header))) if i != at["id"]}
        entry.update({key: r[col] for key, col in at.items() if key != "id" and col < len(r)})
        out[sid] = entry
    return out
