"""``pdmer evaluate``: score a saved model on labelled data (CCC, PCC, RMSE)."""

from __future__ import annotations

import json

import click

from pdmer.cli._group import main
from pdmer.cli._common import (
    ModelSource,
    data_options,
    device_option,
    extract,
    load_data,
    load_model,
    model_options,
    quiet_option,
    threads_option,
)

COLUMNS = ("ccc_arousal", "ccc_valence", "ccc_mean", "pcc_arousal", "pcc_valence", "pcc_mean",
           "rmse_arousal", "rmse_valence", "rmse_mean")


@main.command()
@click.argument("model", type=ModelSource())
@click.argument("data")
@data_options("test")
@click.option("--personalize/--no-personalize", "personalized", default=False,
              show_default=True,
              help="PDMER protocol: adapt to each listener from --support of their songs, "
                   "score their other songs; the unadapted model is scored on the same "
                   "songs. Needs annotator ids.")
@click.option("--support", type=click.IntRange(min=1), default=1, show_default=True,
              help="Songs each listener gives for adaptation.")
@click.option("--average", type=click.Choice(["songs", "listeners"]), default="songs",
              show_default=True, help="With --personalize: average over (song, listener) "
                                      "pairs, or per listener first.")
@click.option("--seed", default=0, show_default=True, help="Draws the support songs.")
@click.option("--calibration-strength", type=click.FloatRange(min=0), default=None,
              help="With --personalize: strength (frames) of the pull toward the identity of "
                   "the closed-form listener calibration row (the moment fit), the simplest "
                   "competitor of personalization. Default: pdmer's "
                   "(pdmer.evaluation.competitors.DEFAULT_CALIBRATION_STRENGTH); choose it "
                   "on other listeners than the ones scored here.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="A Markdown table or JSON.")
@model_options
@device_option
@threads_option
@quiet_option
def evaluate(model, data, data_home, split, labels, n_jobs, personalized, support, average,
             seed, calibration_strength, fmt, sha256, allow_http, device, quiet):
    """Score MODEL on the labelled DATA: CCC, PCC and RMSE per dimension.

    DATA is a data set name (deam, pmemo, synthetic with --data-home) or a data
    CSV (audio, labels[, annotator]), as for `pdmer train`. Scores are
    computed per song (or song-listener pair) and averaged; RMSE is lower-is-
    better, the others higher. MODEL is a model file or a URL (https://...,
    hf://USER/REPO; see `pdmer download model`).
    """
    from pdmer.evaluation import plan_episodes, run_episodes, score_episodes
    from pdmer.evaluation.competitors import (DEFAULT_CALIBRATION_FIT,
                                              DEFAULT_CALIBRATION_STRENGTH, CalibratedPredictor)
    from pdmer.experiments import markdown_table
    from pdmer.scoring import evaluate as score_curves

    estimator = load_model(model, device, sha256=sha256, allow_http=allow_http,
                           quiet=quiet)
    source = load_data(data, data_home=data_home, split=split, labels=labels)
    if personalized and source.annotators is None:
        raise click.UsageError("--personalize needs annotator ids: use --labels annotators "
                               "and data with an annotator column.")
    if not quiet:
        click.echo(f"Evaluating {type(estimator).__name__} on {source.description}.",
                   err=True)
    features = extract(estimator, source.X, frame_offset=source.frame_offset, n_jobs=n_jobs,
                       progress=not quiet)
    X = [features[x] for x in source.X]
    if not personalized:
        rows = {"model": score_curves(source.y, estimator.predict(X))}
    else:
        names = ["ccc_arousal", "ccc_valence", "ccc", "pcc_arousal", "pcc_valence", "pcc",
                 "neg_rmse_arousal", "neg_rmse_valence", "neg_rmse"]
        episodes = plan_episodes(source.annotators, n_support=support, random_state=seed)
        if not episodes:
            raise click.UsageError(f"No listener has --support + 1 = {support + 1} songs: "
                                   "nothing is left to score after adapting.")
        skipped = len(set(map(str, source.annotators))) - len(episodes)
        if skipped and not quiet:
            click.echo(f"{skipped} listener(s) with fewer than {support + 1} songs were not "
                       "scored.", err=True)
        rows = {}
        strength = (DEFAULT_CALIBRATION_STRENGTH if calibration_strength is None
                    else calibration_strength)
        songs = f"{support} song{'s' * (support > 1)}"
        # Every row is scored on the same songs: the listeners' songs that are
        # not their support.
        for row, predictor, adapt in (
                ("not personalized", estimator, False),
                (f"personalized ({songs})", estimator, True),
                (f"not personalized + calibration ({songs}, {DEFAULT_CALIBRATION_FIT}, "
                 f"strength {strength:g})",
                 CalibratedPredictor(estimator, strength, DEFAULT_CALIBRATION_FIT), True)):
            truth, predictions, listeners = run_episodes(predictor, X, source.y, episodes,
                                                         adapt=adapt)
            scores = score_episodes(truth, predictions, listeners, metric=names,
                                    average=average)
            rows[row] = {column: (-scores[name] if name.startswith("neg_") else scores[name])
                         for column, name in zip(COLUMNS, names)}
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(markdown_table(rows, COLUMNS))
