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


def test_library_errors_are_one_line_and_debug_shows_the_traceback():
    @main.command("raise-for-test")
    def raise_for_test():
        raise ValueError("the labels have 7 frames\nbut the audio only 5")

    try:
        result = CliRunner().invoke(main, ["raise-for-test"])
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == [
            "Error: the labels have 7 frames but the audio only 5 (run with --debug for "
            "the traceback)"]
        debug = CliRunner().invoke(main, ["--debug", "raise-for-test"])
        assert debug.exit_code == 1
        assert isinstance(debug.exception, ValueError)
    finally:
        main.commands.pop("raise-for-test")


def test_download_group_is_listed():
    result = CliRunner().invoke(main, ["--help"])
    assert "download" in result.output
