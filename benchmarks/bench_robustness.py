"""Does personalization hold on data nobody tuned for? DSAML and its fair
competitors over synthetic data conditions x seeds, one Markdown table.

Every cell (condition, seed) is one ``pdmer.experiments.run_benchmark`` run of
DSAML on a synthetic set generated with the condition's parameters, with
listeners AND songs held out (only songs no training listener annotated are
scored), at the CPU preset. Rows per cell: meta-trained and not personalized;
meta-trained and personalized from one song (DSAML, the default personalized
configuration); the same network trained plainly on the same tasks, not
adapted; and that plain network fine-tuned on the support song with the
personalization's steps and step size.

Per condition the table gives the mean CCC (arousal and valence averaged) of
each row over seeds, the personalization gain (personalized - not
personalized), the spread of the personalized model's predictions (their
within-song std over the labels'; below 0.5 the model is flagged as
collapsed), the margin of personalized DSAML over plain + fine-tune, and how
often the best validation came at the last check (still improving); then the
averages over conditions.

Cells are cached as JSON in the output folder (``<output>/<condition>/seed-<n>/
result.json``): an interrupted run resumes where it stopped, and a finished
one only prints the table. Generated audio is deleted after each cell unless
``--keep-data``.

    nice -n 10 python benchmarks/bench_robustness.py                  # 5+ conditions x 3 seeds
    python benchmarks/bench_robustness.py --quick                     # smoke run, seconds
    python benchmarks/bench_robustness.py --conditions baseline,label-start-15s --seeds 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

# name -> (what it changes, keyword arguments of pdmer_datasets.synthetic.generate
# on top of the preset's data: 40 songs of 20 s at 22.05 kHz, labels from 0 s,
# 32 listeners annotating 16 songs each, a quarter with reversed valence).
# "duration" is the labelled length; frame_offset adds unlabelled audio before it.
MIXED = {"typical": 0.2, "reversed": 0.2, "shifted": 0.2, "compressed": 0.2, "lagged": 0.2}
CONDITIONS = {
    "baseline": ("the CPU preset's data", {}),
    "16kHz-45s-labels-from-15s-mixed": (
        "16 kHz songs of 45 s, labels from 15 s, typical / reversed / shifted / compressed / "
        "lagged (1-3 s) listeners in equal parts (like the independent set of issue 10)",
        dict(sample_rate=16000, duration=30.0, frame_offset=15.0, listener_mix=MIXED)),
    "44kHz-30-60s": ("44.1 kHz songs of 30 to 60 s",
                     dict(sample_rate=44100, duration=(30.0, 60.0))),
    "half-reversed": ("half of the listeners perceive valence reversed",
                      dict(reversed_fraction=0.5)),
    "noisy-raters": ("rater noise std 0.15 (default 0.03-0.1), 16 kHz",
                     dict(noise_std=0.15, sample_rate=16000)),
    "shifted-compressed-lagged": (
        "no reversed listeners: shifted, compressed and lagged ones, 30 s songs",
        dict(listener_mix={"typical": 0.25, "shifted": 0.25, "compressed": 0.25,
                           "lagged": 0.25}, duration=30.0)),
    "no-reversed-30s-more-songs": ("no reversed listeners, 30 s songs, 60 songs",
                                   dict(reversed_fraction=0.0, duration=30.0, n_songs=60)),
}

ROLES = {"not personalized": "not personalized", "personalized": "personalized",
         "plain": "plain", "plain + fine-tuned": "plain + FT"}

# Other personalization methods, as personalized rows beside the default
# (first-order MAML adapting the BiLSTM and head: ANIL-style): name ->
# estimator parameters on top of the meta-trained row's.
VARIANTS = {
    "FOMAML all": dict(inner_params="all"),
    "MAML": dict(meta_learning="maml"),
    "Meta-SGD": dict(meta_learning="metasgd"),
}

QUICK = dict(preset="tiny", seeds=(0,), max_duration=4.0, max_offset=2.0)


def condition_params(name, quick):
    """The condition's generator parameters (smaller when ``quick``)."""
    params = dict(CONDITIONS[name][1])
    if quick:  # smoke runs: short songs, little unlabelled audio
        params["duration"] = QUICK["max_duration"]
        if "frame_offset" in params:
            params["frame_offset"] = min(params["frame_offset"], QUICK["max_offset"])
        if "n_songs" in params:
            params["n_songs"] = 8
    return params


def run_cell(name, seed, preset, output, estimator_params, variants, keep_data, quick, log,
             n_jobs):
    from pdmer.experiments import run_benchmark

    params = condition_params(name, quick)
    folder = os.path.join(output, name, f"seed-{seed}")
    done = finished_cell(folder, {v: VARIANTS[v] for v in variants},
                         dict(preset=preset, seed=seed, data_params=params,
                              estimator_params=estimator_params or {}, mean_label_rows=False))
    if done is not None:
        return done
    data_home = os.path.join(folder, "data")
    result = run_benchmark(dataset="synthetic", task="pdmer", models=["dsaml"], preset=preset,
                           seed=seed, output=folder, data_home=data_home, verbose=0,
                           log=log, data_params=params, estimator_params=estimator_params,
                           mean_label_rows=False, resume=True, n_jobs=n_jobs,
                           variants={v: VARIANTS[v] for v in variants},
                           command=f"benchmarks/bench_robustness.py cell {name} seed {seed}")
    if not keep_data:
        shutil.rmtree(data_home, ignore_errors=True)
    return result


def finished_cell(folder, variants, settings):
    """A finished cell that ran at least ``variants`` (its other variant rows dropped), or None.

    Lets a run with fewer variants reuse the cells of a run with more; the
    other ``settings`` must match. A cell with exactly these variants is
    left to ``run_benchmark(resume=True)``.
    """
    import json

    from pdmer.experiments.reporting import BenchmarkResult

    result = BenchmarkResult.read(folder)
    if result is None:
        return None
    ran = result.settings.get("variants") or {}
    wanted = json.loads(json.dumps(variants))
    if any(result.settings.get(k) != v for k, v in json.loads(json.dumps(settings)).items()):
        return None
    if any(ran.get(name) != params for name, params in wanted.items()) or ran == wanted:
        return None  # missing variants, or exactly these: run_benchmark decides
    result.rows = [r for r in result.rows if r["role"] != "variant"
                   or any(r["row"].endswith(f" {name}") for name in wanted)]
    return result


def table(cells, conditions, seeds, variants=()) -> str:
    """The one Markdown table: per condition over seeds, then the averages."""
    from pdmer.evaluation import COLLAPSE_RATIO
    from pdmer.experiments import markdown_table

    lines, per_condition = {}, []
    for name in conditions:
        results = [cells[(name, s)] for s in seeds if (name, s) in cells]
        if not results:
            continue
        by_role = [{r["role"]: r for r in result.rows} for result in results]
        line = {f"ccc {label}": float(np.mean([b[role]["ccc_mean"] for b in by_role]))
                for role, label in ROLES.items()}
        for variant in variants:
            line[f"ccc {variant}"] = float(np.mean([
                r["ccc_mean"] for result in results for r in result.rows
                if r["role"] == "variant" and r["row"].endswith(f" {variant}")]))
        gains = [b["personalized"]["ccc_mean"] - b["not personalized"]["ccc_mean"]
                 for b in by_role]
        margins = [b["personalized"]["ccc_mean"] - b["plain + fine-tuned"]["ccc_mean"]
                   for b in by_role]
        spreads = [b["personalized"]["spread"] for b in by_role]
        line["gain"] = float(np.mean(gains))
        line["gain > 0"] = f"{sum(g > 0 for g in gains)}/{len(gains)}"
        line["spread"] = float(np.mean(spreads))
        line["collapsed"] = f"{sum(s < COLLAPSE_RATIO for s in spreads)}/{len(spreads)}"
        line["margin vs plain + FT"] = float(np.mean(margins))
        improving = [b["personalized"]["still_improving"] for b in by_role]
        line["best = last"] = f"{sum(bool(i) for i in improving)}/{len(improving)}"
        label = name
        if len(results) < len(seeds):
            label += f" ({len(results)} of {len(seeds)} seeds)"
        lines[label] = line
        per_condition.append(line)
    if per_condition:
        lines["**average over conditions**"] = {
            key: float(np.mean([line[key] for line in per_condition]))
            for key in per_condition[0] if isinstance(per_condition[0][key], float)}
    columns = [f"ccc {label}" for label in ROLES.values()] + [
        f"ccc {variant}" for variant in variants] + [
        "gain", "gain > 0", "spread", "collapsed", "margin vs plain + FT", "best = last"]
    return markdown_table(lines, columns, index="condition")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", "-o", default="robustness",
                        help="folder for the cached cells and robustness.md")
    parser.add_argument("--conditions", default=None,
                        help=f"comma-separated subset of: {', '.join(CONDITIONS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="small", choices=("tiny", "small"))
    parser.add_argument("--episodes", type=int, default=None,
                        help="training episodes (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per model (default 1)")
    parser.add_argument("--jobs", "-j", type=int, default=-1,
                        help="models trained at once (default -1: one per core)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated personalization methods beside the default, "
                             f"of: {', '.join(VARIANTS)} (empty: none)")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated audio")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny preset, seed 0, 4 s songs")
    args = parser.parse_args(argv)
    conditions = list(CONDITIONS) if args.conditions is None else [
        c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(CONDITIONS)}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS):
        parser.error(f"unknown variant(s) {', '.join(sorted(set(variants) - set(VARIANTS)))}; "
                     f"choose from {', '.join(VARIANTS)}")
    preset, seeds = args.preset, args.seeds
    if args.quick:
        preset, seeds = QUICK["preset"], list(QUICK["seeds"])
    output = os.path.join(args.output, "quick") if args.quick else args.output

    import torch

    torch.set_num_threads(args.threads)
    estimator_params = None if args.episodes is None else {"n_episodes": args.episodes}
    cell_log = (lambda m: None) if args.quick else (lambda m: print(f"  {m}", file=sys.stderr))
    cells = {}
    started = time.perf_counter()
    for name in conditions:
        for seed in seeds:
            cell_started = time.perf_counter()
            print(f"[{name}, seed {seed}] ...", file=sys.stderr, flush=True)
            cells[(name, seed)] = run_cell(name, seed, preset, output, estimator_params,
                                           variants, args.keep_data, args.quick, cell_log,
                                           args.jobs)
            print(f"[{name}, seed {seed}] done in {time.perf_counter() - cell_started:.0f} s",
                  file=sys.stderr, flush=True)
    text = table(cells, conditions, seeds, variants)
    from pdmer.experiments.hardware import describe_machine
    from pdmer.experiments.reporting import write_text

    header = (f"DSAML and fair competitors, preset `{preset}`, seeds "
              f"{', '.join(map(str, seeds))}, song-disjoint splits; mean CCC of arousal and "
              f"valence on held-out listeners' unseen songs. {time.perf_counter() - started:.0f} "
              f"s on {describe_machine()['summary']}.\n\n")
    write_text(os.path.join(output, "robustness.md"), header + text + "\n")
    print(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
