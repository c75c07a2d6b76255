"""Data sets for pdmer: DEAM, PMEmo and synthetic listeners, and pdmer's CSV formats.

- :data:`DATASETS` lists every data set (name, loader, per-annotator labels or
  not, downloadable parts, licence); :func:`initialize` loads one by name.
- Every loader returns :class:`AnnotationTable` objects (songs, labels,
  annotators, frame offset) that unpack into an estimator: ``model.fit(*table)``.
- :func:`read_labels` / :func:`write_labels` and :func:`read_data_csv` /
  :func:`write_data_csv` read and write pdmer's label and data CSV files;
  :func:`load_table` takes either a data set name or a data CSV.
- :func:`split_listeners_and_songs` holds out listeners and songs;
  :func:`shared_annotators` finds listeners on both sides of a split.
"""

from pdmer_datasets.csvfiles import read_data_csv, read_labels, write_data_csv, write_labels
from pdmer_datasets.registry import (DATASETS, DatasetInfo, Remote, initialize, list_datasets,
                                     load_table)
from pdmer_datasets.splits import shared_annotators, split_annotators, split_listeners_and_songs
from pdmer_datasets.table import AnnotationTable
import pdmer_datasets.synthetic as synthetic

__all__ = ["AnnotationTable", "DATASETS", "DatasetInfo", "Remote", "initialize",
           "list_datasets", "load_table", "read_data_csv", "read_labels",
           "shared_annotators", "split_annotators", "split_listeners_and_songs",
           "synthetic", "write_data_csv", "write_labels"]
