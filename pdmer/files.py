"""Writing files so that a crash never leaves a half-written one behind.

:func:`atomic_write` writes into a temporary file beside the target and
renames it into place. Its temporary files are named
``.<target name>.<8 hex digits>.tmp[<suffix>]``, so a process killed while
writing leaves a file that :func:`remove_stale_temp_files` recognises as
belonging to that target. :func:`check_writable` tells, before hours of work,
whether a result could be written at all.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "check_writable", "remove_stale_temp_files", "try_lock"]

# Longest target name used verbatim in a temporary name; longer ones are
# hashed so that ``.<name>.<token>.tmp<suffix>`` stays under the usual
# 255-byte file-name limit.
_MAX_NAME_BYTES = 180


def _temp_prefix(name: str) -> str:
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        name = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f".{name}."


def _temp_suffix(suffix: str) -> str:
    # ".tmp" marks the file as temporary; a writer that infers the format from
    # the extension (matplotlib) still sees ``suffix`` at the end.
    return ".tmp" if suffix in ("", ".tmp") else ".tmp" + suffix


def _create_temp(directory: str, name: str, suffix: str) -> str:
    """Create an empty, new temporary file for ``name`` in ``directory``."""
    for _ in range(100):
        tmp = os.path.join(directory, _temp_prefix(name) + secrets.token_hex(4)
                           + _temp_suffix(suffix))
        try:
            # Mode 0o666 lets the kernel apply the user's umask (and a default
            # ACL), as open() does for any new file; mkstemp's 0o600 would
            # survive the rename.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", directory)


def atomic_write(path, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it.

    The temporary file is created with the permissions any new file gets (the
    user's umask applies); when ``path`` already exists its permission bits
    are kept. ``suffix`` lets writers that infer the format from the name
    (matplotlib) see the right extension. The temporary file is removed if
    writing fails.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder is created if needed.
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path`` (an empty
        file that exists).
    suffix : str, default=".tmp"
        Extension the temporary file ends with.

    Examples
    --------
    >>> from pathlib import Path
    >>> from pdmer.files import atomic_write
    >>> atomic_write("notes.txt", lambda tmp: Path(tmp).write_text("hello"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = _create_temp(directory, os.path.basename(path), suffix)
    try:
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        mode = stat.S_IMODE(os.stat(tmp).st_mode)
        write(tmp)
        # Some writers (safetensors.save_file) replace the file with one of
        # their own, created 0600; give it back the mode prepared above.
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temp_files(path, *, min_age: float = 0.0) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` left beside ``path``.

    A process killed while writing ``path`` (SIGKILL, power loss) leaves its
    ``.<name>.<8 hex digits>.tmp[<suffix>]`` file behind; call this before
    writing ``path`` again, e.g. when a training run resumes from its
    checkpoint. Only files matching that pattern for this very target are
    touched.

    Parameters
    ----------
    path : str or os.PathLike
        The target file (it need not exist).
    min_age : float, default=0.0
        Keep temporary files modified less than this many seconds ago (a
        writer in another process may still be using them).

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    pattern = re.compile(re.escape(_temp_prefix(path.name)) + r"[0-9a-f]{8}\.tmp(\..*)?\Z",
                         re.DOTALL)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
            os.remove(entry.path)
        except FileNotFoundError:  # another process cleaned it first
            continue
        removed.append(Path(entry.path))
    return removed


def check_writable(path, *, what: str = "the output") -> Path:
    """Make sure a file could be written at ``path``; fail now with a clear error.

    Checks that ``path`` is not a folder and that its folder exists and
    accepts a new file (a probe file is created and removed), or, when the
    folder does not exist yet, that it could be created. Nothing is left
    behind. Call it before long work whose result goes to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
    what : str, default="the output"
        How error messages name the file, e.g. ``"--output"``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    IsADirectoryError, NotADirectoryError, PermissionError, OSError
        With a message that names ``path`` and what is wrong.
    """
    path = Path(path)
    where = f"Cannot write {what} to {path}"
    if path.is_dir():
        raise IsADirectoryError(f"{where}: it is a folder; give a file name inside it.")
    folder = path.absolute().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{where}: {existing} is a file, not a folder.")
    if existing != folder:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"{where}: the folder {folder} cannot be created "
                                  f"({existing} is not writable).")
        return path
    try:
        os.remove(_create_temp(str(folder), path.name, ".tmp"))
    except OSError as err:
        raise type(err)(f"{where}: no file can be created in {folder} "
                        f"({err.strerror or err}).") from None
    return path


def try_lock(path):
    """An exclusive lock on the file ``path``, or None if another process holds it.

    The lock (:class:`filelock.FileLock`, an ``flock`` on Unix) is released
    with ``.release()``, or by the system when the process ends, however it
    ends; the empty lock file stays. Its folder is created if needed.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file, e.g. ``<checkpoint>.lock``.

    Returns
    -------
    filelock.FileLock or None
    """
    from filelock import FileLock, Timeout

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock = FileLock(os.fspath(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def safetensors_metadata(path, what: str = "File") -> dict:
    """The metadata of a safetensors file (empty when it has none), without reading its tensors.

    Parameters
    ----------
    path : str or os.PathLike
    what : str, default="File"
        What the file should be, for the messages (e.g. ``"Model"``).

    Raises
    ------
    FileNotFoundError
        ``"<what> file not found: <path>"``.
    ValueError
        The file is not a readable safetensors file.
    """
    from safetensors import safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt") as handle:
            return handle.metadata() or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
