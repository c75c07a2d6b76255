"""Tests of the paper-protocol benchmark (pdmer.experiments, ``pdmer benchmark``).

Everything runs with the ``tiny`` preset on a few seconds of generated
synthetic songs; the scores are meaningless at that size, so the tests check
the protocols, the splits, the tables, the files and reproducibility, not the
numbers.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pdmer.cli import main
from pdmer.evaluation import plan_episodes
from pdmer.experiments import DMER_NOTE, MODELS, PAPER, run_benchmark

BASELINES = ("DAMFF", "MCRNN", "DNN", "CRNN")
FAIR = ("{m} not personalized", "{p} plain (same tasks)", "{p} plain (same tasks) + fine-tuned",
        "{p} plain (same tasks) + fine-tuned, settings tuned",
        "{p} plain (same tasks) + calibration", "{m} not personalized + calibration")


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
    text = result.stdout  # warnings go to stderr
    assert "## Parameters" in text and "## Table 2" in text and "## Table 4" in text
    # DSAML, every baseline with (†) and without MAML, and the fair competitors.
    for row in ["DSAML"] + [f"{b}†" for b in BASELINES] + list(BASELINES):
        assert f"\n| {row} |" in text, row
    for name in ("DSAML",) + BASELINES:
        meta = "DSAML" if name == "DSAML" else f"{name}†"
        for row in FAIR:
            assert f"\n| {row.format(m=meta, p=name)} |" in text, row
        assert f"\n| {name} | " in text.split("## Table 2")[0]  # parameter counts
    for row in ("DSAML †", "DSAML ‡", "DSAML †‡"):
        assert f"\n| {row} |" in text
    # The paper's numbers sit beside the run's; spread and convergence under them.
    assert "| 0.377 | 0.541 | 0.236 | 0.092 | 0.154 | 0.245 |" in text  # DSAML, Table 2
    assert "| best episode | episodes run |" in text
    md = (output / "results.md").read_text()
    assert md.strip() == text.split("\nWrote ")[0].strip()
    assert (output / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO((output / "results.csv").read_text())))
    table2 = [r for r in rows if r["table"] == "Table 2"]
    # Nine rows per model; songs are held out, so no training listener's mean curve.
    assert len(table2) == 9 * len(MODELS)
    assert {r["meta_learning"] for r in table2} == {"calibrate-then-adapt", "none"}
    assert all(r["n_parameters"] and int(r["n_parameters"]) > 0 for r in rows)
    for r in rows:
        for key in ("ccc_arousal", "pcc_valence", "rmse_arousal", "spread"):
            assert np.isfinite(float(r[key]))
        assert int(r["episodes_run"]) == 2 and r["collapsed"] in ("True", "False")
    settings = json.loads((output / "settings.json").read_text())
    assert settings["seed"] == 0 and settings["preset"] == "tiny"
    assert settings["command"] == ("pdmer benchmark --dataset synthetic --task pdmer "
                                   "--ablations --protocol other-songs --split songs "
                                   "--preset tiny --seed 0")
    # Three fits per model (MAML, plain on the same tasks, plain on mean labels)
    # and one DSAML ablation (‡); † and †‡ reuse the plain fits.
    assert len(settings["estimators"]) == 3 * len(MODELS) + 1
    assert any("mean curve" in note for note in settings["notes"])
    assert json.loads((output / "result.json").read_text())["rows"][0]["row"] == "DSAML"
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
    assert rows[("Table 2", "CRNN† not personalized")]["paper_ccc_arousal"] == ""


def test_song_disjoint_split_scores_only_unseen_songs(data_home):
    result = quiet(dataset="synthetic", task="pdmer", models=["crnn"], data_home=data_home)
    split = result.split
    trained = set(split.train.song_ids)
    assert not set(split.train.annotators) & set(split.test.annotators)
    scored = {split.test.song_ids[r] for e in result.episodes for r in e.query}
    assert scored and not scored & trained
    # Support songs come from the one planner, with the run's seed.
    assert result.episodes == plan_episodes(
        split.test.annotators, lengths=[len(v) for v in split.test.y],
        support_frames=3, scored=~np.isin(split.test.song_ids, list(trained)), random_state=0)
    assert result.settings["support"] == {
        e.listener: [split.test.song_ids[r] for r in e.support] for e in result.episodes}
    # Fine-tuned rows use the personalization's steps and step size.
    n_pairs = sum(len(e.query) for e in result.episodes)
    assert {r["n_scored"] for r in result.rows} == {n_pairs}


def test_listener_split_adds_the_song_mean_curve(tmp_path):
    result = quiet(dataset="synthetic", task="pdmer", models=["crnn"], split="listeners",
                   data_home=str(tmp_path), mean_label_rows=False)
    rows = {r["role"]: r for r in result.rows}
    assert set(rows) == {"personalized", "not personalized", "plain", "plain + fine-tuned",
                         "plain + tuned fine-tune", "plain + calibration",
                         "not personalized + calibration", "song mean curve"}
    # Competitors say what was chosen for them on the training listeners.
    fit, _ = rows["plain + calibration"]["chosen_on_training_listeners"].split(", strength ")
    assert fit in ("moments", "least-squares")
    assert "steps, lr" in rows["plain + tuned fine-tune"]["chosen_on_training_listeners"]
    curve = rows["song mean curve"]
    assert curve["row"] == "training listeners' mean curve of the song"
    assert curve["n_scored"] == rows["personalized"]["n_scored"]
    assert curve["model"] == "-" and curve["best_episode"] is None
    assert -1 <= curve["ccc_mean"] <= 1
    assert any("every scored song was a training song" in n for n in result.settings["notes"])


def test_same_seed_repeats_and_other_seed_differs(data_home):
    kwargs = dict(dataset="synthetic", task="pdmer", models=["crnn"], data_home=data_home)
    first, again = quiet(seed=0, **kwargs), quiet(seed=0, **kwargs)
    # Everything but the times repeats.
    assert first.rows == [dict(r, fit_seconds=f["fit_seconds"], adapt_ms=f["adapt_ms"])
                          for r, f in zip(again.rows, first.rows)]
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
    # Beside Table 1: the reference code adapts on the first 30 s, pdmer does not.
    table1 = result.markdown().split("## Table 1")[1].split("## Table 3")[0]
    assert DMER_NOTE in table1 and "first 30 s" in DMER_NOTE


def test_same_song_protocol_scores_the_rest_of_each_song(data_home):
    result = quiet(dataset="synthetic", task="pdmer", models=["damff"], protocol="same-song",
                   data_home=data_home)
    assert result.settings["support_frames"] == 3
    # Every scored test (listener, song) pair is scored once, from frame 3 on.
    assert result.rows[0]["n_scored"] == int(result.split.scored.sum())
    assert all(e.support == e.query and e.query_start == 3 for e in result.episodes)


def test_several_seeds_and_resume(tmp_path):
    args = ["benchmark", "--preset", "tiny", "--models", "crnn", "-o", str(tmp_path),
            "--seed", "0", "--seed", "1", "--episodes", "3", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    assert "over seeds 0, 1" in summary and "| CRNN† | " in summary and " ± " in summary
    for seed in (0, 1):
        saved = json.loads((tmp_path / f"seed-{seed}" / "result.json").read_text())
        assert {r["episodes_run"] for r in saved["rows"] if r["model"] != "-"} == {3}
        assert saved["settings"]["command"].endswith(f"--preset tiny --episodes 3 --seed {seed}")
    before = (tmp_path / "seed-1" / "result.json").stat().st_mtime_ns
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "seed-1" / "result.json").stat().st_mtime_ns == before
    assert again.stdout.split("Wrote")[0] == result.stdout.split("Wrote")[0]


def test_resume_reruns_when_settings_differ(tmp_path):
    first = quiet(models=["crnn"], output=str(tmp_path))
    same = quiet(models=["crnn"], output=str(tmp_path), resume=True)
    assert same.rows == first.rows and same.estimators == {}
    other = quiet(models=["crnn"], output=str(tmp_path), resume=True, mean_label_rows=False)
    assert len(other.rows) < len(first.rows) and other.estimators


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
    (["--split", "frames"], "Invalid value for '--split'"),
])
def test_cli_usage_errors(args, message, tmp_path):
    result = CliRunner().invoke(main, ["benchmark", "-o", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_model_in_the_library():
    with pytest.raises(ValueError, match="Unknown model.*svm.*choose from dsaml"):
        quiet(models=["svm"], output="unused")
    with pytest.raises(ValueError, match="split must be one of songs, listeners"):
        quiet(split="frames", output="unused")


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


def test_parallel_fits_give_the_same_rows_and_variants_add_personalized_rows(data_home):
    variants = {"MAML": {"meta_learning": "maml"}, "Meta-SGD": {"meta_learning": "metasgd"}}
    runs = [quiet(models=["dsaml"], data_home=data_home, mean_label_rows=False,
                  variants=variants, n_jobs=n_jobs) for n_jobs in (1, 2)]
    one, two = ({r["row"]: r for r in run.rows} for run in runs)
    assert one.keys() == two.keys()
    for name, row in one.items():
        for metric in ("ccc_arousal", "ccc_valence", "rmse_arousal", "spread"):
            assert two[name][metric] == pytest.approx(row[metric], abs=1e-6), (name, metric)
    added = {name: row for name, row in one.items() if row["role"] == "variant"}
    assert sorted(added) == ["DSAML MAML", "DSAML Meta-SGD"]
    assert {row["meta_learning"] for row in added.values()} == {"maml", "metasgd"}
    assert all(row["personalized"] for row in added.values())
