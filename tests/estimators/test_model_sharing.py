"""Sharing models: the card beside every saved model, loading from a URL or
``hf://`` (against a local server on 127.0.0.1; tests never reach the
internet) and ``pdmer download model``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

import pdmer
from pdmer.cli import main
from pdmer.downloads import ChecksumError, sha256_file
from pdmer.estimators import CollapseWarning
from pdmer.estimators.card import card_path
from pdmer.estimators.remote import HF_ENDPOINT_ENV, model_cache_dir, resolve_url

from helpers import TINY_MODEL, make_annotator_table
from http_fixture import serve_model_hub

DEAM = {"name": "DEAM", "license": "free for non-commercial research use",
        "homepage": "https://cvml.unige.ch/databases/DEAM/"}


@pytest.fixture(scope="module")
def fitted():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X, y, annotators = make_annotator_table()
        with warnings.catch_warnings():
            # Three episodes do not learn much; the card does not care.
            warnings.simplefilter("ignore", CollapseWarning)
            return pdmer.DSAMLRegressor(**TINY_MODEL).fit(X, y, annotators=annotators)
    finally:
        torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    fitted.save(path, card=False)
    return path


# ------------------------------------------------------------------- the card
def test_fit_records_what_it_saw(fitted):
    X, _, annotators = make_annotator_table()
    data = fitted.training_data_
    assert data["n_rows"] == len(X)
    assert data["n_songs"] == len({id(x) for x in X})
    assert data["n_annotators"] == len(set(annotators))
    assert data["tasks"] == "annotator"
    assert data["frame_offset"] == 0.0  # the SongFeatures' own
    assert data["encoder"] == fitted.encoder_
    assert data["dataset"] is None


def test_save_writes_a_card_beside_the_model(fitted, tmp_path):
    path = tmp_path / "m.safetensors"
    fitted.save(path)
    assert card_path(path) == tmp_path / "m.md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.md", "m.safetensors"]
    card = (tmp_path / "m.md").read_text()
    n_params = sum(p.numel() for p in fitted.network_.parameters())
    for expected in ("# DSAMLRegressor", "`pdmer.DSAMLRegressor`", f"{n_params:,}",
                     sha256_file(path), f"torch {torch.__version__}",
                     f"rows (song, annotator pairs): {fitted.training_data_['n_rows']}",
                     f"annotators: {fitted.training_data_['n_annotators']}",
                     f"global encoder: {fitted.encoder_}",
                     f"{fitted.best_validation_ccc_:.4f}",
                     '"n_episodes": ' + str(fitted.resolved_params_["n_episodes"])):
        assert expected in card, expected
    assert "not recorded" in card  # neither the data set nor its licence are known


def test_the_card_carries_the_data_sets_licence_and_the_file_keeps_it(fitted, tmp_path):
    model = pdmer.load(_saved(fitted, tmp_path / "a.safetensors"))
    model.save(tmp_path / "b.safetensors", dataset=DEAM)
    card = (tmp_path / "b.md").read_text()
    assert "Data set: **DEAM** (https://cvml.unige.ch/databases/DEAM/)" in card
    assert "Training data licence: free for non-commercial research use" in card
    # Loaded and saved again (without dataset=): the file remembered it.
    again = pdmer.load(tmp_path / "b.safetensors")
    assert again.training_data_["dataset"] == DEAM
    again.save(tmp_path / "c.safetensors")
    assert "Training data licence: free" in (tmp_path / "c.md").read_text()


def test_save_refuses_a_malformed_dataset_and_card_false_writes_none(fitted, tmp_path):
    with pytest.raises(ValueError, match="'name'"):
        fitted.save(tmp_path / "m.safetensors", dataset={"licence": "typo"})
    fitted.save(tmp_path / "m.safetensors", card=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_files_saved_before_training_data_existed_still_load(model_file, tmp_path):
    with safe_open(str(model_file), framework="pt") as handle:
        metadata = handle.metadata()
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    fitted = json.loads(metadata["fitted"])
    del fitted["training_data_"]
    metadata["fitted"] = json.dumps(fitted)
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata=metadata)
    model = pdmer.load(old)
    assert model.training_data_ is None
    model.save(tmp_path / "again.safetensors")  # a card without training data
    assert "not recorded" in (tmp_path / "again.md").read_text()


@pytest.mark.parametrize("old, new", [(True, "auto"), (False, "fp32"), ("bf16", "bf16")])
def test_files_saved_with_mixed_precision_load_with_precision(model_file, tmp_path, old, new,
                                                              fitted):
    # mixed_precision (True, False, "bf16") became precision ("auto", "fp32", "bf16").
    with safe_open(str(model_file), framework="pt") as handle:
        metadata = handle.metadata()
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    params = json.loads(metadata["params"])
    assert params.pop("precision") == "auto"
    metadata["params"] = json.dumps({**params, "mixed_precision": old})
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata=metadata)
    model = pdmer.load(path)
    assert model.precision == new
    X, _, _ = make_annotator_table()
    if new != "bf16":  # float32 on the CPU: the same predictions as the saved model's
        for a, b in zip(model.predict(X[:2]), fitted.predict(X[:2])):
            np.testing.assert_array_equal(a, b)
    metadata["params"] = json.dumps({**params, "mixed_precision": "fp16"})
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="mixed_precision='fp16'"):
        pdmer.load(path)


def _saved(fitted, path):
    fitted.save(path, card=False)
    return path


# ------------------------------------------------------------ loading from URLs
@pytest.fixture
def hub(model_file, tmp_path, monkeypatch):
    """A local server holding the model as a file and as a Hub repository's file."""
    files = dict.fromkeys(("model.safetensors", "alice/pdmer-deam/resolve/main/model.safetensors",
                           "alice/pdmer-deam/resolve/v1/small.safetensors"), model_file)
    with serve_model_hub(tmp_path / "site", files, monkeypatch) as server:
        yield server


def test_load_from_a_url_verified_and_cached(hub, model_file, fitted):
    digest = sha256_file(model_file)
    model = pdmer.load(f"{hub.url}/model.safetensors", sha256=digest)
    assert model.model_id_ == fitted.model_id_
    X, _, _ = make_annotator_table()
    np.testing.assert_array_equal(model.predict(X[:2])[0], fitted.predict(X[:2])[0])
    assert len(hub.requests) == 1
    cached = list(model_cache_dir().rglob("model.safetensors"))
    assert len(cached) == 1 and sha256_file(cached[0]) == digest
    pdmer.load(f"{hub.url}/model.safetensors", sha256=digest)
    assert len(hub.requests) == 1  # the verified cached copy was used


def test_a_wrong_checksum_is_an_error(hub):
    with pytest.raises(ChecksumError, match="SHA-256"):
        pdmer.load(f"{hub.url}/model.safetensors", sha256="0" * 64)


def test_plain_http_needs_a_checksum_or_an_explicit_flag(hub, fitted):
    with pytest.raises(ValueError, match="plain http.*sha256"):
        pdmer.load(f"{hub.url}/model.safetensors")
    assert hub.requests == []  # refused before connecting
    assert pdmer.load(f"{hub.url}/model.safetensors",
                      allow_http=True).model_id_ == fitted.model_id_
    with pytest.raises(TypeError, match="for URLs"):
        pdmer.load("local.safetensors", sha256="0" * 64)
    with pytest.raises(ValueError, match="64 hex digits"):
        pdmer.load(f"{hub.url}/model.safetensors", sha256="abc")


def test_load_from_a_hub_repository(hub, model_file, fitted):
    digest = sha256_file(model_file)
    assert pdmer.load("hf://alice/pdmer-deam", sha256=digest).model_id_ == fitted.model_id_
    assert pdmer.load("hf://alice/pdmer-deam@v1/small.safetensors",
                      sha256=digest).model_id_ == fitted.model_id_
    assert [path for path, _ in hub.requests] == [
        "alice/pdmer-deam/resolve/main/model.safetensors",
        "alice/pdmer-deam/resolve/v1/small.safetensors"]


def test_a_page_instead_of_a_model_is_deleted_and_explained(hub):
    with pytest.raises(ValueError, match="did not send a safetensors model file but an "
                                         "HTML page"):
        pdmer.load(f"{hub.url}/page.safetensors", allow_http=True)
    assert not [p for p in model_cache_dir().rglob("*") if p.is_file()]


def test_hub_names_resolve_to_the_endpoint(monkeypatch):
    monkeypatch.delenv(HF_ENDPOINT_ENV, raising=False)
    assert resolve_url("hf://alice/m") == (
        "https://huggingface.co/alice/m/resolve/main/model.safetensors")
    assert resolve_url("hf://alice/m@0a1b2c/sub/x.safetensors") == (
        "https://huggingface.co/alice/m/resolve/0a1b2c/sub/x.safetensors")
    monkeypatch.setenv(HF_ENDPOINT_ENV, "https://mirror.example/")
    assert resolve_url("hf://alice/m").startswith("https://mirror.example/alice/m/")
    for bad in ("hf://alice", "hf://al ice/m", "hf://alice/m/../x.safetensors",
                "hf://../m"):
        with pytest.raises(ValueError):
            resolve_url(bad)


# ------------------------------------------------------------------------ CLI
def test_download_model_command(hub, model_file, tmp_path):
    digest = sha256_file(model_file)
    out = tmp_path / "deam.safetensors"
    result = CliRunner().invoke(main, ["download", "model", "hf://alice/pdmer-deam",
                                       "--sha256", digest, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "DSAMLRegressor" in result.output and digest in result.output
    assert sha256_file(out) == digest
    quiet = CliRunner().invoke(main, ["download", "model", f"{hub.url}/model.safetensors",
                                      "--sha256", digest, "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.strip().endswith("model.safetensors")  # just the path


def test_download_model_command_errors_are_one_line(hub, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["download", "model", f"{hub.url}/model.safetensors",
                                  "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 1
    assert "plain http" in result.output and "--sha256" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["download", "model", f"{hub.url}/model.safetensors",
                                  "--sha256", "0" * 64, "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 1 and "SHA-256" in result.output
