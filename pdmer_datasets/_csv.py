"""Reading the CSV files pdmer meets: text checks, sniffed delimiters, cells."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

# Leading bytes of audio files a user may give where a CSV is expected.
_AUDIO_MAGIC = (b"RIFF", b"ID3", b"fLaC", b"OggS", b"\xff\xfb", b"\xff\xf3", b"FORM")


def read_text(path, what: str = "a text CSV", hint: str = "Is it the official file?") -> str:
    """A text file as str: UTF-8 (with or without BOM), else Latin-1.

    Raises
    ------
    ValueError
        ``"<path> is not <what>: it holds audio. <hint>"`` when the file holds
        binary data (NUL bytes), which Latin-1 would otherwise decode silently.
    """
    data = Path(path).read_bytes()
    if b"\x00" in data[:65536]:
        kind = "audio" if data.startswith(_AUDIO_MAGIC) else "binary data"
        raise ValueError(f"{path} is not {what}: it holds {kind}. {hint}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv_rows(path, delimiters=",;\t") -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV whose delimiter is sniffed; cells stripped.

    Header names are stripped of surrounding spaces (DEAM writes ``, `` between
    names). Rows that are completely empty are skipped.
    """
    text = read_text(path)
    first = text.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=delimiters).delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        rows = [[c.strip() for c in row] for row in reader if any(c.strip() for c in row)]
    except StopIteration:
        raise ValueError(f"{path} is empty; expected a CSV with a header row.") from None
    except csv.Error as err:  # e.g. a field over csv.field_size_limit()
        raise ValueError(f"{path}, line {reader.line_num}: {err}; is this the official "
                         "file?") from None
    return header, rows


def column(header, name, path) -> int:
    """Index of the column ``name`` (exact, after stripping); a ValueError names the file."""
    try:
        return header.index(name)
    except ValueError:
        raise ValueError(f"{path}: no column {name!r} in the header {header}; is this the "
                         "official file?") from None


def to_float(cell: str) -> float:
    """A CSV cell as float; empty or 'NaN' cells are NaN."""
    cell = cell.strip()
    if not cell or cell.lower() in ("nan", "na", "null"):
        return float("nan")
    return float(cell)


def song_id(cell: str) -> str:
    """A numeric song id cell (``"12"``, ``"12.0"``) as the canonical ``"12"``."""
    return str(int(float(cell)))


def clean_curve(values) -> np.ndarray:
    """A 1-D rater curve without padding and without interior gaps.

    Trailing empty cells are padding and are removed (they are not frames);
    leading missing values take the first value; interior missing values are
    linearly interpolated between their neighbours (a slider does not jump).
    """
    values = np.asarray(values, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(values))
    if valid.size == 0:
        return values[:0]
    values = values[:valid[-1] + 1]
    bad = ~np.isfinite(values)
    if bad.any():
        idx = np.arange(len(values))
        values = values.copy()
        values[bad] = np.interp(idx[bad], idx[~bad], values[~bad])
    return values
