"""On-disk cache of extracted features, keyed by audio content and settings.

Each entry is one safetensors file (no pickle) named by a SHA-256 of the
audio's bytes and every setting that changes the result; it is written
atomically and carries a checksum of its arrays and its own key, so an entry
that is truncated, corrupted or copied under another name is detected,
removed and recomputed. A folder that cannot be written is read but not
filled: features are then computed without caching, with one warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from pdmer.files import atomic_write
from pdmer.features.container import SongFeatures

#: Bumped whenever extraction changes in a way the settings do not capture.
CACHE_VERSION = "2"
_ENV = "PDMER_CACHE_DIR"


def default_cache_dir() -> Path:
    """pdmer's user cache folder (model weights, extracted features).

    ``$PDMER_CACHE_DIR`` if set, else the platform's user cache directory
    (platformdirs), e.g. ``~/.cache/pdmer`` on Linux.
    """
    override = os.environ.get(_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pdmer", appauthor=False))


def default_feature_dir() -> Path:
    """Where ``pdmer extract`` keeps features unless told otherwise."""
    return default_cache_dir() / "features"


def cache_size(path=None) -> int:
    """Total size in bytes of the files under ``path`` (default: the feature cache)."""
    root = Path(default_feature_dir() if path is None else path)
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


_FILE_HASHES: dict = {}


def content_hash(item) -> str:
    """SHA-256 of an audio file's bytes, or of a ``(waveform, rate)`` pair.

    File hashes are remembered per (path, size, modification time), so a
    file is read once per process.
    """
    if isinstance(item, tuple):
        waveform, rate = item
        digest = hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes())
        digest.update(f"|{np.shape(waveform)}|{int(rate)}".encode())
        return "array-" + digest.hexdigest()
    path = os.fspath(item)
    stat = os.stat(path)
    memo = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[memo] = digest.hexdigest()
    return _FILE_HASHES[memo]


def state_dict_digest(state: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a torch state dict."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():  # 0-d tensors cannot be viewed as bytes directly
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _checksum(arrays: dict) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """A folder of cached :class:`~pdmer.features.SongFeatures`.

    Parameters
    ----------
    directory : str or os.PathLike
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.writable = True

    def key(self, content: str, settings: dict) -> str:
        """Entry name for audio ``content`` (a hash) extracted with ``settings``."""
        blob = json.dumps({"content": content, "settings": settings, "version": CACHE_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str, source: str) -> SongFeatures | None:
        """The cached features, or None when absent or unreadable (then removed)."""
        from safetensors.numpy import load_file
        from safetensors import safe_open

        path = self.path(key)
        try:
            if not path.is_file():
                return None
        except OSError:  # a folder we may not look into: nothing cached there for us
            return None
        try:
            with safe_open(path, framework="numpy") as handle:
                meta = handle.metadata() or {}
            arrays = load_file(path)
            if meta.get("version") != CACHE_VERSION or meta.get("checksum") != _checksum(arrays):
                raise ValueError("checksum or version mismatch")
            if meta.get("key") != key:
                raise ValueError("the entry belongs to another key (copied or renamed)")
            rate = meta.get("waveform_rate")
            return SongFeatures(arrays["local_patches"], arrays["global_embeddings"],
                                frame_offset=float(meta["frame_offset"]),
                                encoder=meta["encoder"], source=source,
                                waveforms=arrays.get("waveforms"),
                                waveform_rate=None if rate in (None, "") else int(rate))
        except Exception as err:  # any damage: recompute rather than fail
            warnings.warn(f"Feature cache entry {path} is unreadable ({err}); recomputing it.",
                          RuntimeWarning, stacklevel=2)
            try:
                path.unlink(missing_ok=True)
            except OSError:  # read-only cache: the entry is ignored, not removed
                pass
            return None

    def put(self, key: str, features: SongFeatures) -> None:
        """Store ``features`` under ``key``; after a failed write, warn once and stop trying."""
        from safetensors.numpy import save_file

        if not self.writable:
            return

        arrays = {"local_patches": features.local_patches,
                  "global_embeddings": features.global_embeddings}
        if features.waveforms is not None:
            arrays["waveforms"] = features.waveforms
        meta = {"version": CACHE_VERSION, "key": key, "checksum": _checksum(arrays),
                "frame_offset": repr(float(features.frame_offset)), "encoder": features.encoder,
                "waveform_rate": "" if features.waveform_rate is None
                else str(features.waveform_rate)}
        try:
            atomic_write(self.path(key), lambda tmp: save_file(arrays, tmp, metadata=meta),
                         suffix=".safetensors")
        except OSError as err:  # read-only, full or missing folder: compute without caching
            self.writable = False
            warnings.warn(f"Cannot write to the feature cache {self.directory} ({err}); "
                          "features are computed without caching. Pass a writable "
                          "cache_dir, or cache_dir=None.", RuntimeWarning, stacklevel=2)
