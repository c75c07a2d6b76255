"""benchmarks/bench_robustness.py in --quick mode: one table, cached cells, resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_robustness.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_robustness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_the_tables_and_resumes(bench, tmp_path, capsys):
    args = ["--quick", "--conditions", "baseline,16kHz-45s-from-15s-five-kinds", "-o",
            str(tmp_path)]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| condition | role | ccc personalized | ccc not personalized |")
    for column in ("ccc plain + tuned FT", "ccc plain + calibration", "ccc meta + calibration",
                   "best competitor", "margin", "worst kind margin", "collapsed"):
        assert f"| {column} |" in table[0], column
    names = [line.split(" | ")[0][2:] for line in table[2:5]]
    assert names == ["baseline", "16kHz-45s-from-15s-five-kinds",
                     "**average over test conditions**"]
    kinds = [line for line in table if line.startswith("| 16kHz-45s-from-15s-five-kinds / ")]
    assert kinds, "no per-kind rows"
    cells = sorted(p.relative_to(tmp_path).as_posix()
                   for p in tmp_path.rglob("result.json"))
    assert cells == ["quick/16kHz-45s-from-15s-five-kinds/seed-0/result.json",
                     "quick/baseline/seed-0/result.json"]
    assert not list(tmp_path.rglob("*.wav"))  # generated audio deleted after each cell
    # The label-start condition generated songs whose labels start 2 s in (quick).
    import json

    settings = json.loads((tmp_path / "quick/16kHz-45s-from-15s-five-kinds/seed-0/result.json")
                          .read_text())["settings"]
    assert settings["data"]["synthetic"]["frame_offset"] == 2.0
    assert settings["features"]["frame_offset"] == 2.0

    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    assert bench.main(args) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == out.splitlines()[-4:]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")} == stamps


def test_conditions_span_what_issue_18_asks(bench):
    # Every condition is a valid generator and run_benchmark call; at least ten,
    # dev ones apart from the reported ones, and the data conditions issue 18 names.
    import inspect

    from pdmer.experiments import run_benchmark
    from pdmer_datasets import synthetic

    accepted = inspect.signature(synthetic.generate).parameters
    options = inspect.signature(run_benchmark).parameters
    values, roles = {}, {}
    for name, (role, _, params, extra) in bench.CONDITIONS.items():
        assert set(params) <= set(accepted) and set(extra) <= set(options), name
        roles.setdefault(role, []).append(name)
        for key, value in {**params, **extra}.items():
            values.setdefault(key, []).append(value)
    assert len(bench.CONDITIONS) >= 10 and set(roles) == {"dev", "test"}
    assert len(roles["test"]) >= 8
    assert 15.0 in values["frame_offset"] and 60.0 in values["duration"]
    assert ["reversed"] in values["train_without_kinds"]  # a kind training never saw
    assert "swapped" in values["cues"] and "noise_std" in values
    assert min(values["n_listeners"]) <= 24 and 0.125 in values["reversed_fraction"]
