"""Saving and loading fitted estimators as safetensors files (no pickle)."""

from __future__ import annotations

import json
import os

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pdmer._files import atomic_write
from pdmer.features.frontend import AudioFeatures

FORMAT_VERSION = "1"
# Fitted attributes that travel in the file's JSON header.
_FITTED = ("feature_spec_", "encoder_", "tasks_", "seed_", "history_", "best_episode_",
           "best_validation_ccc_")


def _json_default(value):
    # NumPy scalars (e.g. np.int64 parameters from a grid search) as Python ones.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def save_estimator(estimator, path) -> None:
    """Write ``estimator`` to ``path`` atomically (temporary file, then rename)."""
    params = estimator.get_params(deep=False)
    # The front end (``features`` before pdmer 0.2) is stored by its parameters.
    for key in ("features", "front_end"):
        if params.get(key) is not None:
            features_params = params[key].get_params()
            if not isinstance(features_params["global_encoder"], str):
                # Custom encoders are code; store the name and ask for it at load.
                features_params["global_encoder"] = None
            params[key] = features_params
    metadata = {
        "pdmer_format": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": json.dumps(params, default=_json_default),
        "fitted": json.dumps({k: getattr(estimator, k) for k in _FITTED}, default=_json_default),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.network_.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def load(path, **params):
    """Load an estimator saved with ``estimator.save(path)``.

    Parameters
    ----------
    path : str or os.PathLike
    **params
        Parameters to override, e.g. ``device="cpu"``, or ``front_end=`` with an
        :class:`~pdmer.features.AudioFeatures` holding a custom global encoder
        (code is never stored in the file).

    Returns
    -------
    estimator
        Fitted, with the meta-trained parameters and no listener.
    """
    from pdmer.estimators.base import ESTIMATORS, _model_id, _resolve_device

    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"Model file not found: {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    if metadata.get("pdmer_format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a pdmer model file (format {FORMAT_VERSION}).")
    name = metadata["estimator"]
    if name not in ESTIMATORS:
        raise ValueError(f"{path} holds a {name}, which this pdmer version does not know.")
    stored = json.loads(metadata["params"])
    # The front end (``features`` before pdmer 0.2) is rebuilt from its parameters.
    for key in ("features", "front_end"):
        if stored.get(key) is not None:
            if stored[key]["global_encoder"] is None and key not in params:
                raise ValueError(
                    f"{path} was trained with a custom global encoder; pass it again: "
                    f"pdmer.load(path, {key}=AudioFeatures(global_encoder=...)).")
            stored[key] = AudioFeatures(**stored[key])
    stored.update(params)
    estimator = ESTIMATORS[name](**stored)
    for key, value in json.loads(metadata["fitted"]).items():
        setattr(estimator, key, value)
    estimator.device_ = _resolve_device(estimator.device)
    network = estimator._build_network(estimator.feature_spec_)
    network.load_state_dict(load_file(path), strict=True)
    estimator.network_ = network.to(estimator.device_).eval()
    estimator.model_id_ = _model_id(estimator.network_)
    estimator.listener_ = None
    return estimator
