"""pdmer's label CSV and data CSV formats, and load_table (a name or a data CSV)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import pdmer_datasets
from pdmer_datasets import AnnotationTable, read_data_csv, read_labels, synthetic, write_labels
from pdmer_datasets import write_data_csv

from helpers import LABEL_FILE_ERRORS


def esc(text):
    return text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")


# ------------------------------------------------------------------ label CSV
def test_label_csv_round_trip_and_offsets(tmp_path):
    curve = np.array([[0.1, -0.2], [0.3, 0.0], [0.25, 0.5]], dtype=np.float32)
    write_labels(tmp_path / "p.csv", curve, 15.0)
    assert (tmp_path / "p.csv").read_text().splitlines()[:2] == ["time,arousal,valence",
                                                                "15.0,0.100000,-0.200000"]
    labels, offset = read_labels(tmp_path / "p.csv")
    assert offset == 15.0
    np.testing.assert_allclose(labels, curve, atol=1e-6)
    (tmp_path / "f.csv").write_text("Frame, Arousal, Valence\n0,0.1,0.2\n1,0.1,0.2\n")
    assert read_labels(tmp_path / "f.csv", frame_offset=15.0)[1] == 15.0
    # A trailing comma (an unnamed empty column) is not a column.
    (tmp_path / "t.csv").write_text("time,arousal,valence,\n0.0,0.1,0.2,\n")
    assert read_labels(tmp_path / "t.csv")[0].shape == (1, 2)


@pytest.mark.parametrize("text, message", LABEL_FILE_ERRORS)
def test_label_csv_errors(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=esc(message)):
        read_labels(path)


def test_a_header_of_many_columns_is_refused_quickly_and_briefly(tmp_path):
    # Checking for repeated names was quadratic: 20k columns took seconds and
    # the message listed every one of them (issue 19).
    import time

    path = tmp_path / "wide.csv"
    path.write_text("time,arousal,valence," + ",".join(["x"] * 20_000) + "\n0,0,0\n")
    started = time.perf_counter()
    with pytest.raises(ValueError, match="wide.csv: the header has 20003 columns") as err:
        read_labels(path)
    assert time.perf_counter() - started < 0.5 and len(str(err.value)) < 300
    path.write_text("time,arousal,valence," + ",".join(f"c{i}" for i in range(12)) + "\n")
    with pytest.raises(ValueError, match=esc("unknown column(s) 'c0', 'c1', 'c2' and 9 more")):
        read_labels(path)


def test_a_huge_field_is_a_value_error_naming_the_file(tmp_path):
    # csv.Error escaped read_labels and the CLI's message named no file (issue 19).
    path = tmp_path / "big-field.csv"
    path.write_text("time,arousal,valence\n0," + "1" * 200_000 + ",0\n")
    with pytest.raises(ValueError, match="big-field.csv, line 2: .*field larger than"):
        read_labels(path)
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "data.csv").write_text("audio,labels\na.wav,big-field.csv\n")
    with pytest.raises(ValueError, match="data.csv, line 2: .*big-field.csv, line 2"):
        read_data_csv(tmp_path / "data.csv")


def test_audio_given_as_labels(tmp_path):
    sf.write(tmp_path / "song.wav", np.zeros(800), 8000)
    with pytest.raises(ValueError) as err:
        read_labels(tmp_path / "song.wav")
    assert "song.wav is not a text CSV of time,arousal,valence: it holds audio" in str(err.value)
    assert "codec" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="nowhere.csv does not exist"):
        read_labels(tmp_path / "nowhere.csv")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_labels(tmp_path)


# ------------------------------------------------------------------ data CSV
@pytest.fixture
def rows(tmp_path):
    """Two audio files (never decoded here) and three label files."""
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    (tmp_path / "labels").mkdir()
    for i in range(3):
        write_labels(tmp_path / "labels" / f"{i}.csv", np.full((4, 2), i / 10), 15.0)
    return tmp_path


def test_data_csv_with_annotators(rows):
    (rows / "data.csv").write_text("audio,labels,annotator\na.wav,labels/0.csv,1\n"
                                   f"{rows / 'b.wav'},labels/1.csv,L2\na.wav,labels/2.csv,L2\n")
    table = read_data_csv(rows / "data.csv")
    assert isinstance(table, AnnotationTable)
    assert table.X == [str(rows / "a.wav"), str(rows / "b.wav"), str(rows / "a.wav")]
    assert list(table.song_ids) == table.X and list(table.annotators) == ["1", "L2", "L2"]
    assert table.frame_offset == 15.0 and table.y[2][0, 0] == pytest.approx(0.2)
    assert table.description == f"{rows / 'data.csv'} (3 rows, 2 annotators)"
    assert len(table.mean_labels()) == 2


def test_data_csv_round_trip(rows, tmp_path):
    table = AnnotationTable(X=[str(rows / "a.wav"), str(rows / "b.wav")],
                            y=[np.zeros((3, 2)), np.ones((5, 2))], annotators=["x/1", "y"],
                            song_ids=["a", "b"], frame_offset=1.5)
    path = write_data_csv(tmp_path / "out" / "data.csv", table)
    back = read_data_csv(path)
    assert back.X == table.X and list(back.annotators) == ["x/1", "y"]
    assert back.frame_offset == 1.5
    for y1, y2 in zip(back.y, table.y):
        np.testing.assert_allclose(y1, y2)
    with pytest.raises(ValueError, match="must hold audio paths"):
        write_data_csv(tmp_path / "f.csv", AnnotationTable([object()], [np.zeros((1, 2))],
                                                           None, ["s"]))


@pytest.mark.parametrize("text, error, message", [
    ("", ValueError, "is empty"),
    ("audio,annotator\na.wav,1\n", ValueError, "must have the columns audio and labels"),
    ("audio,labels\n", ValueError, "lists no songs"),
    ("audio,labels,annotater\na.wav,labels/0.csv,1\n", ValueError,
     "unknown column(s) 'annotater'; the columns are audio, labels, annotator"),
    ("audio,labels\nmissing.wav,labels/0.csv\n", FileNotFoundError,
     "line 2: audio file not found"),
    ("audio,labels\na.wav,labels/9.csv\n", FileNotFoundError, "line 2: label file not found"),
    ("audio,labels\na.wav,a.wav\n", ValueError,
     "line 2: {root}/a.wav is not a text CSV of time,arousal,valence"),
    ("audio,labels\na.wav,\n", ValueError, "line 2: the labels column is empty"),
    ("audio,labels,annotator\na.wav,labels/0.csv, \n", ValueError, "line 2: the annotator is empty"),
    ("audio,labels\na.wav,labels/0.csv\nb.wav,labels/late.csv\n", ValueError,
     "start at different times"),
])
def test_data_csv_errors(rows, text, error, message):
    sf.write(rows / "a.wav", np.zeros(800), 8000)
    write_labels(rows / "labels" / "late.csv", np.zeros((4, 2)), 16.0)
    (rows / "data.csv").write_text(text)
    with pytest.raises(error, match=esc(message.format(root=rows))):
        read_data_csv(rows / "data.csv")


def test_binary_data_csv(tmp_path):
    sf.write(tmp_path / "data.csv", np.zeros(800), 8000, format="WAV")
    with pytest.raises(ValueError, match="is not a text CSV of audio,labels"):
        read_data_csv(tmp_path / "data.csv")


# ------------------------------------------------------------------ load_table
def test_load_table_from_a_name_or_a_csv(rows, tmp_path):
    data = synthetic.generate(tmp_path / "syn", n_songs=8, n_listeners=8, songs_per_listener=4,
                              duration=2.0, sample_rate=8000)
    train = pdmer_datasets.load_table("synthetic", data_home=data.root, split="train")
    test = pdmer_datasets.load_table("Synthetic", data_home=data.root, split="test")
    assert not set(train.song_ids) & set(test.song_ids)
    assert train.description == f"synthetic train split ({len(train)} rows, annotator labels)"
    mean = pdmer_datasets.load_table("synthetic", data_home=data.root, split="test",
                                     labels="mean")
    assert mean.annotators is None and "mean labels" in mean.description

    (rows / "data.csv").write_text("audio,labels,annotator\na.wav,labels/0.csv,1\n"
                                   "b.wav,labels/1.csv,2\na.wav,labels/2.csv,2\n")
    table = pdmer_datasets.load_table(rows / "data.csv", labels="mean")
    assert len(table) == 2 and table.description.endswith("(2 songs, mean labels)")
    with pytest.raises(ValueError, match="neither a data set .deam, pmemo, synthetic."):
        pdmer_datasets.load_table(tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match="labels must be"):
        pdmer_datasets.load_table("synthetic", labels="median")


def test_registry_lists_every_data_set_once():
    from pdmer_datasets import DATASETS, deam, pmemo

    assert pdmer_datasets.list_datasets() == sorted(DATASETS)
    assert DATASETS["deam"].parts == ("audio", "annotations", "metadata")
    assert deam.REMOTES is DATASETS["deam"].remotes and pmemo.REMOTES is DATASETS["pmemo"].remotes
    assert [n for n, d in DATASETS.items() if d.annotators] == ["deam", "synthetic"]
    assert [n for n, d in DATASETS.items() if d.downloadable] == ["deam", "pmemo"]
    assert deam.LICENSE_INFO == DATASETS["deam"].license
