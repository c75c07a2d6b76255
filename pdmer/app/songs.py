"""The songs: the catalog folder, listeners' uploads, and their features.

Features are what makes prediction slow, so each song's are extracted once
per frame offset and kept in memory (LRU, bounded in bytes) and on disk (the
front end's ``cache_dir``, keyed by the audio's content).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import soundfile as sf
from cachetools import LRUCache
from sklearn.base import clone
from sqlalchemy import delete, func, or_, select

from pdmer.app.errors import Invalid, NotFound, TooLarge
from pdmer.app.storage import Annotation, Listener, Prediction, Song
from pdmer.app.worker import INTERACTIVE
from pdmer.features.audio import AudioError
from pdmer.features.cache import content_hash
from pdmer.labels import whole_frames

log = logging.getLogger("pdmer.app")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
"""Audio files the app lists and accepts (what libsndfile decodes)."""

MAX_SAMPLE_RATE = 96000
"""Highest sample rate of an upload (Hz): hi-res audio, not more."""
MAX_CHANNELS = 8
"""Most channels of an upload (7.1 surround)."""


class SongLibrary:
    """Songs in the database, their files and their features.

    Parameters
    ----------
    db : Database
    songs_dir : Path
        The catalog folder (every listener sees its songs).
    uploads_dir : Path
        Where uploaded audio is kept, named by its SHA-256.
    front_end : AudioFeatures
        The model's front end, with a ``cache_dir``.
    run_on_model : callable
        ``run_on_model(priority, function, *args)`` runs on the model thread
        and returns the result (extraction shares the model's thread).
    max_upload_bytes : int
    max_song_seconds : float
        Longest upload, checked from the header before decoding.
    memory_bytes : int
        RAM for features kept in memory.
    """

    def __init__(self, db, songs_dir, uploads_dir, front_end, run_on_model,
                 max_upload_bytes, max_song_seconds, memory_bytes):
        self.db = db
        self.songs_dir = Path(songs_dir)
        self.uploads_dir = Path(uploads_dir)
        self.front_end = front_end
        self.frame_offset = float(front_end.frame_offset)
        self.run_on_model = run_on_model
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_song_seconds = float(max_song_seconds)
        # Touched only on the model thread, so it needs no lock.
        self._features = LRUCache(memory_bytes, getsizeof=_features_bytes)

    def scan(self) -> int:
        """Add new audio files of the catalog folder, mark vanished ones
        unavailable, refresh changed ones. Returns the number available."""
        found = {str(p): p for p in sorted(self.songs_dir.rglob("*"))
                 if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(
                     self.songs_dir).parts)}
        with self.db.session() as session:
            known = {s.path: s for s in session.scalars(
                select(Song).where(Song.owner_id.is_(None)))}
            for path, song in known.items():
                song.available = path in found
            for path, file in found.items():
                try:
                    duration = sf.info(path).duration
                    digest = content_hash(path)
                except Exception as err:  # one bad file must not stop the app
                    problem = str(err)
                else:
                    n_frames = self._whole_frames(duration)
                    problem = None if n_frames >= 1 else (
                        f"{duration:.2f} s is too short for one 0.5 s frame after "
                        f"{self.frame_offset:g} s")
                song = known.get(path)
                if problem is not None:
                    log.warning("Skipping %s: %s", path, problem)
                    if song is not None:
                        song.available = False
                    continue
                if song is None:
                    title = str(file.relative_to(self.songs_dir).with_suffix(""))
                    session.add(Song(title=title, path=path, sha256=digest, duration=duration,
                                     n_frames=n_frames, owner_id=None))
                elif song.sha256 != digest:  # the file changed: old curves are stale
                    song.sha256, song.duration, song.n_frames = digest, duration, n_frames
                    session.execute(delete(Prediction).where(Prediction.song_id == song.id))
            session.commit()
            return session.scalar(select(func.count(Song.id)).where(
                Song.owner_id.is_(None), Song.available))

    def _whole_frames(self, duration: float) -> int:
        # As AudioFeatures counts them (exact once extracted; see features()).
        return whole_frames(duration, self.frame_offset)

    def songs(self, listener: Listener) -> list[Song]:
        """The catalog and the listener's own uploads."""
        with self.db.session() as session:
            return list(session.scalars(select(Song).where(visible_to(listener.id)).order_by(
                Song.owner_id.is_not(None), Song.title, Song.id)))

    def song(self, listener: Listener, song_id: int) -> Song:
        with self.db.session() as session:
            song = session.scalar(select(Song).where(Song.id == song_id, visible_to(listener.id)))
        if song is None:
            raise NotFound(f"No song {song_id} (GET /api/songs lists yours).")
        return song

    def annotated_ids(self, listener: Listener) -> set:
        with self.db.session() as session:
            return set(session.scalars(select(Annotation.song_id).where(
                Annotation.listener_id == listener.id)))

    def add(self, listener: Listener, filename: str, data: bytes) -> Song:
        """Store an uploaded audio file as the listener's song, after checking it decodes."""
        name = safe_name(filename, "song.wav")
        suffix = Path(name).suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise Invalid(f"{name}: unsupported audio type {suffix or '(no extension)'}; "
                          f"upload one of {', '.join(AUDIO_SUFFIXES)}.")
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"{name} is {len(data) / 2**20:.1f} MiB; the limit for audio is "
                           f"{self.max_upload_bytes / 2**20:g} MiB.")
        digest = hashlib.sha256(data).hexdigest()
        with self.db.session() as session:
            same = session.scalar(select(Song).where(Song.owner_id == listener.id,
                                                     Song.sha256 == digest))
        if same is not None:
            return same
        target = self.uploads_dir / f"{digest}{suffix}"
        with tempfile.TemporaryDirectory(dir=self.uploads_dir) as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                self._check_size(str(path), name)
                # The front end's checks: decodable, finite, not silent, one frame long.
                self.run_on_model(INTERACTIVE, self.extract, str(path), self.frame_offset)
                duration = sf.info(str(path)).duration
            except (AudioError, ValueError, RuntimeError, sf.LibsndfileError) as err:
                raise Invalid(strip_folder(err, tmp)) from None
            os.replace(path, target)
        with self.db.session() as session:
            song = Song(title=Path(name).stem, path=str(target), sha256=digest,
                        duration=duration, n_frames=self._whole_frames(duration),
                        owner_id=listener.id)
            session.add(song)
            session.commit()
        return song

    def _check_size(self, path: str, name: str):
        """Check from the header that an upload decodes to a reasonable size (a few
        KiB at 100 Hz hold hours of audio), before decoding it."""
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError):
            return  # not audio: decoding it says why
        if info.samplerate > MAX_SAMPLE_RATE:
            raise Invalid(f"{name} has a sample rate of {info.samplerate} Hz; the app takes up "
                          f"to {MAX_SAMPLE_RATE} Hz. Resample it (e.g. ffmpeg -ar 44100).")
        if info.channels > MAX_CHANNELS:
            raise Invalid(f"{name} has {info.channels} channels; the app takes up to "
                          f"{MAX_CHANNELS}. Mix it down (e.g. ffmpeg -ac 2).")
        if info.duration > self.max_song_seconds:
            raise TooLarge(f"{name} is {info.duration:.1f} s long; the limit is "
                           f"{self.max_song_seconds / 60:g} minutes (--max-song-minutes).")

    def features(self, song: Song, offset: float):
        """A song's features from ``offset`` on (worker thread; memory, disk, or extracted).

        Raises :class:`Invalid`, naming the song by its title (never its path),
        if the audio cannot be used from ``offset``.
        """
        key = (song.id, song.sha256, float(offset))
        features = self._features.get(key)
        if features is None:
            try:
                features = self.extract(song.path, offset)
            except (AudioError, ValueError, FileNotFoundError) as err:
                raise Invalid(" ".join(str(err).replace(song.path, song.title).split())) \
                    from None
            remember(self._features, key, features)
            if offset == self.frame_offset and features.n_frames != song.n_frames:
                with self.db.session() as session:  # sf.info may misjudge MP3 lengths
                    session.execute(Song.__table__.update().where(Song.id == song.id).values(
                        n_frames=features.n_frames))
                    session.commit()
        return features

    def extract(self, path: str, offset: float):
        front_end = self.front_end if offset == self.frame_offset else clone(
            self.front_end).set_params(frame_offset=offset)
        [features] = front_end.transform([path])
        return features


def visible_to(listener_id: int):
    """Songs a listener may use: the available catalog and their own uploads."""
    return or_(Song.owner_id == listener_id, (Song.owner_id.is_(None)) & Song.available)


def safe_name(filename, default: str) -> str:
    """The base name of an uploaded file, reduced to safe characters."""
    name = re.sub(r"[^\w.\-]+", "_", Path(filename or "").name).strip("._")[:100]
    return name or default


def strip_folder(err, folder) -> str:
    """An error message that names the uploaded file, not our temporary folder."""
    return " ".join(str(err).replace(str(folder) + os.sep, "").split())


def remember(cache, key, value):
    try:
        cache[key] = value
    except ValueError:  # larger than the whole cache: just don't keep it
        pass


def _features_bytes(features) -> int:
    total = features.local_patches.nbytes + features.global_embeddings.nbytes
    return total + (0 if features.waveforms is None else features.waveforms.nbytes)
