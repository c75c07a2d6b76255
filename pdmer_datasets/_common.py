"""What the DEAM and PMEmo loaders share: package indexes, verified remotes,
download/extract/copy of parts, validation and CSV reading."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from mirdata import core, download_utils, validate as mir_validate

from pdmer._download import ChecksumError, download_file, safe_extract, sha256_file, verify_file
from pdmer._files import atomic_write

INDEXES_DIR = Path(__file__).resolve().parent / "indexes"

# Folder (inside data_home) where completed extractions are recorded, so that
# a second download() does nothing and an interrupted one is redone.
_STATE_DIR = ".pdmer"


class PackageIndex(core.Index):
    """A mirdata index file shipped in ``pdmer_datasets/indexes``.

    mirdata's :class:`~mirdata.core.Index` looks for local index files inside
    the installed mirdata package; pdmer's live in its own package data.
    """

    def __init__(self, filename: str):
        super().__init__(filename)
        self.indexes_dir = str(INDEXES_DIR)


class FileIndex(core.Index):
    """A mirdata index JSON anywhere on disk (a subset, or a custom copy)."""

    def __init__(self, path):
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"index file {path} does not exist.")
        super().__init__(path.name)
        self.indexes_dir = str(path.parent)


def choose_indexes(shipped: dict, index, version: str) -> dict:
    """The shipped indexes, or only ``index`` (a JSON path) when given."""
    if index is None:
        return shipped
    if version != "default":
        raise ValueError("Give either index= (a custom index file) or version=, not both.")
    return {"default": "custom", "custom": FileIndex(index)}


class Remote(download_utils.RemoteFileMetadata):
    """A remote archive with its size and SHA-256 (mirdata's ``checksum`` is MD5).

    Parameters
    ----------
    filename, url : str
    sha256 : str or None
        Expected SHA-256; None when nobody has published one.
    size : int or None
        Expected size in bytes.
    contents : list of str
        Top-level folders (or files) the archive extracts to, relative to
        ``data_home``; used to recognise an already extracted folder.
    extracted_size : int or None
        Most bytes the extracted archive should hold (an upper bound);
        extraction refuses more. None: :func:`pdmer._download.extract_limit`.
    """

    def __init__(self, filename, url, sha256=None, size=None, contents=(),
                 extracted_size=None):
        super().__init__(filename=filename, url=url, checksum=None)
        self.sha256 = sha256
        self.size = size
        self.contents = list(contents)
        self.extracted_size = extracted_size


def with_mirror(remote: Remote, mirror: str | None) -> str:
    """The remote's URL, or the same file name under ``mirror``."""
    if not mirror:
        return remote.url
    return mirror.rstrip("/") + "/" + remote.filename


def fetch_parts(dataset_name: str, data_home, remotes: dict, parts, *, mirror=None,
                from_path=None, force_overwrite=False, cleanup=False,
                accept_mismatch=False, progress=True) -> list[str]:
    """Download (or take from ``from_path``) and extract the given parts.

    Returns the list of parts that were actually (re)installed; parts already
    installed are skipped, so a second call does nothing.
    """
    data_home = Path(data_home)
    unknown = [p for p in parts if p not in remotes]
    if unknown:
        raise ValueError(f"{dataset_name}: unknown part(s) {unknown}; choose from "
                         f"{sorted(remotes)}.")
    done = []
    for part in parts:
        remote = remotes[part]
        marker = data_home / _STATE_DIR / f"{remote.filename}.installed"
        if marker.exists() and not force_overwrite and all(
                (data_home / c).exists() for c in remote.contents):
            _say(progress, f"{dataset_name}: {part} already installed in {data_home} "
                           "(force_overwrite=True / --force installs it again)")
            continue
        source = _local_source(remote, from_path) if from_path is not None else None
        if isinstance(source, Path) and source.is_dir():
            _say(progress, f"{dataset_name}: {part}: copying the extracted files from "
                           f"{source}")
            _copy_tree(source, data_home, remote.contents, force_overwrite)
            installed_sha256 = None  # no archive was seen
        else:
            archive = source
            if archive is None:
                archive = download_file(with_mirror(remote, mirror),
                                        data_home / remote.filename, size=remote.size,
                                        sha256=remote.sha256,
                                        accept_mismatch=accept_mismatch, progress=progress)
            else:
                _check_archive(archive, remote, accept_mismatch)
            # Record the hash actually installed, not the one expected.
            installed_sha256 = (remote.sha256 if remote.sha256 and not accept_mismatch
                                else sha256_file(archive))
            safe_extract(archive, data_home, progress=progress,
                         max_size=remote.extracted_size)
            missing = [c for c in remote.contents if not (data_home / c).exists()]
            if missing:
                raise ValueError(
                    f"{archive} did not contain {missing} (expected the official "
                    f"{remote.filename} layout).")
            if cleanup and archive.parent == data_home:
                archive.unlink()
        atomic_write(marker, lambda tmp: Path(tmp).write_text(
            json.dumps({"file": remote.filename, "sha256": installed_sha256})))
        done.append(part)
    return done


def _say(progress, message):
    if progress:
        print(message, file=sys.stderr)


def _local_source(remote: Remote, from_path) -> Path:
    """The archive or extracted folder for ``remote`` under ``from_path``."""
    path = Path(from_path).expanduser()
    if path.is_file():
        if path.name != remote.filename:
            raise ValueError(f"--from {path}: expected a file named {remote.filename}.")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"--from {path}: no such file or folder.")
    if (path / remote.filename).is_file():
        return path / remote.filename
    if remote.contents and all((path / c).exists() for c in remote.contents):
        return path
    raise FileNotFoundError(
        f"--from {path}: found neither {remote.filename} nor the extracted "
        f"{', '.join(remote.contents)} in it.")


def _check_archive(archive: Path, remote: Remote, accept_mismatch: bool):
    """Verify a user-supplied archive like a downloaded one (a size never passes)."""
    problem = verify_file(archive, remote.size, remote.sha256, accept_mismatch=accept_mismatch)
    if problem is not None:
        hint = (" Pass accept_mismatch=True (--accept-checksum-mismatch) to use it anyway."
                if problem.startswith("its SHA-256") else "")
        raise ChecksumError(f"{archive}: {problem}.{hint}")


def _copy_tree(source: Path, data_home: Path, contents, overwrite=False):
    """Hard-link (or copy) ``contents`` of an extracted folder into data_home."""
    if source.resolve() == data_home.resolve():
        return
    for top in contents:
        src = source / top
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for f in files:
            target = data_home / f.relative_to(source)
            if target.exists() and not overwrite:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            try:
                os.link(f, tmp)
            except OSError:
                shutil.copyfile(f, tmp)
            os.replace(tmp, target)


_DURATIONS = "audio_durations.json"


def decoded_durations(data_home, rel_paths, progress=True) -> dict:
    """{relative path: seconds of audio as decoded} for audio files under data_home.

    MP3 headers overstate lengths by up to ~0.1 s, and a label frame must lie
    within the decoded audio, so every file is decoded once (as
    :func:`pdmer.features.audio.load_audio` does) and the result is kept in
    ``<data_home>/.pdmer/audio_durations.json`` (keyed by path and file size).
    """
    import soundfile as sf
    from tqdm.auto import tqdm

    home = Path(data_home)
    cache_path = home / _STATE_DIR / _DURATIONS
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    out, todo = {}, []
    for rel in rel_paths:
        path = home / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing, so the labels cannot be checked against the audio. "
                "Install the audio, or pass trim_to_audio=False.")
        entry = cache.get(rel)
        if entry and entry[0] == path.stat().st_size:
            out[rel] = entry[1]
        else:
            todo.append(rel)
    for rel in tqdm(todo, desc="measuring audio lengths", unit="file",
                    disable=not progress or not todo, file=sys.stderr):
        path = home / rel
        with sf.SoundFile(path) as f:
            frames = sum(len(block) for block in f.blocks(blocksize=1 << 16))
            seconds = frames / f.samplerate
        out[rel] = seconds
        cache[rel] = [path.stat().st_size, seconds]
    if todo:
        text = json.dumps(cache)
        atomic_write(cache_path, lambda tmp: Path(tmp).write_text(text), suffix=".json")
    return out


def frames_within(seconds: float, frame_offset: float) -> int:
    """Whole 0.5 s label frames from ``frame_offset`` within ``seconds`` of audio."""
    return max(0, int(np.floor((seconds - frame_offset) / 0.5 + 1e-6)))


def validate_index(index: dict, data_home, keys=None, verbose=True):
    """Missing and invalid files of a mirdata index, as mirdata returns them.

    Like :func:`mirdata.validate.validator`, except that an index entry whose
    checksum is None (unknown) is checked for existence and non-emptiness only.
    ``keys`` restricts the check to these file keys (None: all).
    """
    missing = {"metadata": {}, "tracks": {}}
    invalid = {"metadata": {}, "tracks": {}}

    def check(group, item_id, key, entry):
        if keys is not None and key not in keys:
            return
        rel, checksum = entry
        if rel is None:
            return
        path = os.path.join(data_home, rel)
        if not os.path.isfile(path):
            missing[group].setdefault(item_id, []).append(path)
        elif os.path.getsize(path) == 0 or (
                checksum is not None and mir_validate.md5(path) != checksum):
            invalid[group].setdefault(item_id, []).append(path)

    for name, entry in (index.get("metadata") or {}).items():
        check("metadata", name, name, entry)
    for track_id, files in index["tracks"].items():
        for key, entry in files.items():
            check("tracks", track_id, key, entry)
    if verbose:
        n_missing = sum(len(v) for g in missing.values() for v in g.values())
        n_invalid = sum(len(v) for g in invalid.values() for v in g.values())
        print(f"{n_missing} missing file(s), {n_invalid} invalid file(s) in {data_home}",
              file=sys.stderr)
    return missing, invalid


class DatasetFiles:
    """A data set's dataset-wide files (index ``metadata`` entries), parsed on first use.

    Subclasses add one ``core.cached_property`` per file and say, in
    ``missing_hint``, how to get the data when a file is missing.
    """

    missing_hint = ""

    def __init__(self, data_home, index):
        self._home = Path(data_home)
        self._files = index["metadata"]

    def path(self, key) -> Path:
        path = self._home / self._files[key][0]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing. {self.missing_hint}")
        return path


class LoaderDataset(core.Dataset):
    """A mirdata Dataset whose tracks share one :class:`DatasetFiles` (``files_class``)."""

    files_class = DatasetFiles

    @core.cached_property
    def _metadata(self):
        return self.files_class(self.data_home, self._index)

    def _track(self, track_id):
        # One Track object per song, so that its cached annotations are parsed once.
        cache = self.__dict__.setdefault("_track_cache", {})
        if track_id not in cache:
            cache[track_id] = super()._track(track_id)
        return cache[track_id]


def write_index(path, tracks: dict, metadata: dict, version: str):
    """Write a mirdata index JSON (paths relative to data_home, checksum or None)."""
    index = {"version": version, "tracks": tracks, "metadata": metadata}
    text = json.dumps(index, separators=(",", ":")) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                 suffix=".json")
    os.chmod(path, 0o644)  # package data: readable by everyone


def read_text(path) -> str:
    """A text file as str: UTF-8 (with or without BOM), else Latin-1."""
    data = Path(path).read_bytes()
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
        dialect = csv.Sniffer().sniff(first, delimiters=delimiters)
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path} is empty; expected a CSV with a header row.") from None
    rows = [[c.strip() for c in row] for row in reader if any(c.strip() for c in row)]
    return header, rows


def norm(name: str) -> str:
    """A column name reduced to lowercase letters and digits (for tolerant lookup)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def find_column(header, *candidates, path=None, required=True):
    """Index of the first header column whose normalised name is a candidate."""
    normalised = [norm(h) for h in header]
    for cand in candidates:
        if norm(cand) in normalised:
            return normalised.index(norm(cand))
    if required:
        raise ValueError(f"{path}: none of the columns {list(candidates)} found in the "
                         f"header {header}.")
    return None


def to_float(cell: str) -> float:
    """A CSV cell as float; empty or 'NaN' cells are NaN."""
    cell = cell.strip()
    if not cell or cell.lower() in ("nan", "na", "null"):
        return float("nan")
    return float(cell)


def clean_curve(values: np.ndarray) -> np.ndarray:
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
