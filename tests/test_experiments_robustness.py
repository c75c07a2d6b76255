"""benchmarks/bench_robustness.py in --quick mode: one table, cached cells, resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_robustness.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_robustness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_one_table_and_resumes(bench, tmp_path, capsys):
    args = ["--quick", "--conditions", "baseline,16kHz-45s-labels-from-15s-mixed", "-o",
            str(tmp_path)]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| condition | ccc not personalized | ccc personalized |")
    assert "margin vs plain + FT" in table[0] and "collapsed" in table[0]
    names = [line.split(" | ")[0][2:] for line in table[2:]]
    assert names == ["baseline", "16kHz-45s-labels-from-15s-mixed", "**average over conditions**"]
    cells = sorted(p.relative_to(tmp_path).as_posix()
                   for p in tmp_path.rglob("result.json"))
    assert cells == ["quick/16kHz-45s-labels-from-15s-mixed/seed-0/result.json",
                     "quick/baseline/seed-0/result.json"]
    assert not list(tmp_path.rglob("*.wav"))  # generated audio deleted after each cell
    # The label-start condition generated songs whose labels start 2 s in (quick).
    import json

    settings = json.loads((tmp_path / "quick/16kHz-45s-labels-from-15s-mixed/seed-0/result.json")
                          .read_text())["settings"]
    assert settings["data"]["synthetic"]["frame_offset"] == 2.0
    assert settings["features"]["frame_offset"] == 2.0

    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    assert bench.main(args) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == out.splitlines()[-4:]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")} == stamps


def test_conditions_are_generator_parameters(bench):
    # Every condition is a valid generator call, and the suite spans the data
    # conditions of issue 10 (sample rates, lengths, label start, listener kinds, noise).
    import inspect

    from pdmer_datasets import synthetic

    accepted = inspect.signature(synthetic.generate).parameters
    values = {}
    for name, (_, params) in bench.CONDITIONS.items():
        assert set(params) <= set(accepted), name
        for key, value in params.items():
            values.setdefault(key, []).append(value)
    assert len(bench.CONDITIONS) >= 5
    assert {16000, 44100} <= set(values["sample_rate"])
    assert 15.0 in values["frame_offset"] and (30.0, 60.0) in values["duration"]
    kinds = set().union(*(mix for mix in values["listener_mix"]))
    assert {"reversed", "shifted", "compressed", "lagged"} <= kinds
    assert "noise_std" in values
