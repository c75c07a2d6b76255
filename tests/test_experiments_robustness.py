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
    args = ["--quick", "--conditions", "baseline,16kHz-45s-labels-from-15s", "-o",
            str(tmp_path)]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| condition | ccc not personalized | ccc personalized |")
    assert "margin vs plain + FT" in table[0] and "collapsed" in table[0]
    names = [line.split(" | ")[0][2:] for line in table[2:]]
    assert names == ["baseline", "16kHz-45s-labels-from-15s", "**average over conditions**"]
    cells = sorted(p.relative_to(tmp_path).as_posix()
                   for p in tmp_path.rglob("result.json"))
    assert cells == ["quick/16kHz-45s-labels-from-15s/seed-0/result.json",
                     "quick/baseline/seed-0/result.json"]
    assert not list(tmp_path.rglob("*.wav"))  # generated audio deleted after each cell
    # The label-start condition generated songs whose labels start 2 s in (quick).
    import json

    settings = json.loads((tmp_path / "quick/16kHz-45s-labels-from-15s/seed-0/result.json")
                          .read_text())["settings"]
    assert settings["data"]["synthetic"]["frame_offset"] == 2.0
    assert settings["features"]["frame_offset"] == 2.0

    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    assert bench.main(args) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == out.splitlines()[-4:]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")} == stamps


def test_pending_conditions_wait_for_the_generator(bench):
    # Conditions whose generator parameters do not exist yet are not run.
    for name, (_, params, pending) in bench.CONDITIONS.items():
        assert bench.generator_accepts(params), name
        assert bench.runnable(name) == bench.generator_accepts(pending)
    assert sum(bench.runnable(name) for name in bench.CONDITIONS) >= 5
