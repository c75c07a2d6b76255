"""Verified, resumable downloads and safe archive extraction.

Shared by the data set loaders (:mod:`pdmer_datasets`) and the model-weight
fetchers. mirdata's downloader cannot resume a partial file, which matters for
a 1.3 GB archive on a flaky connection, so this module does it:

- :func:`download_file` streams into ``<path>.part``, continues an existing
  ``.part`` with an HTTP Range request, verifies size and SHA-256, then renames
  into place; a file that is already there and verifies is not fetched again.
- :func:`safe_extract` unpacks zip and tar archives, refusing absolute paths,
  ``..`` components and links, into a temporary folder that is renamed into
  place only when every member has been written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import requests
from tqdm.auto import tqdm

__all__ = ["ChecksumError", "UnsafeArchiveError", "download_file", "sha256_file",
           "verify_file", "safe_extract"]

_TIMEOUT = 60  # seconds without data before a request gives up


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
                  chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` to ``path``, resuming and verifying.

    Parameters
    ----------
    url : str
        HTTP(S) address (``file://`` URLs work too, without resume).
    path : str or Path
        Destination file. Bytes arrive in ``<path>.part``; a ``.part`` left by
        an interrupted run is continued with a Range request (or restarted
        when the server ignores Range).
    size : int, optional
        Expected size in bytes.
    sha256 : str, optional
        Expected hex SHA-256.
    accept_mismatch : bool, default=False
        Keep a file whose size or checksum differs (with a warning on stderr)
        instead of raising :class:`ChecksumError`.
    progress : bool, default=True
        Show a tqdm bar on stderr.
    chunk_size : int, default=1 MiB

    Returns
    -------
    Path
        ``path``. If it already exists and verifies, nothing is downloaded.

    Raises
    ------
    ChecksumError
        The download's size or SHA-256 differs from the expected value. The
        bytes are kept as ``<path>.part`` for inspection; delete it to retry.
    requests.HTTPError, requests.ConnectionError
        The server refused or the connection failed; the partial file is kept
        and the next call resumes it.

    Examples
    --------
    >>> from pdmer._download import download_file
    >>> download_file("https://example.org/a.zip", "a.zip",
    ...               sha256="...")  # doctest: +SKIP
    """
    path = Path(path)
    sha256 = sha256.lower() if sha256 else None
    if path.exists():
        problem = verify_file(path, size, sha256)
        if problem is None or accept_mismatch:
            return path
        raise ChecksumError(
            f"{path} exists but {problem}. Delete it (or move it away) and download "
            "again, or accept the file as it is with accept_mismatch=True "
            "(--accept-checksum-mismatch).")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the real file: cannot be a prefix of it
    if not (size is not None and part.exists() and part.stat().st_size == size):
        _fetch(url, part, progress, chunk_size)
    problem = verify_file(part, size, sha256)
    if problem is not None:
        if not accept_mismatch:
            raise ChecksumError(
                f"Download of {url} failed verification: {problem}. The file is kept "
                f"at {part} for inspection; delete it to download again, or pass "
                "accept_mismatch=True (--accept-checksum-mismatch) to use it anyway.")
        print(f"warning: {path.name}: {problem}; kept because the mismatch was "
              "accepted.", file=sys.stderr)
    os.replace(part, path)
    return path


def verify_file(path, size=None, sha256=None) -> str | None:
    """None if ``path`` has the expected size and SHA-256, else what differs."""
    path = Path(path)
    sha256 = sha256.lower() if sha256 else None
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"its size is {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            return f"its SHA-256 is {actual}, expected {sha256}"
    return None


def _fetch(url: str, part: Path, progress: bool, chunk_size: int) -> None:
    if url.startswith("file://"):
        shutil.copyfile(url[len("file://"):], part)
        return
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    with requests.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as response:
        if start and response.status_code == 416:
            # Range not satisfiable: the .part is already complete (or bogus);
            # verification decides.
            return
        response.raise_for_status()
        if start and response.status_code != 206:
            start = 0  # the server ignored Range and sends the whole file
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, "ab" if start else "wb") as f, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name[:-len(".part")], disable=not progress,
                file=sys.stderr) as bar:
            try:
                for block in response.iter_content(chunk_size=chunk_size):
                    f.write(block)
                    bar.update(len(block))
            except requests.RequestException as err:
                raise requests.ConnectionError(
                    f"The download of {url} broke off after {f.tell()} bytes ({err}); "
                    f"run again to resume {part}.") from err
    received = part.stat().st_size
    if total is not None and received < total:
        raise requests.ConnectionError(
            f"The connection to {url} closed after {received} of {total} bytes; "
            f"run again to resume {part}.")


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


def safe_extract(archive, dest, members=None, progress: bool = True) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` safely.

    Every member is checked before anything is written: absolute paths, ``..``
    components, symbolic and hard links and special files raise
    :class:`UnsafeArchiveError`. Files are extracted into a temporary folder
    inside ``dest`` and moved into place only after all of them were written,
    so an interrupted extraction never looks complete; existing files with the
    same names are replaced.

    Parameters
    ----------
    archive : str or Path
    dest : str or Path
        Destination folder (created if needed).
    members : iterable of str, optional
        Only these member paths (and, for folders, what is under them).
    progress : bool, default=True

    Returns
    -------
    list of Path
        The extracted files.
    """
    archive, dest = Path(archive), Path(dest)
    handle, entries = _plan(archive)
    if members is not None:
        prefixes = [PurePosixPath(m) for m in members]
        entries = [(i, r) for i, r in entries
                   if any(r == p or p in r.parents for p in prefixes)]
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    written = []
    try:
        with handle:
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
                    shutil.copyfileobj(source, out, 1 << 20)
                written.append(rel)
        for rel in written:  # everything is on disk: move into place
            final = dest.joinpath(*rel.parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging.joinpath(*rel.parts), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest.joinpath(*rel.parts) for rel in written]
