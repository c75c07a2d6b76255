"""The one thread that uses the model.

Prediction, adaptation and feature extraction all go through the same torch
module (adaptation switches it to training mode), so the app runs them one
at a time on this thread, most urgent first: a listener waiting for a curve
goes before queued personalizations, which go before background feature
extraction. A running task is never interrupted.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from concurrent.futures import Future

log = logging.getLogger("pdmer.app")

INTERACTIVE, BACKGROUND, IDLE = 0, 1, 2
"""Priorities: a request waits for the result; a job; work done ahead of need."""

_STOP = -1


class ModelWorker:
    """A single worker thread fed by a priority queue; :meth:`submit` returns a Future."""

    def __init__(self, name="pdmer-model"):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO among equal priorities
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: int, function, *args) -> Future:
        """Run ``function(*args)`` on the worker thread."""
        future = Future()
        self._queue.put((priority, next(self._order), future, function, args))
        return future

    def close(self, timeout=None):
        """Stop after the running task; queued tasks are cancelled."""
        self._queue.put((_STOP, next(self._order), None, None, None))
        self._thread.join(timeout)
        while True:
            try:
                _, _, future, _, _ = self._queue.get_nowait()
            except queue.Empty:
                break
            if future is not None:
                future.cancel()

    def _run(self):
        while True:
            priority, _, future, function, args = self._queue.get()
            if priority == _STOP:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as err:  # handed to whoever waits on the future
                if priority != INTERACTIVE:
                    log.debug("background task failed", exc_info=True)
                future.set_exception(err)
