"""Training and test data of an experiment, and what the test may score.

Test splits hold out listeners AND songs:

* synthetic PDMER (``split="songs"``, the default): a quarter of the
  listeners and a quarter of the songs are held out
  (:func:`split_listeners_and_songs`). Training sees neither; a held-out
  listener may adapt on any of their songs, but only songs nobody annotated
  in training are scored. ``split="listeners"`` holds out listeners only (the
  earlier protocol, where every scored song was a training song, so the
  training listeners' mean curve of the song is a strong competitor);
* synthetic DMER: a quarter of the songs;
* DEAM: the paper's song split (training clips 1-2000, test songs 2001-2058).
  Its raters (WorkerIds) are not split: :func:`seen_listeners` finds test
  raters who also rated training songs, the run reports them, and
  ``unseen_listeners=True`` drops them from the test;
* PMEmo: the paper's song split (DMER only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SPLITS", "Split", "load_split", "seen_listeners", "split_listeners_and_songs"]

SPLITS = ("songs", "listeners")
"""Synthetic PDMER splits: hold out listeners and songs, or listeners only."""


@dataclass
class Split:
    """The training and test tables of a run, and notes for its report.

    Attributes
    ----------
    train, test : pdmer_datasets.table.AnnotationTable
    scored : ndarray of bool
        Test rows that may be scored (PDMER): rows whose song is not in the
        training data, unless the split holds out listeners only.
    summary : str
        Sizes, for the report.
    notes : list of str
        Facts the report must state (e.g. test raters seen in training).
    """

    train: object
    test: object
    scored: np.ndarray
    summary: str
    notes: list = field(default_factory=list)


def split_listeners_and_songs(table, *, test_listeners=0.25, test_songs=0.25, random_state=0):
    """Hold out listeners and songs: ``(train, test)`` tables.

    ``test`` holds every row of the held-out listeners; ``train`` the rows of
    the other listeners on songs that are not held out. Rows of held-out
    listeners on training songs can serve as support songs; only held-out
    songs should be scored (see :class:`Split`).

    Parameters
    ----------
    table : AnnotationTable
        Per-annotator rows.
    test_listeners, test_songs : float, default=0.25
        Fractions held out (a number of listeners / songs when >= 1).
    random_state : int, default=0

    Returns
    -------
    train, test : AnnotationTable

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer_datasets.table import AnnotationTable
    >>> from pdmer.experiments.splits import split_listeners_and_songs
    >>> songs, who = np.tile(["s1", "s2", "s3", "s4"], 4), np.repeat(["a", "b", "c", "d"], 4)
    >>> table = AnnotationTable(list(songs), [np.zeros((3, 2))] * 16, who, songs)
    >>> train, test = split_listeners_and_songs(table, random_state=0)
    >>> len(np.unique(test.annotators)), len(set(test.song_ids) - set(train.song_ids))
    (1, 1)
    """
    # TODO(integrator): when pdmer_datasets.synthetic has its song-disjoint
    # split, call it here (one line); Split.scored follows from the song ids.
    train, test = table.split_annotators(test_size=test_listeners, random_state=random_state)
    songs = np.unique(table.song_ids)
    n_test = int(round(test_songs * len(songs))) if test_songs < 1 else int(test_songs)
    if not 0 < n_test < len(songs):
        raise ValueError(f"test_songs={test_songs} leaves no song on one side "
                         f"({len(songs)} songs).")
    held_out = np.random.default_rng([random_state, 1]).choice(songs, n_test, replace=False)
    return train.subset(~np.isin(train.song_ids, held_out)), test


def seen_listeners(train, test) -> np.ndarray:
    """Test annotators who also annotated training rows."""
    if train.annotators is None or test.annotators is None:
        return np.array([], dtype=str)
    return np.intersect1d(train.annotators, test.annotators)


def load_split(dataset, task, preset, seed, data_home, *, split="songs",
               unseen_listeners=False, data_params=None) -> Split:
    """Load (or generate) a data set and split it for ``task``.

    Parameters
    ----------
    dataset : {"synthetic", "deam", "pmemo"}
    task : {"dmer", "pdmer"}
    preset : Preset
    seed : int
        Seeds the synthetic data and its split.
    data_home : str
    split : {"songs", "listeners"}, default="songs"
        Synthetic PDMER only, see the module's description.
    unseen_listeners : bool, default=False
        Drop test annotators who also annotated training songs.
    data_params : dict, optional
        Synthetic generator parameters on top of the preset's.

    Returns
    -------
    Split
    """
    import pdmer_datasets

    if dataset == "synthetic":
        from pdmer_datasets import synthetic

        data = synthetic.generate(data_home, random_state=seed, n_jobs=-1,
                                  **{**preset.data, **(data_params or {})})
        fractions = preset.split
        if task == "pdmer":
            table = data.annotator_table()
            if split == "songs":
                train, test = split_listeners_and_songs(
                    table, test_listeners=fractions["test_listeners"],
                    test_songs=fractions["test_songs"], random_state=seed)
            else:
                train, test = table.split_annotators(
                    test_size=fractions["test_listeners"], random_state=seed)
        else:
            table = data.mean_table()
            order = np.random.default_rng(seed).permutation(len(table))
            n_test = max(1, int(round(fractions["test_songs"] * len(table))))
            train, test = (table.subset(np.sort(order[n_test:])),
                           table.subset(np.sort(order[:n_test])))
    else:
        data = pdmer_datasets.initialize(dataset, data_home=data_home)
        if task == "pdmer" and dataset == "pmemo":
            raise ValueError("PMEmo has no per-annotator labels, so it has no PDMER task "
                             "(as in the paper); use --task dmer.")
        method = data.annotator_table if task == "pdmer" else data.mean_table
        try:
            train, test = method(split="train"), method(split="test")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"The {dataset} data set is not (completely) downloaded in "
                f"{data.data_home}: run `pdmer download {dataset}` (or pass --data-home "
                f"where it is). {err}") from err
    notes = []
    seen = seen_listeners(train, test)
    if len(seen) and (dataset != "synthetic" or task == "pdmer"):
        n_test = len(np.unique(test.annotators))
        if unseen_listeners:
            test = test.subset(~np.isin(test.annotators, seen))
            notes.append(f"{len(seen)} of {n_test} test annotators also annotated training "
                         "songs and were dropped (unseen listeners only).")
        else:
            notes.append(f"{len(seen)} of {n_test} test annotators also annotated training "
                         "songs: they are not unseen listeners. Rerun with unseen_listeners "
                         "(--unseen-listeners) to score only listeners absent from training.")
    if not len(train) or not len(test):
        raise ValueError(f"The {dataset} {task} split is empty ({len(train)} training and "
                         f"{len(test)} test rows).")
    overlap = np.isin(test.song_ids, train.song_ids)
    scored = ~overlap if (dataset != "synthetic" or split == "songs") else np.ones_like(overlap)
    if task == "pdmer" and overlap.any() and not scored.all():
        notes.append(f"{int(overlap.sum())} of {len(test)} test curves are of songs in the "
                     "training data: those songs can be adapted on but are not scored.")
    elif task == "pdmer" and overlap.all():
        notes.append("Listeners are held out but songs are not: every scored song was a "
                     "training song.")
    who = ("" if train.annotators is None else
           f", {len(np.unique(train.annotators))} training / "
           f"{len(np.unique(test.annotators))} test listeners")
    summary = (f"{len(np.unique(train.song_ids))} training / "
               f"{len(np.unique(test.song_ids[scored]))} scored test songs, "
               f"{len(train)} / {int(scored.sum())} labelled curves{who}")
    return Split(train, test, scored, summary, notes)


def data_home_for(dataset, data_home, output):
    """Where the data set is, or where the synthetic one is generated."""
    if dataset == "synthetic" and data_home is None:
        if output is None:
            raise ValueError("The synthetic data set needs a folder: give output or data_home.")
        return os.path.join(output, "data")
    return data_home
