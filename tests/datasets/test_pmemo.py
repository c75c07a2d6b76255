"""PMEmo loader: install from a mirror / local copy, mean tables, the paper's split,
no annotator-level data, the frame grid on the real clips and real-file counts."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import pdmer_datasets
from http_fixture import serve
from pdmer.cli import main
from pdmer.labels import FRAME_SECONDS
from pdmer_datasets import pmemo

# musicId -> clip seconds: dropped (< 25 s), train pool, test (> 65 s); 9 unannotated.
SONGS = {"1": 20.0, "4": 30.0, "5": 26.0, "7": 40.0, "9": 66.0, "9000": 30.0}
ANNOTATED = ["1", "4", "5", "7", "9"]


def n_labels(seconds):
    return int((seconds - 15.0) / FRAME_SECONDS)  # frameTime 15.5 ... end of clip


def build_pmemo(root):
    """A tiny PMEmo2019/ folder in the official layout and formats."""
    base = root / "PMEmo2019"
    (base / "chorus").mkdir(parents=True)
    (base / "annotations").mkdir()
    rng = np.random.default_rng(0)
    meta = ["musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time"]
    dyn = ["musicId,frameTime,Arousal(mean),Valence(mean)"]
    std = ["musicId,frameTime,Arousal(std),Valence(std)"]
    static = ["musicId,Arousal(mean),Valence(mean)"]
    for sid, seconds in SONGS.items():
        rate = 22050
        wave = 0.2 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)
        sf.write(base / "chorus" / f"{sid}.mp3", wave.astype(np.float32), rate, format="MP3")
        # metadata durations are ~0.1 s longer than the decoded audio
        meta.append(f'{sid},{sid}.mp3,Song {sid},Artist,"Album, Vol. 1",{seconds + 0.11:.2f},'
                    "01:00,01:30")
        if sid not in ANNOTATED:
            continue
        for i in range(n_labels(seconds)):
            t = 15.5 + FRAME_SECONDS * i
            dyn.append(f"{sid},{t},{rng.uniform():.6f},{rng.uniform():.6f}")
            std.append(f"{sid},{t},{rng.uniform(0, .3):.6f},{rng.uniform(0, .3):.6f}")
        static.append(f"{sid},{rng.uniform():.4f},{rng.uniform():.4f}")
    for name, lines in (("metadata.csv", meta),):
        (base / name).write_text("\n".join(lines) + "\n")
    for name, lines in (("dynamic_annotations.csv", dyn), ("dynamic_annotations_std.csv", std),
                        ("static_annotations.csv", static),
                        ("static_annotations_std.csv",
                         [s.replace("(mean)", "(std)") for s in static])):
        (base / "annotations" / name).write_text("\n".join(lines) + "\n")
    return base


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pmemo-src")
    base = build_pmemo(root / "extracted")
    archive = root / "www" / "PMEmo2019.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(base.rglob("*")):
            zf.write(f, f.relative_to(base.parent).as_posix())
    index = root / "pmemo_index_tiny.json"
    index.write_text(json.dumps(pmemo.make_index(base / "metadata.csv")))
    return base.parent, archive, index


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    src, archive, index = built
    home = tmp_path_factory.mktemp("pmemo-home")
    dataset = pmemo.Dataset(home, index=index)
    dataset.download(from_path=archive, progress=False)
    return dataset


def test_install_from_mirror_is_idempotent(built, tmp_path):
    src, archive, index = built
    with serve(archive.parent) as srv:
        dataset = pdmer_datasets.initialize("pmemo", data_home=tmp_path / "h", index=index)
        assert dataset.download(mirror=srv.url, progress=False) == ["all"]
        assert dataset.download(mirror=srv.url, progress=False) == []
        assert len(srv.requests) == 1
        assert dataset.download(progress=False) == []  # installed: gdown not needed
    missing, invalid = dataset.validate(verbose=False)
    assert not any(missing.values()) and not any(invalid.values())


def test_install_from_extracted_folder(built, tmp_path):
    src, archive, index = built
    dataset = pmemo.Dataset(tmp_path / "h", index=index)
    dataset.download(from_path=src, progress=False)
    assert not any(dataset.validate(verbose=False)[0].values())


def test_without_gdown_the_manual_steps_are_given(built, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gdown" else real(name, *a))
    dataset = pmemo.Dataset(tmp_path / "h", index=built[2])
    with pytest.raises(RuntimeError, match="gdown is not installed") as err:
        dataset.download(progress=False)
    assert "--from /path/to/PMEmo2019.zip" in str(err.value)
    result = CliRunner().invoke(main, ["download", "pmemo", "--data-home", str(tmp_path / "h"),
                                       "--index", str(built[2])])
    assert result.exit_code == 1 and "drive.google.com" in result.output
    result = CliRunner().invoke(main, ["download", "pmemo", "--data-home", str(tmp_path / "h"),
                                       "--index", str(built[2]), "--from", str(built[1])])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["validate", "pmemo", "--data-home", str(tmp_path / "h"),
                                       "--index", str(built[2])])
    assert result.exit_code == 0 and "all files present" in result.output
    os.remove(tmp_path / "h" / "PMEmo2019" / "chorus" / "7.mp3")
    result = CliRunner().invoke(main, ["validate", "pmemo", "--data-home", str(tmp_path / "h"),
                                       "--index", str(built[2])])
    assert result.exit_code == 1 and "7.mp3" in result.output


def test_track(installed):
    t = installed.track("7")
    assert t.audio_path.endswith("PMEmo2019/chorus/7.mp3")
    assert t.dynamic.labels.shape == t.dynamic_std.labels.shape == (n_labels(40.0), 2)
    assert t.dynamic.times[0] == 15.5 and t.dynamic.labels.dtype == np.float32
    assert set(t.static) == {"arousal", "valence"} and set(t.static_std) == set(t.static)
    assert t.metadata["album"] == "Album, Vol. 1" and t.duration == pytest.approx(40.11)
    unannotated = installed.track("9000")
    assert unannotated.dynamic is None and unannotated.static is None


def test_split_and_mean_table(installed):
    assert installed.split_song_ids("test") == ["9"]
    pool = (installed.split_song_ids("train", validation_size=0.0))
    assert pool == ["4", "5", "7"]  # "1" (20 s) dropped, "9000" unannotated
    val = installed.split_song_ids("validation", validation_size=0.34, random_state=3)
    assert len(val) == 1 and val[0] in pool
    table = installed.mean_table(split="test")
    X, y, annotators = table
    assert annotators is None and table.frame_offset == 15.0
    assert y[0].shape == (n_labels(66.0), 2) and X[0].endswith("9.mp3")
    std = installed.mean_table(split="test", std=True)
    assert np.all(std.y[0] <= 0.3)


def test_annotator_table_is_a_clear_error(installed):
    with pytest.raises(ValueError, match="PMEmo has no annotator-level labels"):
        installed.annotator_table(split="train")


def test_every_label_frame_lies_within_the_audio(installed):
    from pdmer.features import AudioFeatures

    table = installed.mean_table(split="train", validation_size=0.0)
    features = AudioFeatures(n_mels=8, frame_offset=table.frame_offset, global_window=2.0)
    assert [len(v) for v in table.y] == [n_labels(SONGS[s]) for s in table.song_ids]
    songs = features.transform(table.X, n_frames=[len(v) for v in table.y])
    assert [s.n_frames for s in songs] == [len(v) for v in table.y]


# ------------------------------------------------------------------ real files


@pytest.fixture
def real(shared_data, tmp_path):
    """The real annotation files and four clips in the PMEmo2019 layout (symlinks)."""
    base = tmp_path / "PMEmo2019"
    (base / "annotations").mkdir(parents=True)
    (base / "chorus").mkdir()
    src = shared_data / "pmemo"
    os.symlink(src / "metadata.csv", base / "metadata.csv")
    for name in ("dynamic_annotations.csv", "dynamic_annotations_std.csv"):
        os.symlink(src / name, base / "annotations" / name)
    for clip in (src / "chorus").glob("*.mp3"):
        os.symlink(clip, base / "chorus" / clip.name)
    return pmemo.Dataset(tmp_path)


def test_real_annotation_counts(real):
    # mirdata's convention: _metadata holds one dict per song.
    dyn = {s: m["dynamic"] for s, m in real._metadata.items() if "dynamic" in m}
    std = {s: m["dynamic_std"] for s, m in real._metadata.items() if "dynamic_std" in m}
    assert len(real.track_ids) == 794
    assert len(dyn) == len(std) == 767
    assert sum(len(d.labels) for d in dyn.values()) == 36434
    assert sum(len(d.labels) for d in std.values()) == 36434
    assert all(d.times[0] == 15.5 for d in dyn.values())
    assert all(np.all((d.labels >= 0) & (d.labels <= 1)) for d in dyn.values())


def test_real_paper_split(real):
    train = real.split_song_ids("train", validation_size=0.0)
    test = real.split_song_ids("test")
    assert (len(train), len(test)) == (632, 40)  # 95 annotated songs under 25 s dropped
    assert len(real.split_song_ids("validation")) == 63
    table = real.mean_table("test", trim_to_audio=False)
    assert len(table) == 40 and all(len(v) >= 100 for v in table.y)
    # No audio here for the other songs: asking to check them is a clear error.
    with pytest.raises(FileNotFoundError, match="trim_to_audio=False"):
        real.mean_table("test")


def test_real_clips_fit_the_frame_grid(real, shared_data, tmp_path):
    from pdmer.features import AudioFeatures

    clips = ["108", "372", "634", "683"]
    index = tmp_path / "index.json"
    full = pmemo.make_index(shared_data / "pmemo" / "metadata.csv")
    full["tracks"] = {c: full["tracks"][c] for c in clips}
    index.write_text(json.dumps(full))
    real = pmemo.Dataset(real.data_home, index=index)
    table = real.mean_table("train", validation_size=0.0, progress=False)
    rows = [list(table.song_ids).index(c) for c in clips]
    features = AudioFeatures(n_mels=8, frame_offset=table.frame_offset, global_window=2.0)
    songs = features.transform([table.X[r] for r in rows], n_frames=[len(table.y[r]) for r in rows])
    # Every label frame is within the decoded audio: nothing was trimmed.
    assert [s.n_frames for s in songs] == [68, 90, 60, 60]
    assert [len(real.track(c).dynamic.labels) for c in clips] == [68, 90, 60, 60]


def test_shipped_index_matches_the_real_metadata(shared_data):
    shipped = pmemo.Dataset("/nonexistent")
    assert shipped._index == pmemo.make_index(shared_data / "pmemo" / "metadata.csv")
