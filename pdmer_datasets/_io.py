"""The one door from pdmer_datasets into pdmer's file and download helpers.

pdmer_datasets needs safe downloads, archive extraction and atomic writes,
which pdmer implements (``pdmer._download``, ``pdmer._files``). Every module
of this package imports them from here, so that when pdmer makes them
public only this file changes.
"""

from pdmer._download import ChecksumError, download_file, safe_extract, sha256_file, verify_file
from pdmer._files import atomic_write

__all__ = ["ChecksumError", "atomic_write", "download_file", "safe_extract", "sha256_file",
           "verify_file"]
