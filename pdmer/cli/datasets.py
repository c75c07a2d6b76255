"""``pdmer download deam|pmemo`` and ``pdmer validate deam|pmemo``."""

from __future__ import annotations

from pathlib import Path

import click

from pdmer.cli import download, main

_PARTS = ("annotations", "audio", "metadata")
# Files listed per category before "... and N more".
_SHOWN = 10


def _dataset(name, data_home, index=None):
    import pdmer_datasets

    return pdmer_datasets.initialize(name, data_home=data_home, index=index)


def _report(dataset, parts=None) -> bool:
    """Print what is missing or invalid; True when everything is there."""
    missing, invalid = dataset.validate(verbose=False, parts=parts)
    ok = True
    for label, found in (("missing", missing), ("invalid (empty or wrong checksum)", invalid)):
        paths = [p for group in found.values() for ps in group.values() for p in ps]
        if paths:
            ok = False
            click.echo(f"{len(paths)} file(s) {label}:")
            for p in paths[:_SHOWN]:
                click.echo(f"  {p}")
            if len(paths) > _SHOWN:
                click.echo(f"  ... and {len(paths) - _SHOWN} more")
    if ok:
        what = "all files" if parts is None else ", ".join(parts)
        click.echo(f"{dataset.name}: {what} present in {dataset.data_home}")
    return ok


_data_home = click.option(
    "--data-home", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the data set lives (default ~/mir_datasets/<name>).")
_from = click.option(
    "--from", "from_path", type=click.Path(exists=True, path_type=Path), default=None,
    help="Install from archives you already have (a file or a folder holding them) "
         "or from an extracted copy, instead of downloading.")
_mirror = click.option(
    "--mirror", default=None, metavar="URL",
    help="Base URL of another host serving the same file names.")
_index = click.option(
    "--index", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="A mirdata index JSON listing the files to expect (default: the whole data set).")
_force = click.option("--force", is_flag=True, help="Install again even if already installed.")
_cleanup = click.option("--cleanup", is_flag=True,
                        help="Delete downloaded archives after extracting them.")


@download.command("deam")
@_data_home
@click.option("--only", type=click.Choice(_PARTS), multiple=True,
              help="Only this part (repeatable); default all three.")
@_mirror
@click.option("--accept-checksum-mismatch", is_flag=True,
              help="Keep archives whose SHA-256 differs from the expected value (the "
                   "size, completeness and safe extraction are still checked).")
@_from
@_force
@_cleanup
@_index
def download_deam(data_home, only, mirror, accept_checksum_mismatch, from_path, force,
                  cleanup, index):
    """Download DEAM (audio, annotations, metadata), verified and resumable.

    Archives are checked against their SHA-256, extracted safely, and a
    second run does nothing. An interrupted download resumes.
    """
    dataset = _dataset("deam", data_home, index)
    parts = list(only) or list(_PARTS)
    dataset.download(partial_download=parts, force_overwrite=force, cleanup=cleanup,
                     allow_invalid_checksum=accept_checksum_mismatch, mirror=mirror,
                     from_path=from_path)
    if not _report(dataset, parts):
        raise click.ClickException("DEAM is incomplete after installing; see the list above.")


@download.command("pmemo")
@_data_home
@_mirror
@_from
@_force
@_cleanup
@_index
def download_pmemo(data_home, mirror, from_path, force, cleanup, index):
    """Install PMEmo 2019 (Google Drive via gdown, a mirror, or --from a local copy)."""
    dataset = _dataset("pmemo", data_home, index)
    try:
        dataset.download(force_overwrite=force, cleanup=cleanup, mirror=mirror,
                         from_path=from_path)
    except RuntimeError as err:  # no gdown, or Google Drive refused
        click.echo(str(err), err=True)
        raise click.exceptions.Exit(1) from err
    if not _report(dataset):
        raise click.ClickException("PMEmo is incomplete after installing; see the list above.")


@main.command("validate")
@click.argument("name", type=click.Choice(["deam", "pmemo"]))
@_data_home
@click.option("--only", type=click.Choice(_PARTS), multiple=True,
              help="DEAM: only the files of this part (repeatable).")
@_index
def validate_dataset(name, data_home, only, index):
    """List the files of a data set that are missing or invalid (exit 1 if any)."""
    dataset = _dataset(name, data_home, index)
    if only and name != "deam":
        raise click.BadParameter("only DEAM has parts.", param_hint="--only")
    if not _report(dataset, list(only) or None):
        raise click.exceptions.Exit(1)
