"""What a run ran on: processor, cores, load, torch threads, device, versions."""

from __future__ import annotations

import os
import platform

__all__ = ["describe_machine", "versions"]


def describe_machine(device_type="cpu") -> dict:
    """The machine a run ran on, for its report.

    Parameters
    ----------
    device_type : str, default="cpu"
        The torch device type the models ran on (``"cuda"`` adds the GPU's name).

    Returns
    -------
    dict
        ``cpu``, ``logical_cores``, ``load_average`` (1/5/15 min, None where
        unknown: a loaded machine makes timings noisy), ``torch_threads``,
        ``device`` and ``summary`` (one line).

    Examples
    --------
    >>> from pdmer.experiments.hardware import describe_machine
    >>> sorted(describe_machine())[:3]
    ['cpu', 'device', 'load_average']
    """
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if device_type == "cuda" else "cpu"
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    threads = torch.get_num_threads()
    return {
        "cpu": cpu, "logical_cores": os.cpu_count(), "load_average": load,
        "torch_threads": threads, "device": device,
        "summary": (f"{cpu}, {os.cpu_count()} logical cores"
                    + ("" if load is None else f" (load {load[0]:g} at the end)")
                    + f", torch {torch.__version__} with {threads} thread(s), device {device}"),
    }


def versions() -> dict:
    """Versions of pdmer, torch, numpy, scikit-learn and Python."""
    import numpy as np
    import sklearn
    import torch

    import pdmer

    return {"pdmer": pdmer.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}
