"""The DSAML paper's experiments: DSAML and its baselines on DMER and PDMER.

:func:`run_benchmark` (and ``pdmer benchmark``) trains every model on one data
set and scores it with the paper's protocols, writing Markdown and CSV
tables with the paper's numbers beside the run's, the run's settings and
seeds (``settings.json``) and a PNG plot.

Tasks
-----
``"dmer"`` (Table 1; Table 3 with ``ablations``)
    Every model is trained without meta-learning on mean labels (labels
    averaged over annotators) and scored on the test songs' mean labels.
``"pdmer"`` (Table 2; Table 4 with ``ablations``)
    Models are trained on per-annotator labels of training listeners and
    scored on held-out listeners' own labels:

    * ``<model>†`` rows: meta-trained with first-order MAML, one task per
      annotator, then personalized to each test listener (the paper's
      models "trained with MAML"; for DSAML this is the method itself);
    * ``<model>`` rows: trained without meta-learning on mean labels and not
      adapted (the paper's plain rows); ``<model> + fine-tuned`` rows are the
      same models fine-tuned on the listener's support data with the same
      SGD steps as personalization, a stronger plain baseline the paper does
      not report;
    * Table 4: DSAML without MAML (†: plain training on per-annotator
      labels), without personalized task construction (‡: MAML with tasks
      by song, i.e. on mean labels) and without both; every row personalized.

Protocols (``"pdmer"``)
-----------------------
``"other-songs"``
    For each test listener one of their songs (drawn with the seed) is the
    support song; the model adapts to it and is scored on the listener's
    other songs. This is the setting the paper's text describes.
``"same-song"``
    The reference implementation's: for each (listener, song) pair the first
    ``support_frames`` frames (60 = 30 s on DEAM) are the support data and
    the rest of the same song is scored. Synthetic songs are short, so the
    ``tiny`` and ``small`` presets use fewer frames (3 and 12: 1.5 s of 4 s
    and 6 s of 20 s songs); pairs with fewer than ``support_frames + 2``
    frames are skipped and counted.

Scores are CCC, PCC and RMSE per (song, listener) pair, averaged over pairs
(:func:`pdmer.metrics.evaluate`); predictions are made on the whole song and
the scored frames cut out.

Data
----
``"synthetic"`` generates songs and simulated listeners offline
(:func:`pdmer_datasets.synthetic.generate`, parameters from the preset)
and holds out a quarter of the listeners (``pdmer``) or songs (``dmer``).
``"deam"`` and ``"pmemo"`` read the downloaded data sets through
``pdmer_datasets.initialize(name, data_home=...)`` and use their ``train``
and ``test`` splits (DEAM: 1744 clips / 58 full songs; per-annotator tables
for ``pdmer``; PMEmo has no per-annotator labels, so only ``dmer``).
Features are extracted once per song and shared by all models.

Presets
-------
``"tiny"``: a few seconds, for tests. ``"small"``: the CPU preset (coarse
22.05 kHz log-mel patches, small networks, 120 episodes, head-only inner
loops). ``"paper"``: the paper's sizes and training (2000 episodes of 16
tasks, 51x128 log-mel patches at 44.1 kHz, ImageBind global embeddings,
16 kHz raw audio): a GPU job, see ``benchmarks/README.md`` for time and
memory estimates.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import time
from dataclasses import dataclass, field, replace

import numpy as np

from pdmer._files import atomic_write
from pdmer.estimators import (
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    DSAMLRegressor,
    MCRNNRegressor,
)
from pdmer.features.frontend import AudioFeatures
from pdmer.metrics import evaluate

__all__ = ["MODELS", "PRESETS", "PAPER", "Preset", "BenchmarkResult", "run_benchmark",
           "parameter_counts"]

MODELS = {
    "dsaml": ("DSAML", DSAMLRegressor),
    "damff": ("DAMFF", DAMFFRegressor),
    "mcrnn": ("MCRNN", MCRNNRegressor),
    "dnn": ("DNN", DNNRegressor),
    "crnn": ("CRNN", CRNNRegressor),
}
"""Model keys accepted by ``models=``: display name and estimator class."""

DATASETS = ("synthetic", "deam", "pmemo")
TASKS = ("dmer", "pdmer")
PROTOCOLS = ("other-songs", "same-song")
METRICS = ("ccc_arousal", "pcc_arousal", "rmse_arousal", "ccc_valence", "pcc_valence",
           "rmse_valence")

PAPER_FEATURES = dict(n_patch_times=51, n_mels=128, global_dim=1024, encoder="imagebind",
                      n_waveform_samples=8000)
"""Input shapes of the paper's setting (51x128 log-mel patches at 44.1 kHz,
1024-d ImageBind embeddings, 16 kHz raw audio), for parameter counts."""


@dataclass(frozen=True)
class Preset:
    """Settings of one benchmark size.

    Attributes
    ----------
    data : dict
        :func:`pdmer_datasets.synthetic.generate` parameters (synthetic only).
    features : dict
        :class:`~pdmer.features.AudioFeatures` parameters; ``waveform_rate``
        is used only when a raw-audio model runs.
    training : dict
        Estimator parameters shared by every model (episodes, learning rates...).
    models : dict
        Architecture parameters per model key.
    support_frames : int
        Support frames of the ``same-song`` protocol.
    """

    data: dict
    features: dict
    training: dict
    models: dict
    support_frames: int


PRESETS = {
    "tiny": Preset(
        data=dict(n_songs=8, n_listeners=8, songs_per_listener=4, duration=4.0,
                  sample_rate=8000),
        features=dict(sample_rate=8000, n_mels=16, window_seconds=0.032, hop_seconds=0.032,
                      global_window=2.0, waveform_rate=1000),
        training=dict(n_episodes=2, tasks_per_step=2, n_query=2, inner_steps=2, inner_lr=0.05,
                      outer_lr=1e-3, inner_params="head", train_window=6,
                      validation_fraction=0.0),
        models=dict(
            dsaml=dict(size="small", d_model=16, n_heads=2, n_layers=1, d_ff=16, lstm_hidden=8,
                       head_hidden=8),
            damff=dict(size="small", conv_channels=4, scales=(3,), rnn_hidden=4),
            mcrnn=dict(size="small", view_kernels=(8, 32), conv_channels=4, fusion_dim=8,
                       rnn_hidden=4),
            dnn=dict(size="small", conv_channels=4, rnn_hidden=4),
            crnn=dict(size="small", conv_channels=4, rnn_hidden=4),
        ),
        support_frames=3,
    ),
    # The demo's data, front end and training (pdmer/demo.py), which fit 2 CPU
    # cores; raw audio at 8 kHz for the waveform models.
    "small": Preset(
        data=dict(n_songs=40, n_listeners=24, songs_per_listener=10, duration=20.0,
                  sample_rate=22050),
        features=dict(sample_rate=22050, n_mels=32, window_seconds=0.04, hop_seconds=0.02,
                      global_window=10.0, waveform_rate=8000),
        training=dict(n_episodes=120, tasks_per_step=4, n_query=3, inner_steps=8,
                      inner_lr=0.05, outer_lr=2e-3, inner_params="head", train_window=30,
                      validation_fraction=0.15, validation_interval=20),
        models=dict(
            dsaml=dict(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                       lstm_hidden=32, head_hidden=32),
            damff=dict(size="small"),
            mcrnn=dict(size="small"),
            dnn=dict(size="small"),
            crnn=dict(size="small"),
        ),
        support_frames=12,
    ),
    # The paper's sizes and training (the estimators' defaults).
    "paper": Preset(
        data=dict(),
        features=dict(global_encoder="imagebind", waveform_rate=16000),
        training=dict(),
        models={key: dict(size="paper") for key in MODELS},
        support_frames=60,
    ),
}
"""Benchmark sizes: ``tiny`` (tests), ``small`` (CPU), ``paper`` (GPU)."""

_MEANS = ("arousal", "valence")
PAPER = {
    "Table 1": {
        "deam": {"DSAML": (0.390, 0.675, 0.202, 0.104, 0.221, 0.260),
                 "DAMFF": (0.354, 0.621, 0.217, 0.055, 0.043, 0.299),
                 "MCRNN": (0.227, 0.374, 0.265, 0.029, -0.005, 0.297),
                 "DNN": (0.188, 0.362, 0.261, 0.033, 0.003, 0.281),
                 "CRNN": (0.244, 0.517, 0.218, 0.017, -0.039, 0.270)},
        "pmemo": {"DSAML": (0.186, 0.386, 0.112, 0.108, 0.260, 0.122),
                  "DAMFF": (0.175, 0.378, 0.118, 0.091, 0.335, 0.134),
                  "MCRNN": (0.104, 0.266, 0.168, 0.038, 0.154, 0.169),
                  "DNN": (0.087, 0.217, 0.151, 0.030, 0.134, 0.159),
                  "CRNN": (0.076, 0.231, 0.183, 0.034, 0.224, 0.169)},
    },
    "Table 2": {
        "deam": {"DSAML": (0.377, 0.541, 0.236, 0.092, 0.154, 0.245),
                 "DAMFF†": (0.220, 0.414, 0.319, 0.035, 0.069, 0.344),
                 "DAMFF": (0.232, 0.478, 0.342, 0.035, 0.008, 0.390),
                 "MCRNN†": (0.173, 0.312, 0.332, 0.022, 0.021, 0.348),
                 "MCRNN": (0.176, 0.301, 0.364, 0.015, -0.002, 0.391),
                 "DNN†": (0.138, 0.273, 0.350, 0.010, -0.009, 0.367),
                 "DNN": (0.153, 0.286, 0.361, 0.016, -0.004, 0.385),
                 "CRNN†": (0.113, 0.290, 0.310, 0.008, -0.009, 0.337),
                 "CRNN": (0.131, 0.365, 0.350, -0.001, -0.021, 0.366)},
    },
    "Table 3": {
        "deam": {"DSAML": (0.402, 0.633, 0.196, 0.117, 0.182, 0.267),
                 "DSAML w/o local attention": (0.385, 0.624, 0.215, 0.077, 0.134, 0.268),
                 "DSAML w/o global attention": (0.370, 0.594, 0.207, 0.084, 0.148, 0.283),
                 "DSAML w/o attention loss": (0.338, 0.564, 0.221, 0.103, 0.185, 0.279),
                 "DSAML w/o adapter": (0.329, 0.529, 0.221, 0.083, 0.120, 0.272)},
        "pmemo": {"DSAML": (0.186, 0.386, 0.112, 0.108, 0.260, 0.122),
                  "DSAML w/o local attention": (0.167, 0.341, 0.112, 0.087, 0.213, 0.123),
                  "DSAML w/o global attention": (0.157, 0.352, 0.123, 0.075, 0.214, 0.132),
                  "DSAML w/o attention loss": (0.148, 0.353, 0.135, 0.098, 0.254, 0.139),
                  "DSAML w/o adapter": (0.138, 0.318, 0.121, 0.077, 0.247, 0.125)},
    },
    "Table 4": {
        "deam": {"DSAML": (0.377, 0.541, 0.236, 0.092, 0.154, 0.245),
                 "DSAML †": (0.305, 0.518, 0.332, 0.062, 0.095, 0.383),
                 "DSAML ‡": (0.357, 0.533, 0.236, 0.080, 0.129, 0.256),
                 "DSAML †‡": (0.332, 0.566, 0.309, 0.061, 0.132, 0.359)},
    },
}
"""The paper's numbers (CCC, PCC, RMSE of arousal, then of valence) by table,
data set and row. The run's rows carry the key of their paper row."""

_TITLES = {
    "Table 1": "DMER, mean labels (paper Table 1)",
    "Table 2": "PDMER, personalized labels, models with (†) and without MAML (paper Table 2)",
    "Table 3": "DMER ablations of DSAML (paper Table 3)",
    "Table 4": "PDMER ablations of DSAML: † without MAML, ‡ without personalized task "
               "construction (paper Table 4)",
}
_ABLATIONS = (("w/o local attention", dict(local_attention=False)),
              ("w/o global attention", dict(global_attention=False)),
              ("w/o attention loss", dict(attention_loss_weight=0.0)),
              ("w/o adapter", dict(adapter=False)))
_MAML = dict(meta_learning="fomaml", tasks="annotator")
_PLAIN_MEAN = dict(meta_learning="none", tasks="song")


@dataclass(frozen=True)
class _Row:
    table: str
    label: str
    model: str
    params: tuple  # sorted (name, value) pairs on top of the preset
    personalized: bool
    paper: str | None


def _rows(task, models, ablations) -> list[_Row]:
    rows = []

    def add(table, label, model, params, personalized, paper):
        rows.append(_Row(table, label, model, tuple(sorted(params.items())), personalized,
                         paper))

    if task == "dmer":
        for key in models:
            name = MODELS[key][0]
            add("Table 1", name, key, _PLAIN_MEAN, False, name)
        if ablations:
            add("Table 3", "DSAML", "dsaml", _PLAIN_MEAN, False, "DSAML")
            for label, extra in _ABLATIONS:
                add("Table 3", f"DSAML {label}", "dsaml", {**_PLAIN_MEAN, **extra}, False,
                    f"DSAML {label}")
        return rows
    for key in models:
        name = MODELS[key][0]
        if key == "dsaml":
            add("Table 2", "DSAML", key, _MAML, True, "DSAML")
        else:
            add("Table 2", f"{name}†", key, _MAML, True, f"{name}†")
        add("Table 2", name if key != "dsaml" else "DSAML (no MAML, mean labels)", key,
            _PLAIN_MEAN, False, name if key != "dsaml" else None)
        add("Table 2", f"{name} (no MAML) + fine-tuned" if key == "dsaml"
            else f"{name} + fine-tuned", key, _PLAIN_MEAN, True, None)
    if ablations:
        add("Table 4", "DSAML", "dsaml", _MAML, True, "DSAML")
        add("Table 4", "DSAML †", "dsaml", dict(meta_learning="none", tasks="annotator"), True,
            "DSAML †")
        add("Table 4", "DSAML ‡", "dsaml", dict(meta_learning="fomaml", tasks="song"), True,
            "DSAML ‡")
        add("Table 4", "DSAML †‡", "dsaml", _PLAIN_MEAN, True, "DSAML †‡")
    return rows


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` measured and where it wrote it.

    Attributes
    ----------
    rows : list of dict
        One dict per table row: ``table``, ``row``, ``model``, the training
        settings, ``personalized``, the six metrics, ``paper_<metric>``
        (None where the paper has no such row), ``n_parameters``,
        ``fit_seconds`` and ``n_scored`` (scored song-listener pairs or songs).
    parameters : list of dict
        Parameter counts per model: this run's and the paper-size ones.
    settings : dict
        Everything needed to rerun: arguments, preset, seeds, data sizes,
        library versions, hardware.
    files : dict
        ``markdown``, ``csv``, ``plot`` and ``settings`` paths (None if no
        output folder was given).
    """

    rows: list
    parameters: list
    settings: dict
    files: dict = field(default_factory=dict)

    def markdown(self) -> str:
        """The tables as Markdown: settings, parameter counts and results."""
        s = self.settings
        out = [f"# pdmer benchmark: {s['task'].upper()} on {s['dataset']}", "",
               f"Preset `{s['preset']}`, seed {s['seed']}"
               + (f", protocol `{s['protocol']}`" if s["task"] == "pdmer" else "")
               + f"; {s['data']['summary']}; {s['seconds']:.0f} s on {s['hardware']}.", "",
               f"Command: `{s['command']}`", ""]
        out += ["## Parameters", "", "| model | input | trainable parameters (this run) | "
                "`paper` preset on the paper's inputs |", "|---|---|---:|---:|"]
        for p in self.parameters:
            out.append(f"| {p['model']} | {p['input']} | {p['n_parameters']:,} | "
                       f"{p['paper_n_parameters']:,} |")
        paper_set = s["paper_dataset"]
        for table in dict.fromkeys(r["table"] for r in self.rows):
            out += ["", f"## {table}: {_TITLES[table]}", "",
                    f"Run on {s['dataset']}; paper numbers ({paper_set.upper()}) in the right "
                    "half. a = arousal, v = valence; RMSE lower is better.", "",
                    "| model | CCC a | PCC a | RMSE a | CCC v | PCC v | RMSE v | "
                    "paper CCC a | paper PCC a | paper RMSE a | paper CCC v | paper PCC v | "
                    "paper RMSE v |",
                    "|---|" + "---:|" * 12]
            for r in self.rows:
                if r["table"] != table:
                    continue
                run = " | ".join(f"{r[m]:.3f}" for m in METRICS)
                paper = " | ".join("" if r[f"paper_{m}"] is None else f"{r[f'paper_{m}']:.3f}"
                                   for m in METRICS)
                out.append(f"| {r['row']} | {run} | {paper} |")
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        """The rows as CSV text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def parameter_counts(models=tuple(MODELS), preset="paper", feature_spec=None) -> dict:
    """Trainable parameters of each model at a preset's sizes, without training.

    Parameters
    ----------
    models : sequence of str, default=all
        Keys of :data:`MODELS`.
    preset : str, default="paper"
        Architecture parameters from :data:`PRESETS`.
    feature_spec : dict, optional
        Input shapes; defaults to :data:`PAPER_FEATURES`.

    Returns
    -------
    dict of str -> int

    Examples
    --------
    >>> from pdmer.benchmark import parameter_counts
    >>> parameter_counts(["crnn"])
    {'crnn': 58786}
    """
    spec = dict(PAPER_FEATURES if feature_spec is None else feature_spec)
    return {key: MODELS[key][1](**PRESETS[preset].models[key]).count_parameters(spec)
            for key in models}


def run_benchmark(dataset="synthetic", task="pdmer", models=None, ablations=False,
                  protocol="other-songs", preset="small", seed=0, output=None,
                  data_home=None, cache_dir=None, device="auto", verbose=1, log=print,
                  command=None) -> BenchmarkResult:
    """Train and score DSAML and its baselines with the paper's protocols.

    Parameters
    ----------
    dataset : {"synthetic", "deam", "pmemo"}, default="synthetic"
    task : {"dmer", "pdmer"}, default="pdmer"
    models : sequence of str, optional
        Keys of :data:`MODELS`; all by default.
    ablations : bool, default=False
        Add the DSAML ablations (Table 3 for dmer, Table 4 for pdmer).
    protocol : {"other-songs", "same-song"}, default="other-songs"
        How test listeners are personalized and scored (pdmer only).
    preset : {"tiny", "small", "paper"}, default="small"
    seed : int, default=0
        Seeds data generation, the listener/song split, model initialisation
        and training, and the support draw: a run repeats exactly on the CPU.
    output : str, optional
        Folder for ``results.md``, ``results.csv``, ``results.png`` and
        ``settings.json`` (and the synthetic data unless ``data_home``).
    data_home : str, optional
        Where the data set is (DEAM/PMEmo) or is generated (synthetic;
        default ``<output>/data``).
    cache_dir : str, optional
        Feature cache of the front end (:class:`~pdmer.features.AudioFeatures`),
        so that reruns skip the extraction.
    device : str, default="auto"
    verbose : int, default=1
        Progress bars of training.
    log : callable, default=print
        Receives progress messages.
    command : str, optional
        The command line to record in the outputs.

    Returns
    -------
    BenchmarkResult
    """
    started = time.perf_counter()
    models = _check_choices(models, dataset, task, protocol, preset, seed)
    config = PRESETS[preset]
    if dataset == "synthetic" and data_home is None:
        if output is None:
            raise ValueError("The synthetic data set needs a folder: give output or data_home.")
        data_home = os.path.join(output, "data")
    waveforms = any(MODELS[k][1]._input == "wave" for k in models)
    log(f"Loading {dataset} ({task}) ...")
    train, test, summary = _load(dataset, task, config, seed, data_home)
    front_end = AudioFeatures(**{k: v for k, v in config.features.items()
                                 if k != "waveform_rate" or waveforms},
                              frame_offset=train.frame_offset, cache_dir=cache_dir,
                              n_jobs=-1)
    log(f"Extracting features of {len(set(map(str, train.X + test.X)))} songs ...")
    with_wave, without_wave = _features(front_end, train.X + test.X)

    rows, fitted, parameters = [], {}, {}
    plan = None
    for spec in _rows(task, models, ablations):
        name, cls = MODELS[spec.model]
        key = (spec.model, spec.params)
        if key not in fitted:
            params = {**config.training, **config.models[spec.model], **dict(spec.params),
                      "random_state": seed, "device": device, "verbose": verbose}
            features = with_wave if cls._input == "wave" else without_wave
            X_train = [features[str(x)] for x in train.X]
            log(f"Training {spec.label} ({dict(spec.params)}) ...")
            t0 = time.perf_counter()
            estimator = cls(**params)
            estimator.fit(X_train, train.y, annotators=None if task == "dmer" else train.annotators)
            fitted[key] = (estimator, time.perf_counter() - t0)
            # The first fit of a model has its full architecture (ablations come later).
            parameters.setdefault(spec.model, estimator)
        estimator, seconds = fitted[key]
        features = with_wave if cls._input == "wave" else without_wave
        X_test = [features[str(x)] for x in test.X]
        if task == "dmer":
            truth, predictions = test.y, [p[:len(t)] for p, t in
                                          zip(estimator.predict(X_test), test.y)]
        else:
            if plan is None:
                plan = _plan(test, protocol, config.support_frames, seed)
            truth, predictions = _personalized_predictions(estimator, X_test, test.y, plan,
                                                           spec.personalized)
        scores = evaluate(truth, predictions)
        paper_set = "deam" if dataset == "synthetic" else dataset
        paper = PAPER[spec.table].get(paper_set, {}).get(spec.paper)
        row = {"table": spec.table, "row": spec.label, "model": name,
               "meta_learning": estimator.meta_learning, "tasks": estimator.tasks_,
               "personalized": spec.personalized,
               **{m: round(scores[m], 6) for m in METRICS},
               "ccc_mean": round(scores["ccc_mean"], 6),
               **{f"paper_{m}": None if paper is None else paper[i]
                  for i, m in enumerate(METRICS)},
               "n_parameters": estimator.n_parameters_, "fit_seconds": round(seconds, 2),
               "n_scored": len(truth)}
        rows.append(row)
        log(f"  {spec.table} | {spec.label}: CCC arousal {row['ccc_arousal']:.3f}, "
            f"valence {row['ccc_valence']:.3f}")

    counts = []
    for key, estimator in parameters.items():
        name, cls = MODELS[key]
        counts.append({"model": name, "input": "raw waveform" if cls._input == "wave" else (
            "log-mel patches + global embeddings" if key == "dsaml" else "log-mel patches"),
            "n_parameters": estimator.n_parameters_,
            "paper_n_parameters": parameter_counts([key])[key]})
    settings = _settings(dataset, task, models, ablations, protocol, preset, seed, data_home,
                         device, summary, front_end, fitted, command,
                         time.perf_counter() - started)
    result = BenchmarkResult(rows, counts, settings)
    if output is not None:
        result.files = _write(result, output)
    return result


def _check_choices(models, dataset, task, protocol, preset, seed) -> list:
    for name, value, allowed in (("dataset", dataset, DATASETS), ("task", task, TASKS),
                                 ("protocol", protocol, PROTOCOLS),
                                 ("preset", preset, tuple(PRESETS))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    if models is None:
        return list(MODELS)
    models = [str(m).lower() for m in models]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"Unknown model(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(MODELS)}.")
    return list(dict.fromkeys(models))


def _load(dataset, task, config, seed, data_home):
    """(train table, test table, summary) of a data set for a task."""
    import pdmer_datasets

    if dataset == "synthetic":
        from pdmer_datasets import synthetic

        data = synthetic.generate(data_home, random_state=seed, n_jobs=-1, **config.data)
        if task == "pdmer":
            train, test = data.annotator_table().split_annotators(test_size=0.25,
                                                                  random_state=seed)
        else:
            table = data.mean_table()
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(table))
            n_test = max(1, int(round(0.25 * len(table))))
            train, test = table.subset(np.sort(order[n_test:])), table.subset(
                np.sort(order[:n_test]))
    else:
        data = pdmer_datasets.initialize(dataset, data_home=data_home)
        if task == "pdmer" and dataset == "pmemo":
            raise ValueError("PMEmo has no per-annotator labels, so it has no PDMER task "
                             "(as in the paper); use --task dmer.")
        method = data.annotator_table if task == "pdmer" else data.mean_table
        try:
            train, test = method(split="train"), method(split="test")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"The {dataset} data set is not (completely) downloaded in "
                f"{data.data_home}: run `pdmer download {dataset}` (or pass --data-home "
                f"where it is). {err}") from err
    if not len(train) or not len(test):
        raise ValueError(f"The {dataset} {task} split is empty ({len(train)} training and "
                         f"{len(test)} test rows).")
    who = ("" if train.annotators is None else
           f", {len(np.unique(train.annotators))} training / "
           f"{len(np.unique(test.annotators))} test listeners")
    summary = (f"{len(np.unique(train.song_ids))} training / {len(np.unique(test.song_ids))} "
               f"test songs, {len(train)} / {len(test)} labelled curves{who}")
    return train, test, summary


def _features(front_end, X):
    """Features of each distinct song: with raw audio, and without (for log-mel models)."""
    paths = list(dict.fromkeys(str(x) for x in X))
    extracted = front_end.transform(paths)
    with_wave = dict(zip(paths, extracted))
    without = {p: replace(f, waveforms=None, waveform_rate=None) if f.waveforms is not None
               else f for p, f in with_wave.items()}
    return with_wave, without


def _plan(test, protocol, support_frames, seed):
    """Support and scored query rows of every test listener: (support, queries) entries.

    ``support`` is ``(row, n_frames or None)``: a whole song or its first frames;
    ``queries`` is a list of ``(row, first scored frame)``.
    """
    rng = np.random.default_rng(seed)
    plan = []
    for listener in np.unique(test.annotators):
        rows = np.flatnonzero(test.annotators == listener)
        if protocol == "other-songs":
            if len(rows) < 2:
                continue
            support = int(rng.choice(rows))
            plan.append(((support, None), [(int(r), 0) for r in rows if r != support]))
        else:
            for r in rows:
                if len(test.y[r]) >= support_frames + 2:
                    plan.append(((int(r), support_frames), [(int(r), support_frames)]))
    if not plan:
        raise ValueError(
            f"No test listener can be scored with the {protocol} protocol: "
            + ("every listener has a single song." if protocol == "other-songs" else
               f"every song is shorter than {support_frames + 2} frames."))
    return plan


def _personalized_predictions(estimator, X, y, plan, personalized):
    truth, predictions = [], []
    for (support, n_support), queries in plan:
        if personalized:
            song, labels = X[support], y[support]
            if n_support is not None:
                song, labels = song.crop(0, n_support), labels[:n_support]
            estimator.personalize([song], [labels])
        else:
            estimator.reset_personalization()
        predicted = estimator.predict([X[r] for r, _ in queries])
        for (r, start), p in zip(queries, predicted):
            truth.append(y[r][start:])
            predictions.append(p[start:len(y[r])])
    estimator.reset_personalization()
    return truth, predictions


def _settings(dataset, task, models, ablations, protocol, preset, seed, data_home, device,
              summary, front_end, fitted, command, seconds) -> dict:
    import sklearn
    import torch

    import pdmer

    estimators = []
    for (key, extra), (estimator, fit_seconds) in fitted.items():
        params = estimator.get_params(deep=False)
        params.pop("features")
        estimators.append({"model": MODELS[key][0], "estimator": type(estimator).__name__,
                           "params": params, "fit_seconds": round(fit_seconds, 2),
                           "best_episode": estimator.best_episode_,
                           "n_parameters": estimator.n_parameters_})
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device_name = "cpu"
    if any(e.device_.type == "cuda" for e, _ in fitted.values()):
        device_name = torch.cuda.get_device_name()
    return {
        "dataset": dataset, "task": task, "models": models, "ablations": ablations,
        "protocol": protocol if task == "pdmer" else None, "preset": preset, "seed": seed,
        "data_home": None if data_home is None else os.path.abspath(data_home),
        "device": device, "paper_dataset": "deam" if dataset == "synthetic" else dataset,
        "support_frames": PRESETS[preset].support_frames if protocol == "same-song" else None,
        "data": {"summary": summary,
                 "synthetic": PRESETS[preset].data if dataset == "synthetic" else None},
        "features": front_end.get_params(),
        "estimators": estimators,
        "command": command or f"pdmer.benchmark.run_benchmark(dataset={dataset!r}, "
                              f"task={task!r}, preset={preset!r}, seed={seed})",
        "seconds": round(seconds, 1),
        "hardware": f"{cpu}, {os.cpu_count()} logical cores, torch "
                    f"{torch.__version__} with {torch.get_num_threads()} thread(s), "
                    f"device {device_name}",
        "versions": {"pdmer": pdmer.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "python": platform.python_version()},
    }


def _write(result, output) -> dict:
    os.makedirs(output, exist_ok=True)
    files = {name: os.path.join(output, f"results.{ext}") for name, ext in
             (("markdown", "md"), ("csv", "csv"), ("plot", "png"))}
    files["settings"] = os.path.join(output, "settings.json")

    def text(content):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(content)
        return write

    atomic_write(files["markdown"], text(result.markdown()))
    atomic_write(files["csv"], text(result.csv()))
    atomic_write(files["settings"], text(json.dumps(result.settings, indent=2, default=str)
                                         + "\n"))
    _plot(result, files["plot"])
    return files


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(r["table"] for r in result.rows))
    heights = [sum(r["table"] == t for r in result.rows) for t in tables]
    fig, axes = plt.subplots(len(tables), 1, squeeze=False,
                             figsize=(8, 1.2 + 0.45 * sum(heights) + 0.8 * len(tables)),
                             gridspec_kw={"height_ratios": heights})
    for ax, table in zip(axes[:, 0], tables):
        rows = [r for r in result.rows if r["table"] == table]
        y = np.arange(len(rows))
        for offset, (dim, color) in zip((-0.2, 0.2), (("arousal", "tab:red"),
                                                      ("valence", "tab:blue"))):
            ax.barh(y + offset, [r[f"ccc_{dim}"] for r in rows], height=0.38, color=color,
                    label=f"CCC {dim} (this run)")
            paper = [(i, r[f"paper_ccc_{dim}"]) for i, r in enumerate(rows)
                     if r[f"paper_ccc_{dim}"] is not None]
            if paper:
                ax.scatter([v for _, v in paper], [i + offset for i, _ in paper], marker="|",
                           s=160, color="black", zorder=3,
                           label=f"paper ({result.settings['paper_dataset'].upper()})"
                           if dim == "arousal" else None)
        ax.set_yticks(y, [r["row"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="gray", lw=0.8)
        ax.set_title(_TITLES[table], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("CCC (per song, averaged)")
    s = result.settings
    fig.suptitle(f"{s['task'].upper()} on {s['dataset']}, preset {s['preset']}, seed "
                 f"{s['seed']}", fontsize=10)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")
    plt.close(fig)
