#!/usr/bin/env python
"""Throughput of pdmer's audio front end on this machine.

Measures, with the public API (``AudioFeatures(...).transform(paths)`` on WAV
files, decoding and resampling included):

1. audio-seconds processed per wall-second for each global encoder:
   ``logmel-stats`` and ``imagebind`` (the full-size ImageBind-huge audio
   branch with random weights: the cost does not depend on the values), the
   latter with the shared clip grid and with one window per frame;
2. the number of ImageBind forwards (2 s clips) a 45 s clip and a 10-minute
   song cost with and without the shared grid;
3. the speed-up of the feature cache: the same extraction a second time;
4. how long loading the installed audio weights (a 345 MB safetensors file)
   takes;
5. with ``--memory``, instead of the above: the peak memory (RSS) of
   extracting one song of 1, 10 and 20 minutes (44.1 kHz stereo WAV), each
   in a fresh process, with ``logmel-stats`` and with the ImageBind input
   pipeline (a tiny random-weight ImageBind: the pipeline's memory without
   the 345 MB model).

Usage::

    python benchmarks/bench_features.py                  # ~4 min on one core
    python benchmarks/bench_features.py --songs 3 --imagebind-songs 1 --threads 2
    python benchmarks/bench_features.py --skip-per-frame  # leave out the slowest run
    python benchmarks/bench_features.py --memory --repeats 3   # ~8 min; --minutes 1 10 20

See benchmarks/README.md for the results and what they mean.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from measure import maxrss_mib, rss_mib, table, timed  # noqa: E402


def write_songs(folder: Path, n: int, seconds: float, sr: int = 44100) -> list[str]:
    """Stereo WAV files of tones and noise (44.1 kHz, like most of DEAM)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        x = sum(a * np.sin(2 * np.pi * f * (1 + 0.1 * i) * t) for a, f in
                ((0.3, 220), (0.2, 660), (0.1, 1500)))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.05 * t)) + 0.02 * rng.normal(size=t.size)
        stereo = np.stack([x, 0.9 * x], axis=1).astype(np.float32)
        path = folder / f"song{i}.wav"
        sf.write(path, stereo, sr)
        paths.append(str(path))
    return paths


def write_long_song(path: Path, minutes: float, sr: int = 44100) -> None:
    """A stereo 16-bit WAV of noise-modulated tones, written in one-minute blocks."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(int(np.ceil(minutes))):
            t = np.arange(60 * sr) / sr
            x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=t.size)
            f.write(np.stack([x, 0.8 * x], axis=1).astype(np.float32))


def memory_child(path: str, encoder: str, weights: str | None) -> None:
    """One extraction in this (fresh) process; prints its memory as JSON."""
    import torch

    torch.set_num_threads(1)
    from pdmer.features import AudioFeatures, ImageBindEncoder

    enc = encoder
    if encoder == "imagebind-tiny":
        enc = ImageBindEncoder(weights, config=TINY_IMAGEBIND, batch_size=16)
    front = AudioFeatures(global_encoder=enc, frame_offset=0.0)
    front.transform([(np.zeros(44100, np.float32) + 0.1, 44100)])  # warm up: imports, filters
    before = rss_mib()
    seconds, [song] = timed(lambda: front.transform([path]))
    peak = maxrss_mib()
    output = (song.local_patches.nbytes + song.global_embeddings.nbytes) / 2**20
    print(json.dumps({"before": before, "peak": peak, "seconds": seconds,
                      "frames": song.n_frames, "output": output}))


TINY_IMAGEBIND = dict(dim=16, depth=1, n_heads=2, out_dim=8)


def memory_table(minutes_list, encoders, repeats=1) -> None:
    import torch
    from safetensors.torch import save_file

    from pdmer.features.imagebind import ImageBindAudio

    work = Path(tempfile.mkdtemp(prefix="pdmer-bench-memory-"))
    try:
        weights = work / "tiny.safetensors"
        save_file(ImageBindAudio(**TINY_IMAGEBIND).state_dict(), str(weights))
        rows = []
        for minutes in minutes_list:
            path = work / f"song_{minutes:g}min.wav"
            write_long_song(path, minutes)
            for encoder in encoders:
                runs = []
                for _ in range(repeats):
                    out = subprocess.run(
                        [sys.executable, __file__, "--memory-child", str(path), encoder,
                         str(weights)], capture_output=True, text=True, check=True)
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                rows.append((minutes, encoder, runs))
            path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nMachine: {platform.processor() or platform.machine()}, torch "
          f"{torch.__version__}, 1 torch thread; one 44.1 kHz stereo 16-bit WAV per row, "
          f"AudioFeatures(frame_offset=0), each run in a fresh process; median of "
          f"{repeats} run(s), range in brackets.\n")
    cells = []
    for minutes, encoder, runs in rows:
        increase = [r["peak"] - r["before"] for r in runs]
        r = runs[int(np.argsort(increase)[len(runs) // 2])]
        cells.append([f"{minutes:g} min", encoder, r["frames"], f"{r['before']:.0f}",
                      f"{r['peak']:.0f}", f"{np.median(increase):.0f} ({min(increase):.0f}-"
                      f"{max(increase):.0f})", f"{r['output']:.0f}", f"{r['seconds']:.1f}"])
    print(table(["song", "global encoder", "frames", "RSS before, MiB", "peak RSS, MiB",
                 "increase, MiB", "output arrays, MiB", "wall s"], cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=3, help="songs for logmel-stats and cache")
    parser.add_argument("--imagebind-songs", type=int, default=1,
                        help="songs for the (slow) ImageBind runs")
    parser.add_argument("--seconds", type=float, default=45.0, help="song length")
    parser.add_argument("--frame-offset", type=float, default=15.0,
                        help="first label frame (DEAM: 15 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=16, help="ImageBind clips per call")
    parser.add_argument("--skip-per-frame", action="store_true",
                        help="do not time ImageBind with one window per frame")
    parser.add_argument("--skip-bf16", action="store_true",
                        help="do not time ImageBind under bf16 autocast on the CPU")
    parser.add_argument("--memory", action="store_true",
                        help="measure peak memory against song length instead")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 20],
                        help="song lengths for --memory")
    parser.add_argument("--repeats", type=int, default=1, help="runs per --memory row")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.memory:
        memory_table(args.minutes, ["logmel-stats", "imagebind-tiny"], args.repeats)
        return

    import torch

    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    from pdmer.features import AudioFeatures, ImageBindEncoder
    from pdmer.features.imagebind import ImageBindAudio, load_imagebind_audio

    work = Path(tempfile.mkdtemp(prefix="pdmer-bench-features-"))
    rows = []
    try:
        songs = write_songs(work, max(args.songs, args.imagebind_songs), args.seconds)
        n_frames = int((args.seconds - args.frame_offset) / 0.5)

        def run(label, front, paths, grid, forwards=None):
            seconds, feats = timed(lambda: front.transform(paths))
            audio = args.seconds * len(paths)
            rows.append((label, grid, len(paths), audio, seconds, audio / seconds, forwards))
            return feats

        common = dict(frame_offset=args.frame_offset, global_window=30.0)
        # -- logmel-stats (warm-up first: imports, mel filter banks)
        AudioFeatures(global_encoder="logmel-stats", **common).transform(songs[:1])
        cache = work / "cache"
        logmel = AudioFeatures(global_encoder="logmel-stats", cache_dir=cache, **common)
        first = run("logmel-stats, cache empty", logmel, songs[:args.songs], "cumulative sums")
        second = run("logmel-stats, cache hit", logmel, songs[:args.songs], "cumulative sums")
        assert all(np.array_equal(a.global_embeddings, b.global_embeddings)
                   for a, b in zip(first, second))

        # -- ImageBind-huge audio branch, random weights in the official layout
        torch.manual_seed(0)
        weights = work / "imagebind_huge_audio.safetensors"
        save_file(ImageBindAudio().state_dict(), str(weights))
        size_mb = weights.stat().st_size / 2**20
        load_s, _ = timed(lambda: load_imagebind_audio(weights))
        ib_songs = songs[:args.imagebind_songs]
        n_samples = int(args.seconds * 16000)
        starts = args.frame_offset + 0.5 * np.arange(n_frames)
        encoders = {"shared grid": ImageBindEncoder(weights, batch_size=args.batch_size)}
        if not args.skip_per_frame:
            encoders["one window per frame"] = ImageBindEncoder(
                weights, batch_size=args.batch_size, shared_grid=False)
        if not args.skip_bf16:
            encoders["shared grid, bf16"] = ImageBindEncoder(
                weights, batch_size=args.batch_size, precision="bf16")
        encoders["shared grid"].network()  # load once, outside the timings
        results = {}
        for grid, enc in encoders.items():
            forwards = enc.count_forwards(starts, 30.0, n_samples) * len(ib_songs)
            front = AudioFeatures(global_encoder=enc,
                                  cache_dir=cache if grid == "shared grid" else None, **common)
            precision = "bf16" if "bf16" in grid else "fp32"
            results[grid] = run(f"imagebind (huge, {precision}), {grid.split(',')[0]}", front,
                                ib_songs, grid.split(",")[0], forwards)
        hit = run("imagebind, cache hit", AudioFeatures(
            global_encoder=encoders["shared grid"], cache_dir=cache, **common), ib_songs,
            "shared grid")
        assert np.array_equal(hit[0].global_embeddings, results["shared grid"][0].global_embeddings)
        reference = results["shared grid"][0].global_embeddings
        diff = bf16_cosine = None
        if "one window per frame" in results:
            diff = np.abs(reference - results["one window per frame"][0].global_embeddings).max()
        if "shared grid, bf16" in results:
            other = results["shared grid, bf16"][0].global_embeddings
            bf16_cosine = np.min(np.sum(reference * other, 1) / np.linalg.norm(reference, axis=1)
                                 / np.linalg.norm(other, axis=1))

        # -- forward counts (no computation)
        enc, per_frame = encoders["shared grid"], ImageBindEncoder(weights, shared_grid=False)
        counts = []
        for label, seconds, offset in (("45 s clip, frames from 15 s (DEAM)", 45, 15.0),
                                       ("45 s clip, frames from 0 s", 45, 0.0),
                                       ("10-minute song, frames from 0 s", 600, 0.0)):
            frames = 0.0 + offset + 0.5 * np.arange(int((seconds - offset) / 0.5))
            counts.append((label, len(frames),
                           per_frame.count_forwards(frames, 30.0, seconds * 16000),
                           enc.count_forwards(frames, 30.0, seconds * 16000)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"visible, torch {torch.__version__}, {args.threads} torch thread(s); songs of "
          f"{args.seconds:g} s (44.1 kHz stereo WAV), {n_frames} label frames from "
          f"{args.frame_offset:g} s, 30 s global window.\n")
    print(table(["extraction", "global embeddings", "songs", "audio s", "wall s",
                 "audio s / wall s", "encoder forwards"],
                [[label, grid, n, f"{audio:.0f}", f"{seconds:.2f}", f"{speed:.1f}",
                  "" if forwards is None else forwards]
                 for label, grid, n, audio, seconds, speed, forwards in rows]))
    wall = {row[0]: row[4] for row in rows}
    print(f"\nCache hit speed-up (first / second extraction of the same files): "
          f"logmel-stats {wall['logmel-stats, cache empty'] / wall['logmel-stats, cache hit']:.0f}x, "
          f"imagebind {wall['imagebind (huge, fp32), shared grid'] / wall['imagebind, cache hit']:.0f}x.")
    if diff is not None:
        print(f"Shared grid vs one window per frame: max |difference| of the embeddings "
              f"{diff:.2e}.")
    if bf16_cosine is not None:
        print(f"bf16 vs fp32 window embeddings: lowest cosine similarity {bf16_cosine:.5f}.")
    print(f"Loading the audio weights ({size_mb:.0f} MB safetensors, in the page cache): "
          f"{load_s:.1f} s.\n")
    print(table(["song", "label frames", "forwards, one window per frame",
                 "forwards, shared grid", "ratio"],
                [[label, frames, direct, shared, f"{direct / shared:.1f}x"]
                 for label, frames, direct, shared in counts]))


if __name__ == "__main__":
    main()
