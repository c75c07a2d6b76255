"""The pdmer command line."""

from __future__ import annotations

import click
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


# ------------------------------------------------- options and messages (issue 20)
MODEL_COMMANDS = ("train", "personalize", "predict", "evaluate", "benchmark", "demo", "app",
                  "extract")


def commands(group=main, prefix=()):
    """(name, click command) of every command, subcommands of groups included."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), command


def option_names(command):
    return {opt for param in command.params for opt in param.opts + param.secondary_opts}


def test_every_command_that_runs_a_model_takes_a_device():
    missing = [name for name, command in commands()
               if name in MODEL_COMMANDS and "--device" not in option_names(command)]
    assert missing == []


def test_quiet_and_jobs_are_spelled_one_way_everywhere():
    for name, command in commands():
        for param in command.params:
            if "-j" in param.opts or "--jobs" in param.opts or "--n-jobs" in param.opts:
                assert param.opts == ["--n-jobs", "-j"], name
            if "--quiet" in param.opts or "-q" in param.opts:
                assert sorted(param.opts) == ["--quiet", "-q"], name
    # Commands that print progress or messages can be silenced.
    talkative = MODEL_COMMANDS + ("download imagebind",)
    assert [n for n, c in commands() if n in talkative and "-q" not in option_names(c)] == []


def test_help_and_docs_name_front_end_parameters_alike():
    from pathlib import Path

    usage = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    assert "front_end__n_mels" in usage and "features__" not in usage
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.rst").read_text()
    assert "-p front_end__n_mels=64" in " ".join(docs.split())
    assert "-p features__n_mels" not in docs


def test_warnings_are_one_clean_line_each():
    import warnings

    from pdmer.estimators import CollapseWarning, FrameOffsetWarning

    @main.command("warn-for-test")
    def warn_for_test():
        warnings.warn("DSAMLRegressor may have collapsed to a near-constant\n   output.",
                      CollapseWarning)
        warnings.warn("The labels are shorter than the audio.", FrameOffsetWarning)
        warnings.warn("Labels outside [-1, 1]: 3 frames.", UserWarning)

    try:
        result = CliRunner().invoke(main, ["warn-for-test"])
    finally:
        main.commands.pop("warn-for-test")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Warning: DSAMLRegressor may have collapsed to a near-constant output.",
        "Warning: The labels are shorter than the audio.",
        "Warning: Labels outside [-1, 1]: 3 frames."]
