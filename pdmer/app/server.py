"""The HTTP side: the REST API (documented at ``/docs``), the page and its assets.

Every ``/api`` route except creating a listener needs the listener's token
(``Authorization: Bearer <token>``) and sees only that listener's data.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pdmer.app.errors import AppError
from pdmer.app.service import MAX_NAME_LENGTH, Service
from pdmer.labels import FRAME_SECONDS, QUADRANTS, frame_times

STATIC = Path(__file__).with_name("static")

MAX_JSON_BYTES = 4096
"""Largest body of a request that uploads no file (creating a listener needs ~100 bytes)."""

# The database's integers (PostgreSQL's INTEGER) end here: a larger id is no
# row's, and comparing one with a column overflows the driver.
Id = Annotated[int, PathParameter(ge=0, le=2**31 - 1)]


# ------------------------------------------------------------------- schemas
class _Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NewListener(BaseModel):
    name: str = Field("listener", description=f"A display name (at most {MAX_NAME_LENGTH} "
                                              "characters, no control characters).")


class ListenerCreated(_Schema):
    id: int
    name: str
    token: str = Field(description="Send as 'Authorization: Bearer <token>'. Shown once; "
                                   "only its hash is stored.")


class SongOut(_Schema):
    id: int
    title: str
    duration: float = Field(description="Seconds of audio.")
    n_frames: int = Field(description="Whole 0.5 s frames after the model's frame offset.")
    uploaded: bool = Field(description="True for your own uploads, False for the catalog.")
    annotated: bool = Field(description="Whether you annotated it.")


class JobOut(_Schema):
    id: int
    status: str = Field(description="queued, running, done or failed.")
    step: int
    total: int
    error: str | None = None
    adaptation_id: int | None = None
    created_at: datetime
    finished_at: datetime | None = None


class AnnotationOut(_Schema):
    id: int
    song_id: int
    frame_offset: float = Field(description="Audio time in seconds of the first frame.")
    n_frames: int
    created_at: datetime


class Curve(BaseModel):
    arousal: list[float]
    valence: list[float]


class AnnotationDetail(AnnotationOut):
    time: list[float] = Field(description="Start of each 0.5 s frame in seconds.")
    labels: Curve


class AnnotationCreated(BaseModel):
    annotation: AnnotationOut
    job: JobOut | None = Field(None, description="The personalization it started.")


class AdaptationOut(_Schema):
    id: int
    n_parameters: int
    info: dict
    created_at: datetime


class ListenerOut(_Schema):
    id: int
    name: str
    created_at: datetime
    adaptation: AdaptationOut | None = Field(
        None, description="Your adaptation of the running model (None: not personalized).")
    annotations: list[AnnotationOut]
    job: JobOut | None = Field(None, description="Your latest personalization job.")


class Predictions(BaseModel):
    song_id: int
    frame_offset: float
    frame_seconds: float
    time: list[float] = Field(description="Start of each 0.5 s frame in seconds.")
    population: Curve = Field(description="The meta-trained model's curves.")
    personal: Curve | None = Field(description="Your personalized curves (None until "
                                               "personalized).")
    adaptation_id: int | None


class Info(BaseModel):
    pdmer_version: str
    estimator: str
    model_id: str
    frame_offset: float
    frame_seconds: float
    personalization_steps: int
    max_upload_bytes: int
    max_label_bytes: int
    max_song_seconds: float
    quadrants: dict[str, tuple[int, int]] = Field(
        description="The valence-arousal plane's quadrant names and their (valence, "
                    "arousal) signs, as pdmer's plots name them.")


# -------------------------------------------------------------------- the app
def create_app(model, songs, *, db_url=None, data_dir=None, prefetch=True, precompute=True,
               max_upload_mb=50.0, max_label_kb=1024.0, max_song_minutes=15.0, memory_mb=1024,
               allowed_hosts=()):
    """The listener app as an ASGI application (serve it with uvicorn).

    Parameters
    ----------
    model : str, path-like or fitted estimator
        A model file (``pdmer.load``) or a fitted estimator without a
        current listener. It stays in memory, unchanged.
    songs : path-like
        Folder of audio files every listener can annotate and listen to.
    db_url : str, optional
        SQLAlchemy URL; default ``sqlite:///<data_dir>/app.sqlite``.
    data_dir : path-like, optional
        Database (by default), uploads and feature cache; default
        ``<user data folder>/pdmer/app`` (platformdirs).
    prefetch : bool, default=True
        Extract the catalog's features in the background at start.
    precompute : bool, default=True
        After each personalization, compute the listener's curves of every
        song in the background (asking for them is then a cache hit).
    max_upload_mb, max_label_kb : float
        Largest audio and label CSV uploads.
    max_song_minutes : float, default=15.0
        Longest audio upload, checked from its header before it is decoded
        (a small file can hold hours of audio at a low sample rate).
    memory_mb : int, default=1024
        RAM for cached song features and adaptations.
    allowed_hosts : sequence of str, default=()
        Host names the app answers besides 127.0.0.1 and localhost (its
        address or a reverse proxy's name); other ``Host`` headers get 400,
        so that a web page cannot reach the app through a rebinding domain.
        ``"*"`` answers any.

    Returns
    -------
    fastapi.FastAPI

    Examples
    --------
    >>> import uvicorn                                       # doctest: +SKIP
    >>> from pdmer.app import create_app                     # doctest: +SKIP
    >>> uvicorn.run(create_app("model.safetensors", "songs/"))  # doctest: +SKIP
    """
    import pdmer

    if isinstance(model, (str, os.PathLike)):
        model = pdmer.load(model)
    if data_dir is None:
        import platformdirs

        data_dir = Path(platformdirs.user_data_dir("pdmer", appauthor=False)) / "app"
    service = Service(model, songs, data_dir, db_url=db_url,
                      max_upload_bytes=int(max_upload_mb * 2**20),
                      max_label_bytes=int(max_label_kb * 1024),
                      max_song_seconds=60 * max_song_minutes, memory_mb=memory_mb)

    @asynccontextmanager
    async def lifespan(app):
        service.start(prefetch=prefetch, precompute=precompute)
        try:
            yield
        finally:
            service.close()

    app = FastAPIOffline(
        title="pdmer listener app", version=pdmer.__version__, lifespan=lifespan,
        description="Annotate songs while listening, personalize the emotion model to "
                    "each listener, and get their arousal/valence curves. Create a "
                    "listener (`POST /api/listeners`), then send its token as "
                    # Code spans: the docs page renders Markdown, where a bare
                    # <token> is an HTML tag and vanishes.
                    "`Authorization: Bearer <token>`.")
    app.state.service = service
    # Multipart overhead on top of the largest file; small JSON everywhere else.
    multipart = 64 * 1024
    app.add_middleware(BodyLimit, default=MAX_JSON_BYTES, limits=[
        ("POST", re.compile(r"/api/songs"), service.max_upload_bytes + multipart),
        ("POST", re.compile(r"/api/songs/[^/]+/annotations"),
         service.max_label_bytes + multipart)])
    app.add_middleware(TrustedHostMiddleware,
                       allowed_hosts=["127.0.0.1", "localhost", *allowed_hosts])

    @app.exception_handler(AppError)
    async def app_error(request, err: AppError):
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, err: RequestValidationError):
        # FastAPI's own answer repeats the input, which may be megabytes.
        problems = ["{}: {}".format(".".join(map(str, e["loc"])), e["msg"])
                    for e in err.errors()[:3]]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(OSError)
    async def os_error(request, err: OSError):
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise err
        return _disk_full()

    @app.exception_handler(OperationalError)
    async def database_error(request, err: OperationalError):
        # SQLite's SQLITE_FULL; PostgreSQL's disk_full (SQLSTATE 53100).
        if "disk is full" not in str(err.orig) and getattr(err.orig, "sqlstate", "") != "53100":
            raise err
        return _disk_full()

    app.include_router(api_routes(service), prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    return app


def api_routes(service: Service) -> APIRouter:
    router = APIRouter()
    bearer = HTTPBearer(auto_error=False, description="The token from POST /api/listeners.")

    def listener(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        if credentials is None:
            raise HTTPException(401, "Send your listener token as 'Authorization: Bearer "
                                     "<token>' (POST /api/listeners creates one).",
                                headers={"WWW-Authenticate": "Bearer"})
        found = service.authenticate(credentials.credentials)
        if found is None:
            raise HTTPException(401, "Unknown listener token; create a listener with POST "
                                     "/api/listeners.", headers={"WWW-Authenticate": "Bearer"})
        return found

    def song_out(song, annotated):
        return SongOut(id=song.id, title=song.title, duration=song.duration,
                       n_frames=song.n_frames, uploaded=song.owner_id is not None,
                       annotated=song.id in annotated)

    def annotation_out(annotation):
        return AnnotationOut(id=annotation.id, song_id=annotation.song_id,
                             frame_offset=annotation.frame_offset,
                             n_frames=len(annotation.labels), created_at=annotation.created_at)

    @router.get("/info", response_model=Info, tags=["model"])
    def info():
        """The model the app serves and the upload limits."""
        import pdmer

        return Info(pdmer_version=pdmer.__version__, estimator=type(service.model).__name__,
                    model_id=service.model_id, frame_offset=service.frame_offset,
                    frame_seconds=FRAME_SECONDS,
                    personalization_steps=service.model.personalization_steps_,
                    max_upload_bytes=service.max_upload_bytes,
                    max_label_bytes=service.max_label_bytes,
                    max_song_seconds=service.library.max_song_seconds, quadrants=QUADRANTS)

    @router.post("/listeners", response_model=ListenerCreated, status_code=201,
                 tags=["listeners"])
    def create_listener(body: NewListener):
        """Create a listener; the answer holds its token (shown only once)."""
        created, token = service.create_listener(body.name)
        return ListenerCreated(id=created.id, name=created.name, token=token)

    @router.get("/me", response_model=ListenerOut, tags=["listeners"])
    def me(who=Depends(listener)):
        """Your annotations, adaptation and latest job."""
        adaptation = service.adaptation(who)
        job = service.latest_job(who)
        return ListenerOut(
            id=who.id, name=who.name, created_at=who.created_at,
            adaptation=None if adaptation is None else AdaptationOut.model_validate(adaptation),
            annotations=[annotation_out(a) for a in service.annotations(who)],
            job=None if job is None else JobOut.model_validate(job))

    @router.delete("/me", status_code=204, tags=["listeners"])
    def delete_me(who=Depends(listener)):
        """Delete yourself and all your data (annotations, adaptations, uploads)."""
        service.delete_listener(who)

    @router.get("/songs", response_model=list[SongOut], tags=["songs"])
    def songs(who=Depends(listener)):
        """The catalog and your own uploads."""
        annotated = service.library.annotated_ids(who)
        return [song_out(s, annotated) for s in service.library.songs(who)]

    @router.post("/songs", response_model=SongOut, status_code=201, tags=["songs"])
    def upload_song(audio: UploadFile = File(description="WAV, FLAC, OGG, MP3 or AIFF."),
                    who=Depends(listener)):
        """Upload a song only you can see."""
        data = _read(audio, service.max_upload_bytes)
        return song_out(service.library.add(who, audio.filename, data), set())

    @router.get("/songs/{song_id}", response_model=SongOut, tags=["songs"])
    def song(song_id: Id, who=Depends(listener)):
        return song_out(service.library.song(who, song_id), service.library.annotated_ids(who))

    @router.get("/songs/{song_id}/audio", tags=["songs"], response_class=FileResponse)
    def audio(song_id: Id, who=Depends(listener)):
        """The song's audio file."""
        found = service.library.song(who, song_id)
        if not os.path.exists(found.path):
            raise HTTPException(404, f"The audio of {found.title} is gone from the disk.")
        return FileResponse(found.path)

    @router.post("/songs/{song_id}/annotations", response_model=AnnotationCreated,
                 status_code=201, tags=["annotations"])
    def upload_annotation(
            song_id: Id,
            labels: UploadFile = File(description="A label CSV: time,arousal,valence, one row "
                                                  "per 0.5 s frame (what `pdmer personalize` "
                                                  "reads)."),
            personalize: bool = Query(True, description="Start personalization afterwards."),
            who=Depends(listener)):
        """Store your annotation of a song (replacing an earlier one) and personalize."""
        annotation = service.add_annotation(who, song_id, labels.filename,
                                            _read(labels, service.max_label_bytes))
        job = service.personalize(who) if personalize else None
        return AnnotationCreated(annotation=annotation_out(annotation),
                                 job=None if job is None else JobOut.model_validate(job))

    @router.get("/annotations/{annotation_id}", response_model=AnnotationDetail,
                tags=["annotations"])
    def annotation(annotation_id: Id, who=Depends(listener)):
        """One of your annotations with its curve."""
        found = service.annotation(who, annotation_id)
        arousal, valence = (list(column) for column in zip(*found.labels))
        return AnnotationDetail(
            **annotation_out(found).model_dump(),
            time=[round(float(t), 6)
                  for t in frame_times(len(found.labels), found.frame_offset)],
            labels=Curve(arousal=arousal, valence=valence))

    @router.delete("/annotations/{annotation_id}", status_code=204, tags=["annotations"])
    def delete_annotation(annotation_id: Id, who=Depends(listener)):
        service.delete_annotation(who, annotation_id)

    @router.post("/personalize", response_model=JobOut, status_code=202,
                 tags=["personalization"])
    def personalize(who=Depends(listener)):
        """Adapt the model to all your annotations (e.g. after the model changed)."""
        return JobOut.model_validate(service.personalize(who))

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["personalization"])
    def job(job_id: Id, who=Depends(listener)):
        """Progress of a personalization job."""
        return JobOut.model_validate(service.job(who, job_id))

    @router.get("/songs/{song_id}/predictions", response_model=Predictions,
                tags=["predictions"])
    def predictions(song_id: Id, who=Depends(listener)):
        """Arousal and valence every 0.5 s: yours and the population model's (cached)."""
        curves = service.curves(who, song_id)
        population = curves["population"]
        offset = service.frame_offset
        return Predictions(
            song_id=song_id, frame_offset=offset, frame_seconds=FRAME_SECONDS,
            time=[round(float(t), 6) for t in frame_times(len(population), offset)],
            population=_curve(population), personal=None if curves["personal"] is None
            else _curve(curves["personal"]), adaptation_id=curves["adaptation_id"])

    return router


def _curve(array) -> Curve:
    return Curve(arousal=array[:, 0].tolist(), valence=array[:, 1].tolist())


def _read(upload: UploadFile, limit: int) -> bytes:
    """The uploaded bytes, refused past ``limit`` without reading the rest."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{upload.filename} is larger than the limit of "
                                 f"{limit / 2**20:.3g} MiB.")
    if not data:
        raise HTTPException(422, f"{upload.filename or 'The upload'} is empty.")
    return data


def _disk_full():
    return JSONResponse({"detail": "The server's disk is full; nothing was stored. Try again "
                                   "later (and tell whoever runs the app)."}, status_code=507)


class BodyLimit:
    """Refuse request bodies over their route's limit before reading them.

    The HTTP server reads exactly Content-Length bytes, so checking the
    header bounds the body; bodies without one (chunked) are refused.
    ``limits``: ``(method, compiled path pattern, bytes)``, first full match
    wins; ``default`` for every other request.
    """

    def __init__(self, app, default: int, limits=()):
        self.app = app
        self.default = default
        self.limits = limits

    def _limit(self, method: str, path: str) -> int:
        for wanted, pattern, limit in self.limits:
            if method == wanted and pattern.fullmatch(path):
                return limit
        return self.default

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            limit = self._limit(scope["method"], scope["path"])
            status = message = None
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
                status, message = 411, "Send request bodies with a Content-Length header."
            elif length is not None and int(length) > limit:
                status = 413
                message = (f"The request body is {_size(int(length))}; the limit is "
                           f"{_size(limit)} for {scope['method']} {scope['path']}.")
            if status is not None:
                await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.3g} KiB"
