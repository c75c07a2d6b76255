"""The generated data set as an object: songs, listeners, labels and tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pdmer_datasets.table import AnnotationTable

AUDIO_DIR = "audio"
SPLITS = (None, "train", "test")


@dataclass
class SyntheticDataset:
    """A generated synthetic data set: audio, true curves and listeners.

    Obtain one from :func:`generate` or :func:`load`; do not build it by hand.

    Attributes
    ----------
    root : pathlib.Path
        The folder holding the files.
    params : dict
        The generation parameters (as in ``meta.json``).
    true_curves : dict of str to ndarray of shape (n_frames, 2)
        The songs' underlying (arousal, valence), keyed by song id.
    listeners : dict of str to Listener
        Each listener's perception parameters, keyed by annotator id.
    assignments : dict of str to tuple of str
        The songs each listener annotated.
    annotations : dict of (str, str) to ndarray of shape (n_frames, 2)
        Labels keyed by ``(annotator, song_id)``.
    """

    root: Path
    params: dict
    true_curves: dict
    listeners: dict
    assignments: dict
    annotations: dict = field(repr=False)

    def __repr__(self) -> str:
        lengths = sorted(set(self.song_frames.values()))
        frames = (f"{lengths[0]}" if len(lengths) == 1
                  else f"{lengths[0]}-{lengths[-1]}")
        return (f"SyntheticDataset(root={str(self.root)!r}, "
                f"{len(self.true_curves)} songs x {frames} frames, "
                f"{len(self.listeners)} listeners, "
                f"{len(self.annotations)} annotated curves)")

    @property
    def song_ids(self) -> list:
        """Song ids in order, e.g. ``["S000", "S001", ...]``."""
        return list(self.true_curves)

    @property
    def listener_ids(self) -> list:
        """Annotator ids in order, e.g. ``["L00", "L01", ...]``."""
        return list(self.listeners)

    @property
    def frame_offset(self) -> float:
        """Audio time in seconds of label frame 0."""
        return float(self.params["frame_offset"])

    @property
    def sample_rate(self) -> int:
        """Sample rate of the WAV files."""
        return int(self.params["sample_rate"])

    @property
    def song_frames(self) -> dict:
        """Label frames of each song, keyed by song id."""
        return {sid: len(curve) for sid, curve in self.true_curves.items()}

    @property
    def n_frames(self) -> int:
        """Label frames per song, when all songs have the same length.

        Raises
        ------
        ValueError
            If the songs differ in length (``duration`` was a range); use
            :attr:`song_frames`.
        """
        lengths = set(self.song_frames.values())
        if len(lengths) != 1:
            raise ValueError("The songs differ in length (duration was a range); use "
                             "song_frames for each song's number of frames.")
        return lengths.pop()

    def audio_path(self, song_id: str) -> Path:
        """Path of a song's WAV file."""
        if song_id not in self.true_curves:
            raise KeyError(f"Unknown song id {song_id!r}.")
        return self.root / AUDIO_DIR / f"{song_id}.wav"

    def annotator_table(self, split=None, *, test_size=0.25, random_state=None
                        ) -> AnnotationTable:
        """Listeners' labels, one row per (listener, song).

        Parameters
        ----------
        split : {None, "train", "test"}, default=None
            None: every row. ``"train"`` / ``"test"``: the two sides of
            :func:`~pdmer_datasets.split_listeners_and_songs`: test listeners
            are unseen in training AND the songs they are scored on are
            unseen in training; each test listener keeps at least two songs
            (one to adapt on, one or more to score).
        test_size : float or int, default=0.25
            Fraction (or number) of listeners, and of songs, held out.
        random_state : int, optional
            Seed of the split; default the data set's own ``random_state``,
            so that the "train" and "test" calls agree.

        Returns
        -------
        table : AnnotationTable
            ``X`` holds audio paths (str), ``y`` (n_frames, 2) float32
            labels, ``annotators`` the listener ids; rows are ordered by
            listener, then song.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be None, 'train' or 'test'; got {split!r} (the "
                             "synthetic data set has no validation split).")
        keys = list(self.annotations)
        table = AnnotationTable(
            X=[str(self.audio_path(s)) for _, s in keys],
            y=[self.annotations[k] for k in keys],
            annotators=np.array([a for a, _ in keys]),
            song_ids=np.array([s for _, s in keys]),
            frame_offset=self.frame_offset,
        )
        if split is None:
            return table
        seed = self.params["random_state"] if random_state is None else random_state
        train, test = table.split_listeners_and_songs(test_size, random_state=seed)
        return train if split == "train" else test

    def mean_table(self, split=None, *, test_size=0.25, random_state=None) -> AnnotationTable:
        """Labels averaged over each song's listeners, one row per song.

        Parameters
        ----------
        split, test_size, random_state
            As in :meth:`annotator_table`: with a split, the mean is over
            that side's listeners on that side's songs.

        Returns
        -------
        table : AnnotationTable
            Rows in song-id order; ``annotators`` is None.
        """
        table = self.annotator_table(split, test_size=test_size, random_state=random_state)
        order = np.argsort(table.song_ids, kind="stable")
        return table.subset(order).mean_labels()

    def expected_labels(self, listener_id: str, song_id: str) -> np.ndarray:
        """A listener's noise-free labels for any song, annotated or not.

        Useful as ground truth when evaluating personalization on songs the
        listener never annotated.

        Returns
        -------
        labels : ndarray of shape (n_frames, 2), float32
        """
        if listener_id not in self.listeners:
            raise KeyError(f"Unknown listener id {listener_id!r}.")
        if song_id not in self.true_curves:
            raise KeyError(f"Unknown song id {song_id!r}.")
        return self.listeners[listener_id].perceive(self.true_curves[song_id])
