"""pdmer.plotting: curves over time and the valence-arousal trajectory."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pdmer.plotting import QUADRANTS, plot_curves, plot_song, plot_trajectory  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def curve(n=30, phase=0.0, scale=0.8):
    t = np.linspace(0, 6, n) + phase
    return scale * np.column_stack([np.sin(t), np.cos(t)])


def test_curves_time_axis_starts_at_the_frame_offset():
    fig = plot_curves(curve(), truth=curve(phase=0.3), personalized=curve(scale=0.7),
                      others={"baseline": curve(scale=0.2)}, frame_offset=15.0)
    arousal, valence = fig.axes[:2]
    assert (arousal.get_ylabel(), valence.get_ylabel()) == ("arousal", "valence")
    lines = [line for line in arousal.get_lines() if line.get_label()[0] != "_"]
    assert [line.get_label() for line in lines] == [
        "listener's labels", "prediction", "personalized", "baseline"]
    x, y = lines[1].get_data()
    np.testing.assert_allclose(x, 15.0 + 0.5 * np.arange(30))
    np.testing.assert_allclose(y, curve()[:, 0])  # arousal is column 0
    np.testing.assert_allclose(valence.get_lines()[1].get_data()[1], curve()[:, 1])
    assert valence.get_xlim()[0] == 15.0


def test_curves_labels_and_value_range():
    fig = plot_curves(curve(), labels={"prediction": "DSAML"}, value_range=(0, 1))
    ax = fig.axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "DSAML"
    low, high = ax.get_ylim()
    assert low < 0 < 1 < high < 1.1


def test_trajectory_plots_valence_against_arousal_with_quadrant_names():
    c = curve()
    fig = plot_trajectory(c, frame_offset=2.0)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("valence", "arousal")
    assert {t.get_text() for t in ax.texts} == set(QUADRANTS)
    # A single curve is one time-coloured path plus a colour bar in seconds.
    [path] = ax.collections
    segments = path.get_segments()
    np.testing.assert_allclose(segments[0][0], c[0, ::-1])
    assert path.get_array().min() > 2.0
    assert fig.axes[1].get_ylabel() == "time (s)"
    # The quadrant names sit where their signs say: happy top right.
    happy = next(t for t in ax.texts if t.get_text() == "happy")
    assert happy.get_position()[0] > 0.5 and happy.get_position()[1] > 0.5


def test_trajectory_of_several_curves_has_a_legend():
    fig = plot_trajectory(curve(), truth=curve(phase=1))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["listener's labels", "prediction"]


def test_song_figure_saved_atomically_as_png(tmp_path):
    out = tmp_path / "sub" / "song.png"
    fig = plot_song(curve(), truth=curve(phase=0.5), title="S000", path=out)
    assert len(fig.axes) == 3
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in out.parent.iterdir()] == ["song.png"]  # no temporary left
    plot_curves(curve(), path=tmp_path / "curves.svg")
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()[:500]


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        plot_curves(curve(), path=tmp_path / "curves.unknownformat")
    assert list(tmp_path.iterdir()) == []


def test_draws_into_given_axes():
    fig, axes = plt.subplots(2, 2)
    assert plot_curves(curve(), axes=axes[:, 0]) is fig
    assert plot_trajectory(curve(), ax=axes[0, 1]) is fig
    with pytest.raises(ValueError, match="two Axes"):
        plot_curves(curve(), axes=[axes[0, 0]])


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Nothing to plot"),
    ({"prediction": np.zeros((5, 3))}, r"prediction must have shape \(n_frames, 2\)"),
    ({"truth": np.zeros(5)}, "truth must have shape"),
    ({"prediction": np.zeros((5, 2)), "labels": {"model": "x"}}, "labels keys"),
])
def test_bad_input_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_curves(**kwargs)
