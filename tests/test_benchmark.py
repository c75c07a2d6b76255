"""Tests of the paper-protocol benchmark (pdmer.benchmark, ``pdmer benchmark``).

Everything runs with the ``tiny`` preset on a few seconds of generated
synthetic songs; the scores are meaningless at that size, so the tests check
the protocols, the tables, the files and reproducibility, not the numbers.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pdmer.benchmark import MODELS, PAPER, _plan, run_benchmark
from pdmer.cli import main

BASELINES = ("DAMFF", "MCRNN", "DNN", "CRNN")


def quiet(**kwargs):
    return run_benchmark(preset="tiny", verbose=0, log=lambda message: None, **kwargs)


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_home):
    output = tmp_path_factory.mktemp("benchmark")
    result = CliRunner().invoke(main, [
        "benchmark", "--dataset", "synthetic", "--task", "pdmer", "--ablations",
        "--preset", "tiny", "--output", str(output), "--data-home", data_home, "-q"])
    return result, output


def test_cli_pdmer_prints_tables_and_writes_files(cli_run):
    result, output = cli_run
    assert result.exit_code == 0, result.output
    text = result.output
    assert "## Parameters" in text and "## Table 2" in text and "## Table 4" in text
    # DSAML, every baseline, with (†) and without MAML, plus fine-tuned plain models.
    for row in ["DSAML"] + [f"{b}†" for b in BASELINES] + list(BASELINES):
        assert f"\n| {row} |" in text, row
    for name in ("DSAML",) + BASELINES:
        assert f"\n| {name} | " in text.split("## Table 2")[0]  # parameter counts
    for row in ("DSAML †", "DSAML ‡", "DSAML †‡"):
        assert f"\n| {row} |" in text
    # The paper's numbers sit beside the run's.
    assert "| 0.377 | 0.541 | 0.236 | 0.092 | 0.154 | 0.245 |" in text  # DSAML, Table 2
    md = (output / "results.md").read_text()
    assert md.strip() == text.split("\nWrote ")[0].strip()
    assert (output / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO((output / "results.csv").read_text())))
    table2 = [r for r in rows if r["table"] == "Table 2"]
    assert len(table2) == 3 * len(MODELS)
    assert {r["meta_learning"] for r in table2} == {"fomaml", "none"}
    assert all(r["n_parameters"] and int(r["n_parameters"]) > 0 for r in rows)
    for r in rows:
        for key in ("ccc_arousal", "pcc_valence", "rmse_arousal"):
            assert np.isfinite(float(r[key]))
    settings = json.loads((output / "settings.json").read_text())
    assert settings["seed"] == 0 and settings["preset"] == "tiny"
    assert settings["command"].startswith("pdmer benchmark --dataset synthetic --task pdmer")
    # Two fits per model (with and without MAML) and two DSAML ablations (†, ‡).
    assert len(settings["estimators"]) == 2 * len(MODELS) + 2
    assert not [p for p in output.iterdir() if p.suffix == ".tmp"]


def test_rows_carry_the_paper_numbers(cli_run):
    _, output = cli_run
    rows = {(r["table"], r["row"]): r for r in
            csv.DictReader(io.StringIO((output / "results.csv").read_text()))}
    for (table, name), values in [(("Table 2", "DAMFF†"), PAPER["Table 2"]["deam"]["DAMFF†"]),
                                  (("Table 4", "DSAML ‡"), PAPER["Table 4"]["deam"]["DSAML ‡"])]:
        row = rows[(table, name)]
        assert float(row["paper_ccc_arousal"]) == values[0]
        assert float(row["paper_rmse_valence"]) == values[5]
    assert rows[("Table 2", "CRNN + fine-tuned")]["paper_ccc_arousal"] == ""


def test_same_seed_repeats_and_other_seed_differs(data_home):
    kwargs = dict(dataset="synthetic", task="pdmer", models=["crnn"], data_home=data_home)
    first, again = quiet(seed=0, **kwargs), quiet(seed=0, **kwargs)
    assert first.rows == [dict(r, fit_seconds=f["fit_seconds"]) for r, f in
                          zip(again.rows, first.rows)]
    other = quiet(seed=1, data_home=data_home + "-seed1",
                  **{k: v for k, v in kwargs.items() if k != "data_home"})
    assert [r["ccc_arousal"] for r in other.rows] != [r["ccc_arousal"] for r in first.rows]


def test_dmer_with_ablations(data_home, tmp_path):
    result = quiet(dataset="synthetic", task="dmer", ablations=True, models=["dsaml", "crnn"],
                   output=str(tmp_path), data_home=data_home)
    labels = [(r["table"], r["row"]) for r in result.rows]
    assert labels == [("Table 1", "DSAML"), ("Table 1", "CRNN"), ("Table 3", "DSAML"),
                      ("Table 3", "DSAML w/o local attention"),
                      ("Table 3", "DSAML w/o global attention"),
                      ("Table 3", "DSAML w/o attention loss"), ("Table 3", "DSAML w/o adapter")]
    assert all(r["meta_learning"] == "none" and r["tasks"] == "song" for r in result.rows)
    assert not any(r["personalized"] for r in result.rows)
    assert result.rows[0]["paper_ccc_arousal"] == 0.390
    assert result.rows[3]["paper_ccc_arousal"] == 0.385
    # The ablated network is smaller without the adapter.
    assert result.rows[-1]["n_parameters"] < result.rows[2]["n_parameters"]
    assert (tmp_path / "results.png").is_file()


def test_same_song_protocol_scores_the_rest_of_each_song(data_home):
    result = quiet(dataset="synthetic", task="pdmer", models=["damff"], protocol="same-song",
                   data_home=data_home)
    assert result.settings["support_frames"] == 3
    # Every test (listener, song) pair is scored once.
    test_pairs = result.settings["data"]["summary"].split(", ")[1].split(" / ")[1]
    assert result.rows[0]["n_scored"] == int(test_pairs.split()[0])


def test_plan_protocols():
    class Table:
        annotators = np.array(["a", "a", "a", "b", "c", "c"])
        y = [np.zeros((n, 2)) for n in (10, 4, 8, 10, 10, 10)]

    plan = _plan(Table, "other-songs", 3, seed=0)
    assert [len(queries) for _, queries in plan] == [2, 1]  # b has one song: skipped
    for (support, n_support), queries in plan:
        assert n_support is None and support not in [r for r, _ in queries]
    plan = _plan(Table, "same-song", 3, seed=0)
    # Songs need support_frames + 2 frames: row 1 (4 frames) is skipped.
    assert [support for support, _ in plan] == [(0, 3), (2, 3), (3, 3), (4, 3), (5, 3)]
    assert all(queries == [(support[0], 3)] for support, queries in plan)
    with pytest.raises(ValueError, match="shorter than 12 frames"):
        _plan(Table, "same-song", 10, seed=0)


def test_models_option_takes_a_list(tmp_path, data_home):
    result = CliRunner().invoke(main, [
        "benchmark", "--preset", "tiny", "--models", "crnn,damff", "-o", str(tmp_path),
        "--data-home", data_home, "-q"])
    assert result.exit_code == 0, result.output
    assert "\n| CRNN |" in result.output and "\n| DAMFF |" in result.output
    assert "DSAML" not in result.output.split("## Table 2")[1]
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert "--models crnn,damff" in settings["command"]


@pytest.mark.parametrize("args, message", [
    (["--models", "dsaml,svm"], "unknown model(s) svm"),
    (["--preset", "huge"], "Invalid value for '--preset'"),
    (["--seed", "-1"], "Invalid value for '--seed'"),
])
def test_cli_usage_errors(args, message, tmp_path):
    result = CliRunner().invoke(main, ["benchmark", "-o", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_model_in_the_library():
    with pytest.raises(ValueError, match="Unknown model.*svm.*choose from dsaml"):
        quiet(models=["svm"], output="unused")


def test_deam_not_downloaded(tmp_path):
    result = CliRunner().invoke(main, ["benchmark", "--dataset", "deam", "--preset", "tiny",
                                       "--data-home", str(tmp_path / "deam"),
                                       "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    assert "pdmer download deam" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "results.md").exists()


def test_pmemo_has_no_pdmer_task(tmp_path):
    with pytest.raises(ValueError, match="PMEmo has no per-annotator labels"):
        quiet(dataset="pmemo", task="pdmer", data_home=str(tmp_path))
