"""``pdmer download <data set>`` and ``pdmer validate <data set>``.

One download command per downloadable entry of :data:`pdmer_datasets.DATASETS`
(those with remotes); its parts are the entry's remotes.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import click

from pdmer.cli._common import quiet_option
from pdmer.cli._group import download, main
from pdmer_datasets import DATASETS

DOWNLOADABLE = tuple(name for name, info in DATASETS.items() if info.downloadable)
# Files listed per category before "... and N more".
_SHOWN = 10


def _dataset(name, data_home, index=None):
    import pdmer_datasets

    return pdmer_datasets.initialize(name, data_home=data_home, index=index)


def _report(dataset, parts=None, quiet=False) -> bool:
    """Print what is missing or invalid; True when everything is there.

    ``quiet``: nothing on success, one line (on stderr) per problem kind.
    """
    missing, invalid = dataset.validate(verbose=False, parts=parts)
    ok = True
    for label, found in (("missing", missing), ("invalid (empty or wrong checksum)", invalid)):
        paths = [p for group in found.values() for ps in group.values() for p in ps]
        if paths and quiet:
            ok = False
            click.echo(f"{dataset.name}: {len(paths)} file(s) {label} in {dataset.data_home}",
                       err=True)
        elif paths:
            ok = False
            click.echo(f"{len(paths)} file(s) {label}:")
            for p in paths[:_SHOWN]:
                click.echo(f"  {p}")
            if len(paths) > _SHOWN:
                click.echo(f"  ... and {len(paths) - _SHOWN} more")
    if ok and not quiet:
        what = "all files" if parts is None else ", ".join(parts)
        click.echo(f"{dataset.name}: {what} present in {dataset.data_home}")
    return ok


def _only_option(parts, help):
    return click.option("--only", type=click.Choice(parts), multiple=True, help=help)


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
_accept_mismatch = click.option(
    "--accept-checksum-mismatch", is_flag=True,
    help="Keep archives whose SHA-256 differs from the expected value (the size, "
         "completeness and safe extraction are still checked).")


def _download_command(info):
    """``pdmer download <info.name>``, with the options its parts call for."""
    parts = info.parts

    def install(data_home, mirror, from_path, force, cleanup, index, quiet, only=(),
                accept_checksum_mismatch=False):
        dataset = _dataset(info.name, data_home, index)
        try:
            dataset.download(partial_download=list(only) or None, force_overwrite=force,
                             cleanup=cleanup, allow_invalid_checksum=accept_checksum_mismatch,
                             mirror=mirror, from_path=from_path, progress=not quiet)
        except RuntimeError as err:  # e.g. no gdown, or Google Drive refused: manual steps
            click.echo(str(err), err=True)
            raise click.exceptions.Exit(1) from err
        if not _report(dataset, list(only) or None, quiet):
            raise click.ClickException(f"{info.name} is incomplete after installing; see the "
                                       "list above.")

    has_checksums = any(remote.sha256 for remote in info.remotes.values())
    options = [_data_home, _mirror, _from, _force, _cleanup, _index, quiet_option]
    if len(parts) > 1:
        options.append(_only_option(parts, f"Only this part (repeatable); default all "
                                           f"{len(parts)}."))
    if has_checksums:
        options.append(_accept_mismatch)
    for option in reversed(options):
        install = option(install)
    files = ", ".join(remote.filename for remote in info.remotes.values())
    hosts = ", ".join(sorted({urlparse(remote.url).netloc for remote in info.remotes.values()}))
    checked = ("Archives are checked against their size and SHA-256" if has_checksums
               else "No checksum is published: the installed files are validated")
    help_text = (
        f"Install {info.title}.\n\nDownloads {files} from {hosts} (or --mirror, or --from "
        f"archives you already have). {checked}; extraction is safe, a second run does "
        f"nothing and an interrupted download resumes.\n\nLicence: {info.license}")
    return download.command(info.name, help=help_text,
                            short_help=f"Install {info.title}.")(install)


for _name in DOWNLOADABLE:
    _download_command(DATASETS[_name])


@main.command("validate")
@click.argument("name", type=click.Choice(DOWNLOADABLE))
@_data_home
@_only_option(sorted({part for name in DOWNLOADABLE for part in DATASETS[name].parts}),
              "Only the files of this download part (repeatable).")
@_index
@quiet_option
def validate_dataset(name, data_home, only, index, quiet):
    """List the files of a data set that are missing or invalid (exit 1 if any).

    With -q nothing is printed when all files are there, and one line per
    kind of problem otherwise: for scripts, which read the exit status.
    """
    unknown = sorted(set(only) - set(DATASETS[name].parts))
    if unknown:
        raise click.BadParameter(f"{name} has no part {', '.join(unknown)}; its parts: "
                                 f"{', '.join(DATASETS[name].parts)}.", param_hint="--only")
    dataset = _dataset(name, data_home, index)
    if not _report(dataset, list(only) or None, quiet):
        raise click.exceptions.Exit(1)
