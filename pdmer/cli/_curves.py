"""Where ``pdmer predict`` writes its curves: one table of all songs, or a folder.

A table has one row per 0.5 s frame of every song, with the columns
:data:`COLUMNS`, as CSV, JSON (a list of row objects) or Parquet; ``-``
writes CSV to stdout. A folder gets one label CSV per song (``time,
arousal, valence``), the format ``pdmer personalize`` reads.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import click
import numpy as np

from pdmer.files import atomic_write

COLUMNS = ("song", "time", "arousal", "valence")
TABLE_FORMATS = (".csv", ".json", ".parquet")
STDOUT = "-"


def output_kind(output) -> str:
    """``"stdout"``, ``"table"`` (a .csv/.json/.parquet file) or ``"folder"``."""
    if output == STDOUT:
        return "stdout"
    path = Path(output)
    if path.suffix.lower() in TABLE_FORMATS and not path.is_dir():
        return "table"
    if path.exists() and not path.is_dir():
        raise click.BadParameter(
            f"{output} is a file; give a folder for one CSV per song, a table file "
            f"({', '.join(TABLE_FORMATS)}), or - for CSV on stdout.", param_hint="--output")
    return "folder"


def check_table_writer(output) -> None:
    """Fail before any work if the table's format needs a missing library."""
    if Path(output).suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise click.ClickException(
                f"Writing {output} needs pyarrow, which is not installed: `pip install "
                "pyarrow`, or write .csv or .json instead.") from None


def _rows(curves: dict, offset: float):
    """(song, time, arousal, valence) of every frame, songs in order."""
    for song, curve in curves.items():
        times = offset + 0.5 * np.arange(len(curve))
        for t, (arousal, valence) in zip(times, np.asarray(curve, dtype=np.float64)):
            yield song, round(float(t), 3), float(arousal), float(valence)


def _csv_text(curves: dict, offset: float) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for song, t, arousal, valence in _rows(curves, offset):
        writer.writerow((song, f"{t:g}", f"{arousal:.6f}", f"{valence:.6f}"))
    return buffer.getvalue()


def write_table(curves: dict, offset: float, output) -> str:
    """Write ``{song: (n_frames, 2) curve}`` as one table to ``output``.

    Returns what was written, for the user: the path, or ``"stdout"``.
    """
    if output == STDOUT:
        sys.stdout.write(_csv_text(curves, offset))
        sys.stdout.flush()
        return "stdout"
    suffix = Path(output).suffix.lower()
    if suffix == ".csv":
        text = _csv_text(curves, offset)
        atomic_write(output, lambda tmp: Path(tmp).write_text(text, newline=""), suffix=suffix)
    elif suffix == ".json":
        text = json.dumps([dict(zip(COLUMNS, row)) for row in _rows(curves, offset)])
        atomic_write(output, lambda tmp: Path(tmp).write_text(text), suffix=suffix)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(_rows(curves, offset))
        types = (pa.string(),) + (pa.float64(),) * 3
        table = pa.table({name: pa.array([row[i] for row in rows], type=kind)
                          for i, (name, kind) in enumerate(zip(COLUMNS, types))})
        atomic_write(output, lambda tmp: pq.write_table(table, tmp), suffix=suffix)
    return os.fspath(output)
