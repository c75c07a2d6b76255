"""``pdmer download model``: fetch a shared model file, verified."""

from __future__ import annotations

from pathlib import Path

import click

from pdmer.cli._common import quiet_option
from pdmer.cli._group import download


@download.command("model")
@click.argument("source", metavar="URL")
@click.option("--sha256", default=None, metavar="HEX",
              help="The file's expected SHA-256 (its model card lists it); the download "
                   "must match it. Required for plain http:// unless --allow-http.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the model (default: the user cache, where "
                   "pdmer.load(URL) finds it again).")
@click.option("--allow-http", is_flag=True,
              help="Accept a plain http:// download without --sha256 (a network you trust).")
@click.option("--force", is_flag=True, help="Download again even if a copy is there.")
@quiet_option
def download_model(source, sha256, output, allow_http, force, quiet):
    """Download a model file from URL and check that it loads.

    URL is https://..., http://... (with --sha256) or hf://USER/REPO for
    model.safetensors on the main branch of a Hugging Face Hub repository
    (hf://USER/REPO@REVISION/FILE for another; $PDMER_HF_ENDPOINT names a
    mirror). The download resumes if interrupted and is verified against
    --sha256. A model file holds tensors and settings, never code.

    \b
    Example:
      pdmer download model hf://alice/pdmer-deam --sha256 9f2c... -o deam.safetensors
      pdmer predict deam.safetensors songs/ -o curves.csv
    """
    from pdmer import load
    from pdmer.downloads import sha256_file
    from pdmer.estimators.remote import fetch_model

    path = fetch_model(source, output, sha256=sha256, allow_http=allow_http, force=force,
                       progress=not quiet)
    try:
        model = load(path, device="cpu")
    except ValueError as err:
        raise click.ClickException(f"{source} downloaded to {path}, but it is not a pdmer "
                                   f"model this version can load: {err}") from err
    if not quiet:
        digest = sha256 or sha256_file(path)
        size = model.get_params().get("size")
        click.echo(f"{type(model).__name__}" + (f" (size {size!r})" if size else "")
                   + f": {path} ({path.stat().st_size / 2**20:.1f} MiB, SHA-256 {digest})")
    else:
        click.echo(str(path))
