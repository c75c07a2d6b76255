"""What the train/personalize/predict/evaluate commands share: label and data
CSV files, estimator names and ``--param`` values, data sources.

Label CSV (one song, one listener)
    A header with ``arousal`` and ``valence`` and either ``time`` (seconds,
    the start of each 0.5 s frame, e.g. ``15.0, 15.5, ...`` for DEAM) or
    ``frame`` (frame index; frame ``i`` starts at ``frame_offset + 0.5 i``
    seconds). One row per frame, consecutive on the 0.5 s grid, finite values.
    Other columns are ignored. ``pdmer predict`` writes this format.

Data CSV (many songs, for ``train`` and ``evaluate``)
    Columns ``audio`` (audio file), ``labels`` (a label CSV as above) and,
    optionally, ``annotator`` (who made the labels; one meta-learning task per
    annotator). Relative paths are relative to the data CSV's folder. The same
    audio may appear in several rows, once per annotator.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from pathlib import Path

import click
import numpy as np

from pdmer.labels import DIMENSIONS, FRAME_SECONDS

DATASET_NAMES = ("deam", "pmemo", "synthetic")
# Tolerance, in seconds, for times on the 0.5 s grid (CSV files round them).
_GRID_TOLERANCE = 1e-3


# --------------------------------------------------------------------- labels
def read_labels(path, frame_offset=0.0):
    """Read a label CSV.

    Returns
    -------
    labels : ndarray of shape (n_frames, 2), float32
    offset : float
        Audio time in seconds of the first row.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise FileNotFoundError(f"Label file not found: {path}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"{path} is empty; a label CSV needs a header "
                         "(time or frame, arousal, valence) and one row per 0.5 s frame.")
    header = [cell.strip().lower() for cell in rows[0]]
    clock = "time" if "time" in header else "frame" if "frame" in header else None
    missing = [c for c in DIMENSIONS if c not in header]
    if clock is None or missing:
        raise ValueError(
            f"{path} must have the columns time (or frame), arousal and valence; "
            f"got {', '.join(rows[0])}.")
    columns = [header.index(c) for c in (clock, *DIMENSIONS)]
    if len(rows) < 2:
        raise ValueError(f"{path} has a header but no labels.")
    values = np.empty((len(rows) - 1, 3))
    for line, row in enumerate(rows[1:], start=2):
        try:
            values[line - 2] = [float(row[c]) for c in columns]
        except (IndexError, ValueError):
            raise ValueError(f"{path}, line {line}: expected numbers in the columns "
                             f"{clock}, arousal, valence; got {row}.") from None
    if not np.isfinite(values).all():
        line = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0]) + 2
        raise ValueError(f"{path}, line {line}: NaN or infinite value; labels must be "
                         "finite (trim unannotated frames or interpolate them).")
    times = values[:, 0] if clock == "time" else frame_offset + FRAME_SECONDS * values[:, 0]
    steps = np.diff(times)
    bad = np.flatnonzero(np.abs(steps - FRAME_SECONDS) > _GRID_TOLERANCE)
    if bad.size:
        line = int(bad[0]) + 3
        raise ValueError(
            f"{path}, line {line}: {clock} jumps from {values[bad[0], 0]:g} to "
            f"{values[bad[0] + 1, 0]:g}; rows must be consecutive 0.5 s frames "
            f"({'time steps of 0.5' if clock == 'time' else 'frame steps of 1'}).")
    offset = round(float(times[0]), 6)
    if offset < 0:
        raise ValueError(f"{path}: the labels start at {offset:g} s, before the audio.")
    return values[:, 1:].astype(np.float32), offset


def write_predictions(path, curve, frame_offset):
    """Write one song's (arousal, valence) curve as a label CSV with a time column."""
    from pdmer._files import atomic_write

    times = frame_offset + FRAME_SECONDS * np.arange(len(curve))

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("time", *DIMENSIONS))
            for t, (a, v) in zip(times, curve):
                writer.writerow((f"{t:.1f}", f"{a:.6f}", f"{v:.6f}"))

    atomic_write(path, write, suffix=".csv")


# ------------------------------------------------------------------- data sets
class LabelledData:
    """Rows of (audio path, labels, annotator) with one frame offset."""

    def __init__(self, X, y, annotators, frame_offset, description):
        self.X, self.y, self.annotators = list(X), list(y), annotators
        self.frame_offset = float(frame_offset)
        self.description = description

    def __len__(self):
        return len(self.X)


def read_data_csv(path):
    """Read a data CSV (audio, labels[, annotator]) into :class:`LabelledData`."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "audio" not in fields or "labels" not in fields:
            raise ValueError(f"{path} must have the columns audio and labels (and optionally "
                             f"annotator); got {', '.join(reader.fieldnames or []) or 'nothing'}.")
        reader.fieldnames = fields
        rows = [r for r in reader if any((v or "").strip() for v in r.values())]
    if not rows:
        raise ValueError(f"{path} lists no songs.")
    has_annotators = "annotator" in fields
    X, y, annotators, offsets = [], [], [], set()
    for line, row in enumerate(rows, start=2):
        audio = _resolve(path, row["audio"], line, "audio")
        if not audio.is_file():
            raise FileNotFoundError(f"{path}, line {line}: audio file not found: {audio}")
        labels, offset = read_labels(_resolve(path, row["labels"], line, "labels"))
        if has_annotators:
            who = (row.get("annotator") or "").strip()
            if not who:
                raise ValueError(f"{path}, line {line}: the annotator is empty; give every "
                                 "row an annotator id or drop the annotator column.")
            annotators.append(who)
        X.append(str(audio))
        y.append(labels)
        offsets.add(offset)
    if len(offsets) > 1:
        raise ValueError(
            f"{path}: the label files start at different times ({sorted(offsets)} s); "
            "every song of one data CSV must start at the same frame offset.")
    who = f", {len(set(annotators))} annotators" if has_annotators else ""
    return LabelledData(X, y, np.array(annotators) if has_annotators else None,
                        offsets.pop(), f"{path} ({len(X)} rows{who})")


def _resolve(csv_path, value, line, column):
    value = (value or "").strip()
    if not value:
        raise ValueError(f"{csv_path}, line {line}: the {column} column is empty.")
    target = Path(value).expanduser()
    return target if target.is_absolute() else csv_path.parent / target


def load_data(source, data_home=None, split="train", labels="annotators"):
    """A data set name (deam, pmemo, synthetic) or a data CSV -> :class:`LabelledData`."""
    if source.lower() in DATASET_NAMES:
        table = _dataset_table(source.lower(), data_home, split, labels)
        X, y, annotators = table
        kind = "annotator" if annotators is not None else "mean"
        return LabelledData(X, y, annotators, table.frame_offset,
                            f"{source} {split} split ({len(table)} rows, {kind} labels)")
    path = Path(source)
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise click.BadParameter(
            f"{source!r} is neither a data set ({', '.join(DATASET_NAMES)}) nor an existing "
            ".csv file listing audio, labels and annotator columns.", param_hint="DATA")
    data = read_data_csv(path)
    if labels == "mean" and data.annotators is not None:
        from pdmer_datasets.table import AnnotationTable

        table = AnnotationTable(data.X, data.y, data.annotators, np.array(data.X),
                                data.frame_offset).mean_labels()
        data = LabelledData(table.X, table.y, None, data.frame_offset,
                            f"{path} ({len(table)} songs, mean labels)")
    return data


def _dataset_table(name, data_home, split, labels):
    import pdmer_datasets

    dataset = pdmer_datasets.initialize(name, data_home=data_home)
    method = dataset.annotator_table if labels == "annotators" else dataset.mean_table
    try:
        return method(split=split)
    except TypeError as err:
        if "split" not in str(err):
            raise
        # Data sets without splits (synthetic) have one table.
        click.echo(f"Note: {name} has no splits; using all of its rows.", err=True)
        return method()


# ------------------------------------------------------------------ estimators
def estimator_names() -> dict:
    """Command-line names (``dsaml``, ``crnn``, ...) of every registered estimator."""
    import inspect

    from pdmer.estimators.base import ESTIMATORS, BaseEmotionRegressor

    names = {}
    for cls_name, cls in ESTIMATORS.items():
        # Skip shared bases of several estimators: they build no network.
        if (cls_name.startswith("_") or inspect.isabstract(cls)
                or cls._build_network is BaseEmotionRegressor._build_network):
            continue
        short = cls_name[: -len("Regressor")] if cls_name.endswith("Regressor") else cls_name
        names[short.lower()] = cls
    return dict(sorted(names.items()))


def resolve_estimator(name):
    names = estimator_names()
    key = name.lower()
    if key.endswith("regressor"):
        key = key[: -len("regressor")]
    if key not in names:
        raise click.BadParameter(f"unknown model {name!r}; choose one of "
                                 f"{', '.join(names)}.", param_hint="--model")
    return names[key]


def parse_value(text):
    """A ``--param`` value: JSON or a Python literal, else the string itself."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def parse_params(items):
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not of the form key=value.",
                                     param_hint="--param")
        params[key] = parse_value(value.strip())
    return params


def read_config(path):
    """A JSON object of estimator parameters; ``features`` may be an object of
    :class:`~pdmer.features.AudioFeatures` parameters."""
    try:
        config = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", param_hint="--config")
    if not isinstance(config, dict):
        raise click.BadParameter(f"{path} must hold a JSON object of parameters.",
                                 param_hint="--config")
    features = config.pop("features", None)
    if isinstance(features, dict):
        config.update({f"features__{k}": v for k, v in features.items()})
    elif features is not None:
        raise click.BadParameter(f"{path}: 'features' must be an object of AudioFeatures "
                                 "parameters.", param_hint="--config")
    return config


def build_estimator(cls, params, frame_offset):
    """An unfitted ``cls`` with an explicit front end and ``params`` applied."""
    from sklearn.base import clone

    estimator = cls()
    front_end = clone(estimator._front_end()).set_params(frame_offset=frame_offset)
    estimator.set_params(features=front_end)
    set_params(estimator, params)
    # Bad values fail now, not after minutes of feature extraction.
    estimator._check_params()
    return estimator


def set_params(estimator, params):
    valid = estimator.get_params(deep=True)
    for key in params:
        if key not in valid:
            top = sorted(k for k in valid if "__" not in k)
            raise click.BadParameter(
                f"{type(estimator).__name__} has no parameter {key!r}. Its parameters: "
                f"{', '.join(top)}; front-end ones as features__<name>.",
                param_hint="--param")
    try:
        estimator.set_params(**params)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--param") from err
    return estimator


def front_end(estimator, frame_offset=None):
    """The estimator's feature extractor, at ``frame_offset`` if given."""
    from sklearn.base import clone

    features = clone(estimator._front_end())
    if frame_offset is not None:
        features.set_params(frame_offset=float(frame_offset))
    return features


def extract(estimator, paths, frame_offset=None, n_jobs=None, label="Extracting features"):
    """Features of distinct audio files once each: {path: SongFeatures}."""
    from tqdm.auto import tqdm

    features = front_end(estimator, frame_offset)
    if n_jobs is not None:
        features.set_params(n_jobs=n_jobs)
    distinct = list(dict.fromkeys(os.fspath(p) for p in paths))
    out = {}
    # Chunks let the bar move on long lists (joblib parallelises within one).
    step = max(1, 4 * (os.cpu_count() or 1))
    with tqdm(total=len(distinct), desc=label, unit="song", disable=len(distinct) < 2) as bar:
        for start in range(0, len(distinct), step):
            chunk = distinct[start:start + step]
            out.update(zip(chunk, features.transform(chunk)))
            bar.update(len(chunk))
    return out


def threads_option(function):
    """``--threads``: torch intra-op threads (the number of free cores)."""
    def set_threads(ctx, param, value):
        if value is not None:
            import torch

            torch.set_num_threads(value)
        return value

    return click.option(
        "--threads", type=click.IntRange(min=1), default=None, expose_value=False,
        callback=set_threads, is_eager=True,
        help="Torch threads; at most the number of FREE cores (more is 10-40x slower "
             "on a busy machine). Default: torch's choice.")(function)


def data_options(split_default):
    """The options that say where labelled data come from (train and evaluate)."""
    def decorate(function):
        for option in reversed([
            click.option("--data-home", type=click.Path(file_okay=False),
                         help="Folder of the data set (default: ~/mir_datasets/<name>)."),
            click.option("--split", default=split_default, show_default=True,
                         help="Split of a data set with official splits (train, "
                              "validation, test)."),
            click.option("--labels", type=click.Choice(["annotators", "mean"]),
                         default="annotators", show_default=True,
                         help="Per-annotator curves (PDMER) or labels averaged over "
                              "annotators (DMER)."),
            click.option("--jobs", "-j", type=int, default=None,
                         help="Songs whose features are extracted in parallel (joblib)."),
        ]):
            function = option(function)
        return function
    return decorate

