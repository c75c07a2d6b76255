"""The train, personalize, predict, evaluate and info commands, run end to end
with CliRunner on a tiny synthetic data set and a tiny DSAML."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers import (CLI_FEATURES, LABEL_FILE_ERRORS, TINY_MODEL, one_line_error, run_cli,
                     write_label_csv)
from pdmer import ListenerAdaptation, load
from pdmer_datasets import load_table, read_labels, synthetic

FEATURES = CLI_FEATURES
DATA = dict(n_songs=4, n_listeners=3, songs_per_listener=3, duration=3.0, sample_rate=16000)
run = run_cli


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Synthetic songs, per-row label CSVs, a data CSV, a config and a trained model."""
    root = tmp_path_factory.mktemp("cli")
    data = synthetic.generate(root / "synthetic", random_state=0, **DATA)
    table = data.annotator_table()
    labels_dir = root / "labels"
    labels_dir.mkdir()
    with open(root / "data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("audio", "labels", "annotator"))
        for x, y, who, song in zip(table.X, table.y, table.annotators, table.song_ids):
            label_file = write_label_csv(labels_dir / f"{who}-{song}.csv", y)
            # Relative paths resolve against the data CSV's folder.
            writer.writerow((x, label_file.relative_to(root), who))
    config = root / "tiny.json"
    config.write_text(json.dumps(dict(TINY_MODEL, front_end=FEATURES)))
    n_threads = torch.get_num_threads()
    try:
        result = run("train", root / "data.csv", "-o", root / "model.safetensors",
                     "--config", config, "--threads", 1, "-q")
    finally:
        torch.set_num_threads(n_threads)
    assert result.exit_code == 0, result.output
    return dict(root=root, data=data, table=table, config=config,
                model=root / "model.safetensors", train_output=result.output)


# ----------------------------------------------------------------------- train
def test_train_from_data_csv_saves_a_model(workspace):
    assert "Saved DSAMLRegressor" in workspace["train_output"]
    assert "tasks by annotator" in workspace["train_output"]
    model = load(workspace["model"])
    assert model.d_model == TINY_MODEL["d_model"]
    assert model.front_end.n_mels == 16 and model.front_end.sample_rate == 16000


def test_train_param_overrides_config_and_mean_labels(workspace, tmp_path):
    out = tmp_path / "m.safetensors"
    result = run("train", workspace["root"] / "data.csv", "-o", out, "--config",
                 workspace["config"], "-p", "n_episodes=2", "-p", "dropout=0.0",
                 "-p", "front_end__n_mels=12", "--labels", "mean", "-q")
    assert result.exit_code == 0, result.output
    assert "tasks by song" in result.output
    model = load(out)
    assert (model.n_episodes, model.dropout, model.front_end.n_mels) == (2, 0.0, 12)
    assert len(model.history_["loss"]) == 2


def test_train_reads_the_synthetic_data_set_by_name(workspace, tmp_path):
    out = tmp_path / "m.safetensors"
    result = run("train", "synthetic", "--data-home", workspace["data"].root, "-o", out,
                 "--config", workspace["config"], "-p", "n_episodes=1")
    assert result.exit_code == 0, result.output
    assert load(out).tasks_ == "annotator"
    # The model card names the data set and its licence (tests/test_model_sharing.py).
    card = (tmp_path / "m.md").read_text()
    assert "Data set: **Synthetic songs and simulated listeners" in card
    assert "Training data licence: Part of pdmer (Apache-2.0)" in card
    assert f"Model card (data, settings, scores, licence): {tmp_path / 'm.md'}" in result.stderr
    assert load(out).training_data_["dataset"]["name"].startswith("Synthetic songs")
    # The training split only: the test split's listeners and songs stay unseen.
    train = load_table("synthetic", data_home=workspace["data"].root, split="train")
    assert 0 < len(train) < len(workspace["table"])
    assert f"on synthetic train split ({len(train)} rows, annotator labels)" in result.stderr
    usage = " ".join(run("train", "--help").output.split())
    assert "only the training split is used" in usage and "[default: train]" in usage


@pytest.mark.parametrize("split, code, message", [
    ("validation", 1, "the synthetic data set has no validation split"),
    ("dev", 2, "Invalid value for '--split'"),
])
def test_train_refuses_a_split_the_data_set_lacks(workspace, tmp_path, split, code, message):
    out = tmp_path / "m.safetensors"
    result = run("train", "synthetic", "--data-home", workspace["data"].root, "-o", out,
                 "--split", split, "-q")
    assert result.exit_code == code
    assert message in one_line_error(result) and not out.exists()


def test_train_a_raw_audio_baseline_by_name(workspace, tmp_path):
    # DNN learns from the waveform: its default front end keeps raw audio,
    # and the front-end settings still reach it through front_end__.
    out = tmp_path / "dnn.safetensors"
    result = run("train", workspace["root"] / "data.csv", "-o", out, "--model", "dnn",
                 "-p", "size=small", "-p", "n_episodes=1", "-p", "tasks_per_step=2",
                 "-p", "n_query=2", "-p", "inner_steps=1", "-p", "device=cpu",
                 "-p", "front_end__sample_rate=16000", "-p", "front_end__n_mels=16",
                 "-p", "front_end__waveform_rate=4000", "-q")
    assert result.exit_code == 0, result.output
    model = load(out)
    assert type(model).__name__ == "DNNRegressor"
    assert model.front_end.waveform_rate == 4000
    assert model.feature_spec_["n_waveform_samples"] == 2000


@pytest.mark.parametrize("args, message", [
    (["-p", "n_layerz=2"], "has no parameter 'n_layerz'"),
    (["-p", "n_layers"], "not of the form key=value"),
    (["--model", "svm"], "unknown model 'svm'; choose one of"),
    (["-p", "n_episodes=0"], "'n_episodes' parameter of DSAMLRegressor must be an int"),
])
def test_train_rejects_bad_settings(workspace, tmp_path, args, message):
    out = tmp_path / "m.safetensors"
    result = run("train", workspace["root"] / "data.csv", "-o", out, "--config",
                 workspace["config"], "-q", *args)
    assert result.exit_code != 0
    assert message in one_line_error(result)
    assert not out.exists()


def test_train_rejects_unknown_data(tmp_path):
    result = run("train", tmp_path / "nothing.txt", "-o", tmp_path / "m.safetensors")
    assert result.exit_code == 2
    assert "neither a data set" in one_line_error(result)


def test_annotator_labels_of_a_mean_label_data_set_are_refused(tmp_path):
    # Checked against the registry before anything is loaded.
    result = run("train", "pmemo", "--data-home", tmp_path / "absent", "-o",
                 tmp_path / "m.safetensors")
    assert result.exit_code == 2
    assert "pmemo publishes mean labels only" in one_line_error(result)
    assert "use --labels mean" in result.output


def test_train_refuses_unknown_columns_of_a_data_csv(workspace, tmp_path):
    # A misspelt annotator column used to be ignored: mean labels, silently.
    data_csv = tmp_path / "data.csv"
    labels = write_label_csv(tmp_path / "labels.csv", workspace["table"].y[0])
    data_csv.write_text(f"audio,labels,annotater\n{workspace['table'].X[0]},{labels},L1\n")
    result = run("train", data_csv, "-o", tmp_path / "m.safetensors", "-q")
    assert result.exit_code == 1
    error = one_line_error(result)
    assert f"{data_csv}: unknown column(s) 'annotater'" in error


def test_train_names_a_misaligned_label_file(workspace, tmp_path):
    bad = write_label_csv(tmp_path / "long.csv", np.zeros((40, 2)))  # 20 s for a 3 s song
    data_csv = tmp_path / "data.csv"
    data_csv.write_text(f"audio,labels\n{workspace['table'].X[0]},{bad}\n"
                        f"{workspace['table'].X[1]},{bad}\n")
    result = run("train", data_csv, "-o", tmp_path / "m.safetensors", "--config",
                 workspace["config"], "-q")
    assert result.exit_code == 1
    assert "has 40 frames but song" in one_line_error(result)


# ------------------------------------------------------------------ personalize
def test_personalize_writes_a_small_listener_file(workspace, tmp_path):
    table = workspace["table"]
    labels = write_label_csv(tmp_path / "mine.csv", table.y[0])
    out = tmp_path / "listener.safetensors"
    result = run("personalize", workspace["model"], table.X[0], labels, "-o", out,
                 "--steps", 3)
    assert result.exit_code == 0, result.output
    listener = ListenerAdaptation.load(out)
    assert listener.model_id == load(workspace["model"]).model_id_
    assert listener.info["steps"] == 3 and listener.info["n_frames"] == len(table.y[0])
    assert out.stat().st_size < workspace["model"].stat().st_size


def test_personalize_accepts_frame_columns(workspace, tmp_path):
    table = workspace["table"]
    labels = write_label_csv(tmp_path / "frames.csv", table.y[0], clock="frame")
    result = run("personalize", workspace["model"], table.X[0], labels, "-o",
                 tmp_path / "l.safetensors")
    assert result.exit_code == 0, result.output


def test_personalize_rejects_labels_off_the_grid(workspace, tmp_path):
    labels = tmp_path / "gap.csv"
    labels.write_text("time,arousal,valence\n0.0,0.1,0.2\n0.5,0.1,0.2\n1.5,0.1,0.2\n")
    out = tmp_path / "l.safetensors"
    result = run("personalize", workspace["model"], workspace["table"].X[0], labels, "-o", out)
    assert result.exit_code == 1
    assert "gap.csv, line 4: time jumps from 0.5 to 1.5" in one_line_error(result)
    assert not out.exists()


# ---------------------------------------------------------------------- predict
def read_prediction(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time", "arousal", "valence"]
    return np.array(rows[1:], dtype=float)


def test_predict_writes_csv_and_plots_for_a_listener(workspace, tmp_path):
    data, table = workspace["data"], workspace["table"]
    listener = tmp_path / "listener.safetensors"
    labels = write_label_csv(tmp_path / "mine.csv", table.y[0])
    result = run("personalize", workspace["model"], table.X[0], labels, "-o", listener,
                 "--lr", 0.5)
    assert result.exit_code == 0, result.output
    songs = [data.audio_path(s) for s in data.song_ids[:2]]
    plain = run("predict", workspace["model"], *songs, "-o", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    personal = run("predict", workspace["model"], *songs, "-l", listener, "--plot",
                   "-o", tmp_path / "personal")
    assert personal.exit_code == 0, personal.output
    for song in data.song_ids[:2]:
        before = read_prediction(tmp_path / "plain" / f"{song}.csv")
        after = read_prediction(tmp_path / "personal" / f"{song}.csv")
        assert before.shape == after.shape == (data.n_frames, 3)
        np.testing.assert_allclose(before[:, 0], 0.5 * np.arange(data.n_frames))
        assert np.abs(before[:, 1:] - after[:, 1:]).max() > 1e-4  # the listener matters
        png = tmp_path / "personal" / f"{song}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "plain" / f"{data.song_ids[0]}.png").exists()
    # The written CSV is a label file: it reads back with its time axis.
    curve, offset = read_labels(tmp_path / "plain" / f"{data.song_ids[0]}.csv")
    assert offset == 0.0 and curve.shape == (data.n_frames, 2)


def test_predict_frame_offset_moves_the_time_axis(workspace, tmp_path):
    song = workspace["data"].audio_path("S000")
    result = run("predict", workspace["model"], song, "--frame-offset", 1.0, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    times = read_prediction(tmp_path / "S000.csv")[:, 0]
    np.testing.assert_allclose(times, 1.0 + 0.5 * np.arange(workspace["data"].n_frames - 2))


def test_predict_refuses_another_models_listener(workspace, tmp_path):
    stranger = ListenerAdaptation(params={}, model_id="0" * 16, estimator="DSAMLRegressor")
    stranger.save(tmp_path / "stranger.safetensors")
    result = run("predict", workspace["model"], workspace["table"].X[0], "-l",
                 tmp_path / "stranger.safetensors", "-o", tmp_path)
    assert result.exit_code == 1
    assert "personalize this model again" in one_line_error(result)
    assert not list(tmp_path.glob("*.csv"))


def test_predict_refuses_two_songs_with_one_name(workspace, tmp_path):
    song = workspace["data"].audio_path("S000")
    copy = tmp_path / "other" / "S000.wav"
    copy.parent.mkdir()
    copy.write_bytes(song.read_bytes())
    result = run("predict", workspace["model"], song, copy, "-o", tmp_path)
    assert result.exit_code == 2
    assert "would both be written as S000.csv" in one_line_error(result)


def read_table(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows


@pytest.fixture(scope="module")
def mixed_folder(workspace, tmp_path_factory):
    """A folder tree of the synthetic songs as WAV, OGG and (where libsndfile
    writes it) MP3, plus a text file named .mp3 and a file that is not audio."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("songs")
    (folder / "more").mkdir()
    formats = {"wav": "WAV", "ogg": "OGG"}
    if "MP3" in sf.available_formats():
        formats["mp3"] = "MP3"
    data = workspace["data"]
    written = []
    for i, (ext, fmt) in enumerate(formats.items()):
        audio, rate = sf.read(data.audio_path(data.song_ids[i]))
        target = folder / ("more" if i else ".") / f"song{i}.{ext}"
        sf.write(target, audio, rate, format=fmt)
        written.append(target)
    (folder / "notes.txt.md").write_text("not audio, not listed: no audio extension")
    return folder, written, set(formats)


def test_predict_a_folder_of_mixed_formats_into_one_table(workspace, mixed_folder, tmp_path):
    import soundfile as sf

    folder, songs, formats = mixed_folder
    if "mp3" not in formats:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} does not write MP3 (needs 1.1)")
    table = tmp_path / "curves.csv"
    result = run("predict", workspace["model"], folder, "-o", table)
    assert result.exit_code == 0, result.output
    rows = read_table(table)
    assert list(rows[0]) == ["song", "time", "arousal", "valence"]
    # One row per frame per song, each song as the per-song files count it.
    per_song = run("predict", workspace["model"], *songs, "-o", tmp_path / "each")
    assert per_song.exit_code == 0, per_song.output
    for song in songs:
        mine = [r for r in rows if r["song"] == str(song)]
        expected = read_prediction(tmp_path / "each" / f"{song.stem}.csv")
        assert len(mine) == len(expected) > 0
        np.testing.assert_allclose([float(r["time"]) for r in mine], expected[:, 0])
        np.testing.assert_allclose([[float(r["arousal"]), float(r["valence"])] for r in mine],
                                   expected[:, 1:], atol=1e-6)
    assert {r["song"] for r in rows} == {str(s) for s in songs}


def test_predict_reports_a_bad_file_and_writes_the_others(workspace, mixed_folder, tmp_path,
                                                          capfd):
    folder, songs, _ = mixed_folder
    bad = tmp_path / "in" / "readme.mp3"
    bad.parent.mkdir()
    bad.write_text("This is a text file, not an MP3.\n")
    table = tmp_path / "curves.json"
    result = run("predict", workspace["model"], songs[0], bad, "-o", table)
    assert result.exit_code == 1
    assert {r["song"] for r in json.loads(table.read_text())} == {str(songs[0])}
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and str(bad) in failed[0]
    assert "not a recognised audio format" in failed[0] and ".." not in failed[0]
    assert failed[0].count(str(bad)) == 1
    # libmpg123's notes ("Note: Illegal Audio-MPEG-Header ...") went to the C stderr.
    assert "Note:" not in capfd.readouterr().err


def test_predict_takes_list_files_and_writes_csv_to_stdout(workspace, mixed_folder, tmp_path):
    folder, songs, _ = mixed_folder
    listing = tmp_path / "songs.txt"
    listing.write_text("# my corpus\n" + "".join(f"{s}\n" for s in songs[:2]))
    result = run("predict", workspace["model"], listing, "-o", "-", "-q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "song,time,arousal,valence"
    assert {line.split(",")[0] for line in lines[1:]} == {str(s) for s in songs[:2]}
    assert result.stderr == ""  # -q, and the data alone on stdout
    same = run("predict", workspace["model"], "--list", listing, "-o", "-", "-q")
    assert same.stdout == result.stdout


def test_predict_parquet_needs_pyarrow(workspace, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow fails
    result = run("predict", workspace["model"], workspace["table"].X[0], "-o",
                 tmp_path / "c.parquet")
    assert result.exit_code == 1
    assert "needs pyarrow" in one_line_error(result) and "pip install pyarrow" in result.output
    assert not (tmp_path / "c.parquet").exists()


def test_predict_parquet_table(workspace, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    result = run("predict", workspace["model"], workspace["table"].X[0], "-o",
                 tmp_path / "c.parquet")
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.column_names == ["song", "time", "arousal", "valence"]
    assert table.num_rows == workspace["data"].n_frames


def test_predict_plot_needs_a_folder(workspace, tmp_path):
    result = run("predict", workspace["model"], workspace["table"].X[0], "-o",
                 tmp_path / "c.csv", "--plot")
    assert result.exit_code == 2
    assert "give --output a folder" in one_line_error(result)


# --------------------------------------------------------------------- evaluate
def test_evaluate_prints_a_metrics_table(workspace):
    result = run("evaluate", workspace["model"], workspace["root"] / "data.csv")
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| | ccc_arousal | ccc_valence | ccc_mean")
    assert table[2].startswith("| model |") and len(table) == 3


def test_evaluate_mean_labels(workspace):
    result = run("evaluate", workspace["model"], workspace["root"] / "data.csv",
                 "--labels", "mean", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "4 songs, mean labels" in result.stderr
    assert list(json.loads(result.stdout)) == ["model"]


def test_evaluate_personalized_protocol_as_json(workspace):
    result = run("evaluate", workspace["model"], workspace["root"] / "data.csv",
                 "--personalize", "--format", "json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)  # progress and notes go to stderr
    assert list(scores) == ["not personalized", "personalized (1 song)",
                            "not personalized + calibration (1 song, moments, strength 0)"]
    for row in scores.values():
        assert -1 <= row["ccc_mean"] <= 1 and row["rmse_mean"] >= 0
        assert row["ccc_mean"] == pytest.approx((row["ccc_arousal"] + row["ccc_valence"]) / 2)


def test_evaluate_personalize_needs_annotators(workspace):
    result = run("evaluate", workspace["model"], workspace["root"] / "data.csv",
                 "--personalize", "--labels", "mean")
    assert result.exit_code == 2
    assert "--personalize needs annotator ids" in one_line_error(result)


def test_evaluate_names_a_missing_audio_file(workspace, tmp_path):
    data_csv = tmp_path / "data.csv"
    data_csv.write_text("audio,labels\nmissing.wav,labels.csv\n")
    result = run("evaluate", workspace["model"], data_csv)
    assert result.exit_code == 1
    assert "line 2: audio file not found" in one_line_error(result)


# ------------------------------------------------------------------------- info
def test_info_reports_versions_device_encoders_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path))
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "entry").write_bytes(b"x" * 3000)
    result = run("info")
    assert result.exit_code == 0, result.output
    assert f"torch         {torch.__version__}" in result.output
    assert "CUDA available: " in result.output
    assert "dsaml" in result.output and "DSAMLRegressor" in result.output
    assert "logmel-stats" in result.output
    assert f"features: {tmp_path / 'features'} (2.9 KiB)" in result.output
    assert "ImageBind weights: " in result.output


def test_info_quiet_is_one_line_for_a_bug_report():
    result = run("info", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("pdmer ") and f"torch {torch.__version__}" in result.output


def test_info_takes_no_arguments():
    result = run("info", "extra")
    assert result.exit_code == 2
    assert "unexpected extra argument" in one_line_error(result).lower()


# ------------------------------------------------------------------ label files
# The label CSV parser is tested in test_datasets_csv.py; here, that the
# command line shows each of its errors as one line naming the file (exit 1).
@pytest.mark.parametrize("text, message", LABEL_FILE_ERRORS)
def test_label_csv_errors(workspace, tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    out = tmp_path / "l.safetensors"
    result = run("personalize", workspace["model"], workspace["table"].X[0], path, "-o", out)
    assert result.exit_code == 1
    error = one_line_error(result)
    assert str(path) in error and message in error
    assert not out.exists()


# -------------------------------------------------------------------- data sets
def test_download_and_validate_follow_the_registry():
    from pdmer_datasets import DATASETS

    downloadable = sorted(n for n, d in DATASETS.items() if d.remotes)
    listed = run("download", "--help").output.split("Commands:")[1]
    assert sorted(line.split()[0] for line in listed.splitlines()
                  if line.strip() and not line.startswith(" " * 4)) == \
        sorted(downloadable + ["imagebind", "model"])
    for name in downloadable:
        text = " ".join(run("download", name, "--help").output.split())
        assert all(r.filename in text for r in DATASETS[name].remotes.values())
        assert " ".join(DATASETS[name].license.split()) in text
    assert "--only [audio|annotations|metadata]" in run("download", "deam", "--help").output
    assert "--only" not in run("download", "pmemo", "--help").output  # one part
    result = run("validate", "pmemo", "--only", "audio")
    assert result.exit_code == 2
    assert "pmemo has no part audio; its parts: all" in one_line_error(result)
    result = run("validate", "synthetic")  # generated, not downloaded
    assert result.exit_code == 2


def test_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == {"demo", "download", "validate", "extract", "train", "personalize",
                      "predict", "evaluate", "benchmark", "info", "app"}
