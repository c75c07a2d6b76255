"""Model files from a URL or a Hugging Face Hub repository.

:func:`pdmer.load` (and the MODEL argument of ``pdmer predict``, ``personalize``,
``evaluate`` and ``app``, through :func:`local_model`) accepts, besides a local path,

- ``https://host/path/model.safetensors`` (and ``http://``, see below);
- ``hf://<user>/<repo>``, optionally ``hf://<user>/<repo>@<revision>`` and
  ``hf://<user>/<repo>[@<revision>]/<file>``: the file (default
  ``model.safetensors``) at that revision (default ``main``) of the Hub
  repository, i.e. ``https://huggingface.co/<user>/<repo>/resolve/<revision>/<file>``.
  ``$PDMER_HF_ENDPOINT`` replaces ``https://huggingface.co`` (a mirror, as
  ``HF_ENDPOINT`` does for huggingface_hub; the tests point it at a local
  server).

Files are fetched with :func:`pdmer.downloads.download_file` (resumable,
size- and SHA-256-checked) into ``<user cache>/models`` (see
:func:`pdmer.features.default_cache_dir`; ``$PDMER_CACHE_DIR`` moves it).

Safety: a model file is data (safetensors, no pickle, no code), and
:func:`pdmer.load` refuses unknown settings and ignores paths stored in it,
so the worst a forged file can do is predict badly. What must not happen
is a file swapped in transit without anyone being able to tell, so:

- ``https://`` (and ``hf://`` over https) is accepted without a checksum:
  TLS authenticates the server;
- plain ``http://`` is refused unless ``sha256`` is given (then the bytes
  are verified, whoever sent them) or ``allow_http=True`` says the
  network is trusted;
- with ``sha256`` the file is verified after every download and before a
  cached copy is used.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlparse

__all__ = ["HF_ENDPOINT_ENV", "fetch_model", "is_remote", "local_model", "model_cache_dir",
           "resolve_url"]

HF_ENDPOINT_ENV = "PDMER_HF_ENDPOINT"
"""Environment variable naming another Hub endpoint (a mirror, or a test server)."""
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_FILENAME = "model.safetensors"
_SCHEMES = ("https://", "http://", "hf://")
# A Hub user or repository name: letters, digits, '-', '_' and '.' (not '..').
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_remote(source) -> bool:
    """True for a string naming an ``https://``, ``http://`` or ``hf://`` model."""
    return isinstance(source, str) and source.lower().startswith(_SCHEMES)


def resolve_url(source: str) -> str:
    """The download URL of ``source``: an http(s) URL as is, ``hf://`` resolved.

    Examples
    --------
    >>> resolve_url("hf://alice/pdmer-deam")
    'https://huggingface.co/alice/pdmer-deam/resolve/main/model.safetensors'
    >>> resolve_url("hf://alice/pdmer-deam@v1/small.safetensors")
    'https://huggingface.co/alice/pdmer-deam/resolve/v1/small.safetensors'
    """
    if not source.lower().startswith("hf://"):
        return source
    rest = source[len("hf://"):].strip("/")
    parts = rest.split("/")
    if len(parts) < 2:
        raise ValueError(f"{source!r} names no repository: write hf://<user>/<repo>, "
                         "optionally @<revision> and /<file>.")
    user, repo, filename = parts[0], parts[1], "/".join(parts[2:]) or DEFAULT_FILENAME
    repo, _, revision = repo.partition("@")
    revision = revision or "main"
    for what, name in (("user", user), ("repository", repo)):
        if not _HUB_NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"{source!r}: {name!r} is not a valid Hub {what} name.")
    if ".." in PurePosixPath(filename).parts:
        raise ValueError(f"{source!r}: the file name may not contain '..'.")
    endpoint = os.environ.get(HF_ENDPOINT_ENV, "").strip() or DEFAULT_HF_ENDPOINT
    return (f"{endpoint.rstrip('/')}/{user}/{repo}/resolve/{quote(revision, safe='')}/"
            f"{quote(filename)}")


def model_cache_dir() -> Path:
    """Where downloaded model files are kept: ``<user cache>/models``."""
    from pdmer.features.cache import default_cache_dir

    return default_cache_dir() / "models"


def _cache_path(url: str, sha256: str | None) -> Path:
    # One folder per (URL, checksum): a file pinned by a checksum never
    # shares a place with another version from the same URL.
    key = hashlib.sha256(f"{url}\n{sha256 or ''}".encode()).hexdigest()[:16]
    name = Path(unquote(urlparse(url).path)).name or DEFAULT_FILENAME
    return model_cache_dir() / key / name


def fetch_model(source: str, path=None, *, sha256: str | None = None,
                allow_http: bool = False, force: bool = False,
                progress: bool = True) -> Path:
    """Download the model file ``source`` names; returns its local path.

    Parameters
    ----------
    source : str
        An ``https://`` or ``http://`` URL or ``hf://<user>/<repo>[@rev][/file]``
        (see :func:`resolve_url`).
    path : str or Path, optional
        Where to put the file. Default: the model cache
        (:func:`model_cache_dir`), where a later call finds it again.
    sha256 : str, optional
        The file's expected hex SHA-256 (a model card lists it): the
        download, and any copy already there, must match it.
    allow_http : bool, default=False
        Accept a plain ``http://`` download without ``sha256`` (a trusted
        network). Without either, http:// is refused: anyone on the way
        could swap the file unnoticed.
    force : bool, default=False
        Download again even if a copy is already there. Without ``sha256`` a
        cached copy is reused as is, so use this (or pin ``@<revision>``)
        after a repository's ``main`` has moved on.
    progress : bool, default=True
        Show a progress bar on stderr.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``http://`` without ``sha256`` or ``allow_http``, a malformed
        ``hf://`` name, or a download that is not a safetensors file (an
        HTML login or error page, say; it is deleted).
    pdmer.downloads.ChecksumError
        The file's size or SHA-256 is not the expected one.
    requests.HTTPError, requests.ConnectionError
        The server refused (404: check the name and revision; 401: the
        repository is private) or the connection broke (run again to resume).
    """
    from pdmer.downloads import download_file

    url = resolve_url(source)
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError(f"{source!r}: only https://, http:// and hf:// model URLs are "
                         "supported.")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256 must be 64 hex digits; got {sha256!r}.")
    if scheme == "http" and sha256 is None and not allow_http:
        raise ValueError(
            f"{url} is plain http: anyone on the way could swap the model unnoticed. Pass "
            "the file's sha256=... (--sha256; its model card lists it), use https, or "
            "allow_http=True (--allow-http) on a network you trust.")
    target = Path(path) if path is not None else _cache_path(url, sha256)
    if force:
        for stale in (target, target.with_name(target.name + ".part")):
            stale.unlink(missing_ok=True)
    if progress and not target.exists():
        print(f"Downloading {url}", file=sys.stderr)
    download_file(url, target, sha256=sha256, progress=progress)
    _check_safetensors(target, url)
    return target


def local_model(source, *, sha256: str | None = None, allow_http: bool = False,
                progress: bool = True):
    """The local file of a model ``source``: a URL fetched, a path as it is.

    What :func:`pdmer.load` and the command line's MODEL arguments do before
    reading a model: ``https://``, ``http://`` and ``hf://`` sources go
    through :func:`fetch_model` (into the cache, verified against ``sha256``);
    anything else is a local path, returned unchanged.

    Raises
    ------
    TypeError
        ``sha256`` or ``allow_http`` with a local path (they are for URLs).
    ValueError, pdmer.downloads.ChecksumError, requests.RequestException
        As :func:`fetch_model`.
    """
    if is_remote(source):
        return fetch_model(source, sha256=sha256, allow_http=allow_http, progress=progress)
    if sha256 is not None or allow_http:
        raise TypeError("sha256 and allow_http are for URLs; for a local file compare "
                        "pdmer.downloads.sha256_file(path) yourself.")
    return source


def _check_safetensors(path: Path, url: str) -> None:
    """Delete ``path`` and raise unless it starts like a safetensors file."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    # A safetensors file: an 8-byte little-endian header length, then JSON.
    header = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    if 0 < header < path.stat().st_size and head[8:9] == b"{":
        return
    looks = "an HTML page" if head.lstrip()[:1] == b"<" else f"data starting with {head!r}"
    size = path.stat().st_size
    path.unlink()
    raise ValueError(f"{url} did not send a safetensors model file but {looks} ({size} "
                     "bytes, deleted). Check the address (a private Hub repository answers "
                     "with a login page).")
