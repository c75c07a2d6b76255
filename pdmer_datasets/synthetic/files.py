"""The synthetic data set's files: CSV tables, ``meta.json``, and :func:`load`.

Files under ``root``::

    audio/<song_id>.wav   16-bit mono WAV, frame_offset + n_frames * 0.5 s
    songs.csv             song_id, frame, arousal, valence (true curves)
    annotations.csv       song_id, annotator, frame, arousal, valence
    listeners.csv         one row of Listener parameters per annotator
    meta.json             generation parameters (written last)
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from pdmer.labels import DIMENSIONS, FRAME_SECONDS
from pdmer.files import atomic_write
from pdmer_datasets.synthetic.dataset import AUDIO_DIR, SyntheticDataset
from pdmer_datasets.synthetic.listeners import Listener

FORMAT = "pdmer-synthetic"
# 2: songs may differ in length; listeners.csv has a kind column.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# Bump when the synthesis changes, so that generate() stops reusing old files.
GENERATOR_VERSION = 1

SONGS_CSV = "songs.csv"
ANNOTATIONS_CSV = "annotations.csv"
LISTENERS_CSV = "listeners.csv"
META_JSON = "meta.json"

SONGS_HEADER = ("song_id", "frame") + DIMENSIONS
ANNOTATIONS_HEADER = ("song_id", "annotator", "frame") + DIMENSIONS
LISTENERS_HEADER = tuple(f.name for f in fields(Listener))


def is_dataset(root) -> bool:
    """Whether ``root`` holds a finished generation (its ``meta.json``)."""
    return (Path(root) / META_JSON).is_file()


def read_meta(root) -> dict | None:
    """The parsed ``meta.json`` of ``root``, or None when absent or unreadable."""
    try:
        meta = json.loads((Path(root) / META_JSON).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_meta(root: Path, params: dict):
    meta = {"format": FORMAT, "version": FORMAT_VERSION,
            "generator_version": GENERATOR_VERSION, "params": params,
            "frame_seconds": FRAME_SECONDS}
    write_text(root / META_JSON, json.dumps(meta, indent=2) + "\n")


def write_text(path: Path, text: str):
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_csv(path: Path, header, rows):
    lines = [",".join(header)]
    lines += [",".join(_fmt(x) for x in row) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def write_tables(root: Path, curves: dict, listeners: list, annotations: dict):
    """songs.csv, listeners.csv and annotations.csv (keys ``(listener, song)``)."""
    write_csv(root / SONGS_CSV, SONGS_HEADER,
              [(sid, f, a, v) for sid, c in curves.items() for f, (a, v) in enumerate(c)])
    write_csv(root / LISTENERS_CSV, LISTENERS_HEADER,
              [tuple(asdict(lis).values()) for lis in listeners])
    write_csv(root / ANNOTATIONS_CSV, ANNOTATIONS_HEADER,
              [(sid, lid, f, a, v) for (lid, sid), labels in annotations.items()
               for f, (a, v) in enumerate(labels)])


def _fmt(x):
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6f}"
    return str(x)


def _read_csv(path: Path, *headers):
    """Rows of a CSV whose header is one of ``headers``: (header, row iterator)."""
    fh = open(path, newline="")
    reader = csv.reader(fh)
    got = tuple(next(reader, None) or ())
    if got not in headers:
        fh.close()
        raise ValueError(f"{path} must have the header {','.join(headers[0])}; "
                         f"got {','.join(got)!r}.")

    def rows():
        with fh:
            for line, row in enumerate(reader, start=2):
                if len(row) != len(got):
                    raise ValueError(f"{path}, line {line}: expected {len(got)} "
                                     f"fields, got {len(row)}.")
                yield row

    return got, rows()


def _frames_to_array(rows, what, n_frames=None) -> np.ndarray:
    rows.sort()
    frames = [r[0] for r in rows]
    n = len(frames) if n_frames is None else n_frames
    if frames != list(range(n)):
        raise ValueError(f"{what}: expected frames 0..{n - 1}, got "
                         f"{len(frames)} frames ({frames[:3]}...).")
    return np.array([r[1:] for r in rows], dtype=np.float32)


def upgrade_params(params: dict) -> dict:
    """Parameters of a version-1 ``meta.json`` in today's form."""
    params = dict(params)
    if "listener_mix" not in params:
        rev = params.pop("reversed_fraction", 0.25)
        params["listener_mix"] = {k: w for k, w in
                                  (("typical", 1.0 - rev), ("reversed", rev)) if w > 0}
        params["noise_std"] = [0.03, 0.1]
    return params


def load(root) -> SyntheticDataset:
    """Read a data set written by :func:`generate`, without regenerating.

    Parameters
    ----------
    root : str or path-like
        The folder given to :func:`generate`.

    Returns
    -------
    dataset : SyntheticDataset

    Raises
    ------
    FileNotFoundError
        If the folder, ``meta.json`` (the generation did not finish), a CSV
        file or an audio file is missing; the message names it.
    ValueError
        If the files are inconsistent: unknown format version, wrong number
        of frames, unknown song or listener ids, or audio of the wrong
        length or sample rate.

    Examples
    --------
    >>> import tempfile
    >>> from pdmer_datasets import synthetic
    >>> root = tempfile.mkdtemp()
    >>> _ = synthetic.generate(root, n_songs=2, n_listeners=2,
    ...                        songs_per_listener=1, duration=2.0)
    >>> synthetic.load(root).song_ids
    ['S000', 'S001']
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise FileNotFoundError(
            f"No synthetic data set at {root}: the folder does not exist. "
            "Create one with pdmer_datasets.synthetic.generate(root).")
    meta_path = root / META_JSON
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} is missing: {root} is not a complete synthetic data "
            "set (generation never ran or was interrupted). Run "
            "pdmer_datasets.synthetic.generate(root) again.")
    meta = read_meta(root)
    if meta is None or meta.get("format") != FORMAT \
            or meta.get("version") not in READABLE_VERSIONS:
        got = meta or {}
        raise ValueError(
            f"{meta_path} is not a {FORMAT} file of version {READABLE_VERSIONS} "
            f"(format={got.get('format')!r}, version={got.get('version')!r}).")
    params = upgrade_params(meta["params"])
    missing = [name for name in (SONGS_CSV, ANNOTATIONS_CSV, LISTENERS_CSV)
               if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} lacks {', '.join(missing)}.")

    true_curves = _read_curves(root, params)
    _check_audio(root, params, true_curves)
    listeners = _read_listeners(root, params)
    annotations, assignments = _read_annotations(root, true_curves, listeners)
    return SyntheticDataset(
        root=root, params=params, true_curves=true_curves, listeners=listeners,
        assignments={k: tuple(v) for k, v in assignments.items()},
        annotations=annotations)


def _read_curves(root, params) -> dict:
    rows: dict = {}
    _, lines = _read_csv(root / SONGS_CSV, SONGS_HEADER)
    for row in lines:
        rows.setdefault(row[0], []).append((int(row[1]), float(row[2]), float(row[3])))
    fixed = None if np.ndim(params["duration"]) else round(params["duration"] / FRAME_SECONDS)
    curves = {sid: _frames_to_array(r, f"{SONGS_CSV}, song {sid}", fixed)
              for sid, r in rows.items()}
    if len(curves) != params["n_songs"]:
        raise ValueError(f"{root / SONGS_CSV} holds {len(curves)} songs; "
                         f"meta.json says {params['n_songs']}.")
    return curves


def _check_audio(root, params, curves):
    import soundfile as sf

    sr = int(params["sample_rate"])
    absent = [sid for sid in curves if not (root / AUDIO_DIR / f"{sid}.wav").is_file()]
    if absent:
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise FileNotFoundError(
            f"{root / AUDIO_DIR} lacks the audio of "
            f"{', '.join(a + '.wav' for a in absent[:5])}{more}.")
    for sid, curve in curves.items():
        path = root / AUDIO_DIR / f"{sid}.wav"
        expected = int(round((params["frame_offset"] + len(curve) * FRAME_SECONDS) * sr))
        info = sf.info(str(path))
        if info.samplerate != sr or info.frames != expected:
            raise ValueError(
                f"{path} has {info.frames} samples at {info.samplerate} Hz; "
                f"expected {expected} at {sr} Hz.")


def _read_listeners(root, params) -> dict:
    # Version 1 files have no kind column: their kind follows valence_reversed.
    header, lines = _read_csv(root / LISTENERS_CSV, LISTENERS_HEADER, LISTENERS_HEADER[:-1])
    listeners = {}
    for row in lines:
        vals = dict(zip(header, row))
        reversed_ = vals["valence_reversed"] in ("True", "1", "true")
        listeners[vals["id"]] = Listener(
            id=vals["id"], valence_reversed=reversed_,
            lag_frames=int(vals["lag_frames"]),
            kind=vals.get("kind", "reversed" if reversed_ else "typical"),
            **{k: float(vals[k]) for k in header
               if k not in ("id", "valence_reversed", "lag_frames", "kind")})
    if len(listeners) != params["n_listeners"]:
        raise ValueError(f"{root / LISTENERS_CSV} holds {len(listeners)} "
                         f"listeners; meta.json says {params['n_listeners']}.")
    return listeners


def _read_annotations(root, curves, listeners):
    rows: dict = {}
    _, lines = _read_csv(root / ANNOTATIONS_CSV, ANNOTATIONS_HEADER)
    for row in lines:
        rows.setdefault((row[1], row[0]), []).append(
            (int(row[2]), float(row[3]), float(row[4])))
    annotations, assignments = {}, {lid: [] for lid in listeners}
    for (lid, sid), frames in rows.items():
        if lid not in listeners:
            raise ValueError(f"{root / ANNOTATIONS_CSV}: unknown annotator {lid!r}.")
        if sid not in curves:
            raise ValueError(f"{root / ANNOTATIONS_CSV}: unknown song {sid!r}.")
        annotations[(lid, sid)] = _frames_to_array(
            frames, f"{ANNOTATIONS_CSV}, {lid} on {sid}", len(curves[sid]))
        assignments[lid].append(sid)
    return annotations, assignments
