"""The listener app on a catalog of whole real songs (Debian's asc-music, three
MP3s of 4.8-7.4 minutes, 44.1 kHz stereo): curves to each song's last full
frame, the MP3 header's length corrected from the decoded audio, and a
listener learned from one annotated song."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install 'pdmer[app]')")
httpx = pytest.importorskip("httpx", reason="the tests' HTTP client (httpx) is not installed")

from app_fixture import FEATURES, label_csv, serve, wait_for_job  # noqa: E402
from helpers import DEBIAN_SONGS, reversed_listener, tiny_audio_model  # noqa: E402
from pdmer.app import create_app  # noqa: E402
from pdmer.features import AudioFeatures  # noqa: E402
from pdmer.features.audio import load_audio  # noqa: E402
from pdmer.labels import whole_frames  # noqa: E402
from pdmer.scoring import ccc  # noqa: E402

# The tiny model trains for seconds, too briefly to follow its labels' spread.
pytestmark = pytest.mark.filterwarnings("ignore::pdmer.estimators.exceptions.CollapseWarning")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    # Not the app tests' shared model: after 3 episodes its curves on real
    # music are too flat for the listener check.
    return tiny_audio_model(tmp_path_factory.mktemp("real-music-app"), AudioFeatures(**FEATURES))


def curves(served, kind):
    return np.c_[served[kind]["arousal"], served[kind]["valence"]]


def test_the_app_serves_whole_real_songs_and_learns_a_listener_from_one(
        debian_music, model_file, tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for song in DEBIAN_SONGS:
        shutil.copy(debian_music / song, songs / song)
    app = create_app(model_file, songs, data_dir=tmp_path / "data", prefetch=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        response = client.post("/api/listeners", json={"name": "carol"})
        assert response.status_code == 201, response.text
        me = {"Authorization": f"Bearer {response.json()['token']}"}
        ids = {s["title"]: s["id"] for s in client.get("/api/songs", headers=me).json()}
        assert set(ids) == {song.removesuffix(".mp3") for song in DEBIAN_SONGS}

        served = {title: client.get(f"/api/songs/{song_id}/predictions", headers=me).json()
                  for title, song_id in ids.items()}
        listed = {s["title"]: s for s in client.get("/api/songs", headers=me).json()}
        for title, curve in served.items():
            waveform, rate = load_audio(songs / f"{title}.mp3")
            n_frames = whole_frames(waveform.shape[-1] / rate)
            assert len(curve["time"]) == n_frames > 4 * 60 * 2
            # The catalog's count came from the MP3 header (frontiers: 441.14 s,
            # 0.38 s longer than its audio); once decoded, the song says the truth.
            assert listed[title]["n_frames"] == n_frames
            assert np.isfinite(curves(curve, "population")).all()

        support = curves(served["machine_wars"], "population")
        noise = np.random.default_rng(0).normal(0, 0.1 * support.std(axis=0), support.shape)
        created = client.post(f"/api/songs/{ids['machine_wars']}/annotations", headers=me,
                              files={"labels": ("mine.csv",
                                                label_csv(reversed_listener(support) + noise))})
        assert created.status_code == 201, created.text
        job = wait_for_job(client, created.json()["job"], me, timeout=120)
        assert job["status"] == "done", job
        after = client.get(f"/api/songs/{ids['time_to_strike']}/predictions", headers=me).json()

    population = curves(after, "population")
    truth = reversed_listener(population)
    before_ccc, after_ccc = ccc([truth], [population]), ccc([truth], [curves(after, "personal")])
    assert after_ccc > 0.8 and after_ccc > before_ccc + 0.3, (before_ccc, after_ccc)
