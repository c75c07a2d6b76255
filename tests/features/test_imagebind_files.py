"""``pdmer download imagebind`` against a server that sends the wrong thing
(issue 12): an HTML page is never installed nor reused, and ``--force`` or
another ``--url`` fetch again instead of reusing a kept download."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from http_fixture import serve
from pdmer.cli import main
from test_imagebind import TINY, write_official_checkpoint

HTML = b"<!DOCTYPE html><html><body>Please log in to continue.</body></html>"


@pytest.fixture
def tiny_architecture(monkeypatch):
    import functools

    from pdmer.features import imagebind

    monkeypatch.setattr(imagebind, "ImageBindAudio",
                        functools.partial(imagebind.ImageBindAudio, **TINY))


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_architecture):
    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "www"
    root.mkdir()
    write_official_checkpoint(root / "imagebind_huge.pth", **TINY)
    write_official_checkpoint(root / "mirror.pth", seed=1, **TINY)
    with serve(root) as server:
        yield server, tmp_path / "cache" / "downloads"


def install(*args):
    return CliRunner().invoke(main, ["download", "imagebind", "-q", *map(str, args)])


def test_an_html_page_is_refused_deleted_and_fetched_again(setup):
    server, downloads = setup
    url = f"{server.url}/imagebind_huge.pth"
    server.pages["imagebind_huge.pth"] = (200, "text/html", HTML)
    first = install("--url", url)
    assert first.exit_code == 1
    assert "did not send a PyTorch checkpoint but an HTML page" in first.output
    assert not any(downloads.iterdir())  # nothing kept to be reused
    del server.pages["imagebind_huge.pth"]  # the server is fixed
    second = install("--url", url)
    assert second.exit_code == 0, second.output
    assert [r for r in server.requests if r[0] == "imagebind_huge.pth"] == [
        ("imagebind_huge.pth", None)] * 2


def test_a_checkpoint_without_audio_weights_is_not_kept(setup, tmp_path):
    import torch

    server, downloads = setup
    torch.save({"something.else": torch.zeros(2)}, tmp_path / "www" / "other.pth")
    result = install("--url", f"{server.url}/other.pth", "--keep-checkpoint")
    assert result.exit_code == 1 and "holds no ImageBind audio weights" in result.output
    assert not any(downloads.iterdir())


def test_force_and_another_url_download_again(setup):
    server, downloads = setup
    url = f"{server.url}/imagebind_huge.pth"
    assert install("--url", url, "--keep-checkpoint").exit_code == 0
    assert (downloads / "imagebind_huge.pth").is_file()
    forced = install("--url", url, "--force", "--keep-checkpoint")
    assert forced.exit_code == 0, forced.output
    assert [r[0] for r in server.requests] == ["imagebind_huge.pth"] * 2
    mirror = install("--url", f"{server.url}/mirror.pth", "--force")
    assert mirror.exit_code == 0, mirror.output
    assert [r[0] for r in server.requests][-1] == "mirror.pth"
    assert not (downloads / "imagebind_huge.pth").exists()


def test_a_partial_download_from_another_url_is_not_resumed(setup):
    server, downloads = setup
    downloads.mkdir(parents=True)
    (downloads / "imagebind_huge.pth.part").write_bytes(HTML)  # from some other address
    result = install("--url", f"{server.url}/imagebind_huge.pth")
    assert result.exit_code == 0, result.output
    assert server.requests == [("imagebind_huge.pth", None)]  # whole, no Range
