"""Model files: fitted estimators saved as safetensors files (no pickle).

A model file holds the network's tensors and, as JSON metadata, the
estimator's class name, its parameters and its fitted attributes. Loading
finds the class by that name among the registered estimators (every
subclass of :class:`~pdmer.estimators.BaseEmotionRegressor` registers
itself), so the estimators import this module and never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pdmer.features.frontend import AudioFeatures
from pdmer.files import atomic_write, safetensors_metadata
from pdmer.meta.methods import MetaLearningMethod, get_method, method_to_json
from pdmer.estimators.remote import local_model
from pdmer.nn.device import resolve_device

ESTIMATORS: dict[str, type] = {}
"""Estimator classes by class name, for :func:`load` (filled as they are defined)."""

FITTED_ATTRIBUTES = ("feature_spec_", "encoder_", "tasks_", "seed_", "history_",
                     "best_episode_", "best_validation_ccc_", "resolved_params_",
                     "n_episodes_run_", "stopped_early_", "prediction_std_ratio_",
                     "validation_listeners_", "training_data_", "personalization_choices_")
"""Fitted attributes (besides the network's weights) that a model file carries."""

OPTIONAL_FITTED = {"training_data_": None, "personalization_choices_": {}}
"""Fitted attributes added after format 2 was fixed, with the value a file
written before them gets (models saved earlier stay loadable)."""

FORMAT_VERSION = "2"
"""Version of the model file layout: the estimator's parameters (the front
end's as ``front_end``) and its fitted attributes as JSON metadata beside the
network's tensors."""


def register(cls: type) -> type:
    """Record an estimator class under its name; returns it (usable as a decorator)."""
    ESTIMATORS[cls.__name__] = cls
    return cls


def model_id(network: torch.nn.Module) -> str:
    """Identity of a network's state (weights and buffers), 16 hex digits.

    Listener files record it, so an adaptation is only ever applied to the
    model it was computed from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                      .numpy().tobytes())
    return digest.hexdigest()[:16]


def _json_default(value):
    # NumPy scalars (e.g. np.int64 parameters from a grid search) as Python ones.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, MetaLearningMethod):
        return method_to_json(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def save_estimator(estimator, path) -> None:
    """Write ``estimator`` to ``path`` atomically (temporary file, then rename)."""
    params = estimator.get_params(deep=False)
    if params["front_end"] is not None:
        front_end = params["front_end"].get_params()
        if not isinstance(front_end["global_encoder"], str):
            # Custom encoders are code; store the name and ask for it at load.
            front_end["global_encoder"] = None
        params["front_end"] = front_end
    metadata = {
        "pdmer_format": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": json.dumps(params, default=_json_default),
        "fitted": json.dumps({k: getattr(estimator, k, OPTIONAL_FITTED.get(k))
                              for k in FITTED_ATTRIBUTES},
                             default=_json_default),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.network_.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def is_path_param(name: str) -> bool:
    """True for parameters that name a file or folder (``*_path``, ``*_dir``).

    Such values in a model file were chosen by whoever wrote the file, so
    :func:`load` does not let them direct where pdmer writes.
    """
    return name.endswith(("_path", "_dir"))


RENAMED_PARAMS = {"mixed_precision": ("precision", {True: "auto", False: "fp32",
                                                    "bf16": "bf16"})}
"""Parameters renamed since format 2 was fixed: old name -> (new name, old
value -> new value). Files written before the renaming load with the new
parameter (e.g. ``mixed_precision=True`` as ``precision="auto"``)."""


def _renamed_params(stored: dict, path) -> dict:
    """``stored`` with the parameters of :data:`RENAMED_PARAMS` under their new names."""
    stored = dict(stored)
    for old, (new, values) in RENAMED_PARAMS.items():
        if old not in stored:
            continue
        value = stored.pop(old)
        if new in stored or not isinstance(value, (bool, str)) or value not in values:
            raise ValueError(f"{path} holds {old}={value!r}, which this pdmer version cannot "
                             f"read as {new}; the file was edited. Refusing to load it.")
        stored[new] = values[value]
    return stored


def _checked_params(stored: dict, defaults: dict, explicit: dict, what: str, path) -> dict:
    """``stored`` with unknown keys refused and path parameters reset to their defaults."""
    unknown = sorted(set(stored) - set(defaults))
    if unknown:
        raise ValueError(
            f"{path} holds {what} parameters this pdmer version does not have: "
            f"{', '.join(unknown)}. The file was edited or written by another version; "
            "refusing to load it.")
    return {k: (defaults[k] if is_path_param(k) and k not in explicit else v)
            for k, v in stored.items()}


def _fitted_attributes(metadata: dict, path) -> dict:
    fitted = {**OPTIONAL_FITTED, **json.loads(metadata["fitted"])}
    unknown = sorted(set(fitted) - set(FITTED_ATTRIBUTES))
    missing = sorted(set(FITTED_ATTRIBUTES) - set(fitted))
    if unknown or missing:
        problems = ([f"unknown fitted attributes {', '.join(unknown)}"] if unknown else []) + (
            [f"no {', '.join(missing)}"] if missing else [])
        raise ValueError(f"{path} has {' and '.join(problems)}; it was edited or written by "
                         "another pdmer version. Refusing to load it.")
    return fitted


def _load_weights(network, path, estimator: str) -> None:
    """Load the file's tensors into ``network``; a ValueError if they are not finite or do not fit."""
    state = load_file(path)
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if bad:
        raise ValueError(f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}): "
                         "training diverged or the file is damaged; train the model again.")
    damaged = "The file was edited or damaged; train the model again."
    expected = network.state_dict()
    for name, tensor in state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise ValueError(
                f"{path} does not fit its {estimator}: {name} has shape {tuple(tensor.shape)}, "
                f"its settings make {tuple(expected[name].shape)}. {damaged}")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing or unexpected tensors
        raise ValueError(f"{path} does not fit its {estimator}: "
                         f"{' '.join(str(err).split())[:300]} {damaged}") from None


def load(path, *, sha256=None, allow_http=False, **params):
    """Load an estimator saved with ``estimator.save(path)``, from a file or a URL.

    A model file is data, not code, and may come from anyone: unknown
    parameters or fitted attributes are refused, and parameters that name
    files or folders (``checkpoint_path``, the front end's ``cache_dir``: see
    :func:`is_path_param`) are reset to their defaults unless passed here,
    so a file cannot choose where pdmer writes.

    A URL is downloaded once into the user cache (verified, resumable; see
    :mod:`pdmer.estimators.remote`): ``https://...``, or ``hf://<user>/<repo>``
    for ``model.safetensors`` on the main branch of a Hugging Face Hub
    repository (``hf://<user>/<repo>@<revision>/<file>`` for another).
    Plain ``http://`` needs ``sha256`` (or ``allow_http=True``): without TLS
    nothing else shows that the file was not swapped on the way.

    Parameters
    ----------
    path : str or os.PathLike
        A model file, or an ``https://``, ``http://`` or ``hf://`` URL.
    sha256 : str, optional
        For a URL: the file's expected hex SHA-256 (its model card lists
        it). The download, and a cached copy, must match it.
    allow_http : bool, default=False
        For a URL: accept plain ``http://`` without ``sha256``.
    **params
        Parameters to override, e.g. ``device="cpu"``; front-end parameters
        as ``front_end__<name>``, e.g. ``front_end__cache_dir="~/features"``;
        or ``front_end=`` with an :class:`~pdmer.features.AudioFeatures`
        holding a custom global encoder (code is never stored in the file).

    Returns
    -------
    estimator
        Fitted, with the meta-trained parameters and no listener.

    Raises
    ------
    ValueError
        The file is not a pdmer model file, holds parameters or fitted
        attributes this version does not know, tensors that do not fit the
        stored settings, or NaN or infinite weights.
    TypeError
        ``params`` names unknown parameters.

    Examples
    --------
    >>> import pdmer
    >>> model = pdmer.load("model.safetensors", device="cpu",
    ...                    front_end__cache_dir="features")  # doctest: +SKIP
    >>> model = pdmer.load("hf://alice/pdmer-deam", sha256="9f2c...")  # doctest: +SKIP
    """
    path = os.fspath(local_model(path, sha256=sha256, allow_http=allow_http))
    metadata = safetensors_metadata(path, "Model")
    if metadata.get("pdmer_format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a pdmer model file (format {FORMAT_VERSION}).")
    name = metadata["estimator"]
    if name not in ESTIMATORS:
        raise ValueError(f"{path} holds a {name}, which this pdmer version does not know.")
    cls = ESTIMATORS[name]
    front_end_params = {k.split("__", 1)[1]: v for k, v in params.items()
                        if k.startswith("front_end__")}
    params = {k: v for k, v in params.items() if "__" not in k}
    defaults = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TypeError(f"pdmer.load got parameters {name} does not have: "
                        f"{', '.join(unknown)}.")
    stored = _checked_params(_renamed_params(json.loads(metadata["params"]), path), defaults,
                             params, name, path)
    if stored.get("front_end") is not None and "front_end" not in params:
        front_end = _checked_params(stored["front_end"], AudioFeatures().get_params(),
                                    front_end_params, "AudioFeatures", path)
        if front_end["global_encoder"] is None:
            raise ValueError(
                f"{path} was trained with a custom global encoder; pass it again: "
                "pdmer.load(path, front_end=AudioFeatures(global_encoder=...)).")
        stored["front_end"] = AudioFeatures(**front_end)
    if isinstance(stored.get("meta_learning"), dict) and "meta_learning" not in params:
        try:
            stored["meta_learning"] = get_method(stored["meta_learning"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} holds a meta-learning method this pdmer version cannot "
                             f"build ({err}); refusing to load it.") from None
    stored.update(params)
    estimator = cls(**stored)
    if front_end_params:
        if estimator.front_end is None:
            raise TypeError(f"{path} stores no front end; pass front_end=AudioFeatures(...) "
                            "instead of front_end__ parameters.")
        estimator.front_end.set_params(**front_end_params)
    for key, value in _fitted_attributes(metadata, path).items():
        setattr(estimator, key, value)
    estimator.device_ = resolve_device(estimator.device)
    network = estimator._build_network(estimator.feature_spec_)
    _load_weights(network, path, name)
    estimator.network_ = network.to(estimator.device_).eval()
    estimator.model_id_ = model_id(estimator.network_)
    estimator.listener_ = None
    return estimator
