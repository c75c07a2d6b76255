"""``initialize(name)``: one entry point for every pdmer data set, like mirdata's."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

# name -> module; modules are imported on first use (mirdata takes ~1 s to import).
DATASETS = {"deam": "pdmer_datasets.deam", "pmemo": "pdmer_datasets.pmemo",
            "synthetic": "pdmer_datasets.synthetic"}


def list_datasets() -> list[str]:
    """Names accepted by :func:`initialize`."""
    return sorted(DATASETS)


def default_home(name: str) -> Path:
    """``~/mir_datasets/<name>``, mirdata's default location."""
    return Path(os.getenv("HOME", "/tmp")) / "mir_datasets" / name


def initialize(name: str, data_home=None, version: str = "default", index=None):
    """Load a data set by name.

    Parameters
    ----------
    name : {"deam", "pmemo", "synthetic"}
    data_home : str or Path, optional
        Where the data set lives; default ``~/mir_datasets/<name>``.
    version : str, default="default"
        Index version (DEAM and PMEmo).
    index : str or Path, optional
        DEAM and PMEmo: a mirdata index JSON to use instead of the shipped one.

    Returns
    -------
    Dataset
        :class:`pdmer_datasets.deam.Dataset`, :class:`pdmer_datasets.pmemo.Dataset`,
        or for ``"synthetic"`` the :class:`~pdmer_datasets.synthetic.SyntheticDataset`
        in ``data_home`` (generated there with the default settings if absent).
        All offer ``annotator_table()`` and ``mean_table()``.

    Examples
    --------
    >>> import pdmer_datasets
    >>> deam = pdmer_datasets.initialize("deam", data_home="/data/deam")  # doctest: +SKIP
    >>> X, y, annotators = deam.annotator_table(split="train")          # doctest: +SKIP
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; choose from {list_datasets()}.")
    module = importlib.import_module(DATASETS[name])
    if name == "synthetic":
        if version != "default" or index is not None:
            raise ValueError("The synthetic data set has no versions or index files.")
        root = Path(data_home) if data_home is not None else default_home(name)
        from pdmer_datasets.synthetic.files import is_dataset

        if is_dataset(root):
            return module.load(root)
        return module.generate(root)
    home = None if data_home is None else os.fspath(data_home)
    return module.Dataset(data_home=home, version=version, index=index)
