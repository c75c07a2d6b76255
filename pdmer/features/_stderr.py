"""Silencing the notes that audio decoders print on the C-level stderr.

libsndfile decodes MP3 with libmpg123, which writes notes such as ``Note:
Illegal Audio-MPEG-Header 0x00000000 at offset 15.`` straight to file
descriptor 2, where Python's warning filters and ``sys.stderr`` cannot reach
them. pdmer raises an :class:`~pdmer.features.audio.AudioError` that says
what is wrong with such a file, so the notes are only noise: while a file is
decoded, :func:`decoder_notes_hidden` points descriptor 2 at a temporary
file, and afterwards writes back to the real stderr whatever else was
written meanwhile (another thread's progress bar, say), minus the decoder's
lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

# libmpg123's notes ("Note: ...") and its error/warning macros
# ("[src/libmpg123/parse.c:1109] error: ...").
_DECODER_LINE = re.compile(rb"^(?:Note: |\[[^\]\n]*mpg123[^\]\n]*\] )[^\n]*\n?", re.M)

_lock = threading.Lock()
# Descriptor 2 is one per process: threads decoding at once share one capture.
_users = 0
_saved = None
_capture = None


def _start() -> None:
    global _saved, _capture
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a replaced stream may not flush
            stream.flush()
    _capture = tempfile.TemporaryFile()
    _saved = os.dup(2)
    os.dup2(_capture.fileno(), 2)


def _stop() -> None:
    global _saved, _capture
    os.dup2(_saved, 2)
    os.close(_saved)
    _capture.seek(0)
    others = _DECODER_LINE.sub(b"", _capture.read())
    _capture.close()
    _saved = _capture = None
    if others:
        os.write(2, others)


@contextlib.contextmanager
def decoder_notes_hidden():
    """Hide what C libraries write to descriptor 2 inside the block, except
    lines other than libmpg123's, which are written out at its end."""
    global _users
    try:
        sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (embedded)
        yield
        return
    with _lock:
        if _users == 0:
            _start()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _stop()
