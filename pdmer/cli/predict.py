"""``pdmer predict``: arousal and valence curves of audio files, as one table or one CSV
(and PNG) per song."""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from pdmer.cli._group import main
from pdmer.cli._common import (
    FiniteFloatRange,
    ModelSource,
    device_option,
    extract,
    jobs_option,
    load_model,
    model_options,
    quiet_option,
    report_failures,
    threads_option,
)
from pdmer.cli._curves import check_table_writer, output_kind, write_table
from pdmer.cli._inputs import audio_files, inputs_options
from pdmer_datasets import write_labels


@main.command()
@click.argument("model", type=ModelSource())
@click.argument("inputs", nargs=-1, type=click.Path(exists=True))
@inputs_options
@click.option("--listener", "-l", type=click.Path(exists=True, dir_okay=False),
              help="A listener file from `pdmer personalize`: predict for that listener.")
@click.option("--output", "-o", default=".", show_default=True, metavar="PATH",
              help="A table of all songs: curves.csv, curves.json or curves.parquet "
                   "(columns song, time, arousal, valence); - for CSV on stdout; or a "
                   "folder for one <song>.csv per song.")
@click.option("--plot", is_flag=True,
              help="Also write <song>.png into the --output folder: the curves over time "
                   "and in the valence-arousal plane (with --listener, before and after "
                   "personalization).")
@click.option("--frame-offset", type=FiniteFloatRange(min=0), default=None,
              help="Audio time in seconds of the first frame (default: the model's, e.g. "
                   "15 for a model trained on DEAM; 0 predicts from the start).")
@jobs_option()
@model_options
@device_option
@threads_option
@quiet_option
def predict(model, inputs, list_files, recursive, listener, output, plot, frame_offset,
            n_jobs, sha256, allow_http, device, quiet):
    """Predict (arousal, valence) every 0.5 s of each audio file with MODEL.

    INPUTS are audio files, folders (searched for audio files) and list files
    (.txt/.m3u, one audio path per line). With --output a .csv, .json or
    .parquet file, one table holds every song's frames (columns song, time,
    arousal, valence); with a folder, each song gets a CSV with the columns
    time (seconds, the start of each 0.5 s frame), arousal and valence -- the
    label CSV format `pdmer personalize` reads. A song that cannot be read is
    reported (one line each on stderr) and the others are still written; the
    exit status is then 1. MODEL is a model file or a URL: https://..., or
    hf://USER/REPO for a Hugging Face Hub repository's model.safetensors (see
    `pdmer download model`).

    \b
    Examples:
      pdmer predict model.safetensors songs/ -o curves.csv
      pdmer predict model.safetensors song.mp3 -o - | head
      pdmer predict hf://alice/pdmer-deam --sha256 9f2c... songs/ -o curves.csv
    """
    from pdmer.files import check_writable

    kind = output_kind(output)
    audio = audio_files(inputs, list_files, recursive)
    if kind == "folder":
        stems = _folder_names(audio)
        check_writable(Path(output) / f"{next(iter(stems.values()))}.csv",
                       what="the predictions")
    elif plot:
        raise click.UsageError("--plot writes one PNG per song: give --output a folder.")
    elif kind == "table":
        check_table_writer(output)
        check_writable(output, what="the predictions")
    estimator = load_model(model, device, sha256=sha256, allow_http=allow_http,
                           quiet=quiet)
    offset = estimator.make_front_end(frame_offset).frame_offset
    if listener:
        estimator.use_listener(listener)
    failures = []
    features = extract(estimator, audio, frame_offset=offset, n_jobs=n_jobs, failures=failures,
                       progress=not quiet)
    read = [path for path in audio if path in features]
    songs = [features[path] for path in read]
    curves = dict(zip(read, estimator.predict(songs) if songs else []))
    # Data on stdout: messages go to stderr.
    say = (lambda message: None) if quiet else (
        lambda message: click.echo(message, err=kind == "stdout"))
    if kind != "folder":
        target = write_table(curves, offset, output)
        say(f"{len(curves)} songs, {sum(map(len, curves.values()))} frames -> {target}")
        report_failures(failures)
        return
    before = None
    if listener and plot and songs:
        estimator.reset_personalization()
        before = dict(zip(read, estimator.predict(songs)))
    for path, curve in curves.items():
        target = Path(output) / f"{stems[path]}.csv"
        write_labels(target, curve, offset)
        written = [str(target)]
        if plot:
            written.append(str(_plot(Path(output) / f"{stems[path]}.png", path, curve,
                                     None if before is None else before[path], offset)))
        say(f"{path}: {len(curve)} frames -> {', '.join(written)}")
    report_failures(failures)


def _folder_names(audio) -> dict:
    """{path: file stem}, refusing two songs that would overwrite each other's files."""
    seen = {}
    for path in audio:
        stem = Path(path).stem
        if stem in seen:
            raise click.BadParameter(
                f"{seen[stem]} and {path} would both be written as {stem}.csv; write one "
                "table (-o curves.csv), or predict them into different --output folders.",
                param_hint="INPUTS")
        seen[stem] = path
    return {path: stem for stem, path in seen.items()}


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
