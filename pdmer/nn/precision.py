"""pdmer's one precision policy: where computations run under bfloat16 autocast.

Every part of pdmer that can compute in reduced precision (the estimators'
training, personalization and prediction through
:class:`~pdmer.meta.learner.MetaLearner`, and the ImageBind encoder) takes a
``precision`` in one vocabulary, :data:`PRECISIONS`, and resolves it here
with :func:`resolve_precision`; :func:`autocast` applies it.

``"auto"``
    bfloat16 autocast where pdmer uses it by default: CUDA GPUs with
    bfloat16 support. CPUs run float32, even those that compute bfloat16
    natively, while :data:`CPU_BF16_BY_DEFAULT` is False; CPU results then
    repeat exactly on every CPU.
``"bf16"``
    bfloat16 autocast wherever the hardware computes bfloat16 natively: CUDA
    GPUs with bfloat16 support and CPUs with AVX512-BF16 or AMX
    (:func:`bf16_supported`). Elsewhere bfloat16 would be emulated, slower
    than float32, so pdmer falls back to float32, with one warning where
    the precision is chosen (the estimator's ``fit``, the encoder's
    construction).
``"fp32"``
    float32 everywhere.

Under bfloat16 autocast matrix products and convolutions run in bfloat16
(about 3 significant digits); parameters, losses and outputs stay float32.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings

import torch

PRECISIONS = ("auto", "bf16", "fp32")
"""The precision vocabulary of the estimators, the encoders and the CLI."""

CPU_BF16_BY_DEFAULT = False
"""Whether ``precision="auto"`` autocasts to bfloat16 on CPUs that compute it
natively (AVX512-BF16 or AMX). False, measured: on four conditions of the
robustness suite x 6 seeds bfloat16 scored lower in three conditions and in
17 of 24 cells (0.002 mean CCC lower on average, up to 0.035 for one kind
of listener), and again with the current default method on two conditions x 6
seeds (0.006 and 0.010 lower; ``benchmarks/scale.md``); float32 also keeps
CPU results the same on every CPU. Switching is this one line."""


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
    """Whether ``device`` computes bfloat16 natively (so that autocast to it is fast).

    CUDA GPUs with bfloat16 support, and CPUs for which
    :func:`cpu_has_native_bf16` holds; no other device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def check_precision(precision) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else a ValueError."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}; "
                         f"got {precision!r}.")
    return precision


def resolve_precision(precision: str, device: torch.device | str, *, warn: bool = False,
                      stacklevel: int = 1) -> torch.dtype:
    """The dtype that ``precision`` computes in on ``device``: bfloat16 or float32.

    Parameters
    ----------
    precision : {"auto", "bf16", "fp32"}
        See the module docstring.
    device : torch.device or str
        Device the computation runs on.
    warn : bool, default=False
        Warn when ``"bf16"`` falls back to float32 because ``device`` does
        not compute bfloat16 natively. Set where the precision is chosen
        (once per fit or encoder), not at every forward pass.
    stacklevel : int, default=1
        Stack level of the warning, counted from the caller of this
        function (1: the caller's line).

    Returns
    -------
    torch.dtype
        ``torch.bfloat16`` where :func:`autocast` autocasts, else
        ``torch.float32``.

    Raises
    ------
    ValueError
        ``precision`` is not one of :data:`PRECISIONS`.

    Examples
    --------
    >>> from pdmer.nn.precision import resolve_precision
    >>> resolve_precision("auto", "cpu")  # float32 on the CPU by default
    torch.float32
    >>> resolve_precision("fp32", "cuda")
    torch.float32
    """
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return torch.float32
    native = bf16_supported(device)
    if precision == "auto":
        wanted = device.type == "cuda" or (device.type == "cpu" and CPU_BF16_BY_DEFAULT)
        return torch.bfloat16 if wanted and native else torch.float32
    if not native:
        if warn:
            warnings.warn(
                f"precision='bf16' runs float32 on {device}: it does not compute bfloat16 "
                "natively (CPUs need AVX512-BF16 or AMX).", UserWarning,
                stacklevel=stacklevel + 1)
        return torch.float32
    return torch.bfloat16


def autocast(device: torch.device | str, precision: str = "auto"):
    """bfloat16 autocast on ``device`` where ``precision`` resolves to it; else a no-op context.

    Parameters
    ----------
    device : torch.device or str
        Device the model runs on.
    precision : {"auto", "bf16", "fp32"}, default="auto"
        See :func:`resolve_precision` (which never warns here).

    Returns
    -------
    context manager

    Examples
    --------
    >>> import torch
    >>> from pdmer.nn.precision import autocast
    >>> with autocast("cpu", "bf16"):
    ...     y = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    >>> y.dtype in (torch.float32, torch.bfloat16)
    True
    """
    device = torch.device(device)
    if resolve_precision(precision, device) != torch.bfloat16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
