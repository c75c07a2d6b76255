"""Independent random streams of the generator, one per purpose.

Each stream is keyed by the data set's seed, its purpose and an index (a
song, a listener), so that e.g. song 3 is the same whatever ``n_songs`` or
``n_listeners`` are.
"""

from __future__ import annotations

import numpy as np

CURVE, AUDIO, LISTENER, ASSIGN, NOISE, POPULATION, DURATION = range(7)


def stream(random_state: int, *key: int) -> np.random.Generator:
    """The generator of one purpose (and index) under ``random_state``."""
    return np.random.default_rng(np.random.SeedSequence(random_state, spawn_key=key))
