"""pdmer.downloads against a local HTTP server: resume, verification, safe extraction."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest
import requests

from http_fixture import serve_files
from pdmer.downloads import (ChecksumError, UnsafeArchiveError, download_file,
                             safe_extract, sha256_file)

PAYLOAD = bytes(range(256)) * 400  # 100 kB


@pytest.fixture
def server(tmp_path):
    with serve_files(tmp_path / "www", {"blob.bin": PAYLOAD}) as srv:
        yield srv


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_sha256_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path) == sha(PAYLOAD)


def test_download_verifies_and_is_idempotent(server, tmp_path):
    dest = tmp_path / "out" / "blob.bin"
    got = download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD),
                        sha256=sha(PAYLOAD).upper(), progress=False)
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("blob.bin.part").exists()
    n = len(server.requests)
    download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), sha256=sha(PAYLOAD),
                  progress=False)
    assert len(server.requests) == n  # nothing fetched the second time


def test_wrong_checksum_names_both_hashes_and_keeps_the_file(server, tmp_path):
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        download_file(f"{server.url}/blob.bin", dest, sha256=wrong, progress=False)
    assert wrong in str(err.value) and sha(PAYLOAD) in str(err.value)
    assert not dest.exists()
    assert dest.with_name("blob.bin.part").read_bytes() == PAYLOAD
    # Accepting the mismatch keeps the file without another request.
    n = len(server.requests)
    download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), sha256=wrong,
                  accept_mismatch=True, progress=False)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == n


def test_wrong_size_is_an_error(server, tmp_path):
    with pytest.raises(ChecksumError, match=f"size is {len(PAYLOAD)} bytes, expected 5"):
        download_file(f"{server.url}/blob.bin", tmp_path / "b", size=5, progress=False)


def test_existing_file_that_does_not_verify_is_an_error(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"not it")
    with pytest.raises(ChecksumError, match="exists but its SHA-256 is"):
        download_file(f"{server.url}/blob.bin", dest, sha256=sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == b"not it"  # nothing overwritten


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "blob.bin"
    server.drop_after["blob.bin"] = 30_000
    with pytest.raises(requests.ConnectionError, match="run again to resume"):
        download_file(f"{server.url}/blob.bin", dest, sha256=sha(PAYLOAD), progress=False,
                      chunk_size=1024)
    part = dest.with_name("blob.bin.part")
    kept = part.stat().st_size
    assert 0 < kept <= 30_000 and not dest.exists()
    download_file(f"{server.url}/blob.bin", dest, sha256=sha(PAYLOAD), progress=False,
                  chunk_size=1024)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("blob.bin", f"bytes={kept}-")


def test_server_that_ignores_range_restarts_the_download(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD[:1000])
    server.ignore_range = True
    download_file(f"{server.url}/blob.bin", dest, sha256=sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_not_fetched_again(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD)
    download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), sha256=sha(PAYLOAD),
                  progress=False)
    assert dest.read_bytes() == PAYLOAD and server.requests == []


def test_missing_file_is_an_http_error(server, tmp_path):
    with pytest.raises(requests.HTTPError, match="404"):
        download_file(f"{server.url}/nope.zip", tmp_path / "nope.zip", progress=False)


def test_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = download_file(src.as_uri(), tmp_path / "copy.bin", sha256=sha(PAYLOAD),
                         progress=False)
    assert dest.read_bytes() == PAYLOAD


# ------------------------------------------------------------------ extraction


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def make_tar(path, entries, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [make_zip, make_tar])
def test_safe_extract(tmp_path, make):
    archive = make(tmp_path / "a.arc", {"top/a.txt": b"a", "top/sub/b.txt": b"b",
                                        "other/c.txt": b"c"})
    dest = tmp_path / "dest"
    files = safe_extract(archive, dest, progress=False)
    assert sorted(p.relative_to(dest).as_posix() for p in files) == [
        "other/c.txt", "top/a.txt", "top/sub/b.txt"]
    assert (dest / "top/sub/b.txt").read_bytes() == b"b"
    assert sorted(os.listdir(dest)) == ["other", "top"]  # no staging folder left
    only = safe_extract(archive, tmp_path / "d2", members=["top/sub"], progress=False)
    assert [p.name for p in only] == ["b.txt"]


@pytest.mark.parametrize("make", [make_zip, make_tar])
@pytest.mark.parametrize("name, message", [
    ("../evil.txt", "contains '..'"),
    ("top/../../evil.txt", "contains '..'"),
    ("/tmp/evil.txt", "absolute path"),
])
def test_path_traversal_is_refused(tmp_path, make, name, message):
    archive = make(tmp_path / "bad.arc", {"good.txt": b"ok", name: b"evil"})
    dest = tmp_path / "a" / "dest"
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, dest, progress=False)
    assert not (tmp_path / "a" / "evil.txt").exists()
    assert not dest.exists() or os.listdir(dest) == []  # nothing written at all


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path, kind):
    archive = make_tar(tmp_path / "l.tar.gz", {"a.txt": b"a"},
                       links=[("link", "/etc/passwd", kind)])
    with pytest.raises(UnsafeArchiveError, match="is a link"):
        safe_extract(archive, tmp_path / "dest", progress=False)


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "dest", progress=False)


def test_not_an_archive(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        safe_extract(path, tmp_path / "dest", progress=False)


def test_interrupted_extraction_leaves_nothing_half_written(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", {"x/1.txt": b"1", "x/2.txt": b"2"})
    dest = tmp_path / "dest"
    import shutil
    calls = []
    real = shutil.copyfileobj

    def failing(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", failing)
    with pytest.raises(OSError, match="disk full"):
        safe_extract(archive, dest, progress=False)
    assert os.listdir(dest) == []  # neither file, no staging folder
