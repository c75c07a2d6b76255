"""Model cards: a Markdown file beside every saved model saying what it is.

A model file alone says little to whoever downloads it: which data it
learned from (and under which licence), with which settings, how well it
validated. :meth:`~pdmer.estimators.BaseEmotionRegressor.save` therefore
writes ``<name>.md`` beside ``<name>.safetensors`` (rename it ``README.md``
when uploading to the Hugging Face Hub, which shows that file as the card).
Everything in the card comes from the fitted estimator; nothing is
measured anew.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pdmer.downloads import sha256_file
from pdmer.files import atomic_write
from pdmer.features.container import SongFeatures

__all__ = ["card_path", "describe_training_data", "model_card", "write_model_card"]


def card_path(model_path) -> Path:
    """Where the card of ``model_path`` goes: the same name with ``.md``."""
    path = Path(model_path)
    return path.with_suffix(".md") if path.suffix else path.with_name(path.name + ".md")


def describe_training_data(X, annotators, tasks: str, frame_offset, encoder: str) -> dict:
    """What ``fit`` saw, as the JSON-able ``training_data_`` attribute.

    Parameters
    ----------
    X : sequence of songs
        The rows fit was given (paths, arrays or SongFeatures).
    annotators : ndarray or None
    tasks : str
        How tasks were built ("annotator" or "song").
    frame_offset : float or None
        Where the labels start in the audio, in seconds, when the front end
        set it; otherwise read from the SongFeatures given.
    encoder : str
        The global encoder of the features.

    Returns
    -------
    dict
        ``n_rows``, ``n_songs``, ``n_annotators`` (None without ids),
        ``tasks``, ``frame_offset``, ``encoder`` and ``dataset`` (None until
        :meth:`save` is told the data set's name and licence).
    """
    from pdmer.estimators.validation import song_key

    if frame_offset is None:
        offsets = sorted({float(x.frame_offset) for x in X if isinstance(x, SongFeatures)})
        frame_offset = offsets[0] if len(offsets) == 1 else (offsets or None)
    return {
        "n_rows": len(X),
        "n_songs": len({song_key(x) for x in X}),
        "n_annotators": None if annotators is None else len({str(a) for a in annotators}),
        "tasks": tasks,
        "frame_offset": frame_offset,
        "encoder": encoder,
        "dataset": None,
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _count_parameters(estimator) -> int:
    return int(sum(p.numel() for p in estimator.network_.parameters()))


def model_card(estimator, model_path) -> str:
    """The Markdown card of a fitted ``estimator`` saved at ``model_path``."""
    name = type(estimator).__name__
    path = Path(model_path)
    data = getattr(estimator, "training_data_", None) or {}
    dataset = data.get("dataset") or {}
    settings = getattr(estimator, "resolved_params_", None) or {}
    best = getattr(estimator, "best_validation_ccc_", None)
    size = estimator.get_params().get("size")
    lines = [
        f"# {name} ({dataset.get('name', 'pdmer')} model)", "",
        "Personalized dynamic music emotion recognition with pdmer: arousal and "
        "valence every 0.5 s "
        "of a song, adaptable to one listener from one annotated song.", "",
        "| | |", "|---|---|",
        f"| Estimator | `pdmer.{name}` |",
        f"| Size | {size if size is not None else 'n/a'} |",
        f"| Parameters | {_count_parameters(estimator):,} |",
        f"| File | `{path.name}` ({path.stat().st_size:,} bytes) |",
        f"| SHA-256 | `{sha256_file(path)}` |",
        f"| Model id | `{estimator.model_id_}` (listener files name it) |",
        f"| Saved with | pdmer {_version('pdmer')}, torch {_version('torch')} |",
        "", "## Training data", "",
    ]
    if dataset:
        lines += [f"Data set: **{dataset.get('name')}**"
                  + (f" ({dataset['homepage']})" if dataset.get("homepage") else "") + ".", ""]
    else:
        lines += ["Data set: not recorded (a model fitted in Python; pass "
                  "`dataset={'name': ..., 'license': ...}` to `save`).", ""]
    facts = [("rows (song, annotator pairs)", data.get("n_rows")),
             ("distinct songs", data.get("n_songs")),
             ("annotators", data.get("n_annotators")),
             ("meta-learning tasks by", data.get("tasks")),
             ("labels start at (frame_offset, s)", data.get("frame_offset")),
             ("global encoder", data.get("encoder"))]
    lines += [f"- {label}: {value}" for label, value in facts if value is not None]
    lines += ["", "## Licence", ""]
    if dataset.get("license"):
        lines += [f"Training data licence: {dataset['license']}", "",
                  "The weights were learned from these data: check that the data's licence "
                  "allows your use (and redistribution) of the model.", ""]
    else:
        lines += ["The training data and their licence are not recorded: ask whoever "
                  "trained the model before using or redistributing it.", ""]
    lines += ["## Validation", ""]
    if best is not None:
        lines += [f"- best validation CCC (mean of arousal and valence, after adapting to "
                  f"each held-out listener): {best:.4f} at episode "
                  f"{estimator.best_episode_}",
                  f"- held-out validation listeners: "
                  f"{len(getattr(estimator, 'validation_listeners_', []) or [])}"]
    else:
        lines += ["- no validation split (validation_fraction=0): no score recorded"]
    lines += [f"- episodes trained: {estimator.n_episodes_run_}"
              + (" (stopped early)" if estimator.stopped_early_ else ""), "",
              "## Settings (resolved_params_)", "", "```json",
              json.dumps(settings, indent=2, sort_keys=True, default=str), "```", "",
              "## Use", "", "```python", "import pdmer",
              f'model = pdmer.load("{path.name}")  # or "hf://<user>/<repo>", '
              'or an https:// URL with sha256=...',
              "curves = model.predict([\"song.mp3\"])  # (n_frames, 2): arousal, valence",
              "```", ""]
    return "\n".join(lines)


def write_model_card(estimator, model_path) -> Path:
    """Write :func:`model_card` atomically to :func:`card_path`; returns that path."""
    target = card_path(model_path)
    text = model_card(estimator, model_path)
    atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                 suffix=".md")
    return Path(os.fspath(target))
