"""Data set loaders for pdmer: DEAM, PMEmo and synthetic listeners."""

from pdmer_datasets.splits import shared_annotators, split_annotators, split_listeners_and_songs
from pdmer_datasets.table import AnnotationTable

__all__ = ["AnnotationTable", "shared_annotators", "split_annotators",
           "split_listeners_and_songs"]
from pdmer_datasets import synthetic

__all__ += ["synthetic"]
from pdmer_datasets._registry import initialize, list_datasets  # noqa: E402

__all__ += ["initialize", "list_datasets"]
