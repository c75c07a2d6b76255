"""The listener app on PostgreSQL: a throwaway server (initdb + pg_ctl) when
PostgreSQL and the psycopg driver are installed, skipped otherwise."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install 'pdmer[app]')")
httpx = pytest.importorskip("httpx", reason="the tests' HTTP client (httpx) is not installed")
pytest.importorskip("psycopg", reason="no PostgreSQL driver (pip install 'psycopg[binary]')")

from app_fixture import label_csv, serve, trained, wait_for_job  # noqa: E402
from pdmer.app import create_app  # noqa: E402

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
INITDB = shutil.which("initdb") or (os.path.join(BIN[-1], "initdb") if BIN else None)
pytestmark = pytest.mark.skipif(INITDB is None or not os.path.exists(INITDB),
                                reason="PostgreSQL is not installed (initdb not found)")


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on a Unix socket in a temporary folder."""
    folder = tempfile.mkdtemp(prefix="pdmer-pg-")
    run_as = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(
                ["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    bin_dir = os.path.dirname(INITDB)
    data = os.path.join(folder, "data")
    subprocess.run(run_as + [INITDB, "-D", data, "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(run_as + [os.path.join(bin_dir, "pg_ctl"), "-D", data, "-w", "-l",
                             os.path.join(folder, "log"), "-o",
                             f"-k {folder} -c listen_addresses=''", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={folder}"
    finally:
        subprocess.run(run_as + [os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m", "fast",
                                 "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_listeners_and_adaptations_survive_a_restart_on_postgresql(tmp_path_factory, tmp_path,
                                                                   postgres_url):
    built = trained(tmp_path_factory)
    labels = built["data"].expected_labels(built["data"].listener_ids[0], "S000")

    def app():
        return create_app(built["model"], built["songs"], data_dir=tmp_path,
                          db_url=postgres_url, prefetch=False)

    with serve(app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        token = client.post("/api/listeners", json={"name": "alice"}).json()["token"]
        alice = {"Authorization": f"Bearer {token}"}
        bob = {"Authorization": "Bearer " + client.post(
            "/api/listeners", json={"name": "bob"}).json()["token"]}
        ids = {s["title"]: s["id"] for s in client.get("/api/songs", headers=alice).json()}
        created = client.post(f"/api/songs/{ids['S000']}/annotations", headers=alice,
                              files={"labels": ("a.csv", label_csv(labels))})
        assert created.status_code == 201, created.text
        job = wait_for_job(client, created.json()["job"], alice)
        assert job["status"] == "done", job
        before = client.get(f"/api/songs/{ids['S001']}/predictions", headers=alice).json()
        annotation = created.json()["annotation"]["id"]
        assert client.get(f"/api/annotations/{annotation}", headers=bob).status_code == 404
    assert not (tmp_path / "app.sqlite").exists()

    with serve(app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        me = client.get("/api/me", headers=alice).json()
        assert me["adaptation"]["id"] == job["adaptation_id"]
        after = client.get(f"/api/songs/{ids['S001']}/predictions", headers=alice).json()
        stored = client.get(f"/api/annotations/{annotation}", headers=alice).json()
    assert after == before and after["personal"] is not None
    np.testing.assert_allclose(stored["labels"]["valence"], labels[:, 1], atol=1e-4)


def test_hostile_ids_and_names_and_a_second_app_on_postgresql(tmp_path_factory, tmp_path,
                                                              postgres_url):
    # Issue 19: 500s on PostgreSQL (ids past its INTEGER, a NUL in a name), and
    # a second app that re-queued the first one's running jobs.
    import json

    built = trained(tmp_path_factory)

    def app():
        return create_app(built["model"], built["songs"], data_dir=tmp_path,
                          db_url=postgres_url, prefetch=False)

    with serve(app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        token = client.post("/api/listeners", json={"name": "carol"}).json()["token"]
        carol = {"Authorization": f"Bearer {token}"}
        for big in (2**31, 2**63, 2**64):
            assert client.get(f"/api/songs/{big}", headers=carol).status_code == 422
            assert client.get(f"/api/jobs/{big}", headers=carol).status_code == 422
        for name in ("a\x00b", "\ud800"):
            response = client.post("/api/listeners", content=json.dumps({"name": name}),
                                   headers={"Content-Type": "application/json"})
            assert response.status_code == 422, response.text
        second = app()
        with pytest.raises(RuntimeError, match="Another pdmer app is using the database"):
            second.state.service.start(prefetch=False)
        second.state.service.close()
    # The first app's claim ended with it.
    with serve(app()) as url:
        assert httpx.get(f"{url}/api/info").status_code == 200
