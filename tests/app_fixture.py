"""A tiny trained DSAML and a folder of synthetic songs for the app's tests.

Built once per test session (the app's test modules share it) in pytest's
base temporary folder.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import threading
import time

import torch

from helpers import TINY_MODEL
from pdmer import AudioFeatures, DSAMLRegressor
from pdmer_datasets import synthetic

FEATURES = dict(sample_rate=16000, n_mels=16, global_window=2.0, global_encoder="logmel-stats")
DATA = dict(n_songs=4, n_listeners=3, songs_per_listener=3, duration=6.0, sample_rate=16000)

_BUILT = {}


def trained(tmp_path_factory):
    """``{"model": path, "songs": folder, "data": SyntheticDataset}``, built once."""
    if not _BUILT:
        root = tmp_path_factory.getbasetemp() / "app-model"
        root.mkdir(exist_ok=True)
        data = synthetic.generate(root / "synthetic", random_state=0, **DATA)
        table = data.annotator_table()
        model = DSAMLRegressor(**dict(TINY_MODEL, inner_steps=4),
                               front_end=AudioFeatures(**FEATURES))
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model.fit(table.X, table.y, annotators=table.annotators)
        finally:
            torch.set_num_threads(n_threads)
        model.save(root / "model.safetensors")
        songs = root / "songs"
        songs.mkdir(exist_ok=True)
        for song_id in data.song_ids:
            shutil.copy(data.audio_path(song_id), songs / f"{song_id}.wav")
        _BUILT.update(model=root / "model.safetensors", songs=songs, data=data)
    return _BUILT


def label_csv(labels, start=0.0) -> bytes:
    """A label CSV (time, arousal, valence) as uploaded bytes."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("time", "arousal", "valence"))
    for i, (a, v) in enumerate(labels):
        writer.writerow((f"{start + 0.5 * i:.1f}", f"{a:.4f}", f"{v:.4f}"))
    return out.getvalue().encode()


@contextlib.contextmanager
def serve(app):
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for_job(client, job, headers, timeout=60):
    """Poll a personalization job until it is done or failed."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout} s"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}", headers=headers).json()
    return job
