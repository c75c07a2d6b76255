"""pdmer's own CSV formats: one listener's labels of one song, and a data set of them.

Label CSV (one song, one listener)
    A header ``time,arousal,valence`` (or ``frame,arousal,valence``) and one
    row per 0.5 s label frame. ``time`` is the start of each frame in seconds
    (e.g. ``15.0, 15.5, ...`` for DEAM); ``frame`` is the frame index, frame
    ``i`` starting at ``frame_offset + 0.5 i`` seconds. Rows are consecutive
    on the 0.5 s grid, values finite; no other columns. ``pdmer predict``
    writes this format (:func:`write_labels`).

Data CSV (many songs, for ``pdmer train`` and ``pdmer evaluate``)
    Columns ``audio`` (an audio file), ``labels`` (a label CSV) and,
    optionally, ``annotator`` (who made the labels: one meta-learning task
    per annotator; ids are compared as strings). Relative paths are relative
    to the data CSV's folder. The same audio may appear in several rows, once
    per annotator. Every label file of one data CSV starts at the same time.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from pdmer.labels import DIMENSIONS, FRAME_SECONDS, frame_time, frame_times
from pdmer_datasets._csv import read_text
from pdmer.files import atomic_write
from pdmer_datasets.table import AnnotationTable

__all__ = ["read_data_csv", "read_labels", "write_data_csv", "write_labels"]

# Tolerance, in seconds, for times on the 0.5 s grid (CSV files round them).
_GRID_TOLERANCE = 1e-3
_LABEL_COLUMNS = ("time", "frame") + DIMENSIONS
_DATA_COLUMNS = ("audio", "labels", "annotator")
_LABEL_FORMAT = "a text CSV of time,arousal,valence"
# Both formats have three named columns; a few more leaves room for unnamed
# ones (trailing commas). A wider header is not one of them.
_MAX_COLUMNS = 16
_DATA_FORMAT = "a text CSV of audio,labels[,annotator]"


def _rows(path, what, hint) -> list:
    """Non-empty rows of a CSV file; clear errors for a missing, binary or empty file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected {what}.")
    try:
        text = read_text(path, what, hint)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; expected {what}.") from None
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    except csv.Error as err:  # e.g. a field over csv.field_size_limit()
        raise ValueError(f"{path}, line {reader.line_num}: {err}; expected {what}.") from None
    if not rows:
        raise ValueError(f"{path} is empty; expected {what} with a header row.")
    return rows


def _header(path, row, what) -> list:
    """Lower-case column names ('' for an unnamed column, e.g. after a trailing comma)."""
    if len(row) > _MAX_COLUMNS:
        raise ValueError(f"{path}: the header has {len(row)} columns; expected {what}.")
    return [cell.strip().lower() for cell in row]


def _names(names) -> str:
    """A few column names for a message, each cut short."""
    shown = ", ".join(repr(name[:40]) for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _refuse_other_columns(path, header, allowed):
    counts = Counter(name for name in header if name)
    unknown = [name for name in counts if name not in allowed]
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if unknown or repeated:
        problem = (f"unknown column(s) {_names(unknown)}" if unknown
                   else f"repeated column(s) {', '.join(repeated)}")
        raise ValueError(f"{path}: {problem}; the columns are {', '.join(allowed)} "
                         "(rename or remove the others).")


def read_labels(path, frame_offset=0.0):
    """Read a label CSV (see the module documentation).

    Parameters
    ----------
    path : str or path-like
    frame_offset : float, default=0.0
        Audio time of frame 0 for a file with a ``frame`` column (a ``time``
        column carries its own).

    Returns
    -------
    labels : ndarray of shape (n_frames, 2), float32
        (arousal, valence) per frame.
    offset : float
        Audio time in seconds of the first row.

    Raises
    ------
    ValueError
        With the file (and line) and what to do: not a text CSV (e.g. an
        audio file given as labels), empty, unknown or missing columns,
        non-numeric, NaN or infinite values, rows off the 0.5 s grid, or
        labels starting before the audio.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.csv")
    >>> _ = open(path, "w").write("time,arousal,valence\\n15.0,0.1,0.2\\n15.5,0.2,0.1\\n")
    >>> labels, offset = read_labels(path)
    >>> labels.shape, offset
    ((2, 2), 15.0)
    """
    path = Path(path)
    rows = _rows(path, _LABEL_FORMAT, "Give the labels here; the audio file goes in its own "
                 "argument (or the data CSV's audio column).")
    header = _header(path, rows[0], _LABEL_FORMAT)
    missing = [c for c in DIMENSIONS if c not in header]
    clocks = [c for c in ("time", "frame") if c in header]
    if missing or not clocks:
        raise ValueError(
            f"{path} must have the columns time (or frame), arousal and valence; "
            f"got {_names(rows[0])}.")
    if len(clocks) > 1:
        raise ValueError(f"{path} has both a time and a frame column; keep one.")
    _refuse_other_columns(path, header, _LABEL_COLUMNS)
    clock = clocks[0]
    columns = [header.index(c) for c in (clock, *DIMENSIONS)]
    if len(rows) < 2:
        raise ValueError(f"{path} has a header but no labels.")
    values = np.empty((len(rows) - 1, 3))
    for line, row in enumerate(rows[1:], start=2):
        try:
            values[line - 2] = [float(row[c]) for c in columns]
        except (IndexError, ValueError):
            raise ValueError(f"{path}, line {line}: expected numbers in the columns "
                             f"{clock}, arousal, valence; got {row}.") from None
    if not np.isfinite(values).all():
        line = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0]) + 2
        raise ValueError(f"{path}, line {line}: NaN or infinite value; labels must be "
                         "finite (trim unannotated frames or interpolate them).")
    times = values[:, 0] if clock == "time" else frame_time(values[:, 0], frame_offset)
    steps = np.diff(times)
    bad = np.flatnonzero(np.abs(steps - FRAME_SECONDS) > _GRID_TOLERANCE)
    if bad.size:
        line = int(bad[0]) + 3
        raise ValueError(
            f"{path}, line {line}: {clock} jumps from {values[bad[0], 0]:g} to "
            f"{values[bad[0] + 1, 0]:g}; rows must be consecutive 0.5 s frames "
            f"({'time steps of 0.5' if clock == 'time' else 'frame steps of 1'}).")
    offset = round(float(times[0]), 6)
    if offset < 0:
        raise ValueError(f"{path}: the labels start at {offset:g} s, before the audio.")
    return values[:, 1:].astype(np.float32), offset


def write_labels(path, labels, frame_offset=0.0):
    """Write one song's (arousal, valence) curve as a label CSV with a time column.

    The file is written to a temporary name and renamed, so a failure never
    leaves half a file.

    Parameters
    ----------
    path : str or path-like
    labels : array-like of shape (n_frames, 2)
    frame_offset : float, default=0.0
        Audio time of the first frame.
    """
    labels = np.asarray(labels, dtype=np.float64)
    times = frame_times(len(labels), frame_offset)

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("time", *DIMENSIONS))
            for t, (a, v) in zip(times, labels):
                writer.writerow((f"{t:.1f}", f"{a:.6f}", f"{v:.6f}"))

    atomic_write(path, write, suffix=".csv")


def read_data_csv(path) -> AnnotationTable:
    """Read a data CSV (``audio,labels[,annotator]``) into an :class:`AnnotationTable`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    table : AnnotationTable
        ``X`` absolute audio paths (str), ``y`` the label files' curves,
        ``annotators`` the ids (None without the column), ``song_ids`` the
        audio paths, ``frame_offset`` the label files' common start.

    Raises
    ------
    ValueError
        With the file and line: not a text CSV, empty, unknown or missing
        columns, an empty cell, an empty annotator id, a bad label file (its
        own message), or label files that start at different times.
    FileNotFoundError
        If the data CSV, an audio file or a label file does not exist.
    """
    path = Path(path)
    rows = _rows(path, _DATA_FORMAT, "Give the data CSV that lists the audio and label files.")
    header = _header(path, rows[0], _DATA_FORMAT)
    if "audio" not in header or "labels" not in header:
        raise ValueError(f"{path} must have the columns audio and labels (and optionally "
                         f"annotator); got {_names(rows[0])}.")
    _refuse_other_columns(path, header, _DATA_COLUMNS)
    if len(rows) < 2:
        raise ValueError(f"{path} lists no songs.")
    at = {name: header.index(name) for name in header if name}
    X, y, annotators, offsets = [], [], [], set()
    for line, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(header) - len(row))
        audio = _resolve(path, row[at["audio"]], line, "audio")
        if not audio.is_file():
            raise FileNotFoundError(f"{path}, line {line}: audio file not found: {audio}")
        label_file = _resolve(path, row[at["labels"]], line, "labels")
        if not label_file.exists():
            raise FileNotFoundError(f"{path}, line {line}: label file not found: {label_file}")
        try:
            labels, offset = read_labels(label_file)
        except ValueError as err:
            raise ValueError(f"{path}, line {line}: {err}") from None
        if "annotator" in at:
            who = row[at["annotator"]].strip()
            if not who:
                raise ValueError(f"{path}, line {line}: the annotator is empty; give every "
                                 "row an annotator id or drop the annotator column.")
            annotators.append(who)
        X.append(str(audio))
        y.append(labels)
        offsets.add(offset)
    if len(offsets) > 1:
        raise ValueError(
            f"{path}: the label files start at different times ({sorted(offsets)} s); "
            "every song of one data CSV must start at the same frame offset.")
    who = f", {len(set(annotators))} annotators" if "annotator" in at else ""
    return AnnotationTable(X=X, y=y, annotators=annotators if "annotator" in at else None,
                           song_ids=np.array(X, dtype=str), frame_offset=offsets.pop(),
                           description=f"{path} ({len(X)} rows{who})")


def _resolve(csv_path, value, line, column) -> Path:
    value = (value or "").strip()
    if not value:
        raise ValueError(f"{csv_path}, line {line}: the {column} column is empty.")
    target = Path(value).expanduser()
    return target if target.is_absolute() else csv_path.parent / target


def write_data_csv(path, table: AnnotationTable, labels_dir=None) -> Path:
    """Write a table as a data CSV plus one label CSV per row.

    Parameters
    ----------
    path : str or path-like
        The data CSV to write.
    table : AnnotationTable
        Rows whose ``X`` are audio paths (not precomputed features).
    labels_dir : str or path-like, optional
        Folder for the label files; default ``<data CSV name>_labels`` beside
        it. Paths in the data CSV are written relative to its folder where
        possible.

    Returns
    -------
    path : Path
        The data CSV; :func:`read_data_csv` reads it back into an equal table.
    """
    path = Path(path)
    labels_dir = Path(labels_dir) if labels_dir is not None else \
        path.with_name(f"{path.stem}_labels")
    bad = [type(x).__name__ for x in table.X if not isinstance(x, (str, os.PathLike))]
    if bad:
        raise ValueError(f"table.X must hold audio paths to be written as a data CSV; "
                         f"got {bad[0]} (features cannot be written).")
    rows = []
    for i, (x, labels) in enumerate(zip(table.X, table.y)):
        who = None if table.annotators is None else table.annotators[i]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{who}-{Path(x).stem}" if who else Path(x).stem)
        label_file = labels_dir / f"{i:05d}-{slug}.csv"
        write_labels(label_file, labels, table.frame_offset)
        rows.append([_relative(x, path.parent), _relative(label_file, path.parent)]
                    + ([] if who is None else [who]))

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(_DATA_COLUMNS[:2] + (() if table.annotators is None
                                                 else ("annotator",)))
            writer.writerows(rows)

    atomic_write(path, write, suffix=".csv")
    return path


def _relative(target, folder) -> str:
    target = Path(target).absolute()
    try:
        return target.relative_to(Path(folder).absolute()).as_posix()
    except ValueError:
        return str(target)
