#!/usr/bin/env python
"""Time and memory benchmark of DSAML (pdmer) on this machine.

Measures, for each architecture preset of :class:`pdmer.DSAMLRegressor`:

1. seconds per meta-training episode (first-order ``fomaml`` and second-order
   ``maml``) with the paper's episode shape: 16 tasks of 1 support + 15 query
   songs cut to 60-frame (30 s) windows, 16 inner SGD steps;
2. seconds to personalize one listener (16 steps on one 30 s song);
3. seconds of model prediction per minute of audio (one 10-minute song of
   1200 frames, from precomputed features), and seconds of feature
   extraction per minute of audio with the default ``AudioFeatures()``;
4. the peak resident memory of each measurement;
5. the parameter count of each size.

Every measurement runs in its own subprocess, so memory peaks do not mix and
each starts from a fresh allocator. One untimed warm-up run precedes the
timed runs (it absorbs one-off costs such as the first Adam step importing
``torch._dynamo``).

Usage::

    python benchmarks/bench_dsaml.py                      # paper + small, default shapes
    python benchmarks/bench_dsaml.py --sizes small --repeats 3
    python benchmarks/bench_dsaml.py --tasks-per-step 16  # full episodes, no extrapolation
    python benchmarks/bench_dsaml.py --output results.md

See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from measure import (  # noqa: E402
    IDLE_CORES,
    LoadProbe,
    MemoryProbe,
    cpu_model,
    fmt_load,
    fmt_memory,
    fmt_num,
    fmt_s,
    load_average,
    release_memory,
    repeat_timed,
    run_worker,
    spawn_worker,
    sync,
    table,
    thread_env,
    timed,
    wait_idle,
)

# The paper's episode shape (method.md / DSAMLRegressor defaults).
PAPER_TASKS = 16
N_SUPPORT, N_QUERY = 1, 15
TRAIN_WINDOW = 60          # frames = 30 s
INNER_STEPS = 16
PERSONALIZE_FRAMES = 60    # one 30 s song
PATCH = (51, 128)          # local log-mel patch (time steps, mel bands)
GLOBAL_DIM = {"paper": 1024, "small": 128}   # ImageBind / logmel-stats
GLOBAL_ENCODER = {"paper": "imagebind", "small": "logmel-stats"}
FRAMES_PER_MINUTE = 120    # 0.5 s label frames
FEATURE_SAMPLE_RATE = 44100
# Default number of tasks actually run per episode; the rest is extrapolated.
DEFAULT_TASKS = {"paper": 1, "small": 4}


# -------------------------------------------------------------------- workers
def _estimator(size, device_name, **params):
    """A fitted DSAMLRegressor of ``size`` and its trainable parameter count.

    The fitted state comes from the public ``fit`` on two short songs (one
    tiny episode), so the benchmark does not depend on which attributes fit
    sets; the parameters are then switched to the paper's training setup.
    """
    import numpy as np
    import torch

    from pdmer import DSAMLRegressor

    rng = np.random.default_rng(123)
    songs = [_song_features(8, size, rng, f"setup{i}") for i in range(2)]
    labels = [_labels(8, rng) for _ in songs]
    est = DSAMLRegressor(size=size, device=device_name, random_state=0, n_episodes=1,
                         tasks_per_step=1, n_support=1, n_query=1, inner_steps=1,
                         validation_fraction=0.0, **params)
    est.fit(songs, labels)
    est.set_params(inner_steps=INNER_STEPS, n_support=N_SUPPORT, n_query=N_QUERY,
                   train_window=TRAIN_WINDOW)
    n_params = sum(p.numel() for p in est.network_.parameters() if p.requires_grad)
    del songs, labels
    release_memory()
    torch.manual_seed(0)
    return est, n_params


def _song_features(n_frames, size, rng, source):
    import numpy as np

    from pdmer.features import SongFeatures

    # Log-mel-like values; the numbers do not change the cost, the shapes do.
    local = (rng.standard_normal((n_frames, *PATCH), dtype=np.float32) * 2.0 - 6.0)
    glob = rng.standard_normal((n_frames, GLOBAL_DIM[size]), dtype=np.float32)
    return SongFeatures(local, glob, encoder=GLOBAL_ENCODER[size], source=source)


def _labels(n_frames, rng):
    import numpy as np

    return rng.uniform(-0.5, 0.5, size=(n_frames, 2)).astype(np.float32)


def worker_meta(cfg):
    """Meta-training episodes: time per task, optimizer step, whole episode."""
    import numpy as np
    import torch

    from pdmer.meta.batch import Song, collate

    size, order, n_tasks = cfg["size"], cfg["order"], cfg["tasks"]
    est, n_params = _estimator(size, cfg["device"], meta_learning=order)
    device = est.device_
    rng = np.random.default_rng(0)
    # A pool of 45 s songs (DEAM length); training cuts random 30 s windows.
    pool = []
    for i in range(N_SUPPORT + N_QUERY + 8):
        feats = _song_features(90, size, rng, f"song{i}")
        pool.append(Song(torch.from_numpy(feats.local_patches),
                         torch.from_numpy(feats.global_embeddings),
                         torch.from_numpy(_labels(90, rng)), feats.encoder).to(device))
    network = est.network_
    optimizer = torch.optim.Adam(network.parameters(), lr=est.resolved_params_["outer_lr"])
    release_memory()
    learner = est.meta_learner()

    def task(params, steps, weight, episode, n_query=N_QUERY):
        rows = rng.choice(len(pool), N_SUPPORT + n_query, replace=False)
        support = collate([pool[i].window(TRAIN_WINDOW, rng) for i in rows[:N_SUPPORT]],
                          device)
        query = collate([pool[i].window(TRAIN_WINDOW, rng) for i in rows[N_SUPPORT:]],
                        device)
        torch.manual_seed(episode)
        return learner.task_backward(support, query, steps, weight)

    probe = MemoryProbe(device)
    network.train()
    # Warm-up: a short task (1 inner step, 2 query songs) and one Adam step,
    # which imports torch._dynamo the first time. Its Adam state stays in the
    # memory increase, as in real training.
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    task(dict(network.named_parameters()), 1, 1.0, -1, n_query=2)
    optimizer.step()
    sync(device)
    warmup = time.perf_counter() - t0
    load = LoadProbe()

    task_times, step_times, losses = [], [], []
    for episode in range(cfg["repeats"]):
        optimizer.zero_grad(set_to_none=True)
        params = dict(network.named_parameters())
        per_task = []
        for _ in range(n_tasks):
            seconds, loss = timed(lambda: task(params, INNER_STEPS, 1.0 / n_tasks, episode),
                                  device)
            per_task.append(seconds)
            losses.append(loss)
        step_times.append(timed(optimizer.step, device)[0])
        task_times.append(sum(per_task) / n_tasks)
    return {"n_params": n_params, "warmup_s": warmup, "task_s": task_times,
            "step_s": step_times, "tasks": n_tasks, "loss": float(np.mean(losses)),
            "other_cores": load.others(), **probe.result()}


def worker_personalize(cfg):
    """DSAMLRegressor.personalize on one 30 s song."""
    import numpy as np

    est, n_params = _estimator(cfg["size"], cfg["device"])
    rng = np.random.default_rng(1)
    song = _song_features(PERSONALIZE_FRAMES, cfg["size"], rng, "listener-song")
    labels = _labels(PERSONALIZE_FRAMES, rng)
    probe = MemoryProbe(est.device_)
    warmup, _ = timed(lambda: est.personalize([song], [labels], steps=2), est.device_)
    load = LoadProbe()
    # Explicit steps: personalize defaults to the fitted (setup) inner_steps, not set_params'.
    times, _ = repeat_timed(lambda: est.personalize([song], [labels], steps=INNER_STEPS),
                            cfg["repeats"], est.device_)
    assert est.listener_.info["steps"] == INNER_STEPS
    return {"n_params": n_params, "warmup_s": warmup, "time_s": times,
            "adapted_params": est.listener_.n_parameters, "other_cores": load.others(),
            **probe.result()}


def worker_predict(cfg):
    """DSAMLRegressor.predict on one long song from precomputed features."""
    import numpy as np

    est, n_params = _estimator(cfg["size"], cfg["device"])
    rng = np.random.default_rng(2)
    n_frames = int(round(cfg["minutes"] * FRAMES_PER_MINUTE))
    song = _song_features(n_frames, cfg["size"], rng, "long-song")
    probe = MemoryProbe(est.device_)
    warmup, _ = timed(lambda: est.predict([song.crop(0, min(n_frames, 2 * TRAIN_WINDOW))]),
                      est.device_)
    load = LoadProbe()
    times, [curve] = repeat_timed(lambda: est.predict([song]), cfg["repeats"], est.device_)
    assert curve.shape == (n_frames, 2)
    return {"n_params": n_params, "warmup_s": warmup, "time_s": times, "frames": n_frames,
            "other_cores": load.others(), **probe.result()}


def worker_features(cfg):
    """AudioFeatures().transform on one long waveform (default front end)."""
    import numpy as np
    import torch

    from pdmer.features import AudioFeatures

    rate = FEATURE_SAMPLE_RATE
    rng = np.random.default_rng(3)
    n = int(round(cfg["minutes"] * 60 * rate))
    t = np.arange(n, dtype=np.float32) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.05 * rng.standard_normal(n)).astype(
        np.float32)
    del t
    front = AudioFeatures(device=cfg["device"] if cfg["device"] != "auto" else "cpu")
    probe = MemoryProbe(torch.device(front.device))
    # Warm-up: mel bases, resampler. The transforms are not synchronised.
    warmup, _ = timed(lambda: front.transform([(wave[: 5 * rate], rate)]))
    load = LoadProbe()
    times, [feats] = repeat_timed(lambda: front.transform([(wave, rate)]), cfg["repeats"])
    return {"warmup_s": warmup, "time_s": times, "frames": feats.n_frames,
            "local_shape": list(feats.local_patches.shape[1:]),
            "global_dim": int(feats.global_embeddings.shape[1]), "encoder": feats.encoder,
            "sample_rate": rate, "other_cores": load.others(), **probe.result()}


WORKERS = {"meta": worker_meta, "personalize": worker_personalize,
           "predict": worker_predict, "features": worker_features}


# ----------------------------------------------------------------- front end
def per_minute(r):
    """The minutes of audio of a predict or features result, and its seconds per minute."""
    minutes = r["frames"] / FRAMES_PER_MINUTE
    return minutes, [t / minutes for t in r["time_s"]]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["paper", "small"],
                        choices=["paper", "small"], help="DSAML size presets (default: both)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs per measurement after one warm-up (default: 1); "
                             "tables show the median and the range")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (default: os.cpu_count())")
    parser.add_argument("--tasks-per-step", type=int, default=None,
                        help="tasks actually run per meta-training episode; the 16-task "
                             f"episode is extrapolated when fewer (default: "
                             f"{DEFAULT_TASKS['paper']} for paper, {DEFAULT_TASKS['small']} "
                             "for small)")
    parser.add_argument("--order", nargs="+", default=["fomaml", "maml"],
                        choices=["fomaml", "maml"], help="meta-learning variants to time")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["meta", "personalize", "predict", "features"],
                        help="measurements to leave out")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="song length for prediction and feature extraction (default: 10)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the model: cpu (default), cuda or auto")
    parser.add_argument("--output", help="also write the Markdown to this file")
    parser.add_argument("--mmap-threshold", type=int, default=None, metavar="BYTES",
                        help="run the workers with MALLOC_MMAP_THRESHOLD_=BYTES (glibc): "
                             "allocations this large go straight to mmap and back to the OS "
                             "when freed; 1048576 cuts second-order MAML's peak memory "
                             "several-fold (default: glibc's adaptive threshold)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each measurement, wait up to this long until other "
                             f"processes use less than {IDLE_CORES} cores (default: 0, "
                             "do not wait); the tables report the load seen in any case")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        run_worker(WORKERS, json.loads(args._worker))
        return
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if args.tasks_per_step is not None and not 1 <= args.tasks_per_step <= PAPER_TASKS:
        parser.error(f"--tasks-per-step must be in 1..{PAPER_TASKS}")

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    env = thread_env(args.threads)
    if args.mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    device_text = device
    if device.startswith("cuda"):
        device_text += f" ({torch.cuda.get_device_name(torch.device(device))})"

    started = time.time()
    load_start = load_average()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    base = {"device": device, "threads": args.threads, "repeats": args.repeats}
    results = {}

    def measure(key, cfg):
        if args.wait_idle > 0:
            wait_idle(args.wait_idle, log)
        log(f"[bench] {' '.join(map(str, key))} ...")
        t0 = time.time()
        cfg = {**base, **cfg}
        results[key] = spawn_worker(os.path.abspath(__file__), ["--_worker", json.dumps(cfg)],
                                    env, f"benchmark worker {cfg}")
        log(f"[bench]   done in {time.time() - t0:.0f} s (load average {load_average()})")

    for size in args.sizes:
        if "meta" not in args.skip:
            for order in args.order:
                tasks = args.tasks_per_step or DEFAULT_TASKS[size]
                measure(("meta", size, order), {"kind": "meta", "size": size,
                                                "order": order, "tasks": tasks})
        if "personalize" not in args.skip:
            measure(("personalize", size), {"kind": "personalize", "size": size})
        if "predict" not in args.skip:
            measure(("predict", size), {"kind": "predict", "size": size,
                                        "minutes": args.minutes})
    if "features" not in args.skip:
        measure(("features",), {"kind": "features", "minutes": args.minutes})

    threads = next(iter(results.values()))["threads"] if results else args.threads
    out = [
        "# DSAML benchmark", "",
        f"**Hardware:** {cpu_model()}, {os.cpu_count()} logical cores; "
        f"torch {torch.__version__} with {threads} intra-op thread(s); device {device_text}; "
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}.", "",
        f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
        f"{args.repeats} timed repeat(s) after one warm-up, each measurement in its own "
        f"process; load average (1/5/15 min) {load_start} at start, {load_average()} at "
        f"end; total {time.time() - started:.0f} s."
        + (f" Workers ran with MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}."
           if args.mmap_threshold is not None else ""), "",
        "Times are medians in seconds (range over repeats in brackets). Memory is "
        "*peak RSS / increase over the process after model and inputs were built*, "
        "in MiB. *Other load* is the number of CPU cores other processes kept busy "
        "during the timed runs (from /proc/stat); above ~0.2 the times are inflated."]

    sizes_rows = []
    for size in args.sizes:
        from pdmer.estimators.dsaml import SIZES

        n = next((r["n_params"] for k, r in results.items()
                  if len(k) > 1 and k[1] == size and "n_params" in r), None)
        if n is None:
            n = _estimator(size, "cpu")[1]
        arch = SIZES[size]
        sizes_rows.append([
            f"`{size}`",
            f"{arch['d_model']} / {arch['n_heads']} / {arch['n_layers']} / {arch['d_ff']}",
            f"{arch['lstm_hidden']} / {arch['head_hidden']}",
            f"{GLOBAL_DIM[size]} ({GLOBAL_ENCODER[size]})",
            f"{n:,}" if n is not None else "n/a",
            f"{n * 4 / 2**20:.1f}" if n is not None else "n/a"])
    out += ["", "## Model sizes", "",
            table(["size", "d_model / heads / layers / d_ff", "LSTM / head hidden",
                   "global input dim", "trainable parameters", "float32 MiB"], sizes_rows)]

    meta_rows = []
    for size in args.sizes:
        for order in args.order:
            r = results.get(("meta", size, order))
            if r is None:
                continue
            per_task = statistics.median(r["task_s"])
            step = statistics.median(r["step_s"])
            episode = PAPER_TASKS * per_task + step
            measured = r["tasks"] == PAPER_TASKS
            basis = ("measured (16 tasks)" if measured else
                     f"**extrapolated**: {r['tasks']} task(s) measured x 16 + Adam step")
            meta_rows.append([f"`{size}`", order, r["tasks"], fmt_s(r["task_s"]),
                              fmt_num(step), f"**{fmt_num(episode)}**", basis,
                              fmt_num(episode * 2000 / 3600), fmt_memory(r), fmt_load(r)])
    if meta_rows:
        out += ["", "## 1. Meta-training", "",
                f"One episode = {PAPER_TASKS} tasks x ({N_SUPPORT} support + {N_QUERY} query "
                f"songs, {TRAIN_WINDOW}-frame windows), {INNER_STEPS} inner SGD steps on the "
                "support song, query loss backward, one Adam step. Per-task time is measured "
                "(it includes batching); the episode is 16 x per-task + Adam step.", "",
                table(["size", "variant", "tasks run", "s / task (measured)",
                       "s / Adam step", "s / episode (16 tasks)", "episode basis",
                       "h / 2000 episodes", "peak RSS / +Δ MiB", "other load"],
                      meta_rows)]

    other_rows = []
    for size in args.sizes:
        r = results.get(("personalize", size))
        if r is not None:
            other_rows.append([f"`{size}`", "personalize one listener",
                               f"{INNER_STEPS} steps on one {PERSONALIZE_FRAMES}-frame (30 s) "
                               "song", f"**{fmt_s(r['time_s'])}**", "s / listener",
                               fmt_memory(r), fmt_load(r)])
        r = results.get(("predict", size))
        if r is not None:
            minutes, per_min = per_minute(r)
            other_rows.append([f"`{size}`", "predict (model only)",
                               f"one {minutes:g}-min song ({r['frames']} frames), "
                               f"{fmt_s(r['time_s'])} s in all", f"**{fmt_s(per_min)}**",
                               "s / minute of audio", fmt_memory(r), fmt_load(r)])
    r = results.get(("features",))
    if r is not None:
        minutes, per_min = per_minute(r)
        other_rows.append([
            "any", "AudioFeatures() extraction",
            f"one {minutes:g}-min {r['sample_rate']} Hz mono waveform in memory -> "
            f"{r['local_shape'][0]}x{r['local_shape'][1]} patches + {r['global_dim']}-d "
            f"{r['encoder']}, {fmt_s(r['time_s'])} s in all",
            f"**{fmt_s(per_min)}**", "s / minute of audio", fmt_memory(r), fmt_load(r)])
    if other_rows:
        out += ["", "## 2.-3. Personalization, prediction and feature extraction", "",
                table(["size", "operation", "input", "time", "unit", "peak RSS / +Δ MiB",
                       "other load"], other_rows)]
    text = "\n".join(out) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
