#!/usr/bin/env python
"""Latency of the listener app's personal predictions, over HTTP.

Starts ``pdmer app`` in its own process (uvicorn on 127.0.0.1, SQLite),
creates 100 listeners through the REST API, has each annotate one song (so
each gets its own adaptation from a background job), then times
``GET /api/songs/{id}/predictions`` -- the listener's personal curve and the
population curve of a 30 s song whose features are already extracted:

1. personal curve computed: sequential requests, one per listener (the
   adaptation is in memory, the curve is not cached yet);
2. personal curve cached: the same requests again (served from the database);
3. computed, 8 clients at once: the single model thread queues them;
4. after a restart: computed, with the features read from the disk cache and
   each adaptation from the database.

The app runs with ``--no-precompute`` so that curves are computed on
request (by default it computes each listener's curves of every song in the
background after their personalization, and asking is case 2). The goal is a
p95 under 100 ms. The model's weights are untrained (one
episode): the cost of a prediction does not depend on their values.

Usage::

    python benchmarks/bench_app.py                    # small model, ~2 min
    python benchmarks/bench_app.py --size paper       # the paper's 29.5 M parameters
    python benchmarks/bench_app.py --listeners 20 --seconds 60 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_model(root: Path, size: str, seconds: float):
    """Synthetic songs and a DSAML of the given size, fitted for one episode."""
    from pdmer import AudioFeatures, DSAMLRegressor
    from pdmer_datasets import synthetic

    data = synthetic.generate(root / "synthetic", n_songs=4, n_listeners=2,
                              songs_per_listener=4, duration=seconds, random_state=0)
    table = data.annotator_table()
    model = DSAMLRegressor(size=size, n_episodes=1, tasks_per_step=1, n_query=1,
                           inner_steps=2, validation_fraction=0, device="cpu",
                           random_state=0, train_window=20,
                           front_end=AudioFeatures(global_encoder="logmel-stats"))
    model.fit(table.X, table.y, annotators=table.annotators)
    songs = root / "songs"
    songs.mkdir()
    for song_id in data.song_ids:
        os.link(data.audio_path(song_id), songs / f"{song_id}.wav")
    return model, songs, data


@contextlib.contextmanager
def pdmer_app(model_path, songs, data_dir, threads):
    """``pdmer app`` in a separate process, as it is deployed; yields its URL."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "import sys; from pdmer.cli import main; "
               "main(sys.argv[1:], prog_name='pdmer')", "app", str(model_path), "--songs",
               str(songs), "--data-dir", str(data_dir), "--port", str(port), "--no-prefetch",
               "--no-precompute", "--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(url + "/api/info").raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError("pdmer app stopped:\n" + process.stderr.read())
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(60)


def percentiles(seconds) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95),
            "max": ms.max()}


def timed_get(client, path, headers):
    start = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    assert response.json()["personal"] is not None
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=("small", "paper"))
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="Song length.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients in phase 3.")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-app-"))
    try:  # the database holds one adaptation per listener (~120 MB each at paper size)
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args, root):
    import httpx
    import torch
    from app_fixture import label_csv, wait_for_job

    started = time.perf_counter()
    model, songs, data = build_model(root, args.size, args.seconds)
    print(f"Model: DSAML size={args.size}, {model.n_parameters_:,} parameters, "
          f"{model.feature_spec_['n_patch_times']}x{model.feature_spec_['n_mels']} patches; "
          f"built in {time.perf_counter() - started:.0f} s.")
    model.save(root / "model.safetensors")
    data_dir = root / "app"
    results = {}

    with pdmer_app(root / "model.safetensors", songs, data_dir, args.threads) as url, \
            httpx.Client(base_url=url, timeout=600) as client:
        headers = []
        for i in range(args.listeners):
            token = client.post("/api/listeners", json={"name": f"L{i}"}).json()["token"]
            headers.append({"Authorization": f"Bearer {token}"})
        ids = {s["title"]: s["id"] for s in client.get("/api/songs", headers=headers[0]).json()}
        rng = np.random.default_rng(0)
        truth = data.expected_labels(data.listener_ids[0], "S000")
        started = time.perf_counter()
        jobs = []
        for h in headers:  # each listener annotates S000 their own way
            labels = np.clip(truth * rng.uniform(0.5, 1.5, 2) + rng.uniform(-0.3, 0.3, 2), -1, 1)
            response = client.post(f"/api/songs/{ids['S000']}/annotations", headers=h,
                                   files={"labels": ("a.csv", label_csv(labels))})
            response.raise_for_status()
            jobs.append((h, response.json()["job"]))
        for h, job in jobs:
            assert wait_for_job(client, job, h, timeout=3600)["status"] == "done"
        print(f"{args.listeners} listeners annotated and personalized in "
              f"{time.perf_counter() - started:.0f} s.")
        # The songs' features and population curves: extracted once, before timing.
        for title in ("S001", "S002", "S003"):
            timed_get(client, f"/api/songs/{ids[title]}/predictions", headers[0])

        path = f"/api/songs/{ids['S002']}/predictions"
        results["1. computed (sequential)"] = percentiles(
            [timed_get(client, path, h) for h in headers[1:]])
        results["2. cached (sequential)"] = percentiles(
            [timed_get(client, path, h) for h in headers[1:]])
        path = f"/api/songs/{ids['S003']}/predictions"
        with ThreadPoolExecutor(args.clients) as pool:
            results[f"3. computed ({args.clients} clients at once)"] = percentiles(list(
                pool.map(lambda h: timed_get(client, path, h), headers[1:])))

    with pdmer_app(root / "model.safetensors", songs, data_dir, args.threads) as url, \
            httpx.Client(base_url=url, timeout=600) as client:
        path = f"/api/songs/{ids['S001']}/predictions"
        timed_get(client, path, headers[0])  # the song's features: from the disk cache
        results["4. after a restart: computed (sequential)"] = percentiles(
            [timed_get(client, path, h) for h in headers[1:]])

    print(f"\nPersonal predictions of a cached {args.seconds:g} s song "
          f"({int(args.seconds * 2)} frames), {args.listeners - 1} listeners; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {args.threads} thread(s).\n")
    print("| request | n | p50 ms | p95 ms | max ms | p95 < 100 ms |")
    print("|---|---:|---:|---:|---:|:---:|")
    for name, r in results.items():
        print(f"| {name} | {r['n']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | "
              f"{'yes' if r['p95'] < 100 else 'no'} |")


if __name__ == "__main__":
    main()
