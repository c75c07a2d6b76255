"""Installing a data set's parts: download (or take a local copy), verify, extract."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from pdmer.downloads import ChecksumError, download_file, safe_extract, sha256_file, verify_file
from pdmer.files import atomic_write
from pdmer_datasets.registry import Remote

# Folder (inside data_home) where completed extractions are recorded, so that
# a second download() does nothing and an interrupted one is redone.
STATE_DIR = ".pdmer"


def installed(data_home, remote: Remote) -> bool:
    """Whether ``remote`` was extracted completely into ``data_home``."""
    home = Path(data_home)
    return (home / STATE_DIR / f"{remote.filename}.installed").exists() and all(
        (home / c).exists() for c in remote.contents)


def fetch_parts(dataset_name: str, data_home, remotes: dict, parts, *, mirror=None,
                from_path=None, force_overwrite=False, cleanup=False,
                accept_mismatch=False, progress=True) -> list[str]:
    """Download (or take from ``from_path``) and extract the given parts.

    Returns the list of parts that were actually (re)installed; parts already
    installed are skipped, so a second call does nothing.
    """
    data_home = Path(data_home)
    unknown = [p for p in parts if p not in remotes]
    if unknown:
        raise ValueError(f"{dataset_name}: unknown part(s) {unknown}; choose from "
                         f"{sorted(remotes)}.")
    done = []
    for part in parts:
        remote = remotes[part]
        marker = data_home / STATE_DIR / f"{remote.filename}.installed"
        if installed(data_home, remote) and not force_overwrite:
            _say(progress, f"{dataset_name}: {part} already installed in {data_home} "
                           "(force_overwrite=True / --force installs it again)")
            continue
        source = _local_source(remote, from_path) if from_path is not None else None
        if isinstance(source, Path) and source.is_dir():
            _say(progress, f"{dataset_name}: {part}: copying the extracted files from "
                           f"{source}")
            _copy_tree(source, data_home, remote.contents, force_overwrite)
            installed_sha256 = None  # no archive was seen
        else:
            archive = source
            if archive is None:
                archive = download_file(remote.url_under(mirror),
                                        data_home / remote.filename, size=remote.size,
                                        sha256=remote.sha256,
                                        accept_mismatch=accept_mismatch, progress=progress)
            else:
                _check_archive(archive, remote, accept_mismatch)
            # Record the hash actually installed, not the one expected.
            installed_sha256 = (remote.sha256 if remote.sha256 and not accept_mismatch
                                else sha256_file(archive))
            safe_extract(archive, data_home, progress=progress,
                         max_size=remote.extracted_size)
            missing = [c for c in remote.contents if not (data_home / c).exists()]
            if missing:
                raise ValueError(
                    f"{archive} did not contain {missing} (expected the official "
                    f"{remote.filename} layout).")
            if cleanup and archive.parent == data_home:
                archive.unlink()
        atomic_write(marker, lambda tmp: Path(tmp).write_text(
            json.dumps({"file": remote.filename, "sha256": installed_sha256})))
        done.append(part)
    return done


def _say(progress, message):
    if progress:
        print(message, file=sys.stderr)


def _local_source(remote: Remote, from_path) -> Path:
    """The archive or extracted folder for ``remote`` under ``from_path``."""
    path = Path(from_path).expanduser()
    if path.is_file():
        if path.name != remote.filename:
            raise ValueError(f"--from {path}: expected a file named {remote.filename}.")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"--from {path}: no such file or folder.")
    if (path / remote.filename).is_file():
        return path / remote.filename
    if remote.contents and all((path / c).exists() for c in remote.contents):
        return path
    raise FileNotFoundError(
        f"--from {path}: found neither {remote.filename} nor the extracted "
        f"{', '.join(remote.contents)} in it.")


def _check_archive(archive: Path, remote: Remote, accept_mismatch: bool):
    """Verify a user-supplied archive like a downloaded one (a size never passes)."""
    problem = verify_file(archive, remote.size, remote.sha256, accept_mismatch=accept_mismatch)
    if problem is not None:
        hint = (" Pass accept_mismatch=True (--accept-checksum-mismatch) to use it anyway."
                if problem.startswith("its SHA-256") else "")
        raise ChecksumError(f"{archive}: {problem}.{hint}")


def _copy_tree(source: Path, data_home: Path, contents, overwrite=False):
    """Hard-link (or copy) ``contents`` of an extracted folder into data_home."""
    if source.resolve() == data_home.resolve():
        return
    for top in contents:
        src = source / top
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for f in files:
            target = data_home / f.relative_to(source)
            if target.exists() and not overwrite:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            try:
                os.link(f, tmp)
            except OSError:
                shutil.copyfile(f, tmp)
            os.replace(tmp, target)
