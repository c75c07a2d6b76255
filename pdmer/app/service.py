"""What the app does, without HTTP: listeners, annotations, personalization
jobs and predictions (songs and their features: :mod:`pdmer.app.songs`).

One fitted model stays in memory. Every use of it -- feature extraction,
adaptation, prediction -- runs on one :class:`~pdmer.app.worker.ModelWorker`
thread, because adaptation and prediction share one torch module. Each
listener's adaptation is applied per request (``predict(X, listener=...)``);
the model is never copied or changed.

Caches: song features (see :class:`~pdmer.app.songs.SongLibrary`);
adaptations in memory (LRU, bounded in bytes); predicted curves in the
database, one per (song, model, adaptation), so a listener's curve of a song
is computed once.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from cachetools import LRUCache
from sklearn.base import clone
from sqlalchemy import delete, func, select

from pdmer.app import storage
from pdmer.app.errors import Invalid, NotFound, TooLarge
from pdmer.app.songs import SongLibrary, remember, safe_name, strip_folder, visible_to
from pdmer.app.storage import (
    Adaptation,
    AdaptationData,
    Annotation,
    Database,
    Job,
    Listener,
    Prediction,
    Song,
)
from pdmer.app.worker import BACKGROUND, IDLE, INTERACTIVE, ModelWorker
from pdmer.estimators import ListenerAdaptation
from pdmer.estimators.validation import LABEL_RANGE, LABEL_TOLERANCE, check_y
from pdmer.labels import FRAME_SECONDS
from pdmer_datasets.csvfiles import read_labels

log = logging.getLogger("pdmer.app")

_PROGRESS_INTERVAL = 0.2  # seconds between job progress writes

MAX_NAME_LENGTH = 200
"""Longest listener name (characters)."""


class Service:
    """The app's state and operations.

    Parameters
    ----------
    model : estimator
        A fitted pdmer estimator without a current listener (``listener_``).
    songs_dir : path-like
        The catalog: audio files in this folder (and below) that every
        listener sees.
    data_dir : path-like
        Where the app keeps uploaded audio, extracted features and (without
        ``db_url``) its SQLite database ``app.sqlite``.
    db_url : str, optional
        SQLAlchemy database URL (e.g. ``postgresql+psycopg://...``).
    max_upload_bytes : int, default=50 MiB
        Largest audio upload.
    max_label_bytes : int, default=1 MiB
        Largest label CSV upload.
    max_song_seconds : float, default=900
        Longest audio upload (checked from its header, before decoding).
    memory_mb : int, default=1024
        Memory for song features and adaptations kept in RAM (half each).
    """

    def __init__(self, model, songs_dir, data_dir, db_url=None,
                 max_upload_bytes=50 * 2**20, max_label_bytes=2**20, max_song_seconds=900.0,
                 memory_mb=1024):
        if getattr(model, "listener_", None) is not None:
            raise ValueError("The model has a current listener (listener_); call "
                             "reset_personalization() first: the app applies each "
                             "listener's adaptation itself.")
        self.model = model
        self.model_id = model.model_id_
        songs_dir = Path(songs_dir).resolve()
        if not songs_dir.is_dir():
            raise FileNotFoundError(f"Songs folder not found: {songs_dir}")
        self.data_dir = Path(data_dir).resolve()
        uploads = self.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        front_end = clone(model.make_front_end()).set_params(
            cache_dir=str(self.data_dir / "features"), progress=False, n_jobs=None)
        self.frame_offset = float(front_end.frame_offset)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_label_bytes = int(max_label_bytes)
        self.db = Database(db_url or f"sqlite:///{self.data_dir / 'app.sqlite'}")
        half = int(memory_mb) * 2**20 // 2
        self.library = SongLibrary(self.db, songs_dir, uploads, front_end, self._on_worker,
                                   self.max_upload_bytes, max_song_seconds, half)
        # Touched only on the worker thread, so it needs no lock.
        self._adaptations = LRUCache(half, getsizeof=_adaptation_bytes)
        self.worker = None
        self.precompute = False
        # Requests run on a thread pool: looking for a queued job and adding
        # one must not interleave (one process per database: Database.claim).
        self._enqueue = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def start(self, prefetch=True, precompute=True):
        """Scan the catalog, resume unfinished jobs and start the model thread.

        Parameters
        ----------
        prefetch : bool, default=True
            Extract the features of every catalog song in the background.
        precompute : bool, default=True
            After a listener's personalization, compute their curves of every
            song they can see in the background, so that asking is a cache hit.
        """
        self.precompute = precompute
        # Another live app on this database may be running the jobs found
        # "running" below; refuse to start beside it.
        self.db.claim()
        self.worker = ModelWorker()
        self.library.scan()
        with self.db.session() as session:
            pending = session.scalars(select(Job.id).where(
                Job.status.in_(("queued", "running"))).order_by(Job.id)).all()
            for job_id in pending:
                session.get(Job, job_id).status = "queued"
            session.commit()
        for job_id in pending:
            self.worker.submit(BACKGROUND, self._run_job, job_id)
        if prefetch:
            with self.db.session() as session:
                songs = session.scalars(select(Song).where(
                    Song.owner_id.is_(None), Song.available)).all()
            for song in songs:
                self.worker.submit(IDLE, self.library.features, song, self.frame_offset)
        return self

    def close(self):
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        self.db.dispose()

    def _on_worker(self, priority, function, *args):
        return self.worker.submit(priority, function, *args).result()

    # ------------------------------------------------------------ listeners
    def create_listener(self, name: str) -> tuple[Listener, str]:
        """A new listener and its token (only the token's hash is stored)."""
        name = name.strip()
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
            raise Invalid("The name holds control or surrogate characters (e.g. NUL, a line "
                          "break); use printable text.")
        if len(name) > MAX_NAME_LENGTH:
            raise Invalid(f"The name has {len(name)} characters; use at most "
                          f"{MAX_NAME_LENGTH} characters.")
        token = secrets.token_urlsafe(32)
        with self.db.session() as session:
            listener = Listener(name=name or "listener",
                                token_hash=storage.hash_token(token))
            session.add(listener)
            session.commit()
        return listener, token

    def authenticate(self, token: str) -> Listener | None:
        with self.db.session() as session:
            return session.scalar(select(Listener).where(
                Listener.token_hash == storage.hash_token(token)))

    def delete_listener(self, listener: Listener):
        """Forget the listener: annotations, jobs, adaptations, uploads."""
        with self.db.session() as session:
            uploads = session.scalars(select(Song.path).where(
                Song.owner_id == listener.id)).all()
            session.execute(delete(Listener).where(Listener.id == listener.id))
            session.commit()
            for path in uploads:  # content-addressed: another listener may share the file
                if not session.scalar(select(func.count(Song.id)).where(Song.path == path)):
                    Path(path).unlink(missing_ok=True)

    def adaptation(self, listener: Listener) -> Adaptation | None:
        """The listener's adaptation of this model, if any."""
        with self.db.session() as session:
            return session.scalar(select(Adaptation).where(
                Adaptation.listener_id == listener.id,
                Adaptation.model_id == self.model_id).order_by(Adaptation.id.desc()).limit(1))

    def latest_job(self, listener: Listener) -> Job | None:
        with self.db.session() as session:
            return session.scalar(select(Job).where(Job.listener_id == listener.id)
                                  .order_by(Job.id.desc()).limit(1))

    # ---------------------------------------------------------- annotations
    def add_annotation(self, listener: Listener, song_id: int, filename: str,
                       data: bytes) -> Annotation:
        """Check a label CSV (the format ``pdmer personalize`` reads) against
        the song and store it, replacing the listener's earlier one of that song."""
        song = self.library.song(listener, song_id)
        name = safe_name(filename, "labels.csv")
        if len(data) > self.max_label_bytes:
            raise TooLarge(f"{name} is {len(data) / 1024:.0f} KiB; the limit for labels is "
                           f"{self.max_label_bytes / 1024:g} KiB.")
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid(f"{name} is not a UTF-8 text file; upload a label CSV with the "
                          "columns time, arousal and valence.") from None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                labels, offset = read_labels(path, self.frame_offset)
                _check_range(labels, name)
                [labels] = check_y([labels], 1)
            except ValueError as err:
                raise Invalid(strip_folder(err, tmp)) from None
        try:
            features = self._on_worker(INTERACTIVE, self.library.features, song, offset)
        except Invalid as err:
            raise Invalid(f"{name}: the labels start at {offset:g} s, but {song.title} "
                          f"cannot be analysed from there: {err}") from None
        if len(labels) > features.n_frames:
            raise Invalid(
                f"{name}: the labels have {len(labels)} frames ({len(labels) * FRAME_SECONDS:g} "
                f"s from {offset:g} s) but {song.title} has {features.n_frames} whole frames "
                f"after {offset:g} s ({song.duration:.2f} s of audio). Check that the labels "
                "belong to this song.")
        with self.db.session() as session:
            session.execute(delete(Annotation).where(Annotation.listener_id == listener.id,
                                                     Annotation.song_id == song.id))
            annotation = Annotation(listener_id=listener.id, song_id=song.id,
                                    frame_offset=offset, labels=labels.tolist())
            session.add(annotation)
            session.commit()
        return annotation

    def annotations(self, listener: Listener) -> list[Annotation]:
        with self.db.session() as session:
            return list(session.scalars(select(Annotation).where(
                Annotation.listener_id == listener.id).order_by(Annotation.id)))

    def annotation(self, listener: Listener, annotation_id: int) -> Annotation:
        with self.db.session() as session:
            annotation = session.scalar(select(Annotation).where(
                Annotation.id == annotation_id, Annotation.listener_id == listener.id))
        if annotation is None:
            raise NotFound(f"No annotation {annotation_id} of yours.")
        return annotation

    def delete_annotation(self, listener: Listener, annotation_id: int):
        annotation = self.annotation(listener, annotation_id)
        with self.db.session() as session:
            session.execute(delete(Annotation).where(Annotation.id == annotation.id))
            session.commit()

    # ------------------------------------------------------------------ jobs
    def personalize(self, listener: Listener) -> Job:
        """Queue an adaptation to all of the listener's annotations."""
        with self._enqueue, self.db.session() as session:
            if not session.scalar(select(func.count(Annotation.id)).where(
                    Annotation.listener_id == listener.id)):
                raise Invalid("Annotate a song first: personalization learns from your "
                              "annotations.")
            queued = session.scalar(select(Job).where(Job.listener_id == listener.id,
                                                      Job.status == "queued"))
            if queued is not None:  # it will read the new annotation when it runs
                return queued
            job = Job(listener_id=listener.id, status="queued", total=self.model.inner_steps)
            session.add(job)
            session.commit()
        self.worker.submit(BACKGROUND, self._run_job, job.id)
        return job

    def job(self, listener: Listener, job_id: int) -> Job:
        with self.db.session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id,
                                                   Job.listener_id == listener.id))
        if job is None:
            raise NotFound(f"No job {job_id} of yours.")
        return job

    def _run_job(self, job_id: int):
        """Adapt the model to a listener's annotations (on the worker thread)."""
        with self.db.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != "queued":
                return  # the listener was deleted, or it ran already
            job.status = "running"
            session.commit()
            annotations = session.scalars(select(Annotation).where(
                Annotation.listener_id == job.listener_id).order_by(Annotation.id)).all()
            songs = {a.song_id: session.get(Song, a.song_id) for a in annotations}
        last_write = [0.0]

        def progress(step, total):
            now = time.monotonic()
            if step < total and now - last_write[0] < _PROGRESS_INTERVAL:
                return
            last_write[0] = now
            with self.db.session() as session:
                session.execute(Job.__table__.update().where(Job.id == job_id).values(
                    step=step, total=total))
                session.commit()

        try:
            if not annotations:
                raise Invalid("The listener has no annotations left.")
            X = [self.library.features(songs[a.song_id], a.frame_offset) for a in annotations]
            y = [np.asarray(a.labels, dtype=np.float32) for a in annotations]
            adapted = self.model.adapt_listener(X, y, progress=progress)
            with self.db.session() as session:
                row = Adaptation(listener_id=job.listener_id, model_id=self.model_id,
                                 n_parameters=adapted.n_parameters, info=adapted.info)
                session.add(row)
                session.flush()
                session.add(AdaptationData(adaptation_id=row.id,
                                           data=_adaptation_to_bytes(adapted)))
                # Older adaptations (and their cached curves) are superseded.
                session.execute(delete(Adaptation).where(
                    Adaptation.listener_id == job.listener_id,
                    Adaptation.model_id == self.model_id, Adaptation.id != row.id))
                done = session.get(Job, job_id)
                done.status, done.step, done.adaptation_id = "done", done.total, row.id
                done.finished_at = datetime.now(timezone.utc)
                session.commit()
                songs = session.scalars(select(Song).where(visible_to(
                    job.listener_id))).all() if self.precompute else []
            remember(self._adaptations, row.id, adapted)
            for song in songs:  # whenever the model is idle
                self.worker.submit(IDLE, self._predict, song, row.id)
        except Exception as err:
            log.warning("Personalization job %s failed: %s", job_id, err)
            with self.db.session() as session:
                session.execute(Job.__table__.update().where(Job.id == job_id).values(
                    status="failed", error=" ".join(str(err).split()) or type(err).__name__,
                    finished_at=datetime.now(timezone.utc)))
                session.commit()

    # ----------------------------------------------------------- predictions
    def curves(self, listener: Listener, song_id: int) -> dict:
        """The population curve of a song and, once personalized, the listener's.

        Returns ``{"population": array, "personal": array or None,
        "adaptation_id": int or None}``; arrays are (n_frames, 2) from the
        model's frame offset.
        """
        song = self.library.song(listener, song_id)
        adaptation = self.adaptation(listener)
        adaptation_id = None if adaptation is None else adaptation.id
        return {"population": self._curve(song, None),
                "personal": None if adaptation_id is None else self._curve(song, adaptation_id),
                "adaptation_id": adaptation_id}

    def _curve(self, song: Song, adaptation_id: int | None) -> np.ndarray:
        cached = self._cached_curve(song.id, adaptation_id)
        if cached is not None:
            return cached
        return self._on_worker(INTERACTIVE, self._predict, song, adaptation_id)

    def _cached_curve(self, song_id, adaptation_id):
        with self.db.session() as session:
            blob = session.scalar(select(Prediction.curve).where(
                Prediction.song_id == song_id, Prediction.model_id == self.model_id,
                Prediction.adaptation_id.is_(None) if adaptation_id is None
                else Prediction.adaptation_id == adaptation_id).limit(1))
        return None if blob is None else np.frombuffer(blob, dtype=np.float32).reshape(-1, 2)

    def _predict(self, song: Song, adaptation_id: int | None) -> np.ndarray:
        # Another request for the same curve may have computed it while this one waited.
        cached = self._cached_curve(song.id, adaptation_id)
        if cached is not None:
            return cached
        features = self.library.features(song, self.frame_offset)
        adapted = None if adaptation_id is None else self._adaptation(adaptation_id)
        curve = np.ascontiguousarray(
            self.model.predict([features], listener=adapted)[0], dtype=np.float32)
        try:
            with self.db.session() as session:
                session.add(Prediction(song_id=song.id, model_id=self.model_id,
                                       adaptation_id=adaptation_id,
                                       frame_offset=self.frame_offset, curve=curve.tobytes()))
                session.commit()
        except Exception as err:  # e.g. the adaptation was superseded meanwhile
            log.info("Prediction not cached: %s", err)
        return curve

    def _adaptation(self, adaptation_id: int) -> ListenerAdaptation:
        adapted = self._adaptations.get(adaptation_id)
        if adapted is None:
            with self.db.session() as session:
                data = session.scalar(select(AdaptationData.data).where(
                    AdaptationData.adaptation_id == adaptation_id))
            if data is None:
                raise NotFound(f"Adaptation {adaptation_id} was replaced; ask again.")
            adapted = _adaptation_from_bytes(data)
            remember(self._adaptations, adaptation_id, adapted)
        return adapted


# -------------------------------------------------------------------- helpers
def _check_range(labels: np.ndarray, name: str) -> None:
    """Refuse labels far outside the documented range (the CLI only warns)."""
    far = np.argwhere(np.abs(labels) > LABEL_TOLERANCE)
    if far.size:
        frame, column = far[0]
        raise ValueError(
            f"{name}, line {frame + 2}: {('arousal', 'valence')[column]} "
            f"{labels[frame, column]:g} is outside [{LABEL_RANGE[0]:g}, {LABEL_RANGE[1]:g}], "
            f"the range of the pad (the app refuses values beyond +-{LABEL_TOLERANCE:g}); "
            "rescale the labels.")


def _adaptation_bytes(adapted) -> int:
    return sum(t.numel() * t.element_size() for t in adapted.params.values())


def _adaptation_to_bytes(adapted: ListenerAdaptation) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "listener.safetensors"
        adapted.save(path)
        return path.read_bytes()


def _adaptation_from_bytes(data: bytes) -> ListenerAdaptation:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "listener.safetensors"
        path.write_bytes(data)
        return ListenerAdaptation.load(path)
