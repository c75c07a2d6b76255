#!/usr/bin/env python
"""Scale benchmark of DSAML: pdmer's training step against a reference-style loop,
personalization, whole-song prediction memory, bf16 accuracy, and the GPU path.

Each measurement runs in its own subprocess (fresh allocator, its own memory
peak). Timed comparisons are interleaved: round after round, every variant
runs once, so load from other processes on a shared machine spreads over all
variants; tables give the minimum and the median over the rounds, in wall
seconds and in CPU seconds of the process (less sensitive to other load).

Measurements (``python benchmarks/bench_scale.py MEASUREMENT [options]``):

``task``
    One paper-size meta-training task: FOMAML, 1 support + 15 query songs of
    60 frames, 16 inner SGD steps at lr 5e-3, task loss + diagonal attention
    loss, query backward. Variants: the reference-style loop of
    ``bench_reference.py`` (learn2learn's clone/adapt, float32), pdmer's
    sequential loop (:func:`pdmer.meta.maml.maml_task_backward`) in float32
    and with bf16 autocast (:func:`pdmer.nn.precision.autocast`), the
    estimator's own step (``DSAMLRegressor(precision="bf16")
    .meta_learner().task_backward``: inner steps in eval mode; and with the
    default ``precision="auto"``, float32 on CPUs), pdmer's
    batched tasks (:func:`pdmer.meta.vmapped.vmapped_tasks_backward`, s per
    task), optionally ``torch.compile``; ``--inner-params head`` adds the
    head-only (ANIL-style) rows. ``--reference-code DIR`` adds the authors'
    own model and loop (``reference-code``: github Littleor/Personalized-DMER,
    ``PDMERModel`` and ``fast_adapter`` run from their files, learn2learn-style
    FOMAML, float32; see ``reference_code.py``); the speed-ups are then
    against it.
``episode``
    One episode of ``--tasks`` such tasks on every core of the machine, each
    side as it uses several cores: the reference loop with ``--threads``
    intra-op threads (``reference-start`` too with ``--reference-pdmer``),
    and pdmer's bf16 loop split over ``--threads`` ``torchrun`` processes of
    one thread each (the estimators' distributed training), gradients summed.
``personalize``
    16 SGD steps on one 60-frame song at paper size: the public
    ``DSAMLRegressor.personalize`` as the estimator runs it, and the same
    steps with bf16 autocast; ``--profile`` says where the time goes;
    ``--reference-code DIR`` adds the authors' personalization (their 16
    first-order steps on one song, from their files).
``predict``
    The public ``DSAMLRegressor.predict`` on one song of ``--minutes``
    (default 60) at paper size: peak memory increase and seconds per minute.
``accuracy``
    bf16 against float32 on a short training run: the demo's synthetic
    listeners, a small DSAML meta-trained with all parameters adapted, mean
    CCC of held-out listeners after personalization, for several seeds.
``gpu``
    With ``--device cuda``: episode time (16 tasks, sequential and batched),
    GPU memory, prediction frames/s, and the estimated time of a full DEAM
    PDMER run (2000 episodes x 16 tasks at paper size).

Usage::

    python benchmarks/bench_scale.py task --threads 1 --rounds 3
    python benchmarks/bench_scale.py task --threads 1 --reference-code /tmp/pdmer-reference
    python benchmarks/bench_scale.py personalize --threads 1 --reference-code /tmp/pdmer-reference
    python benchmarks/bench_scale.py task --reference-code /tmp/pdmer-reference --rounds 1 \\
        --size small                       # checks that it all runs, in seconds
    python benchmarks/bench_scale.py task --threads 2 --inner-params head
    python benchmarks/bench_scale.py episode --threads 2 --tasks 4
    python benchmarks/bench_scale.py personalize --profile
    python benchmarks/bench_scale.py predict --minutes 60
    python benchmarks/bench_scale.py accuracy --seeds 0 1 2
    python benchmarks/bench_scale.py gpu --device cuda

``/tmp/pdmer-reference`` is an extracted checkout of the authors' code::

    git clone https://github.com/Littleor/Personalized-DMER /tmp/pdmer-reference-git
    mkdir -p /tmp/pdmer-reference
    git -C /tmp/pdmer-reference-git archive HEAD models utils | tar -x -C /tmp/pdmer-reference

Results and their discussion: ``benchmarks/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_reference import SIZES  # noqa: E402
from measure import (  # noqa: E402
    IDLE_CORES,
    cpu_model,
    load_average,
    other_load,
    spawn_worker,
    table,
    thread_env,
)

WORKERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale_workers.py")


def spawn(cfg, wait_idle=0.0) -> dict:
    env = thread_env(cfg["threads"])
    if wait_idle:
        _wait_idle(wait_idle)
    return spawn_worker(WORKERS, [json.dumps(cfg)], env, f"worker {cfg}")


# ------------------------------------------------------------------ front end
def _wait_idle(limit_s):
    """Wait up to ``limit_s`` seconds until other processes use < IDLE_CORES cores."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        load = other_load(3.0)
        if load is None or load < IDLE_CORES:
            return
    print(f"(still busy after {limit_s:.0f} s; measuring anyway)", file=sys.stderr)


def _stats(values) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def run_task(args, log):
    variants = ["reference", "pdmer-fp32", "pdmer-bf16", "pdmer-estimator",
                "pdmer-estimator-default"]
    if args.reference_code:
        variants.insert(0, "reference-code")
    if args.batched:
        variants.append("pdmer-batched")
    if args.compile:
        variants.append("pdmer-bf16-compiled")
    if args.reference_pdmer:
        variants.insert(0, "reference-start")
    results = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            cfg = dict(kind="task", variant=variant, size=args.size, threads=args.threads,
                       device=args.device, inner_params=args.inner_params,
                       tasks=args.batched if variant == "pdmer-batched" else 1,
                       compile=variant.endswith("compiled"))
            if variant == "reference-start":
                cfg.update(variant="reference", pdmer_path=args.reference_pdmer)
            if variant == "reference-code":
                cfg.update(reference_code=os.path.abspath(args.reference_code))
            r = spawn(cfg, args.wait_idle)
            results[variant].append(r)
            log(f"round {round_ + 1} {variant}: {r['wall_s']:.2f} s wall, "
                f"{r['cpu_s']:.2f} s CPU, other load {r['other_cores'] or 0:.1f} cores")
    # Speed-ups against the authors' own code where it runs, else the reference loop.
    base_variant = "reference-code" if args.reference_code else "reference"
    base = statistics.median(r["wall_s"] for r in results[base_variant])
    base_cpu = statistics.median(r["cpu_s"] for r in results[base_variant])
    rows = []
    for variant, rs in results.items():
        wall, cpu = [r["wall_s"] for r in rs], [r["cpu_s"] for r in rs]
        rows.append([variant, _stats(wall), _stats(cpu),
                     f"{base / statistics.median(wall):.2f}x",
                     f"{base_cpu / statistics.median(cpu):.2f}x",
                     f"{statistics.median(r['rss_delta_mib'] for r in rs):.0f}",
                     f"{statistics.median(r['other_cores'] or 0 for r in rs):.1f}",
                     f"{rs[0]['loss']:.4f}"])
    return table(["variant", "s / task wall (min / median)", "s / task CPU (min / median)",
                  f"speed-up vs {base_variant} wall (median)",
                  f"speed-up vs {base_variant} CPU (median)", "peak RSS +MiB",
                  "other load (cores)", "query loss"], rows)


def run_episode(args, log):
    variants = (["reference-start"] if args.reference_pdmer else []) + [
        "reference", "pdmer-processes"]
    results = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            cfg = dict(kind="episode", variant=variant, size=args.size, tasks=args.tasks,
                       threads=args.threads)
            if variant == "reference-start":
                cfg.update(variant="reference", pdmer_path=args.reference_pdmer)
            if variant == "pdmer-processes":
                cfg["threads"] = 1
                r = spawn_worker("-m", ["torch.distributed.run", "--standalone",
                                        f"--nproc_per_node={args.threads}", WORKERS,
                                        json.dumps(cfg)], thread_env(1), f"worker {cfg}")
            else:
                r = spawn(cfg, args.wait_idle)
            results[variant].append(r)
            log(f"round {round_ + 1} {variant}: {r['wall_s']:.2f} s wall for {r['tasks']} "
                f"tasks, other load {r['other_cores'] or 0:.1f} cores")
    rows = []
    for base in [v for v in variants if v.startswith("reference")]:
        ref = statistics.median(r["wall_s"] for r in results[base])
        for variant, rs in results.items():
            if variant.startswith("reference") and variant != base:
                continue
            wall = [r["wall_s"] for r in rs]
            rows.append([f"{variant} (vs {base})" if variant == "pdmer-processes" else variant,
                         _stats(wall), _stats([w / args.tasks for w in wall]),
                         f"{ref / statistics.median(wall):.2f}x",
                         f"{statistics.median(r['other_cores'] or 0 for r in rs):.1f}"])
    return table([f"episode of {args.tasks} tasks, {args.threads} cores",
                  "s / episode wall (min / median)", "s / task (min / median)",
                  "speed-up (median)", "other load (cores)"], rows)


def run_personalize(args, log):
    # public: DSAMLRegressor.personalize as fitted (float32 on the CPU);
    # public-bf16: the same with precision="bf16"; bf16: the bare
    # adaptation loop (train mode, every parameter) under bf16 autocast.
    # reference-code: the authors' personalization (benchmarks/reference_code.py).
    variants = ["public", "public-bf16", "bf16"]
    if args.reference_code:
        variants.insert(0, "reference-code")
    results = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            cfg = dict(kind="personalize", variant=variant, size=args.size,
                       threads=args.threads, device=args.device,
                       profile=args.profile and round_ == 0)
            if variant == "reference-code":
                cfg.update(reference_code=os.path.abspath(args.reference_code))
            r = spawn(cfg, args.wait_idle)
            results[variant].append(r)
            log(f"round {round_ + 1} {variant}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU")
    rows = [[v, _stats([r["wall_s"] for r in rs]), _stats([r["cpu_s"] for r in rs]),
             f"{statistics.median(r['rss_delta_mib'] for r in rs):.0f}"]
            for v, rs in results.items()]
    header = ["personalize (16 steps, 60 frames)", "s wall (min / median)",
              "s CPU (min / median)", "peak RSS +MiB"]
    if args.reference_code:
        base = statistics.median(r["wall_s"] for r in results["reference-code"])
        header.append("speed-up vs reference-code wall (median)")
        for row, rs in zip(rows, results.values()):
            row.append(f"{base / statistics.median(r['wall_s'] for r in rs):.2f}x")
    text = table(header, rows)
    for variant, rs in results.items():
        if "profile" in rs[0]:
            text += f"\n\nWhere the time goes ({variant}, share of self CPU time):\n\n"
            text += table(["category", "share"], [[k, f"{v:.1%}"] for k, v in
                                                   rs[0]["profile"].items()])
    return text


def run_predict(args, log):
    rs = []
    for round_ in range(args.rounds):
        r = spawn(dict(kind="predict", size=args.size, threads=args.threads,
                       device=args.device, minutes=args.minutes), args.wait_idle)
        rs.append(r)
        log(f"round {round_ + 1}: {r['wall_s']:.2f} s, +{r['rss_delta_mib']:.0f} MiB")
    return table(["song", "frames", "s wall (min / median)", "s per minute of audio (median)",
                  "peak RSS (MiB)", "peak RSS increase (MiB)"],
                 [[f"{args.minutes:g} min", rs[0]["frames"], _stats([r["wall_s"] for r in rs]),
                   f"{statistics.median(r['s_per_minute'] for r in rs):.3f}",
                   f"{max(r['rss_peak_mib'] for r in rs):.0f}",
                   f"{max(r['rss_delta_mib'] for r in rs):.0f}"]])


def run_accuracy(args, log):
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in ("fp32", "bf16"):
                r = spawn(dict(kind="accuracy", variant=variant, seed=seed, threads=args.threads,
                               episodes=args.episodes, data_dir=os.path.join(tmp, "data")),
                          args.wait_idle)
                log(f"seed {seed} {variant}: CCC {r['ccc_mean']:.3f}")
                rows.append([seed, variant, f"{r['ccc_mean']:.3f}", f"{r['ccc_arousal']:.3f}",
                             f"{r['ccc_valence']:.3f}", f"{r['final_loss']:.4f}",
                             f"{r['fit_cpu_s']:.0f}"])
    return table(["seed", "precision", "CCC mean", "CCC arousal", "CCC valence",
                  "last training loss", "fit CPU s"], rows)


def run_gpu(args, log):
    r = spawn(dict(kind="gpu", size=args.size, threads=args.threads, device=args.device,
                   inner_params=args.inner_params, order=args.order, repeats=args.rounds,
                   group=args.group, minutes=args.minutes), args.wait_idle)
    rows = [[mode, f"{r[mode]['episode_s']:.2f}", f"{r[mode]['gpu_peak_gib']:.1f}",
             f"{r[mode]['train_frames_per_s']:.0f}", f"{r[mode]['full_run_h']:.1f}"]
            for mode in ("sequential", "batched")]
    text = f"GPU: {r['gpu']}\n\n" + table(
        [f"{args.order} episode (16 tasks, {args.size})", "s / episode (median)",
         "GPU peak GiB", "training frames / s", "est. hours for 2000 episodes"], rows)
    p = r["predict"]
    text += (f"\n\nPrediction: {p['frames']} frames in one pass, {p['frames_per_s']:.0f} "
             f"frames/s, GPU peak {p['gpu_peak_gib']:.2f} GiB")
    return text


RUNNERS = {"task": run_task, "episode": run_episode, "personalize": run_personalize, "predict": run_predict,
           "accuracy": run_accuracy, "gpu": run_gpu}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measurement", choices=RUNNERS)
    parser.add_argument("--size", choices=SIZES, default="paper",
                        help="paper, or small to check that everything runs (seconds)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds (timed runs per variant)")
    parser.add_argument("--inner-params", choices=("all", "head"), default="all")
    parser.add_argument("--batched", type=int, default=0, metavar="N",
                        help="task: also time N tasks run together (s per task)")
    parser.add_argument("--tasks", type=int, default=4,
                        help="episode: tasks per episode (default 4)")
    parser.add_argument("--compile", action="store_true",
                        help="task: also time the bf16 loop with torch.compile")
    parser.add_argument("--reference-pdmer", metavar="DIR",
                        help="task, episode: also time the reference loop on the pdmer in DIR")
    parser.add_argument("--reference-code", metavar="DIR",
                        help="task, personalize: also time the authors' model and loop from "
                             "the extracted checkout of Littleor/Personalized-DMER in DIR "
                             "(benchmarks/reference_code.py); speed-ups are then against it")
    parser.add_argument("--profile", action="store_true",
                        help="personalize: group the time by kind of operation")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=120)
    parser.add_argument("--order", choices=("fomaml", "maml"), default="fomaml")
    parser.add_argument("--group", type=int, default=None,
                        help="gpu: tasks per batched call (default all 16)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="S",
                        help="before each run wait up to S s until the machine is idle")
    parser.add_argument("--output", help="also append the table to this Markdown file")
    args = parser.parse_args(argv)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    import torch

    header = (f"{args.measurement}: {cpu_model()}, {os.cpu_count()} logical cores, torch "
              f"{torch.__version__}, {args.threads} thread(s), device {args.device}, "
              f"load average before {load_average()}, "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
    log(header)
    text = header + "\n\n" + RUNNERS[args.measurement](args, log)
    print(text)
    if args.output:
        with open(args.output, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
