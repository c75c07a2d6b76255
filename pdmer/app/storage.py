"""The app's database: listeners, songs, annotations, jobs, adaptations and
cached predictions, through SQLAlchemy (SQLite by default, PostgreSQL works).

The schema carries a version (table ``pdmer_schema``). Opening a database
written by a newer pdmer is refused; an older one is brought up to date by
the steps in :data:`MIGRATIONS`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    TypeDecorator,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

SCHEMA_VERSION = 1
"""Version of the tables below; bump it and add a step to MIGRATIONS when they change."""

MIGRATIONS: dict = {}
"""``{version: function(connection)}``: brings a database from ``version`` to ``version + 1``."""

# PostgreSQL advisory lock that marks a database as used by a live app.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"pdmer app").digest()[:8], "big", signed=True)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def hash_token(token: str) -> str:
    """What is stored of a listener token: its SHA-256 (tokens are 256-bit random)."""
    return hashlib.sha256(token.encode()).hexdigest()


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite drops the time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class _Row:
    """Columns every table has: an id and when the row was made."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _ListenersRow(_Row):
    """A row that belongs to one listener and goes when they are deleted."""

    listener_id: Mapped[int] = mapped_column(
        ForeignKey("listeners.id", ondelete="CASCADE"), index=True)


class SchemaVersion(Base):
    __tablename__ = "pdmer_schema"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Listener(_Row, Base):
    __tablename__ = "listeners"
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)


class Song(_Row, Base):
    """A song of the catalog folder (``owner_id`` None) or one a listener uploaded."""

    __tablename__ = "songs"
    title: Mapped[str] = mapped_column(String(500))
    path: Mapped[str] = mapped_column(String(4096))
    sha256: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("listeners.id", ondelete="CASCADE"), index=True, nullable=True)
    duration: Mapped[float] = mapped_column(Float)
    # Whole 0.5 s frames after the model's frame offset (exact once extracted).
    n_frames: Mapped[int] = mapped_column(Integer)
    available: Mapped[bool] = mapped_column(default=True)


class Annotation(_ListenersRow, Base):
    """One listener's (arousal, valence) curve of one song, from ``frame_offset`` on."""

    __tablename__ = "annotations"
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"))
    frame_offset: Mapped[float] = mapped_column(Float)
    labels: Mapped[list] = mapped_column(JSON)  # [[arousal, valence], ...] per frame


class Job(_ListenersRow, Base):
    """A personalization run: queued, running, done or failed."""

    __tablename__ = "jobs"
    status: Mapped[str] = mapped_column(String(16), default="queued")
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    adaptation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Adaptation(_ListenersRow, Base):
    """A listener's adaptation of one model (its bytes: :class:`AdaptationData`)."""

    __tablename__ = "adaptations"
    model_id: Mapped[str] = mapped_column(String(64))
    n_parameters: Mapped[int] = mapped_column(Integer)
    info: Mapped[dict] = mapped_column(JSON)


class AdaptationData(Base):
    """A ListenerAdaptation's safetensors bytes (up to ~120 MB at the paper's size).

    Kept apart from :class:`Adaptation` so that reading an adaptation's
    columns never walks past its bytes (SQLite stores a row's columns in one
    chain of pages).
    """

    __tablename__ = "adaptation_data"
    adaptation_id: Mapped[int] = mapped_column(
        ForeignKey("adaptations.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Prediction(_Row, Base):
    """A cached curve: one song, one model, one adaptation (None: the population model)."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_key", "song_id", "model_id", "adaptation_id"),)
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(64))
    adaptation_id: Mapped[int | None] = mapped_column(
        ForeignKey("adaptations.id", ondelete="CASCADE"), nullable=True)
    frame_offset: Mapped[float] = mapped_column(Float)
    curve: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (n_frames, 2)


class Database:
    """An engine, a session factory and a checked schema.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:////path/app.sqlite`` or
        ``postgresql+psycopg://user:password@host/db``.
    """

    def __init__(self, url: str):
        options = {}
        if url.startswith("sqlite"):
            # Requests run in a thread pool and jobs on the model thread.
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self._check_schema()
        self._claim = None

    @property
    def name(self) -> str:
        """The URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    def _check_schema(self):
        with self.engine.begin() as connection:
            if not inspect(connection).has_table(SchemaVersion.__tablename__):
                Base.metadata.create_all(connection)
                connection.execute(SchemaVersion.__table__.insert().values(
                    id=1, version=SCHEMA_VERSION))
                return
            version = connection.execute(select(SchemaVersion.version)).scalar_one()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"The database {self.name} has schema version {version}, written by a "
                    f"newer pdmer (this one reads up to {SCHEMA_VERSION}); upgrade pdmer "
                    "(pip install -U 'pdmer[app]') or use another --db.")
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](connection)
            if version != SCHEMA_VERSION:
                connection.execute(SchemaVersion.__table__.update().values(
                    version=SCHEMA_VERSION))

    def claim(self):
        """Make this process the only app on the database until :meth:`dispose`.

        SQLite: a lock on ``<database>.lock``; PostgreSQL: a session advisory
        lock. Both end with the process, however it ends. Other databases
        are not claimed.

        Raises
        ------
        RuntimeError
            Another live process has claimed it.
        """
        from pdmer.files import try_lock

        dialect, database = self.engine.dialect.name, self.engine.url.database
        if dialect == "sqlite" and database not in (None, "", ":memory:"):
            self._claim = try_lock(f"{database}.lock")
        elif dialect == "postgresql":
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                  {"key": _ADVISORY_KEY}).scalar():
                self._claim = connection
            else:
                connection.close()
        else:
            return
        if self._claim is None:
            raise RuntimeError(
                f"Another pdmer app is using the database {self.name}; stop it first (two "
                "apps on one database would run the same personalization jobs), or give "
                "this one another --db or --data-dir.")

    def dispose(self):
        if self._claim is not None:
            if self.engine.dialect.name == "postgresql":
                self._claim.execute(text("SELECT pg_advisory_unlock(:key)"),
                                    {"key": _ADVISORY_KEY})
                self._claim.close()
            else:
                self._claim.release()
            self._claim = None
        self.engine.dispose()


def _sqlite_pragmas(connection, record):
    cursor = connection.cursor()
    # Cascading deletes need foreign keys on; WAL lets requests read while a job writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL survives application crashes and only skips the fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
