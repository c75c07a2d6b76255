"""Parts of pdmer.experiments: splits, the DEAM rater check, tables and reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pdmer_datasets
from pdmer.experiments import (
    PRESETS,
    BenchmarkResult,
    convergence,
    load_split,
    markdown_table,
    seeds_summary,
    seen_listeners,
    split_listeners_and_songs,
)
from pdmer_datasets.table import AnnotationTable


def annotation_table(n_listeners=8, n_songs=12, per_listener=6, seed=0):
    rng = np.random.default_rng(seed)
    songs, who = [], []
    for i in range(n_listeners):
        for s in rng.choice(n_songs, per_listener, replace=False):
            songs.append(f"S{s:02d}")
            who.append(f"L{i}")
    return AnnotationTable(X=list(songs), y=[np.zeros((5, 2))] * len(songs),
                           annotators=np.array(who), song_ids=np.array(songs))


def test_split_holds_out_listeners_and_songs():
    table = annotation_table()
    train, test = split_listeners_and_songs(table, test_listeners=0.25, test_songs=0.25,
                                            random_state=3)
    assert not set(train.annotators) & set(test.annotators)
    assert len(set(test.annotators)) == 2
    # Every row of a held-out listener is in the test; training has no held-out song.
    assert len(test) == int(np.isin(table.annotators, list(set(test.annotators))).sum())
    held_out = set(table.song_ids) - set(train.song_ids)
    assert len(held_out) >= 3  # 3 held out (a song may also lose all its training raters)
    assert set(test.song_ids) & held_out
    again = split_listeners_and_songs(table, random_state=3)
    assert list(again[0].song_ids) == list(train.song_ids)
    with pytest.raises(ValueError, match="test_songs=0.01 leaves no song"):
        split_listeners_and_songs(table, test_songs=0.01)


class FakeDEAM:
    """pdmer_datasets.initialize("deam") stand-in: raters shared across splits."""

    data_home = "nowhere"

    def annotator_table(self, split):
        songs = ["1001", "1002", "1003"] if split == "train" else ["2001", "2002"]
        raters = ["W_a", "W_b", "W_c"] if split == "train" else ["W_b", "W_x", "W_y"]
        rows = [(s, r) for s in songs for r in raters]
        return AnnotationTable(X=[s for s, _ in rows], y=[np.zeros((6, 2))] * len(rows),
                               annotators=np.array([r for _, r in rows]),
                               song_ids=np.array([s for s, _ in rows]), frame_offset=15.0)


def test_deam_test_raters_seen_in_training_are_reported_and_can_be_dropped(monkeypatch):
    monkeypatch.setattr(pdmer_datasets, "initialize", lambda name, data_home=None: FakeDEAM())
    split = load_split("deam", "pdmer", PRESETS["tiny"], 0, "nowhere")
    assert list(seen_listeners(split.train, split.test)) == ["W_b"]
    assert split.scored.all()  # the paper's song split: no test song was trained on
    assert any("1 of 3 test annotators also annotated training songs" in note
               and "--unseen-listeners" in note for note in split.notes)
    unseen = load_split("deam", "pdmer", PRESETS["tiny"], 0, "nowhere", unseen_listeners=True)
    assert set(unseen.test.annotators) == {"W_x", "W_y"}
    assert any("were dropped" in note for note in unseen.notes)
    assert unseen.summary.startswith("3 training / 2 scored test songs, 9 / 4 labelled curves")


def test_markdown_table_is_the_one_writer():
    rows = {"a": {"x": 0.12345, "y": None, "z": True}, "b": {"x": math.nan, "y": 3, "z": False}}
    assert markdown_table(rows, {"x": "X", "y": "Y", "z": "Z"}, index="model").splitlines() == [
        "| model | X | Y | Z |", "|---|---:|---:|---:|", "| a | 0.123 |  | yes |",
        "| b |  | 3 | no |"]
    assert markdown_table(rows, ["x"], digits=1).splitlines()[0] == "| | x |"


def test_convergence_reads_early_stopping_when_there():
    class Fitted:
        n_episodes = 100
        best_episode_ = 59
        best_validation_ccc_ = 0.4
        history_ = {"validation_episode": [19, 39, 59, 79, 99]}

    assert convergence(Fitted()) == {"best_episode": 60, "episodes_run": 100,
                                     "best_validation_ccc": 0.4, "still_improving": False}
    stopped = Fitted()
    stopped.n_episodes_run_ = 60
    stopped.history_ = {"validation_episode": [19, 39, 59]}
    assert convergence(stopped)["episodes_run"] == 60
    assert convergence(stopped)["still_improving"] is True


def test_seeds_summary_averages_rows():
    def result(seed, ccc):
        row = {"table": "Table 2", "row": "DSAML", "model": "DSAML", "ccc_arousal": ccc,
               "ccc_valence": ccc, "ccc_mean": ccc, "spread": 0.8, "collapsed": False,
               "still_improving": seed == 0}
        return BenchmarkResult([row], [], {"seed": seed})

    text = seeds_summary([result(0, 0.5), result(1, 0.7)])
    assert "over seeds 0, 1" in text
    assert "| DSAML | 0.600 ± 0.100 | 0.600 ± 0.100 | 0.600 ± 0.100 | 0.800 | 0/2 | 1/2 |" in text
