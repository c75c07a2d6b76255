"""The ``pdmer`` command line: a thin layer over the library.

Each command lives in its own module of this package and registers itself on
:data:`main`; errors print as one line (``--debug`` shows the traceback) and
exit non-zero; progress bars go to stderr.
"""

from __future__ import annotations

import sys

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


# Commands register themselves on `main` (and `download`) when imported.
from pdmer.cli import demo  # noqa: E402,F401
from pdmer.cli import train  # noqa: E402,F401
from pdmer.cli import personalize  # noqa: E402,F401
from pdmer.cli import predict  # noqa: E402,F401
from pdmer.cli import evaluate  # noqa: E402,F401
from pdmer.cli import info  # noqa: E402,F401
from pdmer.cli import datasets  # noqa: E402,F401
from pdmer.cli import benchmark  # noqa: E402,F401
from pdmer.cli import features  # noqa: E402,F401
from pdmer.cli import app  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
