"""The listener app under hostile input (issue 19): audio and JSON bombs,
non-finite audio, 500s that must be 4xx, DNS rebinding, leaked paths, labels
far out of range, and races between requests and between processes."""

from __future__ import annotations

import errno
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install 'pdmer[app]')")
httpx = pytest.importorskip("httpx", reason="the tests' HTTP client (httpx) is not installed")

from app_fixture import label_csv, serve, trained  # noqa: E402
from pdmer.app import create_app  # noqa: E402
from pdmer.app.storage import Annotation, Job  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return trained(tmp_path_factory)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hardened-app")


@pytest.fixture(scope="module")
def client(built, app_dir):
    """One server (songs of at most 12 s, 0.5 MiB uploads, one allowed proxy name)."""
    app = create_app(built["model"], built["songs"], data_dir=app_dir, prefetch=False,
                     max_song_minutes=0.2, max_upload_mb=0.5, allowed_hosts=["music.example"])
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def new_listener(client, name="alice"):
    response = client.post("/api/listeners", json={"name": name})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def wav(seconds, rate=16000, channels=1, subtype="PCM_16", edit=None):
    waveform = np.random.default_rng(0).normal(0, 0.1, (int(seconds * rate), channels))
    waveform = waveform.astype(np.float32)
    if edit is not None:
        edit(waveform)
    out = io.BytesIO()
    sf.write(out, waveform, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def upload(client, headers, name, data):
    return client.post("/api/songs", headers=headers, files={"audio": (name, data)})


def catalog_id(client, headers, title="S000"):
    return {s["title"]: s["id"] for s in client.get("/api/songs", headers=headers).json()}[title]


# ------------------------------------------------------------------- 1. audio bombs
@pytest.mark.parametrize("data, status, message", [
    # An hour at 100 Hz is 703 KiB but grew the server by 300 MiB: here 20 s > 12 s.
    (wav(20, rate=100), 413, "is 20.0 s long; the limit is 0.2 minutes (--max-song-minutes)"),
    (wav(0.1, rate=384000), 422, "has a sample rate of 384000 Hz; the app takes up to 96000"),
    (wav(1, rate=1000, channels=40), 422, "has 40 channels; the app takes up to 8"),
])
def test_audio_that_would_decode_too_large_is_refused_from_its_header(client, data, status,
                                                                      message):
    alice = new_listener(client)
    response = upload(client, alice, "bomb.wav", data)
    assert response.status_code == status, response.text
    assert f"bomb.wav {message}" in response.json()["detail"]


# ------------------------------------------------------------------- 2. JSON bombs
def test_json_bodies_are_small_and_never_echoed(client):
    nested = b"[" * 3000 + b"]" * 3000  # 6 KB, over the JSON limit
    started = time.perf_counter()
    response = client.post("/api/listeners", content=b'{"name": ' + nested + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "the limit is 4 KiB" in response.json()["detail"]
    assert time.perf_counter() - started < 2
    # Under the limit, a malformed body gets a message without the input.
    body = '{"name": ' + '"' + "x" * 2000 + '"}'
    response = client.post("/api/listeners", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "x" * 100 not in response.text
    deep = b'{"name": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    response = client.post("/api/listeners", content=deep,
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422) and "[[[" not in response.text
    # Routes that take no body take none.
    alice = new_listener(client)
    response = client.post("/api/personalize", headers=alice, content=b"0" * 10_000)
    assert response.status_code == 413


# -------------------------------------------------------------- 3. non-finite audio
def test_float_audio_with_nan_samples_is_refused_naming_the_sample(client):
    alice = new_listener(client)
    data = wav(3, subtype="FLOAT", edit=lambda w: w.__setitem__((2000, 0), np.nan))
    response = upload(client, alice, "nan.wav", data)
    assert response.status_code == 422, response.text
    assert "nan.wav: sample 2000 (0.125 s), channel 1, is nan" in response.json()["detail"]


# -------------------------------------------------------------------- 6. 500 -> 4xx
def test_a_huge_csv_field_is_a_422(client):
    alice = new_listener(client)
    content = b"time,arousal,valence\n0," + b"1" * 200_000 + b",0\n"
    response = client.post(f"/api/songs/{catalog_id(client, alice)}/annotations",
                           headers=alice, files={"labels": ("big.csv", content)})
    assert response.status_code == 422, response.text
    assert "big.csv, line 2: field larger than" in response.json()["detail"]


@pytest.mark.parametrize("route", ["/api/songs/{}", "/api/songs/{}/audio", "/api/jobs/{}",
                                   "/api/annotations/{}", "/api/songs/{}/predictions"])
def test_ids_beyond_the_databases_integers_are_a_422(client, route):
    alice = new_listener(client)
    for big in (2**31, 2**64, 10**30):
        response = client.get(route.format(big), headers=alice)
        assert response.status_code == 422, (big, response.text)
    assert client.get(route.format(999_999), headers=alice).status_code == 404


@pytest.mark.parametrize("name, message", [
    ("\ud800", "control or surrogate characters"),
    ("al\x00ice", "control or surrogate characters"),
    ("bob\nsmith", "control or surrogate characters"),
    ("x" * 201, "at most 200 characters"),
])
def test_listener_names_with_control_characters_or_too_long_are_refused(client, name,
                                                                        message):
    import json

    response = client.post("/api/listeners", content=json.dumps({"name": name}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert client.post("/api/listeners", json={"name": "Zoë 🎵"}).status_code == 201


def test_a_full_disk_is_a_507_and_leaves_nothing(client, app_dir, monkeypatch):
    alice = new_listener(client)
    write_bytes = Path.write_bytes

    def full(self, data):
        if app_dir / "uploads" in self.parents:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    response = upload(client, alice, "song.wav", wav(3))
    assert response.status_code == 507, response.text
    assert "disk is full" in response.json()["detail"]
    assert not list((app_dir / "uploads").iterdir())
    assert client.get("/api/songs", headers=alice).json()[-1]["uploaded"] is False


# ------------------------------------------------------------------ 7. DNS rebinding
def test_only_the_hosts_the_app_is_served_as_are_answered(client):
    for host, status in [("evil.example", 400), ("127.0.0.1.evil.example", 400),
                         ("localhost:8000", 200), ("music.example", 200)]:
        response = client.get("/api/info", headers={"Host": host})
        assert response.status_code == status, host
    assert client.post("/api/listeners", json={"name": "x"},
                       headers={"Host": "evil.example"}).status_code == 400


# ----------------------------------------------------------- 8. no server paths
def test_messages_name_the_song_not_its_path(client, built):
    alice = new_listener(client)
    song = catalog_id(client, alice)
    response = client.post(f"/api/songs/{song}/annotations", headers=alice,
                           files={"labels": ("late.csv", label_csv(np.zeros((2, 2)), 60.0))})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "S000" in detail and str(built["songs"]) not in detail and "/" not in detail


# ------------------------------------------------------------ 9. labels out of range
def test_labels_far_outside_the_documented_range_are_refused(client):
    alice = new_listener(client)
    labels = np.zeros((4, 2))
    labels[2, 1] = 1e15
    response = client.post(f"/api/songs/{catalog_id(client, alice)}/annotations",
                           headers=alice, files={"labels": ("far.csv", label_csv(labels))},
                           params={"personalize": False})
    assert response.status_code == 422, response.text
    assert "far.csv, line 4: valence 1e+15 is outside" in response.json()["detail"]
    assert client.get("/api/me", headers=alice).json()["annotations"] == []


# ----------------------------------------------------------------------- 11. races
def test_concurrent_personalizations_of_one_listener_queue_one_job(built, tmp_path,
                                                                   monkeypatch):
    import pdmer.app.service as service_module

    app = create_app(built["model"], built["songs"], data_dir=tmp_path, prefetch=False)
    service = app.state.service
    submitted = []
    service.worker = type("Worker", (), {"submit": lambda self, *a: submitted.append(a)})()
    service.library.scan()
    listener, _ = service.create_listener("alice")
    with service.db.session() as session:
        session.add(Annotation(listener_id=listener.id, song_id=1, frame_offset=0.0,
                               labels=[[0.0, 0.0]]))
        session.commit()

    class SlowJob(Job):  # widens the window between looking for a job and adding one
        def __init__(self, **kwargs):
            time.sleep(0.2)
            super().__init__(**kwargs)

    monkeypatch.setattr(service_module, "Job", SlowJob)
    threads = [threading.Thread(target=service.personalize, args=(listener,))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with service.db.session() as session:
        queued = session.query(Job).filter_by(status="queued").count()
    service.worker = None
    service.close()
    assert queued == 1 and len(submitted) == 1


def test_a_second_app_on_the_same_database_refuses_to_start(built, tmp_path):
    # It re-queued the jobs the first one was running (issue 19).
    first = create_app(built["model"], built["songs"], data_dir=tmp_path, prefetch=False)
    with serve(first) as url, httpx.Client(base_url=url) as http:
        new_listener(http)
        with first.state.service.db.session() as session:
            session.add(Job(listener_id=1, status="running", total=4))
            session.commit()
        second = create_app(built["model"], built["songs"], data_dir=tmp_path, prefetch=False)
        with pytest.raises(RuntimeError, match="Another pdmer app is using the database"):
            second.state.service.start(prefetch=False)
        second.state.service.close()
        with first.state.service.db.session() as session:
            assert session.query(Job).one().status == "running"


def test_pdmer_app_passes_its_host_and_limits_to_the_app(built, tmp_path, monkeypatch):
    import uvicorn
    from click.testing import CliRunner

    from pdmer.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app))
    result = CliRunner().invoke(main, [
        "app", str(built["model"]), "--songs", str(built["songs"]), "--data-dir", str(tmp_path),
        "--host", "10.1.2.3", "--allowed-host", "music.example", "--max-song-minutes", "0.1",
        "--no-prefetch"])
    assert result.exit_code == 0, result.output
    with serve(served["app"]) as url, httpx.Client(base_url=url) as http:
        for host, status in [("10.1.2.3:8000", 200), ("music.example", 200),
                             ("evil.example", 400)]:
            assert http.get("/api/info", headers={"Host": host}).status_code == status, host
        assert http.get("/api/info").json()["max_song_seconds"] == 6
        response = upload(http, new_listener(http), "long.wav", wav(8, rate=1000))
        assert response.status_code == 413 and "0.1 minutes" in response.json()["detail"]
