"""The audio files a command works on: files, folders and list files.

``pdmer extract`` and ``pdmer predict`` take the same INPUTS: audio files,
folders (searched for audio files by extension) and list files (a text file
or playlist with one audio path per line), so that a folder of songs or a
corpus list works the way it does with other feature extractors.
"""

from __future__ import annotations

from pathlib import Path

import click

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au")
#: Files read as lists of audio paths when given among the INPUTS.
LIST_SUFFIXES = (".txt", ".lst", ".m3u", ".m3u8")


def read_list(path) -> list[Path]:
    """The audio paths of a list file: one a line, relative to the file's folder;
    blank lines and lines starting with ``#`` (comments, M3U tags) are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter(
            f"{path} is not a UTF-8 text list of audio paths (one a line).",
            param_hint="--list") from None
    files = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line).expanduser()
            files.append(entry if entry.is_absolute() else path.parent / entry)
    return files


def audio_files(inputs, list_files=(), recursive=True) -> list[str]:
    """Distinct audio paths, in order, of INPUTS and ``--list`` files.

    A folder contributes its files with an audio extension
    (:data:`AUDIO_SUFFIXES`; subfolders too if ``recursive``), a file with a
    list extension (:data:`LIST_SUFFIXES`) the paths it lists, any other file
    itself.

    Raises
    ------
    click.BadParameter
        If listed files do not exist.
    click.UsageError
        If no audio file is found.
    """
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = item.rglob("*") if recursive else item.glob("*")
            files += sorted(p for p in found if p.suffix.lower() in AUDIO_SUFFIXES
                            and p.is_file())
        elif item.suffix.lower() in LIST_SUFFIXES:
            files += read_list(item)
        else:
            files.append(item)
    for list_file in list_files:
        files += read_list(list_file)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise click.BadParameter(f"no such file: {', '.join(missing[:5])}"
                                 + (" ..." if len(missing) > 5 else "") + ".",
                                 param_hint="INPUTS")
    if not files:
        raise click.UsageError(
            "No audio files found: give audio files, folders holding "
            f"{'/'.join(s[1:] for s in AUDIO_SUFFIXES)} files, or list files "
            f"({'/'.join(s[1:] for s in LIST_SUFFIXES)}, or --list) of audio paths.")
    return list(dict.fromkeys(str(p) for p in files))


def inputs_options(function):
    """``--list`` and ``--recursive/--no-recursive``: how INPUTS are searched."""
    function = click.option(
        "--recursive/--no-recursive", default=True, show_default=True,
        help="Look for audio in the subfolders of folder INPUTS.")(function)
    return click.option(
        "--list", "list_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
        help="A text file with one audio path per line, relative to the file (repeatable; "
             "INPUTS ending in .txt, .lst or .m3u are read as lists too).")(function)
