"""``pdmer predict``: arousal and valence curves of audio files, as CSV (and PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from pdmer.cli._group import main
from pdmer.cli._common import (
    FiniteFloatRange,
    extract,
    jobs_option,
    report_failures,
    threads_option,
)
from pdmer_datasets import write_labels


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("audio", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--listener", "-l", type=click.Path(exists=True, dir_okay=False),
              help="A listener file from `pdmer personalize`: predict for that listener.")
@click.option("--output", "-o", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder for <song>.csv (and <song>.png).")
@click.option("--plot", is_flag=True,
              help="Also write <song>.png: the curves over time and in the valence-arousal "
                   "plane (with --listener, before and after personalization).")
@click.option("--frame-offset", type=FiniteFloatRange(min=0), default=None,
              help="Audio time in seconds of the first frame (default: the model's, e.g. "
                   "15 for a model trained on DEAM; 0 predicts from the start).")
@jobs_option()
@threads_option
def predict(model, audio, listener, output, plot, frame_offset, jobs):
    """Predict (arousal, valence) every 0.5 s for each AUDIO file with MODEL.

    Writes one CSV per song to --output with the columns time (seconds, the
    start of each 0.5 s frame), arousal and valence -- the label CSV format
    `pdmer personalize` reads. A song that cannot be read is reported (one
    line each on stderr) and the others are still written; the exit status
    is then 1.
    """
    from pdmer.files import check_writable
    from pdmer import load

    outputs = {}
    for path in audio:
        stem = Path(path).stem
        if stem in outputs:
            raise click.BadParameter(
                f"{outputs[stem]} and {path} would both be written as {stem}.csv; predict "
                "them into different --output folders.", param_hint="AUDIO")
        outputs[stem] = path
    check_writable(Path(output) / f"{next(iter(outputs))}.csv", what="the predictions")
    estimator = load(model)
    offset = estimator.make_front_end(frame_offset).frame_offset
    if listener:
        estimator.use_listener(listener)
    failures = []
    features = extract(estimator, audio, frame_offset=offset, n_jobs=jobs, failures=failures)
    outputs = {stem: path for stem, path in outputs.items() if os.fspath(path) in features}
    songs = [features[os.fspath(p)] for p in outputs.values()]
    curves = estimator.predict(songs) if songs else []
    before = None
    if listener and plot and songs:
        estimator.reset_personalization()
        before = estimator.predict(songs)
    for i, (stem, path) in enumerate(outputs.items()):
        target = Path(output) / f"{stem}.csv"
        write_labels(target, curves[i], offset)
        written = [str(target)]
        if plot:
            written.append(str(_plot(Path(output) / f"{stem}.png", path, curves[i],
                                     None if before is None else before[i], offset)))
        click.echo(f"{path}: {len(curves[i])} frames -> {', '.join(written)}")
    report_failures(failures)


def _plot(target, source, curve, before, offset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdmer.plotting import plot_song

    values = curve if before is None else np.concatenate([curve, before])
    # Labels live in [-1, 1] (DEAM, synthetic) or [0, 1] (PMEmo); scale to the
    # data only when a model predicts far outside.
    value_range = (-1.0, 1.0) if np.abs(values).max() <= 1.05 else None
    curves = dict(prediction=curve) if before is None else dict(
        prediction=before, personalized=curve,
        labels={"prediction": "not personalized", "personalized": "personalized (listener file)"})
    fig = plot_song(**curves, frame_offset=offset, value_range=value_range,
                    title=os.path.basename(source), path=target)
    plt.close(fig)
    return target
