"""The listener app's REST API, over HTTP against a real uvicorn server:
listener isolation, persistence across restarts, refused uploads."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install 'pdmer[app]')")
httpx = pytest.importorskip("httpx", reason="the tests' HTTP client (httpx) is not installed")

from app_fixture import label_csv, serve, trained, wait_for_job  # noqa: E402
from pdmer import ListenerAdaptation, load  # noqa: E402
from pdmer.app import create_app  # noqa: E402
from pdmer.app.storage import AdaptationData, Database, Job, Listener, SchemaVersion  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return trained(tmp_path_factory)


@pytest.fixture(scope="module")
def shared_url(built, tmp_path_factory):
    """One server for the tests that only need listeners of their own."""
    with start(built, tmp_path_factory.mktemp("shared-app")) as url:
        yield url


def start(built, data_dir, **options):
    options.setdefault("prefetch", False)
    return serve(create_app(built["model"], built["songs"], data_dir=data_dir, **options))


def new_listener(client, name):
    response = client.post("/api/listeners", json={"name": name})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def song_ids(client, headers):
    return {s["title"]: s["id"] for s in client.get("/api/songs", headers=headers).json()}


def annotate(client, headers, song_id, labels, **params):
    return client.post(f"/api/songs/{song_id}/annotations", headers=headers, params=params,
                       files={"labels": ("mine.csv", label_csv(labels))})


def listener_labels(built, listener, song="S000"):
    return built["data"].expected_labels(built["data"].listener_ids[listener], song)


def test_tokens_are_required_and_stored_hashed(built, tmp_path):
    with start(built, tmp_path) as url, httpx.Client(base_url=url) as client:
        missing = client.get("/api/songs")
        assert missing.status_code == 401
        assert "Authorization: Bearer" in missing.json()["detail"]
        wrong = client.get("/api/songs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "Unknown listener token" in wrong.json()["detail"]
        token = client.post("/api/listeners", json={"name": "ann"}).json()["token"]
    db = Database(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with db.session() as session:
        [stored] = session.query(Listener.token_hash).all()
    db.dispose()
    assert stored[0] == hashlib.sha256(token.encode()).hexdigest() != token
    assert token.encode() not in (tmp_path / "app.sqlite").read_bytes()


def test_two_listeners_cannot_see_or_change_each_others_data(built, tmp_path):
    with start(built, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as client:
        alice, bob = new_listener(client, "alice"), new_listener(client, "bob")
        ids = song_ids(client, alice)
        # Alice uploads a song of her own, annotates a catalog song, personalizes.
        wav = io.BytesIO()
        waveform, rate = sf.read(built["data"].audio_path("S003"))
        sf.write(wav, waveform[::-1], rate, format="WAV")
        upload = client.post("/api/songs", headers=alice,
                             files={"audio": ("private song.wav", wav.getvalue())})
        assert upload.status_code == 201, upload.text
        private = upload.json()["id"]
        created = annotate(client, alice, ids["S000"], listener_labels(built, 0))
        assert created.status_code == 201, created.text
        job = wait_for_job(client, created.json()["job"], alice)
        assert job["status"] == "done", job
        annotation_id = created.json()["annotation"]["id"]

        assert private in song_ids(client, alice).values()
        assert private not in song_ids(client, bob).values()
        for path in (f"/api/songs/{private}", f"/api/songs/{private}/audio",
                     f"/api/songs/{private}/predictions", f"/api/annotations/{annotation_id}",
                     f"/api/jobs/{job['id']}"):
            assert client.get(path, headers=bob).status_code == 404, path
            assert client.get(path, headers=alice).status_code == 200, path
        assert client.delete(f"/api/annotations/{annotation_id}", headers=bob).status_code == 404
        assert annotate(client, bob, private, np.zeros((4, 2))).status_code == 404
        assert client.get(f"/api/annotations/{annotation_id}", headers=alice).status_code == 200
        assert client.get("/api/me", headers=bob).json()["annotations"] == []

        mine = client.get(f"/api/songs/{ids['S001']}/predictions", headers=alice).json()
        theirs = client.get(f"/api/songs/{ids['S001']}/predictions", headers=bob).json()
        assert theirs["personal"] is None and mine["personal"] is not None
        assert mine["population"] == theirs["population"]
        assert not np.allclose(mine["personal"]["arousal"], mine["population"]["arousal"])

        # Deleting Bob leaves Alice intact; deleting Alice removes her upload.
        assert client.delete("/api/me", headers=bob).status_code == 204
        assert client.get("/api/songs", headers=bob).status_code == 401
        assert client.get(f"/api/annotations/{annotation_id}", headers=alice).status_code == 200
        assert len(list((tmp_path / "uploads").glob("*.wav"))) == 1
        assert client.delete("/api/me", headers=alice).status_code == 204
        assert not list((tmp_path / "uploads").glob("*.wav"))


def test_everything_survives_a_restart_with_sqlite(built, tmp_path):
    song = "S002"
    with start(built, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as client:
        alice = new_listener(client, "alice")
        ids = song_ids(client, alice)
        created = annotate(client, alice, ids["S000"], listener_labels(built, 1)).json()
        job = wait_for_job(client, created["job"], alice)
        before = client.get(f"/api/songs/{ids[song]}/predictions", headers=alice).json()
        me_before = client.get("/api/me", headers=alice).json()
    # A job left queued when the app stopped runs after the restart.
    db = Database(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with db.session() as session:
        session.add(Job(listener_id=me_before["id"], status="running", total=4))
        session.commit()
    db.dispose()

    with start(built, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as client:
        me = client.get("/api/me", headers=alice)
        assert me.status_code == 200, "the token no longer works after a restart"
        me = me.json()
        assert me["annotations"] == me_before["annotations"]
        assert me["adaptation"]["id"] >= job["adaptation_id"]
        resumed = wait_for_job(client, me["job"], alice)
        assert resumed["status"] == "done" and resumed["id"] != job["id"]
        after = client.get(f"/api/songs/{ids[song]}/predictions", headers=alice).json()
        stored = client.get(f"/api/annotations/{created['annotation']['id']}",
                            headers=alice).json()
    np.testing.assert_allclose(stored["labels"]["arousal"], listener_labels(built, 1)[:, 0],
                               atol=1e-4)
    # Re-running the same adaptation gives the same listener: same curves.
    np.testing.assert_allclose(after["personal"]["arousal"], before["personal"]["arousal"],
                               atol=1e-5)
    assert after["population"] == before["population"]


def test_personal_curves_are_the_models_predictions_with_the_stored_adaptation(built, tmp_path):
    with start(built, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as client:
        alice = new_listener(client, "alice")
        ids = song_ids(client, alice)
        job = wait_for_job(client, annotate(client, alice, ids["S000"],
                                            listener_labels(built, 2)).json()["job"], alice)
        served = client.get(f"/api/songs/{ids['S003']}/predictions", headers=alice).json()
        again = client.get(f"/api/songs/{ids['S003']}/predictions", headers=alice).json()
    assert again == served
    db = Database(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with db.session() as session:
        blob = session.get(AdaptationData, job["adaptation_id"]).data
    db.dispose()
    (tmp_path / "a.safetensors").write_bytes(blob)
    model = load(built["model"])
    adaptation = ListenerAdaptation.load(tmp_path / "a.safetensors")
    song = built["songs"] / "S003.wav"
    [personal] = model.predict([song], listener=adaptation)
    [population] = model.predict([song])
    np.testing.assert_allclose(np.c_[served["personal"]["arousal"], served["personal"]["valence"]],
                               personal, atol=1e-5)
    np.testing.assert_allclose(served["population"]["arousal"], population[:, 0], atol=1e-5)
    assert served["time"][:3] == [0.0, 0.5, 1.0]


def test_features_are_prefetched_and_personal_curves_precomputed(built, tmp_path):
    import time

    from pdmer.app.storage import Prediction

    with start(built, tmp_path, prefetch=True) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        alice = new_listener(client, "alice")
        ids = song_ids(client, alice)
        job = wait_for_job(client, annotate(client, alice, ids["S000"],
                                            listener_labels(built, 0)).json()["job"], alice)
        db = Database(f"sqlite:///{tmp_path / 'app.sqlite'}")
        deadline = time.monotonic() + 60
        while True:
            with db.session() as session:
                cached = {p.song_id for p in session.query(Prediction).filter_by(
                    adaptation_id=job["adaptation_id"])}
            if cached == set(ids.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        db.dispose()
        assert cached == set(ids.values())
    assert len(list((tmp_path / "features").rglob("*.safetensors"))) == len(ids)


@pytest.mark.parametrize("name, content, status, message", [
    ("labels.csv", b"time,arousal\n0,0.1\n", 422,
     "labels.csv must have the columns time (or frame), arousal and valence"),
    ("labels.csv", b"time,arousal,valence\n0,0.1,0.2\n1.0,0.1,0.2\n", 422,
     "labels.csv, line 3: time jumps from 0 to 1"),
    ("labels.csv", b"time,arousal,valence\n0,0.1,nan\n", 422, "NaN or infinite value"),
    ("labels.csv", label_csv(np.zeros((40, 2))), 422,
     "the labels have 40 frames (20 s from 0 s) but S000 has 12 whole frames"),
    ("labels.csv", b"\xff\xfe\x00garbage", 422, "is not a UTF-8 text file"),
    ("labels.csv", b"", 422, "is empty"),
    # Refused from Content-Length, before it is read.
    ("labels.csv", b"time,arousal,valence\n" + b"0,0,0\n" * 300_000, 413, "the limit is 1"),
])
def test_bad_label_uploads_are_refused_with_the_clis_messages(shared_url, name, content,
                                                               status, message):
    with httpx.Client(base_url=shared_url) as client:
        alice = new_listener(client, "alice")
        response = client.post(f"/api/songs/{song_ids(client, alice)['S000']}/annotations",
                               headers=alice, files={"labels": (name, content)})
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
        assert client.get("/api/me", headers=alice).json()["annotations"] == []


def test_bad_audio_uploads_are_refused(built, tmp_path):
    silent, noise = io.BytesIO(), io.BytesIO()
    sf.write(silent, np.zeros(16000 * 2, dtype=np.float32), 16000, format="WAV")
    sf.write(noise, np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32),
             16000, format="WAV")
    cases = [
        ("song.wav", b"RIFF" + b"\x00" * 400, 422, "Cannot decode audio file song.wav"),
        ("silence.wav", silent.getvalue(), 422, "silence.wav: the audio is silent"),
        ("notes.txt", b"hello", 422, "unsupported audio type .txt"),
        # Over the limit: refused while reading the file, or from Content-Length alone.
        ("big.wav", noise.getvalue() + b"\x00" * 80_000, 413, "larger than the limit of"),
        ("huge.wav", noise.getvalue() + b"\x00" * 300_000, 413, "the limit is"),
    ]
    with start(built, tmp_path, max_upload_mb=0.15) as url, httpx.Client(base_url=url) as client:
        alice = new_listener(client, "alice")
        for name, content, status, message in cases:
            response = client.post("/api/songs", headers=alice, files={"audio": (name, content)})
            assert response.status_code == status, (name, response.text)
            assert message in response.json()["detail"], (name, response.text)
            assert str(tmp_path) not in response.json()["detail"]
        good = client.post("/api/songs", headers=alice, files={"audio": ("noise.wav",
                                                                          noise.getvalue())})
        assert good.status_code == 201, good.text
        assert good.json()["n_frames"] == 6 and good.json()["uploaded"]
    assert len(list((tmp_path / "uploads").iterdir())) == 1  # no temporary files left


def test_a_database_from_a_newer_pdmer_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    Database(url).dispose()
    db = Database(url)
    with db.session() as session:
        session.get(SchemaVersion, 1).version = 99
        session.commit()
    db.dispose()
    with pytest.raises(RuntimeError, match="schema version 99, written by a newer pdmer"):
        Database(url)


def test_the_api_is_documented_and_the_docs_page_needs_no_cdn(shared_url):
    with httpx.Client(base_url=shared_url) as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs").text
        assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    for path in ("/api/listeners", "/api/songs/{song_id}/annotations",
                 "/api/songs/{song_id}/predictions", "/api/jobs/{job_id}"):
        assert path in schema["paths"], path
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    # The docs page renders the description as Markdown: the placeholder must
    # be code, or "<token>" is read as an HTML tag and vanishes.
    assert "`Authorization: Bearer <token>`" in schema["info"]["description"]


def test_the_app_names_the_quadrants_as_the_plots_do(shared_url):
    import matplotlib

    matplotlib.use("Agg")
    from pdmer.plotting import QUADRANTS, plot_trajectory

    with httpx.Client(base_url=shared_url) as client:
        served = client.get("/api/info").json()["quadrants"]
    assert {name: tuple(signs) for name, signs in served.items()} == QUADRANTS
    ax = plot_trajectory(np.zeros((3, 2))).axes[0]
    assert {t.get_text() for t in ax.texts} == set(served)
    # The page draws the names it is served, none of its own.
    script = (Path(create_app.__code__.co_filename).parent / "static" / "app.js").read_text()
    assert not any(f'"{name}"' in script for name in (*QUADRANTS, "excited"))


def test_pdmer_app_without_the_extra_says_how_to_install_it(built, monkeypatch):
    from click.testing import CliRunner

    from pdmer.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    result = CliRunner().invoke(main, ["app", str(built["model"]), "--songs",
                                       str(built["songs"])])
    assert result.exit_code != 0
    assert "pip install 'pdmer[app]'" in result.output


def test_pdmer_app_serves_until_stopped_and_pdmer_alone_imports_no_web_stack(built, tmp_path):
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["app", str(built["model"]), "--songs", str(built["songs"]), "--data-dir",
            str(tmp_path), "--port", str(port), "--no-prefetch", "--threads", "1"]
    # One interpreter for both checks (importing pdmer costs seconds).
    code = ("import sys, pdmer, pdmer.cli\n"
            "web = [m for m in ('fastapi', 'starlette', 'uvicorn', 'sqlalchemy') if m in sys.modules]\n"
            "print('web stack imported by pdmer:', web, flush=True)\n"
            f"pdmer.cli.main({args!r}, prog_name='pdmer')\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        info = None
        deadline = time.monotonic() + 60
        while info is None and process.poll() is None and time.monotonic() < deadline:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/info").json()
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert info is not None, output
    assert info["estimator"] == "DSAMLRegressor" and info["frame_offset"] == 0.0
    assert "web stack imported by pdmer: []" in output
    assert f"Open http://127.0.0.1:{port}/" in output
    assert (tmp_path / "app.sqlite").is_file()
