"""Verified, resumable downloads and safe archive extraction.

Shared by the data set loaders (:mod:`pdmer_datasets`) and the model-weight
fetchers. mirdata's downloader cannot resume a partial file, which matters for
a 1.3 GB archive on a flaky connection, so this module does it:

- :func:`download_file` streams into ``<path>.part``, continues an existing
  ``.part`` with an HTTP Range request, verifies size and SHA-256, then renames
  into place; a file that is already there and verifies is not fetched again.
- :func:`safe_extract` unpacks zip and tar archives, refusing absolute paths,
  ``..`` components, links and more bytes than the archive should hold, into a
  temporary folder that is renamed into place only when every member has been
  written.

Nothing a server or an archive says is trusted further than it can be
checked: a resumed ``.part`` must continue where the file ends (Content-Range)
and is fetched once more from the start when it fails verification; no more
bytes are accepted than expected or announced.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse
from urllib.request import url2pathname

import requests
from tqdm.auto import tqdm

__all__ = ["ChecksumError", "UnsafeArchiveError", "download_file", "sha256_file",
           "verify_file", "safe_extract", "extract_limit", "MAX_DOWNLOAD_SIZE",
           "MAX_EXPANSION", "MIN_EXTRACT_LIMIT"]

_TIMEOUT = 60  # seconds without data before a request gives up
#: Most bytes :func:`download_file` accepts when neither the caller nor the
#: server says how many to expect (the largest file pdmer fetches is 4.5 GB).
MAX_DOWNLOAD_SIZE = 16 * 2**30
#: Default cap on what an archive may expand to, as a multiple of its size:
#: CSV text deflates 2.5-4x (measured on DEAM's and PMEmo's own files), MP3
#: audio not at all, so 20x leaves ample room and still stops a zip bomb.
MAX_EXPANSION = 20
#: ... but small archives may always expand to this many bytes.
MIN_EXTRACT_LIMIT = 64 * 2**20


class ChecksumError(ValueError):
    """A downloaded file's size or SHA-256 differs from the expected value."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination, or is a link."""


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, path, *, size: int | None = None, sha256: str | None = None,
                  accept_mismatch: bool = False, progress: bool = True,
                  chunk_size: int = 1 << 20, max_size: int = MAX_DOWNLOAD_SIZE) -> Path:
    """Download ``url`` to ``path``, resuming and verifying.

    Parameters
    ----------
    url : str
        HTTP(S) address (``file://`` URLs work too, without resume).
    path : str or Path
        Destination file. Bytes arrive in ``<path>.part``; a ``.part`` left by
        an interrupted run is continued with a Range request (or restarted
        when the server ignores Range or answers with another range). A
        continued ``.part`` that then fails verification is deleted and
        downloaded once more from the start.
    size : int, optional
        Expected size in bytes. The download stops there: a server that
        sends more, or announces another size, is an error.
    sha256 : str, optional
        Expected hex SHA-256.
    accept_mismatch : bool, default=False
        Keep a file whose SHA-256 differs (with a warning on stderr) instead
        of raising :class:`ChecksumError`. Only the hash is excused: a file
        of another size, an incomplete download or a server sending more
        than it announced is still an error.
    progress : bool, default=True
        Show a tqdm bar on stderr.
    chunk_size : int, default=1 MiB
    max_size : int, default=MAX_DOWNLOAD_SIZE
        Most bytes accepted when neither ``size`` nor the server says how
        many to expect (a server streaming without end must not fill the disk).

    Returns
    -------
    Path
        ``path``. If it already exists and verifies, nothing is downloaded.

    Raises
    ------
    ChecksumError
        The download's size or SHA-256 differs from the expected value, or
        the server sent or announced more bytes than expected. A complete
        file that fails is kept as ``<path>.part`` for inspection (the next
        call downloads it again from the start).
    requests.HTTPError, requests.ConnectionError
        The server refused or the connection failed; the partial file is kept
        and the next call resumes it.

    Examples
    --------
    >>> from pdmer.downloads import download_file
    >>> download_file("https://example.org/a.zip", "a.zip",
    ...               sha256="...")  # doctest: +SKIP
    """
    path = Path(path)
    sha256 = sha256.lower() if sha256 else None
    if path.exists():
        problem = verify_file(path, size, sha256, accept_mismatch=accept_mismatch)
        if problem is None:
            return path
        raise ChecksumError(f"{path} exists but {problem}. Delete it (or move it away) and "
                            f"download again{_accept_hint(problem)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    fetch = dict(size=size, max_size=max_size, progress=progress, chunk_size=chunk_size)
    resumed = part.exists()
    if resumed and size is not None and part.stat().st_size > size:
        part.unlink()  # longer than the real file: cannot be a prefix of it
        resumed = False
    if not (resumed and size is not None and part.stat().st_size == size):
        _fetch(url, part, **fetch)
    problem = verify_file(part, size, sha256, accept_mismatch=accept_mismatch)
    if problem is not None and resumed:
        # Bytes of an earlier run (an error page, another file version) must
        # not be resumed onto forever: start once more from nothing.
        print(f"{part.name}: the partial download from an earlier run fails verification "
              f"({problem}); downloading {url} again from the start.", file=sys.stderr)
        part.unlink()
        _fetch(url, part, **fetch)
        problem = verify_file(part, size, sha256, accept_mismatch=accept_mismatch)
    if problem is not None:
        raise ChecksumError(
            f"Download of {url} failed verification: {problem}. The file is kept at {part} "
            f"for inspection (the next run downloads it again){_accept_hint(problem)}.")
    os.replace(part, path)
    return path


def verify_file(path, size=None, sha256=None, *, accept_mismatch=False) -> str | None:
    """None if ``path`` has the expected size and SHA-256, else what differs.

    With ``accept_mismatch=True`` a differing SHA-256 is reported on stderr
    instead of returned; a differing size is always returned.
    """
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"its size is {actual_size} bytes, expected {size}"
    if sha256 is not None:
        sha256 = sha256.lower()
        actual = sha256_file(path)
        if actual != sha256:
            problem = f"its SHA-256 is {actual}, expected {sha256}"
            if not accept_mismatch:
                return problem
            print(f"warning: {path.name}: {problem}; kept because the mismatch was "
                  "accepted.", file=sys.stderr)
    return None


def _accept_hint(problem: str) -> str:
    # Only a differing hash can be accepted; saying so for a size would mislead.
    if not problem.startswith("its SHA-256"):
        return ""
    return (", or, if you trust it, accept its SHA-256 with accept_mismatch=True "
            "(--accept-checksum-mismatch)")


def _fetch(url: str, part: Path, *, size, max_size, progress, chunk_size) -> None:
    """Complete ``part`` from ``url``: resume it, or write it from the start."""
    if url.startswith("file://"):
        _copy_local(url, part, size=size, max_size=max_size, progress=progress,
                    chunk_size=chunk_size)
        return
    while True:
        start = part.stat().st_size if part.exists() else 0
        # Byte ranges refer to the stored bytes: no transparent compression.
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        with requests.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as response:
            if start and response.status_code == 416:
                # Range not satisfiable: the .part is already complete (or
                # bogus); verification decides.
                return
            response.raise_for_status()
            total = None
            if start and response.status_code == 206:
                first, total = _content_range(response.headers.get("Content-Range"))
                if first != start:
                    sent = "no Content-Range" if first is None else f"bytes from {first} on"
                    print(f"{url}: asked for the bytes from {start} on, the server sent "
                          f"{sent}; downloading again from the start.", file=sys.stderr)
                    part.unlink()
                    continue
            else:
                start = 0  # a whole file follows (the server ignored Range)
            length = _header_int(response.headers.get("Content-Length"))
            if total is None and length is not None:
                total = start + length
            if size is not None and total is not None and total != size:
                raise ChecksumError(
                    f"{url}: its size is {total} bytes, expected {size} (as the server "
                    f"announces it{_content_hint(response)}); nothing more was downloaded. "
                    "Check the URL or the mirror.")
            _stream(response.iter_content(chunk_size=chunk_size), part, url, start=start,
                    total=total, limit=_limit(size, total, max_size), progress=progress)
        return


def _copy_local(url, part, *, size, max_size, progress, chunk_size):
    source = url2pathname(urlparse(url).path)
    with open(source, "rb") as src:
        info = os.fstat(src.fileno())
        total = info.st_size if stat.S_ISREG(info.st_mode) else None
        if size is not None and total is not None and total != size:
            raise ChecksumError(f"{source} has {total} bytes, expected {size}.")
        _stream(iter(lambda: src.read(chunk_size), b""), part, url, start=0, total=total,
                limit=_limit(size, total, max_size), progress=progress)


def _limit(size, total, max_size):
    """(most bytes to accept, why) from the expected size, the announced size or the cap."""
    if size is not None:
        return size, "the expected size"
    if total is not None:
        return total, "the size the server announced"
    return max_size, "the cap for downloads of unknown size (max_size)"


def _stream(blocks, part: Path, url: str, *, start, total, limit, progress) -> None:
    """Write ``blocks`` to ``part`` (appending after ``start`` bytes), at most ``limit``."""
    most, why = limit
    received = start
    with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[:-len(".part")], disable=not progress, file=sys.stderr) as bar:
        try:
            for block in blocks:
                received += len(block)
                if received > most:
                    break
                f.write(block)
                bar.update(len(block))
        except requests.RequestException as err:
            raise requests.ConnectionError(
                f"The download of {url} broke off after {f.tell()} bytes ({err}); "
                f"run again to resume {part}.") from err
    if received > most:
        part.unlink()
        raise ChecksumError(
            f"{url} sent more than {most} bytes ({why}); stopped and deleted the partial "
            "download. The server sends something other than the expected file.")
    if total is not None and received < total:
        raise requests.ConnectionError(
            f"The connection to {url} closed after {received} of {total} bytes; "
            f"run again to resume {part}.")


def _header_int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _content_range(value) -> tuple[int | None, int | None]:
    """(first byte, complete length) of a ``bytes first-last/length`` header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    first, _, length = match.groups()
    return int(first), None if length == "*" else int(length)


def _content_hint(response) -> str:
    kind = response.headers.get("Content-Type", "")
    return f", sending {kind.split(';')[0]}: an error or login page?" if "html" in kind else ""


def _member_path(name: str, archive) -> PurePosixPath:
    """The member's relative path, or an UnsafeArchiveError."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} has an absolute path; refusing to extract.")
    if ".." in posix.parts:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} contains '..' and would be written outside "
            "the destination; refusing to extract.")
    return posix


def _plan(archive: Path):
    """(handle, [(member, relative path)]) after checking every member is safe."""
    if zipfile.is_zipfile(archive):
        zf = zipfile.ZipFile(archive)
        entries = []
        for info in zf.infolist():
            rel = _member_path(info.filename, archive)
            # Unix mode bits of a zip symlink: S_IFLNK in the high 16 bits.
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing "
                    "to extract.")
            entries.append((info, rel))
        return zf, entries
    if tarfile.is_tarfile(archive):
        tf = tarfile.open(archive)
        entries = []
        for info in tf.getmembers():
            rel = _member_path(info.name, archive)
            if info.issym() or info.islnk():
                raise UnsafeArchiveError(
                    f"{archive}: member {info.name!r} is a link; refusing to extract.")
            if not (info.isfile() or info.isdir()):
                raise UnsafeArchiveError(
                    f"{archive}: member {info.name!r} is not a regular file or folder "
                    "(device, fifo); refusing to extract.")
            entries.append((info, rel))
        return tf, entries
    raise ValueError(f"{archive} is neither a zip nor a tar archive (or it is corrupt).")


def extract_limit(archive) -> int:
    """The default cap on what ``archive`` may expand to (see :func:`safe_extract`)."""
    return max(MAX_EXPANSION * Path(archive).stat().st_size, MIN_EXTRACT_LIMIT)


def safe_extract(archive, dest, members=None, progress: bool = True, *,
                 max_size: int | None = None, max_member_size: int | None = None) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` safely.

    Every member is checked before anything is written: absolute paths, ``..``
    components, symbolic and hard links and special files raise
    :class:`UnsafeArchiveError`, and so do members whose sizes add up to more
    than ``max_size`` (a zip bomb, or not the archive expected) or than the
    free disk space. The bytes are counted again while they are written,
    since headers can lie. Files are extracted into a temporary folder inside
    ``dest`` and moved into place only after all of them were written, so an
    interrupted or refused extraction never looks complete; existing files
    with the same names are replaced.

    Parameters
    ----------
    archive : str or Path
    dest : str or Path
        Destination folder (created if needed).
    members : iterable of str, optional
        Only these member paths (and, for folders, what is under them).
    progress : bool, default=True
    max_size : int, optional
        Most bytes all extracted members may hold together. Default
        :func:`extract_limit`: ``MAX_EXPANSION`` times the archive's size,
        at least ``MIN_EXTRACT_LIMIT``. Callers that know the archive pass
        what it should hold.
    max_member_size : int, optional
        Most bytes one member may hold (default ``max_size``).

    Returns
    -------
    list of Path
        The extracted files.

    Raises
    ------
    UnsafeArchiveError
        A member is unsafe, or the archive holds more than allowed.
    ValueError
        The archive is not a zip or tar archive, or it is corrupt.
    """
    archive, dest = Path(archive), Path(dest)
    max_size = extract_limit(archive) if max_size is None else int(max_size)
    max_member_size = max_size if max_member_size is None else int(max_member_size)
    try:
        handle, entries = _plan(archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise ValueError(f"{archive} is corrupt ({err}); delete it and download it "
                         "again.") from err
    with handle:
        if members is not None:
            prefixes = [PurePosixPath(m) for m in members]
            entries = [(i, r) for i, r in entries
                       if any(r == p or p in r.parents for p in prefixes)]
        # A list, not a dict: a zip may repeat a name, each copy expanding anew.
        sizes = [(_name(info), _declared_size(info)) for info, _ in entries]
        name, largest = max(sizes, key=lambda item: item[1], default=("", 0))
        if largest > max_member_size:
            raise UnsafeArchiveError(
                f"{archive}: member {name!r} would expand to {largest} bytes, more than "
                f"the {max_member_size} allowed for one member; refusing to extract (a "
                "zip bomb, or not the expected archive).")
        total = sum(size for _, size in sizes)
        if total > max_size:
            raise UnsafeArchiveError(
                f"{archive}: its members would expand to {total} bytes, more than the "
                f"{max_size} this archive should hold; refusing to extract (a zip bomb, "
                "or not the expected archive).")
        dest.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest).free
        if total > free:
            raise OSError(f"{archive} expands to {total} bytes but {dest} has only {free} "
                          "bytes free; free some space or extract elsewhere.")
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            written = _write_members(handle, entries, staging, archive, progress)
            for rel in written:  # everything is on disk: move into place
                final = dest.joinpath(*rel.parts)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging.joinpath(*rel.parts), final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [dest.joinpath(*rel.parts) for rel in written]


def _name(info) -> str:
    return info.filename if isinstance(info, zipfile.ZipInfo) else info.name


def _declared_size(info) -> int:
    if isinstance(info, zipfile.ZipInfo):
        return 0 if info.is_dir() else info.file_size
    return info.size if info.isfile() else 0


def _write_members(handle, entries, staging: Path, archive, progress) -> list:
    written = []
    try:
        for info, rel in tqdm(entries, desc=f"extract {archive.name}", unit="file",
                              disable=not progress, file=sys.stderr):
            target = staging.joinpath(*rel.parts)
            is_dir = info.is_dir() if isinstance(info, zipfile.ZipInfo) else info.isdir()
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = (handle.open(info) if isinstance(handle, zipfile.ZipFile)
                      else handle.extractfile(info))
            with source, open(target, "wb") as out:
                # Headers can lie: count what is really written.
                shutil.copyfileobj(source, _CountingWriter(out, info, archive), 1 << 20)
            written.append(rel)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as err:
        raise ValueError(f"{archive} is corrupt ({err}); delete it and download it "
                         "again.") from err
    return written


class _CountingWriter:
    """A file wrapper that refuses more bytes than the member's header declared."""

    def __init__(self, out, info, archive):
        self.out, self.info, self.archive = out, info, archive
        self.left = _declared_size(info)

    def write(self, block):
        self.left -= len(block)
        if self.left < 0:
            raise UnsafeArchiveError(
                f"{self.archive}: member {_name(self.info)!r} holds more bytes than its "
                "header declares; the archive is corrupt or forged; refusing to extract.")
        return self.out.write(block)
