"""Time and memory of meta-training the baselines at the paper's sizes.

For each model (CRNN, DNN, MCRNN, DAMFF, and DSAML for reference) at a size
preset, in its own process: one first-order MAML task of the paper's setup
(1 support + 15 query songs, random 60-frame windows of 45 s songs, 16 inner
SGD steps on the support song, the query loss backward) and the plain
training (``meta_learning="none"``) forward and backward of one task's 16
songs; the peak RSS of the process. Inputs are random arrays of the paper's
shapes (51x128 log-mel patches, 1024-d global embeddings, 8000 raw samples
per frame = 16 kHz). An episode (MAML or plain) is 16 tasks, so s/episode =
16 x s/task, extrapolated from ``--tasks`` measured tasks.

    python benchmarks/bench_baselines.py                       # paper sizes, 1 task each
    python benchmarks/bench_baselines.py --size small --tasks 2 --models crnn damff
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from measure import load_average, maxrss_mib  # noqa: E402

MODELS = ("dsaml", "damff", "mcrnn", "dnn", "crnn")
PAPER_TASKS = 16
N_QUERY = 15
WINDOW = 60
SONG_FRAMES = 90  # 45 s DEAM clips
EPISODES = 2000


def worker(model, size, n_tasks, threads):
    import numpy as np
    import torch

    from pdmer.benchmark import MODELS as CLASSES
    from pdmer.benchmark import PAPER_FEATURES
    from pdmer.features import SongFeatures
    from pdmer.meta.batch import Song, collate

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    global_dim = PAPER_FEATURES["global_dim"] if size == "paper" else 128
    samples = PAPER_FEATURES["n_waveform_samples"]

    def features(n, source):
        return SongFeatures(rng.standard_normal((n, 51, 128), dtype=np.float32) - 6.0,
                            rng.standard_normal((n, global_dim), dtype=np.float32),
                            encoder="bench", source=source,
                            waveforms=0.1 * rng.standard_normal((n, samples), dtype=np.float32),
                            waveform_rate=16000)

    def labels(n):
        return rng.uniform(-0.5, 0.5, size=(n, 2)).astype(np.float32)

    cls = CLASSES[model][1]
    # A fitted estimator from one tiny episode, then the paper's training setup.
    setup = [features(8, f"setup{i}") for i in range(2)]
    est = cls(size=size, device="cpu", random_state=0, n_episodes=1, tasks_per_step=1,
              n_query=1, inner_steps=1, validation_fraction=0.0)
    est.fit(setup, [labels(8) for _ in setup])
    est.set_params(inner_steps=16, n_query=N_QUERY, train_window=WINDOW)
    pool = []
    for i in range(N_QUERY + 9):
        f = features(SONG_FRAMES, f"song{i}")
        pool.append(Song(torch.from_numpy(f.local_patches),
                         torch.from_numpy(f.global_embeddings),
                         torch.from_numpy(labels(SONG_FRAMES)), f.encoder,
                         torch.from_numpy(f.waveforms)))
    network = est.network_
    learner = est.meta_learner()
    network.train()

    def batches():
        rows = rng.choice(len(pool), 1 + N_QUERY, replace=False)
        return (collate([pool[i].window(WINDOW, rng) for i in rows[:1]], "cpu"),
                collate([pool[i].window(WINDOW, rng) for i in rows[1:]], "cpu"))

    def task(steps):
        support, query = batches()
        torch.manual_seed(0)
        return learner.task_backward(support, query, steps)

    task(1)  # warm-up
    times = []
    for _ in range(n_tasks):
        t0 = time.perf_counter()
        task(16)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    plain = collate([pool[i].window(WINDOW, rng) for i in range(1 + N_QUERY)], "cpu")
    learner.query_loss(dict(network.named_parameters()), plain).backward()
    plain_s = time.perf_counter() - t0
    return {"model": CLASSES[model][0], "size": size,
            "n_parameters": est.n_parameters_, "task_s": float(np.median(times)),
            "plain_step_s": plain_s,
            "peak_rss_mib": maxrss_mib()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--size", choices=("paper", "small"), default="paper")
    parser.add_argument("--tasks", type=int, default=1, help="measured tasks per model")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--output", help="also write the Markdown table here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.tasks, args.threads)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    lines = [f"Size `{args.size}`, {args.tasks} measured task(s) per model after one warm-up, "
             f"{args.threads} thread(s); episode = {PAPER_TASKS} tasks (extrapolated); "
             f"load average at start {load_average()}.", "",
             "| model | trainable parameters | s / MAML task | s / MAML episode | "
             f"h / {EPISODES} MAML episodes | s / plain task (16 songs) | "
             f"h / {EPISODES} plain episodes | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model in args.models:
        out = subprocess.run([sys.executable, __file__, "--worker", model, "--size", args.size,
                              "--tasks", str(args.tasks), "--threads", str(args.threads)],
                             env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{model} failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        episode = PAPER_TASKS * r["task_s"]
        lines.append(f"| {r['model']} | {r['n_parameters']:,} | {r['task_s']:.2f} | "
                     f"{episode:.1f} | {episode * EPISODES / 3600:.1f} | "
                     f"{r['plain_step_s']:.2f} | "
                     f"{PAPER_TASKS * r['plain_step_s'] * EPISODES / 3600:.1f} | "
                     f"{r['peak_rss_mib']:.0f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
