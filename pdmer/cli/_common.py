"""What the train/personalize/predict/evaluate commands share: data sources,
estimator names and ``--param`` values, feature extraction, option types.

The file formats (label CSV, data CSV) and data sets belong to the data
layer (:mod:`pdmer_datasets.csvfiles`, :data:`pdmer_datasets.DATASETS`); this
module only turns their errors into command-line ones.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
from pathlib import Path

import click

from pdmer_datasets import DATASETS, load_table


# ------------------------------------------------------------------- data sets
def load_data(source, data_home=None, split="train", labels="annotators"):
    """The labelled rows of a DATA argument: :func:`pdmer_datasets.load_table`
    with command-line errors.

    Parameters
    ----------
    source : str
        A data set name (:data:`pdmer_datasets.DATASETS`) or a data CSV.
    data_home, split, labels
        As for :func:`pdmer_datasets.load_table`.

    Returns
    -------
    table : AnnotationTable

    Raises
    ------
    click.BadParameter
        If ``source`` is neither a data set name nor an existing .csv file, or
        annotator labels are asked of a data set that has mean labels only.
    click.ClickException
        If a named data set is not installed in the ``--data-home`` given:
        the data layer's message plus the download command for that folder.
    """
    name = source.lower()
    if labels == "annotators" and name in DATASETS and not DATASETS[name].annotators:
        raise click.BadParameter(
            f"{name} publishes mean labels only, no per-annotator curves; use --labels mean "
            "(DMER).", param_hint="--labels")
    try:
        return load_table(source, data_home=data_home, split=split, labels=labels)
    except ValueError as err:
        path = Path(source)
        if name not in DATASETS and not (path.suffix.lower() == ".csv" and path.is_file()):
            raise click.BadParameter(str(err), param_hint="DATA") from err
        raise
    except FileNotFoundError as err:
        if data_home is None or not (name in DATASETS and DATASETS[name].downloadable):
            raise
        # The data layer's command installs into the default folder, not this one.
        raise click.ClickException(
            f"{' '.join(str(err).split())} For this folder: `pdmer download {name} "
            f"--data-home {data_home}`, then `pdmer validate {name} --data-home "
            f"{data_home}`.") from err


# ------------------------------------------------------------------ estimators
def estimator_names() -> dict:
    """Command-line names (``dsaml``, ``crnn``, ...) of every registered estimator."""
    import inspect

    from pdmer.estimators import BaseEmotionRegressor
    from pdmer.estimators.persistence import ESTIMATORS

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
    """A JSON object of estimator parameters; ``front_end`` may be an object of
    :class:`~pdmer.features.AudioFeatures` parameters."""
    try:
        config = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", param_hint="--config")
    if not isinstance(config, dict):
        raise click.BadParameter(f"{path} must hold a JSON object of parameters.",
                                 param_hint="--config")
    front_end = config.pop("front_end", None)
    if isinstance(front_end, dict):
        config.update({f"front_end__{k}": v for k, v in front_end.items()})
    elif front_end is not None:
        raise click.BadParameter(f"{path}: 'front_end' must be an object of AudioFeatures "
                                 "parameters.", param_hint="--config")
    return config


def build_estimator(cls, params, frame_offset):
    """An unfitted ``cls`` with an explicit front end and ``params`` applied."""
    from sklearn.base import clone

    estimator = cls()
    front_end = clone(estimator.make_front_end(frame_offset))
    estimator.set_params(front_end=front_end)
    set_params(estimator, params)
    # Bad values fail now, not after minutes of feature extraction.
    estimator.check_params()
    return estimator


def set_params(estimator, params):
    valid = estimator.get_params(deep=True)
    for key in params:
        if key not in valid:
            name = type(estimator).__name__
            close = _close_names(key, valid)
            hint = (f"did you mean {' or '.join(map(repr, close))}?" if close else
                    f"see pdmer.{name} in the API reference for its parameters, and "
                    "pdmer.AudioFeatures for the front end's (front_end__<name>).")
            raise click.BadParameter(f"{name} has no parameter {key!r}; {hint}",
                                     param_hint="--param")
    try:
        estimator.set_params(**params)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--param") from err
    return estimator


def _close_names(key, valid) -> list:
    """The parameter names ``key`` may be a typo of (difflib), compared part by
    part, so that ``front_end__n_melz`` suggests ``front_end__n_mels`` and not
    every ``front_end__`` name."""
    prefix, _, rest = key.rpartition("__")
    if prefix and any(k.startswith(prefix + "__") for k in valid):
        inner = [k[len(prefix) + 2:] for k in valid if k.startswith(prefix + "__")]
        return [f"{prefix}__{k}" for k in difflib.get_close_matches(rest, inner, n=3)]
    return difflib.get_close_matches(key, valid, n=3)


def extract(estimator, paths, frame_offset=None, n_jobs=None, label="Extracting features",
            failures=None, progress=True):
    """Features of distinct audio files once each: {path: SongFeatures}.

    With ``failures`` (a list), files that cannot be read are appended to it
    as ``(path, error)`` and left out, instead of the first one stopping all.
    ``progress=False`` (``-q``) hides the progress bar.
    """
    from sklearn.base import clone
    from tqdm.auto import tqdm

    features = clone(estimator.make_front_end(frame_offset))
    if n_jobs is not None:
        features.set_params(n_jobs=n_jobs)
    distinct = list(dict.fromkeys(os.fspath(p) for p in paths))
    out = {}
    # Chunks let the bar move on long lists (joblib parallelises within one).
    step = max(1, 4 * (os.cpu_count() or 1))
    with tqdm(total=len(distinct), desc=label, unit="song", disable=not progress or len(distinct) < 2) as bar:
        for start in range(0, len(distinct), step):
            chunk = distinct[start:start + step]
            if failures is None:
                out.update(zip(chunk, features.transform(chunk)))
            else:
                out.update(transform_each(features, chunk, failures))
            bar.update(len(chunk))
    return out


def transform_each(features, paths, failures) -> dict:
    """``features.transform(paths)`` as {path: result}, leaving out unreadable files.

    All at once first; if a file fails, one by one (with a feature cache the
    songs done so far are not computed again), appending ``(path, error)`` of
    each failure to ``failures``.
    """
    try:
        return dict(zip(paths, features.transform(paths)))
    except (ValueError, OSError) as err:
        if len(paths) == 1:
            failures.append((paths[0], err))
            return {}
    from sklearn.base import clone

    out = {}
    quiet = clone(features).set_params(progress=False)
    for path in paths:
        try:
            [out[path]] = quiet.transform([path])
        except (ValueError, OSError) as err:
            failures.append((path, err))
    return out


def report_failures(failures):
    """One line per failed file on stderr; exit status 1 if there were any."""
    for path, err in failures:
        message = " ".join(str(err).split())
        # Most audio errors name the file already.
        click.echo(f"failed: {message}" if os.fspath(path) in message
                   else f"failed: {path}: {message}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses NaN and infinities.

    ``float("nan")`` passes every comparison-based range check, so a plain
    FloatRange lets ``--frame-offset nan`` through.
    """

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class JobCount(click.ParamType):
    """joblib's ``n_jobs``: a positive number of workers, or -1 for all cores
    (-2 all but one, ...); 0 means nothing and is refused."""

    name = "jobs"

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if number == 0:
            self.fail("0 runs nothing; give a positive number of parallel jobs, or -1 for "
                      "all cores.", param, ctx)
        return number


def jobs_option(default=None, show_default=False,
                help="Songs whose features are extracted in parallel (joblib; -1: all "
                     "cores)."):
    """``-j/--n-jobs``: parallel work, as scikit-learn's ``n_jobs`` (never 0)."""
    return click.option("--n-jobs", "-j", type=JobCount(), default=default,
                        show_default=show_default, help=help)


def device_option(function):
    """``--device``: where the model runs (the one a model file says, by default)."""
    return click.option(
        "--device", default=None, metavar="DEVICE",
        help="Torch device for the model: cpu, cuda, cuda:1, mps or auto (a GPU if "
             "there is one). Default: the model's device parameter (auto, unless "
             "the model file or --config names another).")(function)


def quiet_option(function):
    """``-q/--quiet``: no progress bars or messages; errors and warnings still show."""
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress bars or messages (errors and warnings still "
                             "show).")(function)


class ModelSource(click.ParamType):
    """A MODEL argument: a model file that exists, or a URL :func:`pdmer.load`
    accepts (``https://``, ``http://``, ``hf://<user>/<repo>[@<rev>][/<file>]``),
    passed on as it is (:func:`load_model` fetches it)."""

    name = "model"

    def convert(self, value, param, ctx):
        from pdmer.estimators.remote import is_remote

        if is_remote(value):
            return value
        if isinstance(value, str) and "://" in value:
            self.fail(f"{value!r} is neither a file nor a model URL pdmer loads: https://..., "
                      "http://... or hf://USER/REPO[@REVISION][/FILE].", param, ctx)
        return click.Path(exists=True, dir_okay=False).convert(value, param, ctx)


def model_options(function):
    """``--sha256`` and ``--allow-http``: how a MODEL given as a URL is checked."""
    for option in reversed([
        click.option("--sha256", default=None, metavar="HEX",
                     help="With MODEL a URL: the model file's expected SHA-256 (its model "
                          "card lists it); the download, and a cached copy, must match it. "
                          "Required for plain http:// unless --allow-http."),
        click.option("--allow-http", is_flag=True,
                     help="With MODEL a plain http:// URL: accept it without --sha256 (a "
                          "network you trust)."),
    ]):
        function = option(function)
    return function


def load_model(source, device=None, *, sha256=None, allow_http=False, quiet=False):
    """:func:`pdmer.load` for a MODEL argument (a file or a URL), on ``device`` if given.

    A URL is fetched as :func:`pdmer.load` fetches it
    (:func:`pdmer.estimators.remote.local_model`: cached, verified against
    ``sha256``), with no progress bar if ``quiet``.

    Raises
    ------
    click.BadParameter
        If ``source`` is a listener file, the usual mix-up with ``-l``, or
        ``sha256`` or ``allow_http`` come with a local file.
    click.ClickException
        If a downloaded file does not load (the message names the URL and
        where the file was saved).
    """
    from pdmer import load
    from pdmer.estimators.remote import is_remote, local_model
    from pdmer.files import safetensors_metadata

    remote = is_remote(source)
    if not remote and (sha256 is not None or allow_http):
        option = "--sha256" if sha256 is not None else "--allow-http"
        raise click.BadParameter(
            f"only for a MODEL given as a URL (https://, http://, hf://); {source} is a local "
            "file.", param_hint=option)
    path = local_model(source, sha256=sha256, allow_http=allow_http, progress=not quiet)
    try:
        is_listener = "pdmer_listener" in safetensors_metadata(path)
    except (OSError, ValueError):  # absent or not safetensors at all: load() says so
        is_listener = False
    if is_listener:
        raise click.BadParameter(
            f"{source} is a listener file (from `pdmer personalize`), not a model: give the "
            "model file as MODEL and this file with -l/--listener.", param_hint="MODEL")
    try:
        return load(path) if device is None else load(path, device=device)
    except ValueError as err:
        if not remote:
            raise
        message = " ".join(str(err).split())
        where = "" if os.fspath(path) in message else f" (downloaded to {path})"
        raise click.ClickException(f"MODEL {source}{where}: {message}") from err


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
            click.option("--split", type=click.Choice(["train", "validation", "test"]),
                         default=split_default, show_default=True,
                         help="The rows of a named data set to use: its train, validation "
                              "or test split (the synthetic set has train and test, which "
                              "hold out listeners and songs). A data CSV is used whole."),
            click.option("--labels", type=click.Choice(["annotators", "mean"]),
                         default="annotators", show_default=True,
                         help="Per-annotator curves (PDMER) or labels averaged over "
                              "annotators (DMER)."),
            jobs_option(),
        ]):
            function = option(function)
        return function
    return decorate

