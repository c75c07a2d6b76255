"""Parts of pdmer.experiments: splits, the DEAM rater check, tables and reports."""

from __future__ import annotations

import math

import numpy as np

import pdmer_datasets
from pdmer.experiments import (
    PRESETS,
    BenchmarkResult,
    convergence,
    load_split,
    markdown_table,
    seeds_summary,
    seen_listeners,
)
from pdmer_datasets.table import AnnotationTable


def test_synthetic_pdmer_split_holds_out_listeners_and_songs(tmp_path):
    # The experiment uses the data layer's split: neither a test listener nor
    # a test song is seen in training, so every test row may be scored.
    split = load_split("synthetic", "pdmer", PRESETS["tiny"], 3, str(tmp_path))
    assert not set(split.train.annotators) & set(split.test.annotators)
    assert not set(split.train.song_ids) & set(split.test.song_ids)
    assert split.scored.all() and len(split.scored) == len(split.test)


def test_a_kind_can_be_left_out_of_training(tmp_path):
    mix = {"typical": 0.5, "reversed": 0.5}
    split = load_split("synthetic", "pdmer", PRESETS["tiny"], 0, str(tmp_path),
                       data_params={"listener_mix": mix}, train_without_kinds=["reversed"])
    kinds = split.listener_kinds
    assert {kinds[a] for a in split.train.annotators} == {"typical"}
    assert "reversed" in {kinds[a] for a in split.test.annotators}
    assert any("never saw" in note for note in split.notes)


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


def test_convergence_reads_early_stopping():
    class Fitted:
        n_episodes_run_ = 100
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


# ------------------------------------------------------- results.png: data apart
def _plot_result(dataset):
    from pdmer.experiments.reporting import BenchmarkResult

    rows = [{"table": "Table 2", "row": name, "ccc_arousal": 0.8, "ccc_valence": 0.7,
             "paper_ccc_arousal": paper, "paper_ccc_valence": paper}
            for name, paper in (("DSAML", 0.377), ("CRNN†", None))]
    settings = {"task": "pdmer", "dataset": dataset, "paper_dataset": "deam",
                "preset": "tiny", "seed": 0}
    return BenchmarkResult(rows, [], settings)


def test_results_plot_keeps_synthetic_scores_apart_from_the_papers():
    import matplotlib.pyplot as plt

    from pdmer.experiments.reporting import plot_figure

    fig = plot_figure(_plot_result("synthetic"))
    try:
        run, paper = fig.axes
        # No paper marks on the synthetic run's panel; the paper's own panel says DEAM.
        assert len(run.collections) == 0 and "this run, on synthetic" in run.get_title()
        assert paper.get_title() == "the paper's numbers, on DEAM"
        assert "CCC arousal, paper (DEAM)" in paper.get_legend_handles_labels()[1]
        assert not any("paper" in label for label in run.get_legend_handles_labels()[1])
        notes = " ".join(t.get_text() for t in fig.texts)
        assert "not comparable" in notes and "synthetic" in notes
    finally:
        plt.close(fig)


def test_results_plot_marks_the_papers_numbers_on_a_run_on_the_papers_data():
    import matplotlib.pyplot as plt

    from pdmer.experiments.reporting import plot_figure

    fig = plot_figure(_plot_result("deam"))
    try:
        (ax,) = fig.axes
        assert len(ax.collections) == 2  # paper marks for arousal and valence
        assert not any("not comparable" in t.get_text() for t in fig.texts)
    finally:
        plt.close(fig)
