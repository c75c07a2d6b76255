"""``pdmer personalize``: adapt a saved model to one listener from one annotated song."""

from __future__ import annotations

import os

import click

from pdmer.cli._group import main
from pdmer.cli._common import (
    FiniteFloatRange,
    ModelSource,
    device_option,
    extract,
    load_model,
    model_options,
    quiet_option,
    threads_option,
)
from pdmer_datasets import read_labels


@main.command()
@click.argument("model", type=ModelSource())
@click.argument("audio", type=click.Path(exists=True, dir_okay=False))
@click.argument("labels", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the listener file (.safetensors).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Gradient steps (default: the model's inner_steps).")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Step size (default: the model's inner_lr).")
@click.option("--frame-offset", type=FiniteFloatRange(min=0), default=None,
              help="Audio time of frame 0 for label files with a frame column "
                   "(default: the model's).")
@model_options
@device_option
@threads_option
@quiet_option
def personalize(model, audio, labels, output, steps, lr, frame_offset, sha256, allow_http,
                device, quiet):
    """Adapt MODEL to one listener from ONE song they annotated.

    AUDIO is the song; LABELS the listener's label CSV for it (columns time or
    frame, arousal, valence; one row per 0.5 s frame). Writes a small listener
    file that `pdmer predict --listener` uses; the model file is not changed.
    MODEL is a model file or a URL (https://..., hf://USER/REPO; see `pdmer
    download model`).
    """
    from pdmer.files import check_writable

    check_writable(output, what="the listener file")
    estimator = load_model(model, device, sha256=sha256, allow_http=allow_http,
                           quiet=quiet)
    y, offset = read_labels(labels, estimator.make_front_end(frame_offset).frame_offset)
    features = extract(estimator, [audio], frame_offset=offset)
    estimator.personalize([features[os.fspath(audio)]], [y], steps=steps, lr=lr)
    estimator.listener_.save(output)
    listener = estimator.listener_
    if quiet:
        return
    click.echo(f"Wrote {output}: {listener.n_parameters:,} adapted parameters "
               f"({os.path.getsize(output) / 1024:.0f} KiB) from {len(y)} frames "
               f"({len(y) * 0.5:g} s from {offset:g} s), {listener.info['steps']} steps "
               f"at lr {listener.info['lr']:g}.")
