"""The annotation table every pdmer data set loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class AnnotationTable:
    """Songs, their dynamic labels and who annotated them, one row per curve.

    A table unpacks straight into an estimator::

        X, y, annotators = table
        DSAMLRegressor().fit(*table)

    Parameters
    ----------
    X : list
        One audio item per row: a path, or a precomputed
        :class:`pdmer.features.SongFeatures`. A song annotated by several
        listeners appears in several rows.
    y : list of ndarray of shape (n_frames, 2)
        (arousal, valence) per 0.5 s frame for the row's song and annotator.
    annotators : ndarray of str or None
        Annotator id per row; None for mean-label tables.
    song_ids : ndarray of str
        Song id per row.
    frame_offset : float
        Audio time in seconds of label frame 0 (15.0 for DEAM).
    """

    X: list
    y: list
    annotators: np.ndarray | None
    song_ids: np.ndarray
    frame_offset: float = 0.0

    def __post_init__(self):
        self.X = list(self.X)
        self.y = [np.asarray(v, dtype=np.float32) for v in self.y]
        self.song_ids = np.asarray(self.song_ids).astype(str)
        if self.annotators is not None:
            self.annotators = np.asarray(self.annotators).astype(str)
        n = len(self.X)
        lengths = {"y": len(self.y), "song_ids": len(self.song_ids)}
        if self.annotators is not None:
            lengths["annotators"] = len(self.annotators)
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"AnnotationTable: X has {n} rows but {bad}.")

    def __iter__(self):
        return iter((self.X, self.y, self.annotators))

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        who = "mean labels" if self.annotators is None else (
            f"{len(np.unique(self.annotators))} annotators")
        return (f"AnnotationTable({len(self)} rows, "
                f"{len(np.unique(self.song_ids))} songs, {who})")

    def subset(self, rows: Sequence[int] | np.ndarray) -> "AnnotationTable":
        """The given rows (indices or a boolean mask) as a new table."""
        rows = np.arange(len(self))[np.asarray(rows)]
        return AnnotationTable(
            X=[self.X[i] for i in rows],
            y=[self.y[i] for i in rows],
            annotators=None if self.annotators is None else self.annotators[rows],
            song_ids=self.song_ids[rows],
            frame_offset=self.frame_offset,
        )

    def select_annotators(self, ids) -> "AnnotationTable":
        """Rows of the given annotators only."""
        self._require_annotators()
        ids = np.asarray(list(ids)).astype(str)
        unknown = np.setdiff1d(ids, self.annotators)
        if unknown.size:
            raise KeyError(f"Unknown annotator id(s): {', '.join(unknown[:5])}.")
        return self.subset(np.isin(self.annotators, ids))

    def split_annotators(self, test_size=0.2, random_state=None):
        """Split by annotator into (train, test) tables; no listener is in both."""
        self._require_annotators()
        ids = np.unique(self.annotators)
        rng = np.random.default_rng(random_state)
        n_test = int(round(test_size * len(ids))) if test_size < 1 else int(test_size)
        if not 0 < n_test < len(ids):
            raise ValueError(
                f"test_size={test_size} leaves no annotator on one side "
                f"({len(ids)} annotators)."
            )
        test_ids = rng.choice(ids, size=n_test, replace=False)
        test = np.isin(self.annotators, test_ids)
        return self.subset(~test), self.subset(test)

    def mean_labels(self) -> "AnnotationTable":
        """One row per song with labels averaged over its annotators.

        Curves of one song may differ in length; the mean covers the frames
        all of them share.
        """
        order = dict.fromkeys(self.song_ids)
        X, y = [], []
        for song in order:
            rows = np.flatnonzero(self.song_ids == song)
            n = min(len(self.y[i]) for i in rows)
            X.append(self.X[rows[0]])
            y.append(np.mean([self.y[i][:n] for i in rows], axis=0))
        return AnnotationTable(X=X, y=y, annotators=None,
                               song_ids=np.array(list(order)),
                               frame_offset=self.frame_offset)

    def _require_annotators(self):
        if self.annotators is None:
            raise ValueError("This table holds mean labels; it has no annotator ids.")
