"""Reduced precision where the hardware computes it natively: bfloat16 autocast.

On CUDA GPUs with bfloat16 support and on CPUs with native bfloat16 dot
products (AVX512-BF16 or AMX), matrix products and convolutions run in
bfloat16 under :func:`torch.autocast`; elsewhere bfloat16 is emulated and
slower than float32, so :func:`autocast` leaves float32 on.
"""

from __future__ import annotations

import contextlib
import functools
import sys

import torch


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 dot products in hardware.

    True when ``/proc/cpuinfo`` lists ``avx512_bf16`` or ``amx_bf16`` (Linux
    x86). Other systems report False: pdmer then keeps float32 on the CPU.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast is fast on ``device`` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def autocast(device: torch.device | str, enabled: bool = True):
    """bfloat16 autocast on ``device`` when enabled and fast there; else a no-op context.

    Parameters
    ----------
    device : torch.device or str
        Device the model runs on.
    enabled : bool, default=True
        False always gives float32 (e.g. ``mixed_precision=False``).

    Returns
    -------
    context manager

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.precision import autocast
    >>> with autocast("cpu"):
    ...     y = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    >>> y.dtype in (torch.float32, torch.bfloat16)
    True
    """
    device = torch.device(device)
    if not (enabled and bf16_supported(device)):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
