"""AnnotationTable: annotator ids, splits that hold out listeners and songs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pdmer_datasets
from pdmer_datasets import AnnotationTable


def random_table(n_listeners=12, n_songs=20, per_listener=8, seed=0):
    rng = np.random.default_rng(seed)
    who, songs = [], []
    for a in range(n_listeners):
        for s in rng.choice(n_songs, per_listener, replace=False):
            who.append(f"A{a}")
            songs.append(f"S{s:02d}")
    y = [np.full((4, 2), i, dtype=np.float32) for i in range(len(who))]
    return AnnotationTable(X=[f"{s}.wav" for s in songs], y=y, annotators=who, song_ids=songs,
                           frame_offset=1.5, description="random rows")


@pytest.mark.parametrize("seed", range(5))
def test_split_listeners_and_songs_holds_out_both(seed):
    table = random_table(seed=seed)
    train, test = table.split_listeners_and_songs(test_size=0.25, random_state=seed)
    assert not set(train.annotators) & set(test.annotators)
    assert not set(train.song_ids) & set(test.song_ids)
    assert len(np.unique(test.annotators)) == 3
    for side in (train, test):
        ids, counts = np.unique(side.annotators, return_counts=True)
        assert counts.min() >= 2, ids[counts.argmin()]
    assert test.frame_offset == train.frame_offset == 1.5
    assert train.description == "random rows"
    # Rows are the table's own, unchanged.
    rows = {float(y[0, 0]) for y in train.y} | {float(y[0, 0]) for y in test.y}
    assert len(rows) == len(train) + len(test)
    # Same seed, same split.
    again = table.split_listeners_and_songs(test_size=0.25, random_state=seed)[1]
    assert list(again.song_ids) == list(test.song_ids)


def test_split_song_count_and_minimum_songs():
    table = random_table()
    train, test = table.split_listeners_and_songs(test_size=2, test_songs=10,
                                                  min_test_songs=3, random_state=1)
    assert len(np.unique(test.annotators)) == 2
    assert len(np.unique(test.song_ids)) <= 10
    assert min(np.unique(test.annotators, return_counts=True)[1]) >= 3
    with pytest.raises(ValueError, match="only 0 rated at least"):
        table.split_listeners_and_songs(min_test_songs=9)
    with pytest.raises(ValueError, match="leaves no annotator"):
        table.split_listeners_and_songs(test_size=12)
    with pytest.raises(ValueError, match="min_test_songs"):
        table.split_listeners_and_songs(min_test_songs=0)
    with pytest.raises(ValueError, match="mean labels"):
        table.mean_labels().split_listeners_and_songs()


def test_split_annotators_is_unchanged():
    # The listener-only split draws as it always has (the demo and benchmark
    # results depend on it).
    table = random_table()
    train, test = table.split_annotators(test_size=0.25, random_state=3)
    ids = np.unique(table.annotators)
    expected = np.random.default_rng(3).choice(ids, size=3, replace=False)
    assert set(test.annotators) == set(expected)
    assert set(train.annotators) == set(ids) - set(expected)
    assert set(train.song_ids) & set(test.song_ids)  # songs are shared


def test_shared_and_dropped_annotators():
    table = random_table()
    first = table.select_annotators(["A0", "A1", "A2"])
    second = table.select_annotators(["A2", "A3"])
    assert list(pdmer_datasets.shared_annotators(first, second)) == ["A2"]
    unseen = second.drop_annotators(pdmer_datasets.shared_annotators(first, second))
    assert set(unseen.annotators) == {"A3"}
    with pytest.raises(KeyError, match="Unknown annotator"):
        table.drop_annotators(["nobody"])


@pytest.mark.parametrize("ids, message", [
    ([None, "a"], "row 0 has no annotator id"),
    (["a", float("nan")], "row 1 has no annotator id"),
    (np.array([1.0, np.nan]), "row 1 has no annotator id"),
    (["a", "  "], "row 1 has an empty annotator id"),
    ([["a"], ["b"]], "one id per row"),
])
def test_missing_annotator_ids_are_refused(ids, message):
    with pytest.raises(ValueError, match=message):
        AnnotationTable(X=["x", "y"], y=[np.zeros((2, 2))] * 2, annotators=ids,
                        song_ids=["x", "y"])


def test_ids_are_compared_as_strings():
    y = [np.zeros((2, 2))] * 3
    with pytest.warns(UserWarning, match="compared as strings and name the same listener '1'"):
        table = AnnotationTable(X=["a", "b", "c"], y=y, annotators=[1, "1", 2],
                                song_ids=["a", "b", "c"])
    assert list(table.annotators) == ["1", "1", "2"]
    assert len(table.select_annotators([1])) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ints = AnnotationTable(X=["a", "b"], y=y[:2], annotators=np.array([7, 8]),
                               song_ids=["a", "b"])
    assert list(ints.annotators) == ["7", "8"]
