"""Helpers the tests share: tiny models and tiny generated data (fixtures are in conftest.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pdmer import DSAMLRegressor
from pdmer.features import SongFeatures
from pdmer_datasets import synthetic

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""Real data files beside the project (../shared/data), absent on most machines."""

DEBIAN_MUSIC = Path("/usr/share/games/asc/music")
"""Debian's asc-music: three MP3s of 4.8-7.4 minutes, 44.1 kHz stereo (``.ci/run`` installs it)."""

DEBIAN_SONGS = ("frontiers.mp3", "machine_wars.mp3", "time_to_strike.mp3")

# A DSAML small enough that one meta-training episode takes milliseconds.
TINY_MODEL = dict(size="small", d_model=16, n_heads=2, n_layers=1, d_ff=16, lstm_hidden=8,
                  head_hidden=8, n_episodes=3, tasks_per_step=2, n_query=2, inner_steps=2,
                  inner_lr=0.05, outer_lr=1e-3, validation_interval=2, device="cpu",
                  random_state=0)


LISTENER_CALIBRATION = {"listener_calibration.slope", "listener_calibration.intercept",
                        "listener_calibration.lag"}
"""What a listener adaptation holds besides adapted parameters under the small
preset's method (:class:`pdmer.meta.methods.CalibrateThenAdapt`)."""


def tiny(**params):
    """A DSAMLRegressor of the tiny test architecture (``TINY_MODEL``), ``params`` on top."""
    return DSAMLRegressor(**{**TINY_MODEL, **params})


def tiny_audio_model(root, front_end, n_episodes=40):
    """Path of a tiny DSAML fitted on generated 16 kHz songs with ``front_end``.

    40 episodes by default: long enough that its curves on real music vary
    (by about 0.01; after 3 episodes by a few thousandths, which one inner
    step reshapes).
    """
    table = synthetic.generate(Path(root) / "synthetic", random_state=0, n_songs=4,
                               n_listeners=3, songs_per_listener=3, duration=3.0,
                               sample_rate=16000).annotator_table()
    path = Path(root) / "model.safetensors"
    tiny(front_end=front_end, n_episodes=n_episodes, verbose=0).fit(*table).save(path)
    return path


def reversed_listener(curves):
    """A listener's reading of (arousal, valence) curves: arousal higher,
    valence reversed and wider. Tests make such labels from a model's own
    curves on real music, so that one annotated song teaches a known map."""
    return np.stack([curves[:, 0] + 0.2, -1.5 * curves[:, 1] + 0.1], axis=1)


def write_label_csv(path, labels, start=0.0, clock="time"):
    """Write (n_frames, 2) labels as a label CSV, clocked by ``time`` (seconds) or ``frame``.

    Returns ``path``.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((clock, "arousal", "valence"))
        for i, (a, v) in enumerate(labels):
            writer.writerow((start + 0.5 * i if clock == "time" else i, a, v))
    return path


def make_songs(n_songs=8, n_frames=12, patch=(6, 8), global_dim=6, seed=0):
    """Random SongFeatures whose labels depend on the global embedding."""
    rng = np.random.default_rng(seed)
    songs, curves = [], []
    for i in range(n_songs):
        n = n_frames + (i % 3)  # songs of different lengths
        glob = rng.normal(size=(n, global_dim)).astype(np.float32)
        local = rng.normal(size=(n, *patch)).astype(np.float32)
        songs.append(SongFeatures(local, glob, source=f"song{i}"))
        curves.append(np.tanh(glob[:, :2]).astype(np.float32))
    return songs, curves


def make_annotator_table(n_songs=8, n_annotators=4, songs_per_annotator=4, seed=0):
    """(X, y, annotators): each annotator shifts the curves by their own offset."""
    rng = np.random.default_rng(seed)
    songs, curves = make_songs(n_songs, seed=seed)
    X, y, annotators = [], [], []
    for a in range(n_annotators):
        offset = rng.uniform(-0.5, 0.5, size=2).astype(np.float32)
        for i in rng.choice(n_songs, songs_per_annotator, replace=False):
            X.append(songs[i])
            y.append(np.clip(curves[i] + offset, -1, 1))
            annotators.append(f"A{a}")
    return X, y, np.array(annotators)


CLI_FEATURES = dict(sample_rate=16000, n_mels=16, global_window=2.0)
"""A small front end for the CLI tests' songs."""


def run_cli(*args):
    """``pdmer ARGS...`` in-process (click's runner); the result has ``exit_code`` and ``output``."""
    from click.testing import CliRunner

    from pdmer.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result):
    """The one ``Error...`` line of a CLI result (asserts there is exactly one, no traceback)."""
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


LABEL_FILE_ERRORS = [
    ("", "is empty"),
    ("t,arousal,valence\n0,1,2\n", "must have the columns time (or frame)"),
    ("time,arousal,valence\n", "no labels"),
    ("time,arousal,valence\n0.0,0.1,\n", "line 2: expected numbers"),
    ("time,arousal,valence\n0.0,0.1,0.2\n0.5,nan,0.2\n", "line 3: NaN"),
    ("frame,arousal,valence\n0,0.1,0.2\n2,0.1,0.2\n", "frame steps of 1"),
    ("time,arousal,valence\n0.0,0.1,0.2\n0.7,0.1,0.2\n", "line 3: time jumps from 0 to 0.7"),
    ("time,arousal,valence,std\n0.0,0.1,0.2,0.3\n", "unknown column(s) 'std'"),
    ("time,frame,arousal,valence\n0.0,0,0.1,0.2\n", "both a time and a frame column"),
    ("time,arousal,valence,arousal\n0.0,0.1,0.2,0.1\n", "repeated column(s) arousal"),
    ("time,arousal,valence\n-0.5,0.1,0.2\n", "before the audio"),
    ("time,arousal,valence\n0," + "1" * 200_000 + ",0\n", "line 2: field larger than"),
]
"""Label files the CSV reader refuses, with a part of each message: the reader's
tests and the command line's (one line naming the file) share them."""
