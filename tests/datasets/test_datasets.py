"""pdmer_datasets.initialize: one entry point for DEAM, PMEmo and the synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest

import pdmer_datasets
from pdmer_datasets import deam, pmemo, synthetic


def test_list_and_unknown_name():
    assert pdmer_datasets.list_datasets() == ["deam", "pmemo", "synthetic"]
    with pytest.raises(ValueError, match="Unknown data set 'dean'.*'deam'"):
        pdmer_datasets.initialize("dean")


def test_default_home_and_shipped_indexes(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    d = pdmer_datasets.initialize("deam")
    assert isinstance(d, deam.Dataset)
    assert Path(d.data_home) == tmp_path / "mir_datasets" / "deam"
    assert len(d.track_ids) == 1802 and d.version == "1.0"
    assert Path(d.index_path).parent == Path(deam.__file__).parent / "indexes"
    p = pdmer_datasets.initialize("pmemo", data_home=tmp_path / "p")
    assert isinstance(p, pmemo.Dataset) and len(p.track_ids) == 794
    with pytest.raises(ValueError, match="Invalid version"):
        pdmer_datasets.initialize("deam", version="0.9")


def test_synthetic_is_loaded_like_the_others(tmp_path):
    made = synthetic.generate(tmp_path, n_songs=4, n_listeners=3, songs_per_listener=2,
                              duration=3.0, sample_rate=8000)
    loaded = pdmer_datasets.initialize("synthetic", data_home=tmp_path)
    assert loaded.song_ids == made.song_ids
    X, y, annotators = loaded.annotator_table()
    assert len(X) == 6 and len(set(annotators)) == 3
    with pytest.raises(ValueError, match="no versions"):
        pdmer_datasets.initialize("synthetic", data_home=tmp_path, version="1.0")
