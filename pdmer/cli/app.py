"""``pdmer app``: the listener web app (annotate, personalize, listen)."""

from __future__ import annotations

import click

from pdmer.cli._group import main
from pdmer.cli._common import (
    ModelSource,
    device_option,
    load_model,
    model_options,
    quiet_option,
    threads_option,
)

_INSTALL = "pip install 'pdmer[app]'"


@main.command("app")
@click.argument("model", type=ModelSource())
@click.option("--songs", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of audio files (WAV, FLAC, OGG, MP3) every listener can use.")
@click.option("--db", "db_url", default=None,
              help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/pdmer "
                   "(default: SQLite app.sqlite in --data-dir).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Uploads, feature cache and the default database (default: the user "
                   "data folder, e.g. ~/.local/share/pdmer/app).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; tokens travel in clear text, so put a TLS proxy "
                   "in front of anything but localhost.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another Host header to answer besides 127.0.0.1, localhost and --host, "
                   "e.g. a reverse proxy's name (repeatable; '*' answers any). Other hosts "
                   "get 400, so that web pages cannot reach the app by DNS rebinding.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=50.0,
              show_default=True, help="Largest audio upload.")
@click.option("--max-song-minutes", type=click.FloatRange(min=0, min_open=True), default=15.0,
              show_default=True, help="Longest audio upload (read from its header before "
                                      "it is decoded).")
@click.option("--prefetch/--no-prefetch", default=True, show_default=True,
              help="Extract the songs' features in the background at start.")
@click.option("--precompute/--no-precompute", default=True, show_default=True,
              help="After a listener's personalization, compute their curves of every song "
                   "in the background.")
@model_options
@device_option
@threads_option
@quiet_option
def serve_app(model, songs, db_url, data_dir, host, port, allowed_hosts, max_upload_mb,
              max_song_minutes, prefetch, precompute, sha256, allow_http, device, quiet):
    """Serve the listener app for MODEL and the songs in `--songs`.

    Listeners annotate a song while it plays (a valence-arousal pad sampled
    every 0.5 s of the music), the model adapts to them in the background,
    and the page then plays any other song with their personal curves next to
    the population model's. The same operations form a REST API, documented
    at /docs. Data (listeners, annotations, adaptations) survive restarts.
    MODEL is a model file or a URL (https://..., hf://USER/REPO; see `pdmer
    download model`).
    """
    try:
        import uvicorn

        from pdmer.app import create_app
    except ImportError as err:
        raise click.ClickException(
            f"pdmer app needs the optional app dependencies ({err.name} is missing): "
            f"{_INSTALL}") from err
    estimator = load_model(model, device, sha256=sha256, allow_http=allow_http, quiet=quiet)
    application = create_app(estimator, songs, db_url=db_url, data_dir=data_dir,
                             prefetch=prefetch, precompute=precompute,
                             max_upload_mb=max_upload_mb, max_song_minutes=max_song_minutes,
                             allowed_hosts=(host, *allowed_hosts))
    service = application.state.service
    if not quiet:
        click.echo(f"Database: {service.db.name}; data in {service.data_dir}.")
        click.echo(f"Open http://{host}:{port}/ (API documentation at /docs); Ctrl+C stops.")
    uvicorn.run(application, host=host, port=port, log_level="warning" if quiet else "info")
