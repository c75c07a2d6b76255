"""The ``pdmer`` command line: a thin layer over the library.

Each command lives in its own module of this package and registers itself on
:data:`main` (defined in ``_group.py``); errors print as one line
(``--debug`` shows the traceback) and exit non-zero; progress bars go to
stderr.
"""

from __future__ import annotations

import sys

# Commands register themselves on `main` (and `download`) when imported.
from pdmer.cli import (  # noqa: F401
    app,
    benchmark,
    datasets,
    demo,
    evaluate,
    features,
    info,
    models,
    personalize,
    predict,
    train,
)
from pdmer.cli._group import download, main

__all__ = ["download", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
