"""What the model files need from the estimators, without importing them.

:mod:`pdmer.io` reads and writes fitted estimators; it needs the estimator
classes by name, a fingerprint of a network's weights and the device to
load on. They live here, below the estimators, so that ``io`` and the
estimators import each other in one direction only.
"""

from __future__ import annotations

import hashlib

import torch

ESTIMATORS: dict[str, type] = {}
"""Estimator classes by class name, for :func:`pdmer.load` (filled as they are defined)."""

FITTED_ATTRIBUTES = ("feature_spec_", "encoder_", "tasks_", "seed_", "history_",
                     "best_episode_", "best_validation_ccc_", "resolved_params_",
                     "n_episodes_run_", "stopped_early_", "prediction_std_ratio_",
                     "validation_listeners_")
"""Fitted attributes (besides the network's weights) that a model file carries."""


def register(cls: type) -> type:
    """Record an estimator class under its name; returns it (usable as a decorator)."""
    ESTIMATORS[cls.__name__] = cls
    return cls


def model_id(network: torch.nn.Module) -> str:
    """Fingerprint of a network's state (weights and buffers), 16 hex digits.

    Listener files record it, so an adaptation is only ever applied to the
    model it was computed from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                      .numpy().tobytes())
    return digest.hexdigest()[:16]


def resolve_device(device, quiet: bool = False) -> torch.device:
    """The torch device for a ``device`` parameter ("auto", "cpu", "cuda" or "cuda:n").

    Parameters
    ----------
    device : str or torch.device
    quiet : bool, default=False
        Fall back to the CPU instead of raising when CUDA was asked for but
        is absent (loading a GPU-trained model on a CPU machine).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:n]'; got {device!r}.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if quiet:
            return torch.device("cpu")
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use "
                         "device='auto' or 'cpu'.")
    return resolved
