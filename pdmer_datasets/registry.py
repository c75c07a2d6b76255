"""The catalogue of pdmer's data sets and the entry points that read it.

:data:`DATASETS` is the one list of data sets: their names, loader modules,
whether they have per-annotator labels, their downloadable parts (file,
URL, SHA-256, size) and their licences. The command line, the benchmark and
the loaders read it; nothing else lists data set names. It imports no loader
(mirdata takes about a second to import): modules load on first use.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATASETS", "DatasetInfo", "Remote", "default_home", "initialize",
           "list_datasets", "load_table"]


@dataclass
class Remote:
    """A downloadable archive of a data set.

    Parameters
    ----------
    filename : str
        The archive's file name (also its name under a mirror).
    url : str
    sha256 : str or None, default=None
        Expected SHA-256; None when nobody has published one.
    size : int or None, default=None
        Expected size in bytes.
    contents : list of str, default=()
        Top-level folders (or files) the archive extracts to, relative to
        ``data_home``; they tell an installed part, and which part a missing
        file belongs to.
    extracted_size : int or None, default=None
        Most bytes the extracted archive should hold (an upper bound);
        extraction refuses more. None: :func:`pdmer.downloads.extract_limit`.
    """

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    contents: list = field(default_factory=list)
    extracted_size: int | None = None

    def url_under(self, mirror: str | None) -> str:
        """The URL, or the same file name under ``mirror`` (a base URL)."""
        return self.url if not mirror else mirror.rstrip("/") + "/" + self.filename


@dataclass(frozen=True)
class DatasetInfo:
    """What pdmer knows about one data set before loading it.

    Attributes
    ----------
    name : str
        The name :func:`initialize`, ``pdmer download`` and the benchmark take.
    module : str
        The loader module.
    title : str
        One line saying what it is.
    annotators : bool
        Whether it has per-annotator curves (``annotator_table()``, PDMER);
        otherwise only ``mean_table()`` (DMER).
    remotes : dict of str to Remote
        Downloadable parts by name (``pdmer download <name> --only <part>``);
        empty for a generated data set.
    license : str
    homepage : str
    """

    name: str
    module: str
    title: str
    annotators: bool
    remotes: dict
    license: str
    homepage: str = ""

    @property
    def parts(self) -> tuple:
        """Names of the downloadable parts, in download order."""
        return tuple(self.remotes)

    @property
    def downloadable(self) -> bool:
        """Whether ``pdmer download`` installs it (False: generated locally)."""
        return bool(self.remotes)


_DEAM_URL = "https://cvml.unige.ch/databases/DEAM/"
_PMEMO_GDRIVE_ID = "1UzC3NCDj30j9Ba7i5lkMzWO5gFqSr0OJ"

DATASETS = {
    "deam": DatasetInfo(
        name="deam", module="pdmer_datasets.deam",
        title="DEAM: 1802 songs, valence/arousal at 2 Hz from 15 s, per rater",
        annotators=True,
        # Sizes and SHA-256 as reported by a third party who downloaded the
        # files in 2026; the optional features.zip (openSMILE) is not used.
        remotes={
            "audio": Remote(
                "DEAM_audio.zip", _DEAM_URL + "DEAM_audio.zip",
                sha256="e2814325f573ade8caebc697f0efcfdf7207142b737d72558a416117ca591353",
                size=1343203527, contents=["MEMD_audio"], extracted_size=1_500_000_000),
            "annotations": Remote(
                "DEAM_Annotations.zip", _DEAM_URL + "DEAM_Annotations.zip",
                sha256="809b0feb4ba6196c1eda9b2b7b33b892b11fa71457cfceb0d47e832ed1a5f15f",
                size=4735283, contents=["annotations"], extracted_size=95_000_000),
            "metadata": Remote(
                "metadata.zip", _DEAM_URL + "metadata.zip",
                sha256="3d1d5ab42e852803a770f2cfbd685c6b464e1ebe76f26b0e10954597902b90f8",
                size=344760, contents=["metadata"], extracted_size=7_000_000),
        },
        license=(
            "DEAM annotations are free for non-commercial research use; cite Aljanaki, "
            "Yang and Soleymani (2017). The audio comes from freemusicarchive.org, "
            "jamendo.com and the MedleyDB data set under the Creative Commons licenses of "
            "the individual tracks. See https://cvml.unige.ch/databases/DEAM/."),
        homepage=_DEAM_URL),
    "pmemo": DatasetInfo(
        name="pmemo", module="pdmer_datasets.pmemo",
        title="PMEmo 2019: 794 chorus clips, mean and std of valence/arousal at 2 Hz",
        annotators=False,
        # No checksum is published: the installed files are validated instead.
        remotes={"all": Remote("PMEmo2019.zip",
                               f"https://drive.google.com/uc?id={_PMEMO_GDRIVE_ID}",
                               contents=["PMEmo2019"])},
        license=(
            "PMEmo is released for non-commercial research; the audio clips are excerpts "
            "of commercial songs whose copyright stays with their owners. See "
            "https://github.com/HuiZhangDB/PMEmo."),
        homepage="https://github.com/HuiZhangDB/PMEmo"),
    "synthetic": DatasetInfo(
        name="synthetic", module="pdmer_datasets.synthetic",
        title="Synthetic songs and simulated listeners, generated offline",
        annotators=True, remotes={},
        license="Part of pdmer (Apache-2.0); generated on your machine."),
}
"""Every data set pdmer knows, by name."""


def list_datasets() -> list[str]:
    """Names accepted by :func:`initialize`, sorted."""
    return sorted(DATASETS)


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; a ValueError lists the names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"Unknown data set {name!r}; choose from {list_datasets()}.") from None


def default_home(name: str) -> Path:
    """``~/mir_datasets/<name>``, mirdata's default location."""
    return Path(os.getenv("HOME", "/tmp")) / "mir_datasets" / name


def initialize(name: str, data_home=None, version: str = "default", index=None):
    """Load a data set by name.

    Parameters
    ----------
    name : {"deam", "pmemo", "synthetic"}
        See :data:`DATASETS`.
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
        All offer ``annotator_table(split=...)`` and ``mean_table(split=...)``.

    Examples
    --------
    >>> import pdmer_datasets
    >>> deam = pdmer_datasets.initialize("deam", data_home="/data/deam")  # doctest: +SKIP
    >>> X, y, annotators = deam.annotator_table(split="train")          # doctest: +SKIP
    """
    module = importlib.import_module(info(name).module)
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


def load_table(source, *, data_home=None, split="train", labels="annotators"):
    """Labelled rows from a data set name or a data CSV, as an :class:`AnnotationTable`.

    Parameters
    ----------
    source : str or path-like
        A name from :data:`DATASETS` (e.g. ``"deam"``), or a data CSV
        (``audio,labels[,annotator]``, see :func:`pdmer_datasets.read_data_csv`).
    data_home : str or Path, optional
        Where the named data set lives (see :func:`initialize`).
    split : str, default="train"
        The named data set's split (``"train"``, ``"validation"``, ``"test"``;
        the synthetic set has ``"train"`` and ``"test"``). Ignored for a CSV.
    labels : {"annotators", "mean"}, default="annotators"
        Per-annotator curves (PDMER) or labels averaged over annotators (DMER).

    Returns
    -------
    table : AnnotationTable
        Its ``description`` says where the rows come from.

    Raises
    ------
    ValueError
        If ``source`` is neither a known name nor an existing ``.csv`` file,
        or the file is not a valid data CSV.
    """
    from pdmer_datasets.csvfiles import read_data_csv

    if labels not in ("annotators", "mean"):
        raise ValueError(f"labels must be 'annotators' or 'mean'; got {labels!r}.")
    name = os.fspath(source)
    if name.lower() in DATASETS:
        dataset = initialize(name.lower(), data_home=data_home)
        method = dataset.annotator_table if labels == "annotators" else dataset.mean_table
        table = method(split=split)
        kind = "annotator" if table.annotators is not None else "mean"
        table.description = f"{name.lower()} {split} split ({len(table)} rows, {kind} labels)"
        return table
    path = Path(source)
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise ValueError(
            f"{name!r} is neither a data set ({', '.join(list_datasets())}) nor an existing "
            ".csv file listing audio, labels and annotator columns.")
    table = read_data_csv(path)
    if labels == "mean" and table.annotators is not None:
        table = table.mean_labels()
        table.description = f"{path} ({len(table)} songs, mean labels)"
    return table
