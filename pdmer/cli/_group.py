"""The ``pdmer`` command group and its ``download`` subgroup."""

from __future__ import annotations

import warnings

import click


class _Group(click.Group):
    """A command group that turns library errors into one clear line, and
    warnings into one ``Warning: ...`` line each."""

    def invoke(self, ctx):
        with warnings.catch_warnings():
            # Python's format names the source file and echoes a source line:
            # noise for someone who runs a command, not a library.
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as err:
                if ctx.find_root().params.get("debug"):
                    raise
                raise click.ClickException(_one_line(err)) from err


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = " ".join(str(message).split()) or category.__name__
    click.echo(f"Warning: {text}", err=True)


def _one_line(err: BaseException) -> str:
    message = " ".join(str(err).split()) or type(err).__name__
    return f"{message} (run with --debug for the traceback)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pdmer")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
def main(debug):
    """Personalized dynamic music emotion recognition."""


@main.group(cls=_Group)
def download():
    """Download data sets or model weights, verified and resumable."""
