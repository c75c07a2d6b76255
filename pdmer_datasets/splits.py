"""Train/test splits of annotation tables that keep listeners (and songs) apart.

Personalization is evaluated on listeners the model has never seen. When the
same songs are rated by training and test listeners, a model can also score
well by remembering the training listeners' mean curve of each song, which
says nothing about personalization; :func:`split_listeners_and_songs` holds
out songs as well, so that no scored song was heard in training.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils import check_scalar

__all__ = ["shared_annotators", "split_annotators", "split_listeners_and_songs"]


def _count(size, n: int) -> int:
    """``size`` as a count out of ``n``: a fraction in (0, 1), or a whole number."""
    return int(round(size * n)) if size < 1 else int(size)


def split_annotators(table, test_size=0.2, random_state=None):
    """Split by annotator into (train, test) tables; no listener is in both.

    Songs may appear on both sides (rated by a training and by a test
    listener); use :func:`split_listeners_and_songs` to hold them out too.

    Parameters
    ----------
    table : AnnotationTable
        A table with annotator ids.
    test_size : float or int, default=0.2
        Fraction (< 1) or number (>= 1) of annotators in the test table.
    random_state : int, numpy Generator or None

    Returns
    -------
    train, test : AnnotationTable
    """
    table._require_annotators()
    ids = np.unique(table.annotators)
    rng = np.random.default_rng(random_state)
    n_test = _count(test_size, len(ids))
    if not 0 < n_test < len(ids):
        raise ValueError(
            f"test_size={test_size} leaves no annotator on one side "
            f"({len(ids)} annotators).")
    test_ids = rng.choice(ids, size=n_test, replace=False)
    test = np.isin(table.annotators, test_ids)
    return table.subset(~test), table.subset(test)


def split_listeners_and_songs(table, test_size=0.25, *, test_songs=None, min_test_songs=2,
                              min_train_songs=2, random_state=None):
    """Split into (train, test) with unseen test listeners AND unseen test songs.

    Test listeners are drawn at random among those who rated at least
    ``min_test_songs`` songs. Test songs are then chosen so that every test
    listener keeps at least ``min_test_songs`` of their songs (one to adapt
    on, the others to score), and grown to about ``test_songs`` of all songs
    with the songs most test listeners rated. The test table holds the test
    listeners' rows on test songs; the training table the other listeners'
    rows on the other songs. Rows of training listeners on test songs and of
    test listeners on training songs are in neither table, and neither are
    training listeners left with fewer than ``min_train_songs`` songs.

    Parameters
    ----------
    table : AnnotationTable
        A table with annotator ids.
    test_size : float or int, default=0.25
        Fraction (< 1) or number (>= 1) of listeners held out.
    test_songs : float or int, optional
        Fraction (< 1) or number (>= 1) of songs held out (at least what the
        test listeners need); default the fraction of listeners held out.
    min_test_songs : int, default=2
        Songs each test listener keeps: 1 support song + at least 1 scored.
    random_state : int, numpy Generator or None

    Returns
    -------
    train, test : AnnotationTable
        No annotator and no song is in both.

    Raises
    ------
    ValueError
        If fewer listeners than asked rated ``min_test_songs`` songs, or
        no training row is left.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer_datasets import AnnotationTable
    >>> songs = ["s0", "s1", "s2", "s3", "s0", "s1", "s2", "s3", "s2", "s3"]
    >>> who = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"]
    >>> table = AnnotationTable(X=songs, y=[np.zeros((4, 2))] * 10,
    ...                         annotators=who, song_ids=songs)
    >>> train, test = table.split_listeners_and_songs(test_size=1, random_state=0)
    >>> set(train.song_ids) & set(test.song_ids), set(train.annotators) & set(test.annotators)
    (set(), set())
    """
    table._require_annotators()
    for name, value in (("min_test_songs", min_test_songs), ("min_train_songs", min_train_songs)):
        check_scalar(value, name, Integral, min_val=1)
    rng = np.random.default_rng(random_state)
    ids = np.unique(table.annotators)
    songs = np.unique(table.song_ids)
    songs_of = {a: set(table.song_ids[table.annotators == a]) for a in ids}
    eligible = np.array([a for a in ids if len(songs_of[a]) >= min_test_songs])
    n_test = _count(test_size, len(ids))
    if not 0 < n_test < len(ids):
        raise ValueError(f"test_size={test_size} leaves no annotator on one side "
                         f"({len(ids)} annotators).")
    if n_test > len(eligible):
        raise ValueError(
            f"test_size={test_size} asks for {n_test} test listeners, but only "
            f"{len(eligible)} rated at least min_test_songs={min_test_songs} songs.")
    test_ids = rng.choice(eligible, size=n_test, replace=False)
    # How many test listeners rated each song: prefer those songs (more test rows).
    votes = dict.fromkeys(songs, 0)
    for a in test_ids:
        for s in songs_of[a]:
            votes[s] += 1

    chosen: list = []

    def best(candidates, n):
        candidates = sorted(candidates)
        order = np.lexsort((rng.random(len(candidates)),
                            [-votes[s] for s in candidates]))
        return [candidates[i] for i in order[:n]]

    for a in test_ids:
        need = min_test_songs - len(songs_of[a].intersection(chosen))
        if need > 0:
            chosen += best(songs_of[a].difference(chosen), need)
    target = _count(n_test / len(ids) if test_songs is None else test_songs, len(songs))
    useful = [s for s in songs if votes[s] and s not in chosen]
    chosen += best(useful, max(0, target - len(chosen)))

    in_test_songs = np.isin(table.song_ids, chosen)
    in_test_ids = np.isin(table.annotators, test_ids)
    train = ~in_test_ids & ~in_test_songs
    ids_left, counts = np.unique(table.annotators[train], return_counts=True)
    train = table.subset(train & np.isin(table.annotators, ids_left[counts >= min_train_songs]))
    if not len(train):
        raise ValueError("The held-out songs leave no training rows; lower test_size "
                         "or test_songs.")
    return train, table.subset(in_test_ids & in_test_songs)


def shared_annotators(first, second) -> np.ndarray:
    """Annotator ids present in both tables (sorted), e.g. test listeners seen in training.

    Ids are compared as strings, as :class:`AnnotationTable` stores them.
    """
    first._require_annotators()
    second._require_annotators()
    return np.intersect1d(first.annotators, second.annotators)
