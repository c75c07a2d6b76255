"""The torch device of a ``device`` parameter.

Every pdmer estimator takes ``device="auto"``, ``"cpu"``, ``"cuda"`` or
``"cuda:n"``; this module turns it into a :class:`torch.device`, the same
way at fit, at load and when a pickled model is restored.
"""

from __future__ import annotations

import torch


def resolve_device(device, quiet: bool = False) -> torch.device:
    """The torch device for a ``device`` parameter ("auto", "cpu", "cuda" or "cuda:n").

    Parameters
    ----------
    device : str or torch.device
    quiet : bool, default=False
        Fall back to the CPU instead of raising when CUDA was asked for but
        is absent (loading a GPU-trained model on a CPU machine).

    Returns
    -------
    torch.device
        "auto" is CUDA when a GPU is available, else the CPU.

    Raises
    ------
    ValueError
        ``device`` names another kind of device, or CUDA when there is none
        (and ``quiet`` is False).

    Examples
    --------
    >>> from pdmer.nn.device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
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
