"""MODEL arguments given as URLs (``https://``, ``http://``, ``hf://``): the
commands load them as :func:`pdmer.load` does, against a local server on
127.0.0.1 (tests never reach the internet)."""

from __future__ import annotations

import warnings

import pytest

from helpers import CLI_FEATURES, one_line_error, run_cli, TINY_MODEL, write_label_csv
from http_fixture import serve_model_hub
from pdmer import DSAMLRegressor, load
from pdmer.downloads import sha256_file
from pdmer.estimators import CollapseWarning
from pdmer.estimators.remote import model_cache_dir
from pdmer.features import AudioFeatures

FEATURES = CLI_FEATURES
run = run_cli


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Synthetic songs, one listener's label CSV, a data CSV, a tiny model and a
    listener file."""
    from pdmer_datasets import synthetic

    root = tmp_path_factory.mktemp("cli-urls")
    table = synthetic.generate(root / "synthetic", random_state=0, n_songs=3, n_listeners=2,
                               songs_per_listener=2, duration=3.0,
                               sample_rate=16000).annotator_table()
    labels = write_label_csv(root / "labels0.csv", table.y[0])
    data_csv = root / "data.csv"
    data_csv.write_text("audio,labels,annotator\n" + "".join(
        f"{x},{labels},{who}\n" for x, who in zip(table.X, table.annotators)))
    front = AudioFeatures(**FEATURES)
    model = DSAMLRegressor(**dict(TINY_MODEL, n_episodes=1), front_end=front)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # one episode learns little
        model.fit(front.transform(table.X), table.y, annotators=table.annotators)
    model.save(root / "model.safetensors", card=False)
    model.adapt_listener(front.transform(table.X[:1]), table.y[:1], steps=1).save(
        root / "me.safetensors")
    return dict(root=root, table=table, labels=labels, data_csv=data_csv,
                model=root / "model.safetensors", listener=root / "me.safetensors",
                digest=sha256_file(root / "model.safetensors"))


@pytest.fixture
def hub(ws, tmp_path, monkeypatch):
    """A local server with the model as a plain file and as a Hub repository's
    file (``hf://alice/pdmer-deam``), a listener file and an HTML page."""
    files = {"model.safetensors": ws["model"], "me.safetensors": ws["listener"],
             "alice/pdmer-deam/resolve/main/model.safetensors": ws["model"]}
    with serve_model_hub(tmp_path / "site", files, monkeypatch) as server:
        yield server


def test_predict_takes_a_hub_model_verified_and_cached(ws, hub, tmp_path):
    song = ws["table"].X[0]
    local = run("predict", ws["model"], song, "-o", tmp_path / "local.csv", "-q")
    assert local.exit_code == 0, local.output
    for attempt in ("first", "cached"):
        result = run("predict", "hf://alice/pdmer-deam", "--sha256", ws["digest"], song,
                     "-o", tmp_path / f"{attempt}.csv", "-q")
        assert result.exit_code == 0, result.output
        assert (tmp_path / f"{attempt}.csv").read_text() == (tmp_path / "local.csv").read_text()
    # Downloaded once, into the model cache pdmer.load uses.
    assert [path for path, _ in hub.requests] == [
        "alice/pdmer-deam/resolve/main/model.safetensors"]
    [cached] = model_cache_dir().rglob("model.safetensors")
    assert sha256_file(cached) == ws["digest"]


def test_personalize_and_evaluate_take_a_url(ws, hub, tmp_path):
    url = f"{hub.url}/model.safetensors"
    result = run("personalize", url, "--allow-http", ws["table"].X[0], ws["labels"],
                 "-o", tmp_path / "me.safetensors")
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output
    assert load(ws["model"]).use_listener(tmp_path / "me.safetensors").listener_ is not None
    result = run("evaluate", url, "--sha256", ws["digest"], ws["data_csv"], "--format", "json",
                 "-q")
    assert result.exit_code == 0, result.output
    assert '"ccc_mean"' in result.output


def test_plain_http_without_a_checksum_is_refused_before_connecting(ws, hub, tmp_path):
    result = run("predict", f"{hub.url}/model.safetensors", ws["table"].X[0],
                 "-o", tmp_path / "c.csv")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "plain http" in message and "--sha256" in message and "--allow-http" in message
    assert hub.requests == []


def test_a_wrong_checksum_is_one_line(ws, hub, tmp_path):
    result = run("evaluate", "hf://alice/pdmer-deam", "--sha256", "0" * 64, ws["data_csv"])
    assert result.exit_code == 1
    assert "SHA-256" in one_line_error(result)
    result = run("evaluate", "hf://alice/pdmer-deam", "--sha256", "abc", ws["data_csv"])
    assert result.exit_code == 1
    assert "64 hex digits" in one_line_error(result)


def test_a_missing_file_on_the_server_names_the_url(ws, hub, tmp_path):
    result = run("predict", "hf://alice/nothing-here", "--sha256", ws["digest"],
                 ws["table"].X[0], "-o", tmp_path / "c.csv")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "404" in message and "alice/nothing-here" in message


def test_a_page_or_a_listener_file_at_a_url_is_explained(ws, hub, tmp_path):
    result = run("predict", f"{hub.url}/page.safetensors", "--allow-http", ws["table"].X[0],
                 "-o", tmp_path / "c.csv")
    assert result.exit_code == 1
    assert "did not send a safetensors model file but an HTML page" in one_line_error(result)
    result = run("predict", f"{hub.url}/me.safetensors", "--allow-http", ws["table"].X[0],
                 "-o", tmp_path / "c.csv")
    assert result.exit_code == 2
    assert f"{hub.url}/me.safetensors is a listener file" in one_line_error(result)
    assert "-l/--listener" in result.output


def test_a_url_that_does_not_load_names_the_url_and_the_file(ws, hub, tmp_path):
    # A safetensors file that is no pdmer model: the listener file's tensors
    # without its metadata.
    from safetensors.torch import load_file, save_file

    save_file(load_file(ws["listener"]), str(tmp_path / "site" / "other.safetensors"))
    url = f"{hub.url}/other.safetensors"
    result = run("predict", url, "--allow-http", ws["table"].X[0], "-o", tmp_path / "c.csv")
    assert result.exit_code == 1
    message = one_line_error(result)
    [cached] = model_cache_dir().rglob("other.safetensors")
    assert f"MODEL {url}: {cached} is not a pdmer model file" in message


def test_checksum_options_are_for_urls_only(ws, tmp_path):
    for option in (["--sha256", ws["digest"]], ["--allow-http"]):
        result = run("predict", ws["model"], *option, ws["table"].X[0],
                     "-o", tmp_path / "c.csv")
        assert result.exit_code == 2
        message = one_line_error(result)
        assert f"{option[0]}: only for a MODEL given as a URL" in message


def test_a_local_model_that_does_not_exist_or_a_bad_scheme_is_a_usage_error(ws, tmp_path):
    result = run("predict", tmp_path / "absent.safetensors", ws["table"].X[0])
    assert result.exit_code == 2
    assert "does not exist" in one_line_error(result)
    result = run("evaluate", "ftp://host/model.safetensors", ws["data_csv"])
    assert result.exit_code == 2
    assert "neither a file nor a model URL" in one_line_error(result)


def test_a_local_listener_file_as_model_still_points_to_the_listener_option(ws, tmp_path):
    result = run("personalize", ws["listener"], ws["table"].X[0], ws["labels"],
                 "-o", tmp_path / "x.safetensors")
    assert result.exit_code == 2
    assert "is a listener file" in one_line_error(result)
    assert "-l/--listener" in result.output
