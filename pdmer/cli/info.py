"""``pdmer info``: versions, device, estimators, global encoders and the feature cache."""

from __future__ import annotations

import os
import platform

import click

from pdmer.cli._common import quiet_option
from pdmer.cli._group import main


@main.command()
@quiet_option
def info(quiet):
    """Show versions, the compute device, estimators, global encoders and the cache.

    With -q: one line with the versions of pdmer, torch and Python and the
    device (for a bug report).
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    import pdmer.features
    from pdmer.cli._common import estimator_names

    def package(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    if quiet:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        click.echo(f"pdmer {pdmer.__version__}, torch {package('torch')}, python "
                   f"{platform.python_version()}, device {device}")
        return
    lines = ["Versions:", f"  pdmer         {pdmer.__version__}",
             f"  python        {platform.python_version()} ({platform.system()} "
             f"{platform.machine()})"]
    for name in ("torch", "numpy", "scikit-learn", "librosa", "soundfile", "matplotlib",
                 "safetensors", "joblib"):
        lines.append(f"  {name:<13} {package(name)}")

    lines.append("Device:")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"  CUDA available: yes ({names}); models use it with device='auto'")
    else:
        lines.append("  CUDA available: no (models run on the CPU)")
    lines.append(f"  CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()} "
                 "(keep threads <= free cores: --threads)")

    lines.append("Estimators (pdmer train --model NAME):")
    for name, cls in estimator_names().items():
        lines.append(f"  {name:<13} {cls.__module__}.{cls.__name__}")

    lines.append("Global encoders (AudioFeatures(global_encoder=NAME)):")
    for name, status in pdmer.features.available_encoders().items():
        lines.append(f"  {name:<13} {status}")

    root = pdmer.features.default_cache_dir()
    feature_dir = pdmer.features.default_feature_dir()
    weights = pdmer.features.imagebind_weights_path()
    lines.append("Cache ($PDMER_CACHE_DIR to move it):")
    lines.append(f"  {root}: {_human(pdmer.features.cache_size(root))} in all")
    lines.append(f"  features: {feature_dir} ({_human(pdmer.features.cache_size(feature_dir))})")
    lines.append(f"  ImageBind weights: {weights} "
                 f"({_human(os.path.getsize(weights)) if os.path.isfile(weights) else 'absent'})")
    click.echo("\n".join(lines))


def _human(n_bytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
