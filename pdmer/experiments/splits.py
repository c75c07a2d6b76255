"""Training and test data of an experiment, and what the test may score.

Test splits hold out listeners AND songs:

* synthetic PDMER (``split="songs"``, the default): a quarter of the
  listeners and a quarter of the songs are held out
  (:func:`pdmer_datasets.split_listeners_and_songs`): training sees neither,
  and a held-out listener adapts on one of their held-out songs and is scored
  on the others. ``split="listeners"`` holds out listeners only (the
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

__all__ = ["SPLITS", "Split", "load_split", "seen_listeners"]

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
    listener_kinds : dict of str -> str
        Each listener's kind where the data set knows it (synthetic:
        :data:`pdmer_datasets.synthetic.LISTENER_KINDS`), else empty.
    """

    train: object
    test: object
    scored: np.ndarray
    summary: str
    notes: list = field(default_factory=list)
    listener_kinds: dict = field(default_factory=dict)


def seen_listeners(train, test) -> np.ndarray:
    """Test annotators who also annotated training rows."""
    if train.annotators is None or test.annotators is None:
        return np.array([], dtype=str)
    return np.intersect1d(train.annotators, test.annotators)


def load_split(dataset, task, preset, seed, data_home, *, split="songs",
               unseen_listeners=False, data_params=None, train_without_kinds=()) -> Split:
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
    train_without_kinds : sequence of str, default=()
        Synthetic PDMER: drop the training listeners of these kinds, so the
        test listeners of these kinds are of a kind training never saw.

    Returns
    -------
    Split
    """
    import pdmer_datasets

    kinds = {}
    if dataset == "synthetic":
        from pdmer_datasets import synthetic

        data = synthetic.generate(data_home, random_state=seed, n_jobs=-1,
                                  **{**preset.data, **(data_params or {})})
        kinds = {who: listener.kind for who, listener in data.listeners.items()}
        fractions = preset.split
        if task == "pdmer":
            table = data.annotator_table()
            if split == "songs":
                train, test = table.split_listeners_and_songs(
                    test_size=fractions["test_listeners"], test_songs=fractions["test_songs"],
                    random_state=seed)
            else:
                train, test = table.split_annotators(
                    test_size=fractions["test_listeners"], random_state=seed)
            if train_without_kinds:
                unseen = [who for who, kind in kinds.items() if kind in train_without_kinds]
                train = train.subset(np.flatnonzero(~np.isin(train.annotators, unseen)))
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
    if train_without_kinds:
        notes.append(f"Training listeners of kind(s) {', '.join(train_without_kinds)} were "
                     "dropped: test listeners of those kinds are of a kind training never saw.")
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
    return Split(train, test, scored, summary, notes, kinds)


def data_home_for(dataset, data_home, output):
    """Where the data set is, or where the synthetic one is generated."""
    if dataset == "synthetic" and data_home is None:
        if output is None:
            raise ValueError("The synthetic data set needs a folder: give output or data_home.")
        return os.path.join(output, "data")
    return data_home
