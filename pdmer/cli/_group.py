"""The ``pdmer`` command group and its ``download`` subgroup."""

from __future__ import annotations

import click


class _Group(click.Group):
    """A command group that turns library errors into one clear line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if ctx.find_root().params.get("debug"):
                raise
            raise click.ClickException(_one_line(err)) from err


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
