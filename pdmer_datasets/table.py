"""The annotation table: the one container of labelled songs in pdmer.

Every loader (DEAM, PMEmo, the synthetic set) and the data CSV reader
(:func:`pdmer_datasets.read_data_csv`) return one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pdmer_datasets.splits import split_annotators, split_listeners_and_songs


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
    annotators : array-like of str, or None
        Annotator id per row; None for mean-label tables. Ids are compared
        as strings: ``1`` and ``"1"`` name the same listener (a warning says
        so when a table mixes them). None, NaN and empty ids are refused.
    song_ids : array-like of str
        Song id per row (for a data CSV, the audio path).
    frame_offset : float, default=0.0
        Audio time in seconds of label frame 0 (15.0 for DEAM).
    description : str, default=""
        Where the rows come from, for messages (e.g. ``"deam train split
        (2000 rows, annotator labels)"``).
    """

    X: list
    y: list
    annotators: np.ndarray | None
    song_ids: np.ndarray
    frame_offset: float = 0.0
    description: str = ""

    def __post_init__(self):
        self.X = list(self.X)
        self.y = [np.asarray(v, dtype=np.float32) for v in self.y]
        self.song_ids = np.asarray(self.song_ids).astype(str)
        if self.annotators is not None:
            self.annotators = annotator_ids(self.annotators)
        self.frame_offset = float(self.frame_offset)
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
            description=self.description,
        )

    def select_annotators(self, ids) -> "AnnotationTable":
        """Rows of the given annotators only."""
        return self.subset(np.isin(self.annotators, self._known(ids)))

    def drop_annotators(self, ids) -> "AnnotationTable":
        """Rows of every annotator except the given ones.

        Examples
        --------
        Test listeners who also rated training songs, dropped::

            test = test.drop_annotators(pdmer_datasets.shared_annotators(train, test))
        """
        return self.subset(~np.isin(self.annotators, self._known(ids)))

    def split_annotators(self, test_size=0.2, random_state=None):
        """Split by annotator into (train, test) tables; no listener is in both.

        See :func:`pdmer_datasets.split_annotators`.
        """
        return split_annotators(self, test_size, random_state)

    def split_listeners_and_songs(self, test_size=0.25, *, test_songs=None,
                                  min_test_songs=2, random_state=None):
        """Split into (train, test) with unseen test listeners and unseen test songs.

        See :func:`pdmer_datasets.split_listeners_and_songs`.
        """
        return split_listeners_and_songs(
            self, test_size, test_songs=test_songs, min_test_songs=min_test_songs,
            random_state=random_state)

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
                               frame_offset=self.frame_offset,
                               description=self.description)

    def _known(self, ids) -> np.ndarray:
        self._require_annotators()
        ids = np.asarray(list(ids)).astype(str)
        unknown = np.setdiff1d(ids, self.annotators)
        if unknown.size:
            raise KeyError(f"Unknown annotator id(s): {', '.join(unknown[:5])}.")
        return ids

    def _require_annotators(self):
        if self.annotators is None:
            raise ValueError("This table holds mean labels; it has no annotator ids.")


def annotator_ids(values) -> np.ndarray:
    """Annotator ids as a str array; refuses missing ids, warns on colliding ones.

    Ids are compared as strings (``str(id)``). A table that mixes e.g. the
    int ``1`` and the str ``"1"`` would silently merge two listeners into
    one, so a warning names them.
    """
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise ValueError(f"annotators must be one id per row (1-D); got shape {array.shape}.")
    if array.dtype.kind not in "US":  # ints, floats or mixed objects: look at each value
        raw = array.tolist()
        for row, value in enumerate(raw):
            if value is None or (isinstance(value, float) and value != value):
                raise ValueError(
                    f"annotators: row {row} has no annotator id ({value!r}); give every "
                    "row an id, or pass annotators=None for mean labels.")
        by_text: dict = {}
        for value in raw:
            by_text.setdefault(str(value), set()).add((type(value).__name__, repr(value)))
        mixed = {text: kinds for text, kinds in by_text.items() if len(kinds) > 1}
        if mixed:
            text, kinds = next(iter(mixed.items()))
            warnings.warn(
                f"annotator ids {' and '.join(sorted(r for _, r in kinds))} are compared as "
                f"strings and name the same listener {text!r} ({len(mixed)} such id(s)); "
                "use one type for all ids if they are different people.", UserWarning,
                stacklevel=3)
    array = array.astype(str)
    empty = np.flatnonzero(np.char.strip(array) == "")
    if empty.size:
        raise ValueError(f"annotators: row {empty[0]} has an empty annotator id; give every "
                         "row an id, or pass annotators=None for mean labels.")
    return array
