"""Ready to publish: ``python -m build`` makes a wheel and an sdist that pass
``twine check`` and carry the files pdmer reads at run time (the app's page,
the data sets' indexes) and the licence."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Read at run time from the installed package, so a wheel without them breaks
# `pdmer app` and `pdmer download deam` only after installation.
RUNTIME_FILES = ("pdmer/app/static/index.html", "pdmer/app/static/app.js",
                 "pdmer/app/static/app.css", "pdmer_datasets/indexes/deam_index_1.0.json",
                 "pdmer_datasets/indexes/pmemo_index_2019.json")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist and the wheel built from a copy of the source (builds write
    build/ and *.egg-info beside the sources; the checkout stays clean)."""
    pytest.importorskip("build", reason="pip install build twine (the test extra has them)")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("pdmer", "pdmer_datasets", "tests"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: use the installed setuptools, no download of build
    # dependencies (the tests never reach the internet).
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                             str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.mark.slow
def test_the_wheel_carries_the_app_and_the_indexes(dist):
    wheel, _ = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(RUNTIME_FILES) <= names
    assert "pdmer/cli/__init__.py" in names and "pdmer_datasets/registry.py" in names
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".pyc")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pdmer = pdmer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_the_wheel_and_the_sdist_carry_the_licence(dist):
    wheel, sdist = dist
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    with zipfile.ZipFile(wheel) as archive:
        [licence] = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(licence).decode() == text
        metadata = archive.read(next(n for n in archive.namelist()
                                     if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    with tarfile.open(sdist) as archive:
        [licence] = [m for m in archive.getmembers() if m.name.split("/", 1)[-1] == "LICENSE"]
        assert archive.extractfile(licence).read().decode() == text


@pytest.mark.slow
def test_the_sdist_carries_the_app_and_the_indexes(dist):
    _, sdist = dist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert set(RUNTIME_FILES) <= names
    assert {"pyproject.toml", "README.md"} <= names


@pytest.mark.slow
def test_twine_check_passes(dist):
    pytest.importorskip("twine", reason="pip install build twine (the test extra has them)")
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2
