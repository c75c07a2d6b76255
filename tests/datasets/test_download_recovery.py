"""Downloads and extraction against misbehaving servers and hostile archives
(issue 12): error pages, wrong Content-Range, endless streams, zip bombs, and
``accept_mismatch`` limited to the hash. Every server is the local one on
127.0.0.1 and every stream is bounded in bytes and time."""

from __future__ import annotations

import json
import os
import struct
import time
import zipfile

import pytest

from http_fixture import serve_files
from pdmer.downloads import (MIN_EXTRACT_LIMIT, ChecksumError, UnsafeArchiveError,
                             download_file, safe_extract, sha256_file)
from test_download import PAYLOAD, sha

HTML = b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>"


@pytest.fixture
def server(tmp_path):
    with serve_files(tmp_path / "www", {"blob.bin": PAYLOAD}) as srv:
        yield srv


# ------------------------------------------------------------------ resuming


@pytest.mark.parametrize("known", ["size+sha256", "sha256"])
def test_part_holding_an_error_page_is_downloaded_again_from_the_start(server, tmp_path,
                                                                        known):
    # An earlier run saved an HTML error page as the start of the file. It is
    # resumed once (nothing tells it apart before verification), fails, and
    # is then fetched again whole, instead of failing on every later run.
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(HTML)
    size = len(PAYLOAD) if known == "size+sha256" else None
    download_file(f"{server.url}/blob.bin", dest, size=size, sha256=sha(PAYLOAD),
                  progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("blob.bin", f"bytes={len(HTML)}-"), ("blob.bin", None)]


def test_part_that_fails_again_after_a_fresh_download_is_a_clear_error(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(HTML)
    with pytest.raises(ChecksumError, match="failed verification: its SHA-256 is"):
        download_file(f"{server.url}/blob.bin", dest, sha256="0" * 64, progress=False)
    assert len(server.requests) == 2  # resumed once, restarted once, then gave up


def test_206_from_another_offset_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD[:1000])
    server.wrong_range.add("blob.bin")  # answers "bytes 0-..." to "bytes=1000-"
    download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD  # not the first 1000 bytes twice
    assert server.requests == [("blob.bin", "bytes=1000-"), ("blob.bin", None)]


# ----------------------------------------------------------- what is accepted


def test_server_announcing_another_size_is_refused_before_downloading(server, tmp_path):
    server.pages["blob.bin"] = (200, "text/html; charset=utf-8", HTML)
    dest = tmp_path / "blob.bin"
    with pytest.raises(ChecksumError, match=r"expected 102400 .*text/html"):
        download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), progress=False)
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()


@pytest.mark.parametrize("size, cap, message", [
    (len(PAYLOAD), None, "more than 102400 bytes \\(the expected size\\)"),
    (None, 1 << 20, "more than 1048576 bytes \\(the cap for downloads of unknown size"),
])
def test_endless_stream_stops_at_the_limit(server, tmp_path, size, cap, message):
    most = 50 << 20  # the server gives up after 50 MB
    server.endless["blob.bin"] = most
    dest = tmp_path / "blob.bin"
    kwargs = {} if cap is None else {"max_size": cap}
    started = time.monotonic()
    with pytest.raises(ChecksumError, match=message):
        download_file(f"{server.url}/blob.bin", dest, size=size, progress=False,
                      chunk_size=1 << 16, **kwargs)
    assert time.monotonic() - started < 30
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()
    for _ in range(100):  # the server notices the hang-up when its buffers fill
        if not server.streaming:
            break
        time.sleep(0.05)
    assert server.sent["blob.bin"] < most


def test_accepting_a_mismatch_never_excuses_a_wrong_size(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(PAYLOAD[:500])  # a truncated copy from somewhere
    with pytest.raises(ChecksumError, match="its size is 500 bytes, expected 102400"):
        download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD), sha256="0" * 64,
                      accept_mismatch=True, progress=False)
    # Only the hash is excused, and the message says so only for a hash.
    dest.unlink()
    with pytest.raises(ChecksumError) as err:
        download_file(f"{server.url}/blob.bin", dest, size=len(PAYLOAD) + 1,
                      accept_mismatch=True, progress=False)
    assert "accept" not in str(err.value)


def test_file_url_of_a_stream_is_capped(tmp_path):
    # A file:// URL of something that is not a regular file (a FIFO here, a
    # device in real life) has no size to check first; the cap still holds.
    import threading

    fifo = tmp_path / "stream"
    os.mkfifo(fifo)

    def feed():  # 8 MB at most, so that the test is bounded whatever happens
        try:
            with open(fifo, "wb") as out:
                for _ in range(128):
                    out.write(bytes(1 << 16))
        except BrokenPipeError:  # the reader stopped
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(ChecksumError, match="more than 4096 bytes"):
        download_file(fifo.as_uri(), tmp_path / "z", size=4096, progress=False,
                      chunk_size=1024)
    writer.join(10)
    assert not (tmp_path / "z.part").exists()


# ------------------------------------------------------------------ extraction


def zeros_zip(path, members):
    """A zip of highly compressible members: {name: n_bytes of zeros}."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, n_bytes in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as out:
                block = bytes(1 << 20)
                for start in range(0, n_bytes, len(block)):
                    out.write(block[:n_bytes - start])
    return path


def test_zip_bomb_is_refused_by_the_default_cap(tmp_path):
    archive = zeros_zip(tmp_path / "bomb.zip", {"a.txt": MIN_EXTRACT_LIMIT + (1 << 20)})
    assert archive.stat().st_size < 200_000
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match="would expand to .* refusing to extract"):
        safe_extract(archive, dest, progress=False)
    assert not dest.exists() or os.listdir(dest) == []


def test_extraction_caps_total_and_member_size(tmp_path):
    archive = zeros_zip(tmp_path / "a.zip", {"a.bin": 3000, "b.bin": 3000})
    with pytest.raises(UnsafeArchiveError, match="would expand to 6000 bytes, more than the "
                                                 "5000"):
        safe_extract(archive, tmp_path / "d1", max_size=5000, progress=False)
    with pytest.raises(UnsafeArchiveError, match="'a.bin' would expand to 3000 bytes, more "
                                                 "than the 2000 allowed for one member"):
        safe_extract(archive, tmp_path / "d2", max_size=10_000, max_member_size=2000,
                     progress=False)
    files = safe_extract(archive, tmp_path / "d3", max_size=6000, progress=False)
    assert sorted(p.name for p in files) == ["a.bin", "b.bin"]


def test_a_repeated_member_name_counts_every_copy(tmp_path):
    import warnings

    archive = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for _ in range(5):
                zf.writestr("a.bin", bytes(3000))
    with pytest.raises(UnsafeArchiveError, match="would expand to 15000 bytes"):
        safe_extract(archive, tmp_path / "dest", max_size=10_000, progress=False)


def forge_declared_size(archive, declared):
    """Rewrite the size fields of the zip's only member to ``declared``."""
    data = bytearray(archive.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("liar", ["header", "reader"])
def test_bytes_beyond_the_declared_size_are_refused(tmp_path, monkeypatch, liar):
    import io

    archive = zeros_zip(tmp_path / "a.zip", {"a.bin": 1 << 20})
    if liar == "header":  # says 1000 bytes; zipfile's CRC check then fails
        forge_declared_size(archive, 1000)
        error, message = ValueError, "a.zip is corrupt"
    else:  # a reader yielding more than declared is stopped by the count
        monkeypatch.setattr(zipfile.ZipFile, "open",
                            lambda self, info, *a, **k: io.BytesIO(bytes(2 << 20)))
        error, message = UnsafeArchiveError, "more bytes than its header declares"
    dest = tmp_path / "dest"
    with pytest.raises(error, match=message):
        safe_extract(archive, dest, progress=False)
    assert os.listdir(dest) == []


def test_extraction_checks_the_free_disk_space(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    archive = zeros_zip(tmp_path / "a.zip", {"a.bin": 5000})
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(OSError, match="expands to 5000 bytes but .* has only 100 bytes free"):
        safe_extract(archive, tmp_path / "dest", progress=False)


# ------------------------------------------- data set parts (pdmer_datasets)


@pytest.fixture
def part_server(tmp_path):
    archive = tmp_path / "part.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("part/a.csv", "x,y\n1,2\n")
    with serve_files(tmp_path / "www", {"part.zip": archive.read_bytes()}) as srv:
        yield srv, tmp_path / "www" / "part.zip"


def test_accepted_mismatch_records_the_hash_actually_installed(part_server, tmp_path):
    from pdmer_datasets._install import fetch_parts
    from pdmer_datasets.registry import Remote

    srv, archive = part_server
    remote = Remote("part.zip", f"{srv.url}/part.zip", sha256="f" * 64,
                    size=archive.stat().st_size, contents=["part"])
    home = tmp_path / "home"
    fetch_parts("test", home, {"p": remote}, ["p"], accept_mismatch=True, progress=False)
    marker = json.loads((home / ".pdmer" / "part.zip.installed").read_text())
    assert marker["sha256"] == sha256_file(archive) != "f" * 64


def test_accepted_mismatch_still_caps_the_extraction(part_server, tmp_path):
    from pdmer_datasets._install import fetch_parts
    from pdmer_datasets.registry import Remote

    srv, archive = part_server
    remote = Remote("part.zip", f"{srv.url}/part.zip", sha256="f" * 64,
                    size=archive.stat().st_size, contents=["part"], extracted_size=3)
    with pytest.raises(UnsafeArchiveError, match="more than the 3"):
        fetch_parts("test", tmp_path / "home", {"p": remote}, ["p"], accept_mismatch=True,
                    progress=False)
    assert not (tmp_path / "home" / ".pdmer").exists()  # not recorded as installed


def test_accepted_mismatch_does_not_pass_a_local_archive_of_another_size(part_server,
                                                                         tmp_path):
    from pdmer_datasets._install import fetch_parts
    from pdmer_datasets.registry import Remote

    srv, archive = part_server
    remote = Remote("part.zip", f"{srv.url}/part.zip", sha256="f" * 64,
                    size=archive.stat().st_size + 10, contents=["part"])
    with pytest.raises(ChecksumError, match="its size is"):
        fetch_parts("test", tmp_path / "home", {"p": remote}, ["p"], from_path=archive,
                    accept_mismatch=True, progress=False)


def test_deam_remotes_say_what_their_archives_hold():
    from pdmer_datasets import deam

    for remote in deam.REMOTES.values():
        assert remote.size < remote.extracted_size <= 21 * remote.size
