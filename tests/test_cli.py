"""The pdmer command line."""

from __future__ import annotations

from click.testing import CliRunner

from pdmer.cli import main


def test_help_lists_demo():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_demo_prints_table_and_writes_plot(tmp_path):
    # Two episodes only: this checks the pipeline, not the scores (those are
    # the demo's own job, documented in the README).
    result = CliRunner().invoke(main, ["demo", "-o", str(tmp_path), "--episodes", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "| meta-trained + personalized (1 song) |" in result.output
    assert "| mean-label model (no meta-learning) |" in result.output
    png = tmp_path / "personalization.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_rejects_bad_episode_count(tmp_path):
    result = CliRunner().invoke(main, ["demo", "-o", str(tmp_path), "--episodes", "0"])
    assert result.exit_code != 0
    assert "episodes" in result.output.lower()
