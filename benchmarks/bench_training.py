"""Quick evidence for the training design: collapse, normalisation, adaptation mode.

Generates synthetic data sets under several conditions (sample rate, song
length, label offset, share of valence-reversed listeners, seed), holds out
listeners AND songs (the held-out listeners' rows are all on songs no
training row has), trains DSAML with the CPU preset, and prints one
Markdown table of mean CCC (arousal and valence averaged, per scored
song-listener pair, averaged over pairs) on the held-out listeners:

- ``meta``: meta-trained (FOMAML, annotator tasks), not personalized;
- ``meta+pers``: the same personalized from one song of each listener;
- ``plain`` / ``plain+ft``: the same network trained without
  meta-learning on the same annotator rows, as it is / fine-tuned on the
  same support song with the same steps and learning rate;
- ``song``: trained plainly on mean labels (traditional DMER), not adapted;
- ``nonorm`` / ``nonorm+pers``: ``meta`` without input normalisation;
- ``trainmode`` / ``trainmode+pers``: ``meta`` with inner loops and
  personalization in training mode (dropout and BatchNorm batch
  statistics) instead of eval;
- ``metasgd`` / ``metasgd+pers``: Meta-SGD's learned inner rates.

Each row also reports the prediction / label standard deviation ratio
(``std``; the collapse criterion is < 0.5) and the episodes run.

Usage (1 thread, niced; a condition x seed takes a few minutes)::

    nice python benchmarks/bench_training.py --conditions default,rate16k-45s-offset15 \\
        --seeds 0 1 2 --variants meta plain song nonorm trainmode
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import tempfile
import time
import warnings

import numpy as np
import torch

from pdmer import AudioFeatures, DSAMLRegressor
from pdmer.evaluation import plan_episodes, run_episodes
from pdmer.scoring import ccc

CONDITIONS = {
    # The demo's data: 20 s songs at 22.05 kHz, labels from 0 s.
    "default": dict(duration=20.0, sample_rate=22050, frame_offset=0.0, reversed_fraction=0.25),
    # The independent reproduction of issue 10: 45 s files at 16 kHz, labels from 15 s.
    "rate16k-45s-offset15": dict(duration=30.0, sample_rate=16000, frame_offset=15.0,
                                 reversed_fraction=0.25),
    "rate44k-60s": dict(duration=60.0, sample_rate=44100, frame_offset=0.0,
                        reversed_fraction=0.25),
    "rate22k-30s-offset15-rev50": dict(duration=30.0, sample_rate=22050, frame_offset=15.0,
                                       reversed_fraction=0.5),
    "rate16k-40s-norev": dict(duration=40.0, sample_rate=16000, frame_offset=0.0,
                              reversed_fraction=0.0),
}
"""Synthetic data conditions (:func:`pdmer_datasets.synthetic.generate` parameters)."""

FRONT_END = dict(sample_rate=22050, n_mels=32, window_seconds=0.04, hop_seconds=0.02,
                 global_window=10.0)
"""One front end for every condition, as a user would keep it (audio is resampled)."""

DATA = dict(n_songs=40, n_listeners=32, songs_per_listener=12)
N_TEST_LISTENERS = 8
HELD_OUT_SONG_FRACTION = 0.4

VARIANTS = ("meta", "plain", "song", "nonorm", "trainmode", "metasgd")


class _TrainModeDSAML(DSAMLRegressor):
    """DSAML adapting in training mode (the alternative the default was chosen against)."""

    _adapt_mode = "train"


def split(table, seed):
    """Training rows, and the held-out listeners' rows on held-out songs."""
    rng = np.random.default_rng(seed)
    songs = np.unique(table.song_ids)
    held_songs = set(rng.choice(songs, size=int(round(HELD_OUT_SONG_FRACTION * len(songs))),
                                replace=False))
    listeners = np.unique(table.annotators)
    test_listeners = set(rng.choice(listeners, size=N_TEST_LISTENERS, replace=False))
    in_held = np.array([s in held_songs for s in table.song_ids])
    in_test = np.array([a in test_listeners for a in table.annotators])
    return np.flatnonzero(~in_held & ~in_test), np.flatnonzero(in_held & in_test)


def score(estimator, X, y, episodes, adapt):
    truth, predictions, _ = run_episodes(estimator, X, y, episodes, adapt=adapt)
    spread = np.concatenate(predictions).std(0) / np.concatenate(truth).std(0)
    return ccc(truth, predictions), float(spread.min())


def run_condition(name, seed, variants, root, overrides, log):
    from pdmer_datasets import synthetic

    condition = CONDITIONS[name]
    started = time.perf_counter()
    data = synthetic.generate(os.path.join(root, f"{name}-{seed}"), random_state=seed,
                              **DATA, **condition)
    front_end = AudioFeatures(**FRONT_END, frame_offset=condition["frame_offset"])
    features = dict(zip(data.song_ids, front_end.transform(
        [str(data.audio_path(s)) for s in data.song_ids])))
    table = data.annotator_table()
    train, test = split(table, seed)
    X = [features[s] for s in table.song_ids]
    y, annotators = list(table.y), np.asarray(table.annotators)
    X_tr, y_tr, a_tr = [X[i] for i in train], [y[i] for i in train], annotators[train]
    X_te, y_te, a_te = [X[i] for i in test], [y[i] for i in test], annotators[test]
    episodes = plan_episodes(a_te, n_support=1, random_state=seed)
    log(f"{name} seed {seed}: data and features in {time.perf_counter() - started:.0f} s; "
        f"{len(train)} training rows, {len(episodes)} test listeners, "
        f"{sum(len(e.query) for e in episodes)} scored pairs")
    base = dict(size="small", random_state=seed, device="cpu", **overrides)
    fits = {
        "meta": (DSAMLRegressor, {}),
        "plain": (DSAMLRegressor, dict(meta_learning="none", tasks="annotator")),
        "song": (DSAMLRegressor, dict(meta_learning="none", tasks="song")),
        "nonorm": (DSAMLRegressor, dict(input_normalization=False)),
        "trainmode": (_TrainModeDSAML, {}),
        "metasgd": (DSAMLRegressor, dict(meta_learning="metasgd")),
    }
    rows = {}
    for variant in variants:
        cls, params = fits[variant]
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = cls(**base, **params).fit(X_tr, y_tr, annotators=a_tr)
        collapsed = any("collapsed" in str(w.message) for w in caught)
        seconds = time.perf_counter() - started
        info = dict(episodes=est.n_episodes_run_, best=est.best_episode_, seconds=seconds,
                    warned=collapsed, validation=est.history_["validation_ccc"],
                    fitted_std_ratio=est.prediction_std_ratio_)
        adapt_name = {"plain": "plain+ft"}.get(variant, f"{variant}+pers")
        rows[variant] = (*score(est, X_te, y_te, episodes, adapt=False), info)
        if variant != "song":
            rows[adapt_name] = (*score(est, X_te, y_te, episodes, adapt=True), info)
        log(f"  {variant}: {est.n_episodes_run_} episodes (best {est.best_episode_}) in "
            f"{seconds:.0f} s; " + ", ".join(
                f"{k} {v[0]:.3f} (std {v[1]:.2f})" for k, v in rows.items()
                if k.startswith(variant)))
    return rows


def table(results, conditions, seeds):
    """Markdown: one row per variant, one column per condition, mean +- sd over seeds."""
    names = list(dict.fromkeys(k for per in results.values() for k in per))
    lines = ["| variant | " + " | ".join(conditions) + " | mean | min std ratio | "
             "collapse warnings |",
             "|---|" + "---:|" * (len(conditions) + 3)]
    for name in names:
        cells, means, spreads, warned = [], [], [], 0
        for cond in conditions:
            done = [results[(cond, s)][name] for s in seeds
                    if name in results.get((cond, s), {})]
            values = [r[0] for r in done]
            spreads += [r[1] for r in done]
            warned += sum(r[2]["warned"] for r in done)
            means.append(np.mean(values) if values else np.nan)
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.nanmean(means):.3f} | "
                     f"{min(spreads):.2f} | {warned} |")
    return "\n".join(lines)


PAIRS = (("meta+pers", "plain+ft"), ("meta+pers", "meta"), ("plain+ft", "plain"),
         ("meta+pers", "nonorm+pers"), ("meta", "nonorm"), ("meta+pers", "trainmode+pers"),
         ("metasgd+pers", "meta+pers"), ("meta", "song"), ("meta+pers", "song"))
"""Paired comparisons printed under the table: (row, against)."""


def paired(results):
    """Markdown: mean difference of two rows over the condition x seed runs that have both."""
    lines = ["| comparison | mean difference | wins | runs |", "|---|---:|---:|---:|"]
    for a, b in PAIRS:
        diffs = [rows[a][0] - rows[b][0] for rows in results.values() if a in rows and b in rows]
        if diffs:
            lines.append(f"| {a} - {b} | {np.mean(diffs):+.3f} | "
                         f"{sum(d > 0 for d in diffs)} | {len(diffs)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", default="default,rate16k-45s-offset15,rate44k-60s",
                        help=f"comma-separated, from {', '.join(CONDITIONS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[:5]), choices=VARIANTS)
    parser.add_argument("--root", default=None, help="data folder (default: a temporary one)")
    parser.add_argument("--set", nargs="*", default=[], metavar="PARAM=VALUE",
                        help="estimator parameters to override, e.g. outer_lr=2e-3")
    parser.add_argument("--json", default=None,
                        help="append each condition x seed's results to this JSON-lines file")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSONL",
                        help="print the table of earlier --json files instead of running")
    args = parser.parse_args(argv)
    if args.summarize:
        results = {}
        for path in args.summarize:
            with open(path) as handle:
                for line in handle:
                    record = json.loads(line)
                    results.setdefault((record["condition"], record["seed"]), {}).update(
                        {k: tuple(v) for k, v in record["rows"].items()})
        conditions = list(dict.fromkeys(c for c, _ in results))
        seeds = sorted({s for _, s in results})
        print(table(results, conditions, seeds))
        print()
        print(paired(results))
        return
    torch.set_num_threads(1)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    conditions = args.conditions.split(",")
    root = args.root or tempfile.mkdtemp(prefix="pdmer-bench-training-")
    results = {}
    for cond in conditions:
        for seed in args.seeds:
            rows = run_condition(cond, seed, args.variants, root, overrides,
                                 lambda m: print(m, flush=True))
            results[(cond, seed)] = rows
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps({"condition": cond, "seed": seed,
                                             "overrides": overrides, "rows": rows}) + "\n")
    print()
    print("Held-out listeners on held-out songs; DSAMLRegressor(size='small'"
          + "".join(f", {k}={v!r}" for k, v in overrides.items())
          + f"); seeds {args.seeds}; mean CCC ± sd over seeds.\n")
    print(table(results, conditions, args.seeds))
    print()
    print(paired(results))


if __name__ == "__main__":
    main()
