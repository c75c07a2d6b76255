"""What the DEAM and PMEmo loaders share on top of mirdata's core classes.

Both follow mirdata's conventions: a shipped index of the expected files,
``Dataset._metadata`` returning one dict per track (built from the
dataset-wide files), ``Track.split`` read by ``Dataset.get_track_splits``.
pdmer adds: package-data indexes, a per-song Track cache, messages that say
how to install a missing file, validation of files without published
checksums, verified downloads, the decoded length of each audio file, the
validation songs drawn from the training songs, and mean-label tables.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from mirdata import core, validate as mir_validate

from pdmer.labels import whole_frames
from pdmer_datasets._install import STATE_DIR, fetch_parts
from pdmer.files import atomic_write
from pdmer_datasets.registry import DATASETS
from pdmer_datasets.table import AnnotationTable

INDEXES_DIR = Path(__file__).resolve().parent / "indexes"

_DURATIONS = "audio_durations.json"


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


def write_index(path, tracks: dict, metadata: dict, version: str):
    """Write a mirdata index JSON (paths relative to data_home, checksum or None)."""
    index = {"version": version, "tracks": tracks, "metadata": metadata}
    text = json.dumps(index, separators=(",", ":")) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                 suffix=".json")
    os.chmod(path, 0o644)  # package data: readable by everyone


def _part_of(dataset_name: str, rel: str):
    """The download part whose archive holds ``rel`` (a path under data_home)."""
    for part, remote in DATASETS[dataset_name].remotes.items():
        if any(rel == c or rel.startswith(c.rstrip("/") + "/") for c in remote.contents):
            return part
    return None


def require_file(path, dataset_name: str, data_home) -> str:
    """``path`` if it is a file, else a FileNotFoundError that says how to install it."""
    if os.path.isfile(path):
        return path
    rel = os.path.relpath(path, data_home).replace(os.sep, "/")
    part = _part_of(dataset_name, rel)
    only = f" --only {part}" if part and len(DATASETS[dataset_name].remotes) > 1 else ""
    raise FileNotFoundError(
        f"{path} is missing: {dataset_name} is not (completely) installed in {data_home}. "
        f"Run `pdmer download {dataset_name}{only}` (or Dataset.download()), or point "
        "data_home (--data-home) at your copy.")


def hold_out_validation(pool, split, validation_size, random_state) -> list:
    """The ``"train"`` or ``"validation"`` part of the training songs ``pool``.

    ``round(validation_size * len(pool))`` songs, drawn with
    ``random_state``, are the validation part; both parts keep ``pool``'s
    order. The caller checks ``split`` and ``validation_size``.
    """
    n_val = int(round(validation_size * len(pool)))
    chosen = set(np.random.default_rng(random_state).permutation(len(pool))[:n_val].tolist())
    if split == "validation" and not chosen:
        raise ValueError("validation_size=0 leaves no validation songs.")
    return [s for i, s in enumerate(pool) if (i in chosen) == (split == "validation")]


class LoaderTrack(core.Track):
    """A song whose dataset-wide values come from ``Dataset._metadata`` (one dict per song).

    Attributes
    ----------
    audio_path : str
    split : str or None
        The song's split (read by ``Dataset.get_track_splits()``).
    """

    def __init__(self, track_id, data_home, dataset_name, index, metadata):
        super().__init__(track_id, data_home, dataset_name, index, metadata)
        self._dataset_files = index["metadata"]
        self.audio_path = self.get_path("audio")

    @property
    def split(self):
        """str or None: the split the song belongs to"""
        return self._track_metadata["split"]

    def _file(self, key) -> str:
        """A per-song file of the index, checked to exist."""
        return require_file(self.get_path(key), self._dataset_name, self._data_home)

    def _value(self, key, *file_keys, default=None):
        """``_metadata[song][key]``, read from the dataset-wide ``file_keys``.

        ``default`` when the files have no row for this song; a
        FileNotFoundError naming the install step when a file is absent.
        """
        entry = self._track_metadata
        if key not in entry:
            for file_key in file_keys:
                path = os.path.join(self._data_home, self._dataset_files[file_key][0])
                require_file(path, self._dataset_name, self._data_home)
        return entry.get(key, default)


class LoaderDataset(core.Dataset):
    """A mirdata Dataset with pdmer's install, validation and audio-length helpers."""

    frame_offset = 0.0

    def _track(self, track_id):
        # One Track object per song, so that its cached annotations are parsed once.
        cache = self.__dict__.setdefault("_track_cache", {})
        if track_id not in cache:
            cache[track_id] = super()._track(track_id)
        return cache[track_id]

    def _present(self, key):
        """The path of a dataset-wide index file, or None while it is not installed."""
        path = Path(self.data_home) / self._index["metadata"][key][0]
        return path if path.is_file() else None

    def download(self, partial_download=None, force_overwrite=False, cleanup=False,
                 allow_invalid_checksum=False, *, mirror=None, from_path=None,
                 remotes=None, progress=True):
        """Download, verify and extract the data set into ``data_home``.

        Parameters
        ----------
        partial_download : list of str, optional
            Parts to get (``DATASETS[name].parts``); None gets all.
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
            extracted copy to install from instead of downloading.
        remotes : dict, optional
            Replaces the registry's remotes (other URLs or checksums).
        progress : bool, default=True

        Returns
        -------
        list of str
            The parts installed by this call (empty when all were there).
        """
        remotes = remotes or self.remotes
        return fetch_parts(self.name, self.data_home, remotes,
                           list(partial_download or remotes), mirror=mirror,
                           from_path=from_path, force_overwrite=force_overwrite,
                           cleanup=cleanup, accept_mismatch=allow_invalid_checksum,
                           progress=progress)

    def validate(self, verbose=True, parts=None):
        """Files of the index that are missing or invalid under ``data_home``.

        Like :func:`mirdata.validate.validator`, except that an index entry
        whose checksum is None (nobody publishes per-file checksums for DEAM
        or PMEmo) is checked for existence and non-emptiness only.

        Parameters
        ----------
        verbose : bool, default=True
        parts : list of str, optional
            Only the files of these download parts.

        Returns
        -------
        missing, invalid : dict
            ``{"tracks": {id: [paths]}, "metadata": {key: [paths]}}``.
        """
        unknown = sorted(set(parts or ()) - set(self.remotes))
        if unknown:
            raise ValueError(f"{self.name}: unknown part(s) {unknown}; choose from "
                             f"{sorted(self.remotes)}.")
        missing = {"metadata": {}, "tracks": {}}
        invalid = {"metadata": {}, "tracks": {}}

        def check(group, item_id, entry):
            rel, checksum = entry
            if rel is None or (parts is not None and _part_of(self.name, rel) not in parts):
                return
            path = os.path.join(self.data_home, rel)
            if not os.path.isfile(path):
                missing[group].setdefault(item_id, []).append(path)
            elif os.path.getsize(path) == 0 or (
                    checksum is not None and mir_validate.md5(path) != checksum):
                invalid[group].setdefault(item_id, []).append(path)

        for key, entry in (self._index.get("metadata") or {}).items():
            check("metadata", key, entry)
        for track_id, entries in self._index["tracks"].items():
            for entry in entries.values():
                check("tracks", track_id, entry)
        if verbose:
            n_missing = sum(len(v) for g in missing.values() for v in g.values())
            n_invalid = sum(len(v) for g in invalid.values() for v in g.values())
            print(f"{n_missing} missing file(s), {n_invalid} invalid file(s) in "
                  f"{self.data_home}", file=sys.stderr)
        return missing, invalid

    def _mean_label_table(self, song_ids, curve_of, trim_to_audio, max_frames,
                          progress) -> AnnotationTable:
        """One row per song of ``song_ids``: the labels of ``curve_of(track)``.

        The labels are cut to the decoded audio (see :meth:`_audio_frames`)
        and to ``max_frames``; a song left without frames is dropped.
        """
        limit = self._audio_frames(song_ids, trim_to_audio, progress)
        X, y, songs = [], [], []
        for sid in song_ids:
            track = self.track(sid)
            labels = curve_of(track).labels[:limit[sid]][:max_frames]
            if len(labels):
                X.append(track.audio_path)
                y.append(labels)
                songs.append(sid)
        return AnnotationTable(X=X, y=y, annotators=None, song_ids=np.array(songs, dtype=str),
                               frame_offset=self.frame_offset)

    def _audio_frames(self, song_ids, trim_to_audio, progress) -> dict:
        """{song: label frames within its decoded audio} (None: no limit).

        MP3 headers overstate lengths by up to ~0.1 s, and a label frame must
        lie within the decoded audio, so every file is decoded once (as
        :func:`pdmer.features.audio.load_audio` does) and the result is kept
        in ``<data_home>/.pdmer/audio_durations.json`` (keyed by path and size).
        """
        if not trim_to_audio:
            return dict.fromkeys(song_ids)
        rel = {sid: self._index["tracks"][sid]["audio"][0] for sid in song_ids}
        seconds = self._decoded_durations(list(rel.values()), progress)
        return {sid: whole_frames(seconds[r], self.frame_offset) for sid, r in rel.items()}

    def _decoded_durations(self, rel_paths, progress) -> dict:
        import soundfile as sf
        from tqdm.auto import tqdm

        home = Path(self.data_home)
        cache_path = home / STATE_DIR / _DURATIONS
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        out, todo = {}, []
        for rel in rel_paths:
            path = home / rel
            if not path.is_file():
                try:
                    require_file(str(path), self.name, self.data_home)
                except FileNotFoundError as err:
                    raise FileNotFoundError(
                        f"{err} The labels are checked against the decoded audio; "
                        "pass trim_to_audio=False to skip that.") from None
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
