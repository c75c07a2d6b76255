"""The command line and model files under careless or hostile input (issue 12):
unwritable outputs, model files that must not direct writes, non-finite or
zero settings, binary files given as CSVs, a data set never downloaded, a
corrupt song in a batch, a diverged listener file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from helpers import CLI_FEATURES, one_line_error, run_cli, TINY_MODEL, write_label_csv
from pdmer import DSAMLRegressor, load
from pdmer.features import AudioFeatures

FEATURES = CLI_FEATURES
run = run_cli


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Synthetic songs, their label CSVs, a data CSV and a tiny trained model."""
    from pdmer_datasets import synthetic

    root = tmp_path_factory.mktemp("cli-hardening")
    table = synthetic.generate(root / "synthetic", random_state=0, n_songs=3, n_listeners=2,
                               songs_per_listener=2, duration=3.0,
                               sample_rate=16000).annotator_table()
    labels = [write_label_csv(root / f"labels{i}.csv", y) for i, y in enumerate(table.y)]
    data_csv = root / "data.csv"
    data_csv.write_text("audio,labels,annotator\n" + "".join(
        f"{x},{lab},{who}\n" for x, lab, who in zip(table.X, labels, table.annotators)))
    front = AudioFeatures(**FEATURES)
    model = DSAMLRegressor(**dict(TINY_MODEL, n_episodes=1), front_end=front)
    model.fit(front.transform(table.X), table.y, annotators=table.annotators)
    model.save(root / "model.safetensors")
    return dict(root=root, table=table, labels=labels, data_csv=data_csv,
                model=root / "model.safetensors")


# ------------------------------------------------------------------ outputs


def test_train_checks_its_output_before_training(ws, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(DSAMLRegressor, "fit", fail)
    (tmp_path / "file").write_text("x")
    result = run("train", ws["data_csv"], "-o", tmp_path / "file" / "m.safetensors", "-q")
    assert result.exit_code == 1
    assert "Cannot write the model to" in one_line_error(result)
    assert "is a file, not a folder" in result.output


def test_two_trainings_on_one_checkpoint_are_refused(ws, tmp_path, monkeypatch):
    # They overwrote each other's checkpoint without a word (issue 19).
    from filelock import FileLock

    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(DSAMLRegressor, "fit", fail)
    checkpoint = tmp_path / "runs" / "ckpt.pt"
    args = ("train", ws["data_csv"], "-o", tmp_path / "m.safetensors", "-q",
            "-p", f"checkpoint_path={checkpoint}")
    checkpoint.parent.mkdir()
    with FileLock(f"{checkpoint}.lock", timeout=0):
        result = run(*args)  # as if another `pdmer train` held it
    assert result.exit_code == 1
    assert f"Another pdmer train is using the checkpoint {checkpoint}" in one_line_error(result)
    assert "training started" in run(*args).output  # released: this run gets it


def test_personalize_checks_its_output_before_adapting(ws, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run("personalize", ws["model"], ws["table"].X[0], ws["labels"][0], "-o",
                 tmp_path / "file" / "l.safetensors")
    assert result.exit_code == 1
    assert "Cannot write the listener file" in one_line_error(result)


# ----------------------------------------------------------------- model files


def edit_model_file(source, target, params=None, front_end=None, fitted=None):
    """A copy of a model file with its JSON header changed, as a hostile author would."""
    with safe_open(source, framework="pt") as handle:
        metadata = dict(handle.metadata())
    stored = json.loads(metadata["params"])
    stored.update(params or {})
    stored["front_end"].update(front_end or {})
    metadata["params"] = json.dumps(stored)
    fitted_attrs = json.loads(metadata["fitted"])
    fitted_attrs.update(fitted or {})
    metadata["fitted"] = json.dumps(fitted_attrs)
    save_file(load_file(source), target, metadata=metadata)
    return target


def test_a_model_file_cannot_choose_where_pdmer_writes(ws, tmp_path):
    elsewhere = tmp_path / "chosen_by_the_author"
    path = edit_model_file(ws["model"], tmp_path / "m.safetensors",
                           params={"checkpoint_path": str(elsewhere / "ckpt.pt")},
                           front_end={"cache_dir": str(elsewhere)})
    model = load(path)
    assert model.checkpoint_path is None and model.front_end.cache_dir is None
    song = (np.random.default_rng(0).normal(size=16000 * 3).astype(np.float32) * 0.1, 16000)
    model.predict([song])  # extracts with the loaded front end
    assert not elsewhere.exists()
    # The caller may still ask for them explicitly.
    mine = tmp_path / "my_cache"
    again = load(path, front_end__cache_dir=str(mine), checkpoint_path=str(mine / "c.pt"))
    assert again.front_end.cache_dir == str(mine) and again.checkpoint_path == str(mine / "c.pt")


@pytest.mark.parametrize("edit, message", [
    (dict(fitted={"predict": "not a method"}), "unknown fitted attributes predict"),
    (dict(params={"exec_hook": 1}), "parameters this pdmer version does not have: exec_hook"),
    (dict(front_end={"cache_dirs": "/tmp"}), "AudioFeatures parameters .* cache_dirs"),
])
def test_unknown_keys_in_a_model_file_are_refused(ws, tmp_path, edit, message):
    path = edit_model_file(ws["model"], tmp_path / "m.safetensors", **edit)
    with pytest.raises(ValueError, match=message):
        load(path)


def edit_tensors(source, target, edit):
    """A copy of a model file with ``edit(tensors)`` applied to its weights."""
    with safe_open(source, framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(source)
    edit(tensors)
    save_file(tensors, target, metadata=metadata)
    return target


def test_model_files_with_non_finite_weights_are_refused(ws, tmp_path):
    # They loaded silently and `pdmer predict` wrote NaN curves with exit 0 (issue 19).
    first = next(n for n, t in load_file(ws["model"]).items() if t.is_floating_point())
    path = edit_tensors(ws["model"], tmp_path / "nan.safetensors",
                        lambda tensors: tensors[first].view(-1)[0].fill_(float("nan")))
    with pytest.raises(ValueError, match=f"nan.safetensors holds NaN or infinite weights "
                                         f"\\({first}\\)"):
        load(path)
    result = run("predict", path, ws["table"].X[0], "-o", tmp_path / "out")
    assert result.exit_code == 1 and "NaN or infinite weights" in one_line_error(result)


def test_model_files_with_a_tensor_of_the_wrong_shape_are_a_value_error(ws, tmp_path):
    # torch's RuntimeError from load_state_dict escaped load (issue 19).
    first = next(n for n, t in load_file(ws["model"]).items() if t.is_floating_point())

    def reshape(tensors):
        tensors[first] = torch.zeros(tensors[first].numel() + 1)

    path = edit_tensors(ws["model"], tmp_path / "shape.safetensors", reshape)
    with pytest.raises(ValueError, match=f"shape.safetensors does not fit its "
                                         f"DSAMLRegressor: {first} has shape"):
        load(path)


def test_load_names_unknown_override_parameters(ws):
    with pytest.raises(TypeError, match="does not have: n_layerz"):
        load(ws["model"], n_layerz=2)


# ----------------------------------------------------------------- settings


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_personalize_refuses_a_non_finite_lr(ws, tmp_path, value):
    out = tmp_path / "l.safetensors"
    result = run("personalize", ws["model"], ws["table"].X[0], ws["labels"][0], "-o", out,
                 "--lr", value)
    assert result.exit_code == 2 and not out.exists()
    assert "Invalid value for '--lr'" in result.output
    assert "not a finite number" in result.output or "not in the range" in result.output


@pytest.mark.parametrize("command", ["predict", "personalize", "extract"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_frame_offset_must_be_finite(ws, tmp_path, command, value):
    args = {"predict": [ws["model"], ws["table"].X[0], "-o", tmp_path],
            "personalize": [ws["model"], ws["table"].X[0], ws["labels"][0], "-o",
                            tmp_path / "l.safetensors"],
            "extract": [ws["table"].X[0], "--cache-dir", tmp_path / "c"]}[command]
    result = run(command, *args, "--frame-offset", value)
    assert result.exit_code == 2, result.output
    assert f"{value!r} is not a finite number" in result.output
    assert "cannot convert" not in result.output


def test_global_window_must_be_finite(ws, tmp_path):
    result = run("extract", ws["table"].X[0], "--cache-dir", tmp_path, "--global-window",
                 "inf")
    assert result.exit_code == 2 and "'inf' is not a finite number" in result.output


@pytest.mark.parametrize("command", ["predict", "train", "extract"])
def test_zero_jobs_is_refused(ws, tmp_path, command):
    args = {"predict": [ws["model"], ws["table"].X[0], "-o", tmp_path],
            "train": [ws["data_csv"], "-o", tmp_path / "m.safetensors"],
            "extract": [ws["table"].X[0], "--cache-dir", tmp_path / "c"]}[command]
    result = run(command, *args, "-j", "0")
    assert result.exit_code == 2, result.output
    assert "0 runs nothing" in result.output and "n_jobs == 0" not in result.output


# ------------------------------------------------------------------- inputs


def test_audio_given_as_labels_is_named(ws, tmp_path):
    wav = ws["table"].X[1]
    result = run("personalize", ws["model"], ws["table"].X[0], wav, "-o",
                 tmp_path / "l.safetensors")
    assert result.exit_code == 1
    error = one_line_error(result)
    assert f"{wav} is not a text CSV of time,arousal,valence: it holds audio" in error
    assert "codec" not in error


def test_audio_given_as_a_data_csv_is_named(ws, tmp_path):
    # A data CSV is recognised by its .csv name; here a WAV renamed to one.
    data = tmp_path / "songs.csv"
    data.write_bytes(open(ws["table"].X[0], "rb").read())
    result = run("train", data, "-o", tmp_path / "m.safetensors", "-q")
    assert f"{data} is not a text CSV of audio,labels" in one_line_error(result)


def test_a_data_set_that_was_never_downloaded_says_to_download_it(tmp_path):
    home = tmp_path / "deam"
    home.mkdir()
    result = run("train", "deam", "--data-home", home, "-o", tmp_path / "m.safetensors")
    assert result.exit_code == 1
    error = one_line_error(result)
    assert "deam is not (completely) installed in" in error
    assert f"pdmer download deam --data-home {home}" in error
    assert "[Errno 2]" not in error


def test_predict_writes_the_good_songs_and_reports_the_bad_ones(ws, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    good = ws["table"].X[0]
    out = tmp_path / "out"
    result = run("predict", ws["model"], good, bad, "-o", out)
    assert result.exit_code == 1
    stem = good.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    assert (out / f"{stem}.csv").is_file() and not (out / "broken.csv").exists()
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and str(bad) in failed[0]


def test_predict_refuses_a_float_file_with_nan_samples(ws, tmp_path):
    # It wrote a CSV of NaN and exited 0 (issue 19).
    import soundfile as sf

    waveform, rate = sf.read(ws["table"].X[0], dtype="float32")
    waveform[100] = np.nan
    sf.write(tmp_path / "nan.wav", waveform, rate, subtype="FLOAT")
    result = run("predict", ws["model"], tmp_path / "nan.wav", "-o", tmp_path / "out")
    assert result.exit_code == 1
    [failed] = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert f"{tmp_path / 'nan.wav'}: sample 100 " in failed and "is nan" in failed
    assert not (tmp_path / "out" / "nan.csv").exists()


def test_predict_refuses_a_diverged_listener_file(ws, tmp_path):
    # A listener file full of NaN, as `personalize --lr inf` used to write.
    from pdmer import ListenerAdaptation

    table = ws["table"]
    model = load(ws["model"])
    X = model.front_end.transform(table.X[:1])
    listener = model.adapt_listener(X, table.y[:1], steps=1)
    listener.save(tmp_path / "ok.safetensors")
    with safe_open(tmp_path / "ok.safetensors", framework="pt") as handle:
        metadata = handle.metadata()
    save_file({n: torch.full_like(t, float("nan")) if t.is_floating_point() else t
               for n, t in listener.params.items()},  # the delay is a whole number
              tmp_path / "nan.safetensors", metadata=metadata)
    assert isinstance(ListenerAdaptation.load(tmp_path / "ok.safetensors"), ListenerAdaptation)
    result = run("predict", ws["model"], table.X[0], "-l", tmp_path / "nan.safetensors",
                 "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "hold NaN or infinite values" in one_line_error(result)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------- newcomer's messages (issue 20)


def test_a_listener_file_given_as_model_points_to_listener_option(ws, tmp_path):
    table = ws["table"]
    model = load(ws["model"])
    listener = model.adapt_listener(model.front_end.transform(table.X[:1]), table.y[:1],
                                    steps=1)
    listener.save(tmp_path / "me.safetensors")
    for args in (["predict", tmp_path / "me.safetensors", table.X[0], "-o", tmp_path],
                 ["evaluate", tmp_path / "me.safetensors", ws["data_csv"]]):
        result = run(*args)
        assert result.exit_code == 2
        assert "is a listener file" in one_line_error(result)
        assert "-l/--listener" in result.output


def test_a_misspelled_parameter_gets_did_you_mean(ws, tmp_path):
    result = run("train", ws["data_csv"], "-o", tmp_path / "m.safetensors",
                 "-p", "front_end__n_melz=32")
    assert result.exit_code == 2
    error = one_line_error(result)
    assert "has no parameter 'front_end__n_melz'; did you mean 'front_end__n_mels'?" in error
    assert "inner_lr" not in error  # not a list of every name
    result = run("train", ws["data_csv"], "-o", tmp_path / "m.safetensors", "-p", "n_episode=1")
    assert "did you mean 'n_episodes'?" in one_line_error(result)


def test_train_quiet_hides_the_extraction_bar(ws, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(dict(TINY_MODEL, n_episodes=1, device="auto",
                                      front_end=FEATURES)))
    result = run("train", ws["data_csv"], "-o", tmp_path / "m.safetensors", "-q",
                 "--config", config, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Extracting" not in result.output and "%|" not in result.output
    assert load(tmp_path / "m.safetensors").device == "cpu"  # --device over the config


def test_a_text_file_named_mp3_is_not_a_recognised_audio_format(ws, tmp_path, capfd):
    fake = tmp_path / "song.mp3"
    fake.write_text("lyrics, not audio\n" * 20)
    result = run("predict", ws["model"], fake, "-o", tmp_path / "out")
    assert result.exit_code == 1
    [failed] = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert failed.startswith(f"failed: Cannot decode audio file {fake}: not a recognised "
                             "audio format.")
    assert failed.endswith(".") and ".." not in failed and "does not exist" not in failed
    assert "Illegal Audio-MPEG-Header" not in capfd.readouterr().err
