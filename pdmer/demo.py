"""The offline demo: does one annotated song personalize the model?

Generates synthetic songs and listeners, meta-trains a small DSAML with one
task per listener, and compares, on listeners held out from training:

- the meta-trained model without personalization,
- the same model personalized from ONE song of each held-out listener,
- a model trained without meta-learning on mean labels (traditional DMER).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from pdmer.estimators.dsaml import DSAMLRegressor
from pdmer.features.frontend import AudioFeatures
from pdmer.metrics import evaluate

# Small enough for 2 CPU cores in under 3 minutes, large enough that every
# listener has songs to adapt on and songs to score. Coarser log-mel patches
# (26 x 32) and head-only inner loops (inner_params="head") are what make the
# CPU budget; the paper's settings are the estimator's defaults.
DATA = dict(n_songs=40, n_listeners=24, songs_per_listener=10, duration=20.0,
            sample_rate=22050)
FEATURES = dict(sample_rate=22050, n_mels=32, window_seconds=0.04, hop_seconds=0.02,
                global_window=10.0)
MODEL = dict(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128, lstm_hidden=32,
             head_hidden=32, n_episodes=120, tasks_per_step=4, n_query=3, inner_steps=8,
             inner_lr=0.05, outer_lr=2e-3, inner_params="head", train_window=30,
             validation_fraction=0.15, validation_interval=20)
ROWS = ("meta-trained, not personalized", "meta-trained + personalized (1 song)",
        "mean-label model (no meta-learning)")


@dataclass
class DemoResult:
    """Scores per model row, the held-out listeners and where the plot is."""

    scores: dict
    listeners: list
    plot_path: str
    seconds: float

    def table(self) -> str:
        """The scores as a Markdown table."""
        columns = ["ccc_arousal", "ccc_valence", "pcc_arousal", "pcc_valence",
                   "rmse_arousal", "rmse_valence", "ccc_mean"]
        lines = ["| model | " + " | ".join(columns) + " |",
                 "|---|" + "---:|" * len(columns)]
        for row, values in self.scores.items():
            lines.append(f"| {row} | " + " | ".join(f"{values[c]:.3f}" for c in columns) + " |")
        return "\n".join(lines)


def run_demo(output_dir="pdmer-demo", random_state=0, n_episodes=None, verbose=1,
             log=print) -> DemoResult:
    """Run the demo end to end and write ``personalization.png`` to ``output_dir``.

    Parameters
    ----------
    output_dir : str
        Folder for the synthetic data set, models and the plot.
    random_state : int, default=0
    n_episodes : int, optional
        Meta-training episodes (default: the demo's preset).
    verbose : int, default=1
        Progress bars for feature extraction and training.
    log : callable, default=print
        Receives progress messages.

    Returns
    -------
    DemoResult
    """
    import torch

    started = time.perf_counter()
    n_threads = torch.get_num_threads()
    # This model's tensors are small: extra intra-op threads cost more in
    # synchronisation than they give, and a loaded machine makes it far worse.
    torch.set_num_threads(1)
    try:
        return _run(output_dir, random_state, n_episodes, verbose, log, started)
    finally:
        torch.set_num_threads(n_threads)


def _run(output_dir, random_state, n_episodes, verbose, log, started):
    from pdmer_datasets import synthetic

    os.makedirs(output_dir, exist_ok=True)
    log(f"Generating synthetic songs and listeners in {output_dir}/data ...")
    data = synthetic.generate(os.path.join(output_dir, "data"), random_state=random_state,
                              n_jobs=-1, **DATA)
    table = data.annotator_table()
    train, test = table.split_annotators(test_size=0.25, random_state=random_state)

    log(f"Extracting features of {len(data.song_ids)} songs ...")
    front_end = AudioFeatures(**FEATURES, n_jobs=-1)
    features = dict(zip(data.song_ids, front_end.transform(
        [str(data.audio_path(s)) for s in data.song_ids])))
    train.X = [features[s] for s in train.song_ids]
    test.X = [features[s] for s in test.song_ids]

    params = dict(MODEL, random_state=random_state, verbose=verbose)
    if n_episodes is not None:
        params["n_episodes"] = n_episodes
    log(f"Meta-training DSAML on {len(np.unique(train.annotators))} listeners "
        f"({len(train)} annotated curves) ...")
    meta = DSAMLRegressor(**params).fit(*train)
    log("Training the mean-label model without meta-learning ...")
    plain = DSAMLRegressor(**dict(params, meta_learning="none", tasks="song")).fit(*train)

    log(f"Personalizing to {len(np.unique(test.annotators))} held-out listeners, "
        "one song each ...")
    truth, predictions = [], {row: [] for row in ROWS}
    example = None
    for listener in np.unique(test.annotators):
        rows = np.flatnonzero(test.annotators == listener)
        support, query = rows[:1], rows[1:]
        X_query = [test.X[i] for i in query]
        truth += [test.y[i] for i in query]
        meta.reset_personalization()
        before = meta.predict(X_query)
        meta.personalize([test.X[i] for i in support], [test.y[i] for i in support])
        after = meta.predict(X_query)
        baseline = plain.predict(X_query)
        for row, values in zip(ROWS, (before, after, baseline)):
            predictions[row] += values
        if example is None:
            example = (listener, test.song_ids[query[0]], test.y[query[0]], before[0],
                       after[0], baseline[0])
    meta.reset_personalization()
    scores = {row: evaluate(truth, predictions[row]) for row in ROWS}
    plot_path = os.path.join(output_dir, "personalization.png")
    _plot(example, plot_path)
    return DemoResult(scores, list(np.unique(test.annotators)), plot_path,
                      time.perf_counter() - started)


def _plot(example, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdmer.plotting import plot_curves

    listener, song, truth, before, after, baseline = example
    fig = plot_curves(
        before, truth, after, others={"mean-label model": baseline},
        labels={"truth": f"listener {listener}", "personalized": "personalized from 1 song",
                "prediction": "meta-trained, not personalized"},
        title=f"Held-out listener {listener}, song {song} (not used for adaptation)",
        path=path)
    plt.close(fig)
