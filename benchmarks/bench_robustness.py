"""Does personalization hold on data nobody tuned for? DSAML and the strongest
simple competitors over synthetic data conditions x seeds, per listener kind.

Every cell (condition, seed) is one ``pdmer.experiments.run_benchmark`` run of
DSAML on a synthetic set generated with the condition's parameters, with
listeners AND songs held out (only songs no training listener annotated are
scored), at the CPU preset. Rows per cell: meta-trained and not personalized;
meta-trained and personalized from one song (the estimators' default method
of the preset); the same network trained plainly on the same tasks, not
adapted, fine-tuned on the support song with the personalization's steps and
step size, fine-tuned with the (steps, step size, parameters) that served the
held-out *training* listeners best, and calibrated to the listener in closed
form (ridge strength chosen on those training listeners); the meta-trained
model calibrated the same way. No row's settings are chosen on test listeners.

Conditions are "dev" (where pdmer's settings were chosen: the CPU preset and
the method's starting values) or "test" (reported, never tuned on). The
report has one table over conditions (mean CCC of arousal and valence over
seeds, margin over the best competitor, gain, spread, collapse), one per
listener kind (the personalized model, the best competitor of that
condition and the model not personalized, seed means), and the averages over
the test conditions.

Cells are cached as JSON in the output folder (``<output>/<condition>/seed-<n>/
result.json``): an interrupted run resumes where it stopped, and a finished
one only prints the tables. Generated audio is deleted after each cell unless
``--keep-data``.

    nice -n 10 python benchmarks/bench_robustness.py                  # 11 conditions x 3 seeds
    python benchmarks/bench_robustness.py --quick                     # smoke run, seconds
    python benchmarks/bench_robustness.py --conditions baseline,swapped-cues --seeds 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

# name -> (role, what it changes, keyword arguments of pdmer_datasets.synthetic.generate
# on top of the preset's data: 40 songs of 20 s at 22.05 kHz, labels from 0 s,
# 32 listeners annotating 16 songs each (24 in training), a quarter with reversed
# valence; run_benchmark arguments). "duration" is the labelled length;
# frame_offset adds unlabelled audio before it.
MIXED = {"typical": 0.2, "reversed": 0.2, "shifted": 0.2, "compressed": 0.2, "lagged": 0.2}
FOUR_KINDS = {"typical": 0.25, "reversed": 0.25, "shifted": 0.25, "compressed": 0.25}
CONDITIONS = {
    "baseline": ("dev", "the CPU preset's data", {}, {}),
    "half-reversed": ("dev", "half of the listeners perceive valence reversed",
                      dict(reversed_fraction=0.5), {}),
    "16kHz-45s-from-15s-four-kinds": (
        "test", "16 kHz songs of 45 s labelled from 15 s, typical / reversed / shifted / "
        "compressed listeners in equal parts (issue 18's independent set)",
        dict(sample_rate=16000, duration=30.0, frame_offset=15.0, listener_mix=FOUR_KINDS), {}),
    "16kHz-45s-from-15s-five-kinds": (
        "test", "as above with lagged listeners (1-3 s) as a fifth kind",
        dict(sample_rate=16000, duration=30.0, frame_offset=15.0, listener_mix=MIXED), {}),
    "reversed-minority": ("test", "one listener in eight reversed",
                          dict(reversed_fraction=0.125), {}),
    "small-pool": ("test", "20 listeners (15 in training) of 12 songs each",
                   dict(n_listeners=20, songs_per_listener=12), {}),
    "unseen-reversed": ("test", "four kinds; training without the reversed listeners",
                        dict(listener_mix=FOUR_KINDS), dict(train_without_kinds=["reversed"])),
    "unseen-compressed": ("test", "four kinds; training without the compressed listeners",
                          dict(listener_mix=FOUR_KINDS),
                          dict(train_without_kinds=["compressed"])),
    "long-labels-60s": ("test", "60 s songs, labelled throughout", dict(duration=60.0), {}),
    "noisy-raters": ("test", "rater noise std 0.15 (default 0.03-0.1), 16 kHz",
                     dict(noise_std=0.15, sample_rate=16000), {}),
    "swapped-cues": ("test", "arousal and valence carried by each other's musical cues",
                     dict(cues="swapped"), {}),
}

# The competitors of the personalized model, by row role (none is tuned on test listeners).
COMPETITORS = {"not personalized": "not personalized", "plain": "plain",
               "plain + fine-tuned": "plain + FT", "plain + tuned fine-tune": "plain + tuned FT",
               "plain + calibration": "plain + calibration",
               "not personalized + calibration": "meta + calibration"}

# Other personalization methods, as personalized rows beside the default: name ->
# estimator parameters on top of the meta-trained row's.
VARIANTS = {
    "FOMAML": dict(meta_learning="fomaml"),
    "FOMAML all": dict(meta_learning="fomaml", inner_params="all"),
    "calibrated": dict(meta_learning="calibrated"),
    "MAML": dict(meta_learning="maml"),
    "Meta-SGD": dict(meta_learning="metasgd"),
}

QUICK = dict(preset="tiny", seeds=(0,), max_duration=4.0, max_offset=2.0)


def condition_params(name, quick):
    """The condition's generator parameters (smaller when ``quick``)."""
    params = dict(CONDITIONS[name][2])
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
    options = CONDITIONS[name][3]
    folder = os.path.join(output, name, f"seed-{seed}")
    done = finished_cell(folder, {v: VARIANTS[v] for v in variants},
                         dict(preset=preset, seed=seed, data_params=params,
                              estimator_params=estimator_params or {}, mean_label_rows=False,
                              **options))
    if done is not None:
        return done
    data_home = os.path.join(folder, "data")
    result = run_benchmark(dataset="synthetic", task="pdmer", models=["dsaml"], preset=preset,
                           seed=seed, output=folder, data_home=data_home, verbose=0,
                           log=log, data_params=params, estimator_params=estimator_params,
                           mean_label_rows=False, resume=True, n_jobs=n_jobs,
                           variants={v: VARIANTS[v] for v in variants}, **options,
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


def seed_means(cells, name, seeds, variants):
    """``{row label: {column: seed mean}}`` of one condition, or None without cells.

    Rows: "personalized", the competitors (:data:`COMPETITORS`) and the
    variants; columns: "ccc_mean", "spread", "ccc_mean_<kind>" and
    "still_improving" (a share).
    """
    results = [cells[(name, s)] for s in seeds if (name, s) in cells]
    if not results:
        return None
    roles = ["personalized", *COMPETITORS]
    out = {}
    for label in [*roles, *variants]:
        rows = []
        for result in results:
            for row in result.rows:
                if (row["role"] == label if label in roles else
                        row["role"] == "variant" and row["row"].endswith(f" {label}")):
                    rows.append(row)
        if not rows:
            continue
        keys = [k for k in rows[0] if k == "ccc_mean" or k.startswith("ccc_mean_")
                or k in ("spread", "still_improving")]
        out[label] = {k: float(np.mean([float(r[k] or 0) for r in rows if r.get(k) is not None]
                                       or [np.nan])) for k in keys}
        out[label]["n_seeds"] = len(rows)
        out[label]["per_seed"] = [r["ccc_mean"] for r in rows]
    return out


def best_competitor(means) -> str:
    """The competitor row with the highest seed-mean CCC."""
    return max((label for label in COMPETITORS if label in means),
               key=lambda label: means[label]["ccc_mean"])


def kinds_of(means) -> list:
    return sorted(k[len("ccc_mean_"):] for k in means["personalized"]
                  if k.startswith("ccc_mean_") and not np.isnan(means["personalized"][k]))


def table(cells, conditions, seeds, variants=()) -> str:
    """The report: conditions, then listener kinds, then the averages over test conditions."""
    from pdmer.evaluation import COLLAPSE_RATIO
    from pdmer.experiments import markdown_table

    overview, by_kind, test_lines = {}, {}, []
    for name in conditions:
        means = seed_means(cells, name, seeds, variants)
        if means is None:
            continue
        role = CONDITIONS[name][0]
        best = best_competitor(means)
        personalized = means["personalized"]
        spreads = [r["spread"] for s in seeds if (name, s) in cells
                   for r in cells[(name, s)].rows if r["role"] == "personalized"]
        per_seed_best = [max(r["ccc_mean"] for r in cells[(name, s)].rows
                             if r["role"] in COMPETITORS) for s in seeds if (name, s) in cells]
        margins = [p - b for p, b in zip(personalized["per_seed"], per_seed_best)]
        kind_margins = {k: personalized[f"ccc_mean_{k}"] - means[best][f"ccc_mean_{k}"]
                        for k in kinds_of(means)}
        kind_gains = {k: personalized[f"ccc_mean_{k}"]
                      - means["not personalized"][f"ccc_mean_{k}"] for k in kinds_of(means)}
        line = {"role": role, "ccc personalized": personalized["ccc_mean"],
                **{f"ccc {short}": means[label]["ccc_mean"]
                   for label, short in COMPETITORS.items() if label in means},
                **{f"ccc {v}": means[v]["ccc_mean"] for v in variants if v in means},
                "best competitor": COMPETITORS[best],
                "margin": personalized["ccc_mean"] - means[best]["ccc_mean"],
                "margin > 0 (seeds)": f"{sum(m > 0 for m in margins)}/{len(margins)}",
                "worst kind margin": min(kind_margins.values()) if kind_margins else np.nan,
                "worst kind gain": min(kind_gains.values()) if kind_gains else np.nan,
                "spread": float(np.mean(spreads)),
                "collapsed": f"{sum(x < COLLAPSE_RATIO for x in spreads)}/{len(spreads)}"}
        label = name if personalized["n_seeds"] == len(seeds) else (
            f"{name} ({personalized['n_seeds']} of {len(seeds)} seeds)")
        overview[label] = line
        if role == "test":
            test_lines.append(line)
        for kind in kinds_of(means):
            by_kind[f"{name} / {kind}"] = {
                "personalized": personalized[f"ccc_mean_{kind}"],
                "best competitor": means[best][f"ccc_mean_{kind}"],
                "margin": kind_margins[kind],
                "not personalized": means["not personalized"][f"ccc_mean_{kind}"],
                "gain": kind_gains[kind],
                **{f"{short}": means[c][f"ccc_mean_{kind}"]
                   for c, short in COMPETITORS.items()
                   if c in means and c != "not personalized"}}
    if test_lines:
        overview["**average over test conditions**"] = {
            key: float(np.mean([line[key] for line in test_lines]))
            for key in test_lines[0] if isinstance(test_lines[0][key], float)}
    columns = (["role", "ccc personalized"] + [f"ccc {short}" for short in COMPETITORS.values()]
               + [f"ccc {v}" for v in variants]
               + ["best competitor", "margin", "margin > 0 (seeds)", "worst kind margin",
                  "worst kind gain", "spread", "collapsed"])
    kind_columns = (["personalized", "best competitor", "margin", "not personalized", "gain"]
                    + [short for short in COMPETITORS.values() if short != "not personalized"])
    return (markdown_table(overview, columns, index="condition") + "\n\nPer listener kind "
            "(seed means; the best competitor is the condition's, by mean CCC over all "
            "listeners):\n\n" + markdown_table(by_kind, kind_columns, index="condition / kind"))


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
    parser.add_argument("--variants", default="",
                        help="comma-separated personalization methods beside the default, "
                             f"of: {', '.join(VARIANTS)} (default: none)")
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

    header = (f"DSAML and the strongest simple competitors, preset `{preset}`, seeds "
              f"{', '.join(map(str, seeds))}, song-disjoint splits; mean CCC of arousal and "
              f"valence on held-out listeners' unseen songs. Settings were chosen on the dev "
              f"conditions only. {time.perf_counter() - started:.0f} s on "
              f"{describe_machine()['summary']}.\n\n")
    write_text(os.path.join(output, "robustness.md"), header + text + "\n")
    print(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
