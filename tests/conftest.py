"""Fixtures every test can use (helpers to import are in helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers import DEBIAN_MUSIC, DEBIAN_SONGS, SHARED_DATA, make_annotator_table


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory):
    # An empty user cache: weights or features a developer installed (e.g.
    # ImageBind, which global_encoder="auto" would pick up) must not change tests.
    old = os.environ.get("PDMER_CACHE_DIR")
    os.environ["PDMER_CACHE_DIR"] = str(tmp_path_factory.mktemp("user_cache"))
    yield
    if old is None:
        os.environ.pop("PDMER_CACHE_DIR", None)
    else:
        os.environ["PDMER_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def single_thread():
    # The tensors in tests are tiny: intra-op threads only add synchronisation
    # cost, which dominates the runtime on a busy 2-core machine.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture
def annotator_table():
    return make_annotator_table()


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data files not found at {SHARED_DATA} (../shared/data is "
                    "outside the project and absent on this machine)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def debian_music():
    if not all((DEBIAN_MUSIC / song).is_file() for song in DEBIAN_SONGS):
        pytest.skip(f"real music not found at {DEBIAN_MUSIC}: install Debian's asc-music "
                    "(apt-get install asc-music; .ci/run does)")
    return DEBIAN_MUSIC


# Modules that start servers, browsers or processes, train several models, decode
# whole songs or build the documentation: `pytest -m "not slow"` leaves them out
# (CI runs all).
SLOW_MODULES = {"app/test_app_browser.py", "app/test_app_postgres.py",
                "app/test_app_real_music.py", "cli/test_real_music.py",
                "meta/test_distributed.py",
                "experiments/test_demo.py", "experiments/test_benchmark.py",
                "experiments/test_experiments_robustness.py",
                "features/test_extraction_scale.py", "test_docs.py"}


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        if Path(item.fspath).relative_to(root).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
