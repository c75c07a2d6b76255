"""``pdmer train``: fit an estimator on a data set or a data CSV and save it."""

from __future__ import annotations

import os
import time

import click

from pdmer.cli._group import main
from pdmer.cli._common import (
    build_estimator,
    data_options,
    extract,
    load_data,
    parse_params,
    read_config,
    device_option,
    quiet_option,
    resolve_estimator,
    threads_option,
)


@main.command()
@click.argument("data")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to save the fitted model (a .safetensors file).")
@click.option("--model", "-m", "model_name", default="dsaml", show_default=True,
              help="Estimator: dsaml, or a baseline (crnn, dnn, mcrnn, damff); "
                   "`pdmer info` lists what is installed.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="JSON object of estimator parameters; 'front_end' may hold "
                   "AudioFeatures parameters.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="An estimator parameter (repeatable; overrides --config). Values are "
                   "JSON or Python literals, e.g. -p size=small -p n_episodes=200 "
                   "-p front_end__n_mels=64 (the names of pdmer.DSAMLRegressor and, "
                   "as front_end__<name>, of pdmer.AudioFeatures).")
@data_options("train")
@device_option
@threads_option
@quiet_option
def train(data, output, model_name, config, params, data_home, split, labels, n_jobs, device,
          quiet):
    """Fit a model on DATA and save it.

    DATA is a data set name (deam, pmemo, or synthetic with --data-home) or a
    data CSV with the columns audio, labels and (optionally) annotator, where
    labels names a label CSV per row (time or frame, arousal, valence). Of a
    named data set only the training split is used (--split); a data CSV is
    used whole. With annotator ids every annotator is one meta-learning task
    (PDMER).

    \b
    Example:
      pdmer train songs.csv -o model.safetensors -p size=small -p n_episodes=500
    """
    from pdmer.files import check_writable

    # Before hours of training, not after.
    check_writable(output, what="the model")
    cls = resolve_estimator(model_name)
    settings = read_config(config) if config else {}
    settings.update(parse_params(params))
    if device is not None:
        settings["device"] = device
    lock = _lock_checkpoint(settings.get("checkpoint_path"))
    try:
        _train(cls, settings, data, output, data_home, split, labels, n_jobs, quiet)
    finally:
        if lock is not None:
            lock.release()


def _lock_checkpoint(checkpoint):
    """Hold ``<checkpoint>.lock`` for the run: two runs on one checkpoint overwrite it."""
    from pdmer.files import try_lock

    # A bad value is the estimator's to refuse; torchrun's other processes
    # share the checkpoint of process 0's run.
    if not isinstance(checkpoint, (str, os.PathLike)) or not os.fspath(checkpoint) \
            or os.environ.get("RANK", "0") != "0":
        return None
    lock = try_lock(f"{os.fspath(checkpoint)}.lock")
    if lock is None:
        raise click.ClickException(
            f"Another pdmer train is using the checkpoint {checkpoint} (it holds "
            f"{checkpoint}.lock). Wait for it to end, or give this run another "
            "checkpoint_path.")
    return lock


def _train(cls, settings, data, output, data_home, split, labels, n_jobs, quiet):
    settings.setdefault("verbose", 0 if quiet else 1)
    source = load_data(data, data_home=data_home, split=split, labels=labels)
    estimator = build_estimator(cls, settings, source.frame_offset)
    if not quiet:
        size = estimator.get_params().get("size")
        why = "asked for" if "size" in settings else "the default; -p size=small for a CPU"
        click.echo(f"Training {cls.__name__} on {source.description}"
                   + (f" at size {size!r} ({why})" if size is not None else "") + ".", err=True)
    started = time.perf_counter()
    features = extract(estimator, source.X, n_jobs=n_jobs, progress=not quiet)
    estimator.fit([features[x] for x in source.X], source.y, annotators=source.annotators)
    estimator.save(output, dataset=_dataset_record(data))
    best = getattr(estimator, "best_validation_ccc_", None)
    click.echo(f"Saved {cls.__name__} to {output} ({time.perf_counter() - started:.0f} s; "
               f"tasks by {estimator.tasks_}"
               + (f"; best validation CCC {best:.3f}" if best is not None else "") + ").")
    if not quiet:
        from pdmer.estimators.card import card_path

        click.echo(f"Model card (data, settings, scores, licence): {card_path(output)}",
                   err=True)


def _dataset_record(data):
    """Name, licence and homepage of a named data set, for the model card (None for a CSV)."""
    from pdmer_datasets import DATASETS

    info = DATASETS.get(str(data).lower())
    if info is None:
        return None
    # "DEAM: 1802 songs, ..." -> "DEAM"
    record = {"name": info.title.split(":")[0], "license": info.license}
    if info.homepage:
        record["homepage"] = info.homepage
    return record

