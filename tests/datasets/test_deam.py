"""DEAM loader: download + verify + extract + load end to end on a tiny DEAM
served from 127.0.0.1, the table filters and splits, the CLI, real files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import requests
from click.testing import CliRunner

import deam_fixture as fx
import pdmer_datasets
from http_fixture import serve
from pdmer.downloads import ChecksumError, UnsafeArchiveError, sha256_file
from pdmer.cli import main
from pdmer_datasets import deam
from pdmer_datasets import Remote


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(extracted tiny DEAM, folder with its three archives, index file)."""
    root = tmp_path_factory.mktemp("deam-src")
    src = fx.build(root / "extracted")
    archives = fx.zip_parts(src, root / "www")
    index = root / "deam_index_tiny.json"
    index.write_text(json.dumps(deam.make_index(fx.SONGS)))
    return src, archives, index


def remotes_for(archives, base_url):
    """REMOTES pointing at the test server, with the archives' real checksums."""
    return {part: Remote(path.name, f"{base_url}/{path.name}", sha256=sha256_file(path),
                         size=path.stat().st_size, contents=[fx.ARCHIVES[part][1]])
            for part, path in archives.items()}


@pytest.fixture
def server(built):
    src, archives, index = built
    with serve(archives["audio"].parent) as srv:
        yield srv


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """A Dataset installed from the archives once, for the read-only tests."""
    src, archives, index = built
    home = tmp_path_factory.mktemp("deam-home")
    with serve(archives["audio"].parent) as srv:
        dataset = deam.Dataset(home, index=index)
        dataset.download(remotes=remotes_for(archives, srv.url), progress=False)
    return dataset


# ------------------------------------------------------------------ download


def test_download_verify_extract_load_end_to_end(built, server, tmp_path):
    src, archives, index = built
    dataset = pdmer_datasets.initialize("deam", data_home=tmp_path / "home", index=index)
    remotes = remotes_for(archives, server.url)
    done = dataset.download(remotes=remotes, progress=False)
    assert done == ["audio", "annotations", "metadata"]
    missing, invalid = dataset.validate(verbose=False)
    assert not any(missing.values()) and not any(invalid.values())
    track = dataset.track("1001")
    assert track.audio_path.endswith("MEMD_audio/1001.mp3")
    assert track.dynamic.labels.shape == (fx.n_frames("1001"), 2)
    # Idempotent: the second run downloads and extracts nothing.
    n = len(server.requests)
    assert dataset.download(remotes=remotes, progress=False) == []
    assert len(server.requests) == n
    # The archives stay unless cleanup is asked for.
    assert (tmp_path / "home" / "DEAM_audio.zip").is_file()


def test_partial_download_and_mirror(built, server, tmp_path):
    src, archives, index = built
    remotes = remotes_for(archives, "https://unreachable.invalid/DEAM")
    dataset = deam.Dataset(tmp_path / "home", index=index)
    dataset.download(partial_download=["annotations"], remotes=remotes, mirror=server.url,
                     cleanup=True, progress=False)
    assert [r[0] for r in server.requests] == ["DEAM_Annotations.zip"]
    assert not (tmp_path / "home" / "DEAM_Annotations.zip").exists()  # cleanup
    missing, _ = dataset.validate(verbose=False, parts=["annotations"])
    assert not any(missing.values())
    missing, _ = dataset.validate(verbose=False)
    assert len(missing["tracks"]) == len(fx.SONGS)  # audio still missing
    assert len(missing["metadata"]) == 3
    assert dataset.track("2001").dynamic.labels.shape == (fx.n_frames("2001"), 2)
    with pytest.raises(ValueError, match="unknown part"):
        dataset.download(partial_download=["features"], remotes=remotes, progress=False)


def test_wrong_checksum_is_refused_and_kept(built, server, tmp_path):
    src, archives, index = built
    remotes = remotes_for(archives, server.url)
    good = remotes["metadata"].sha256
    remotes["metadata"].sha256 = "f" * 64
    dataset = deam.Dataset(tmp_path / "home", index=index)
    with pytest.raises(ChecksumError) as err:
        dataset.download(partial_download=["metadata"], remotes=remotes, progress=False)
    assert "f" * 64 in str(err.value) and good in str(err.value)
    assert (tmp_path / "home" / "metadata.zip.part").is_file()
    assert not (tmp_path / "home" / "metadata").exists()
    # Accepting the mismatch installs it without downloading again.
    n = len(server.requests)
    dataset.download(partial_download=["metadata"], remotes=remotes,
                     allow_invalid_checksum=True, progress=False)
    assert len(server.requests) == n
    assert (tmp_path / "home" / "metadata" / "metadata_2014.csv").is_file()


def test_interrupted_download_resumes(built, server, tmp_path):
    src, archives, index = built
    remotes = remotes_for(archives, server.url)
    server.drop_after["DEAM_audio.zip"] = archives["audio"].stat().st_size // 2
    dataset = deam.Dataset(tmp_path / "home", index=index)
    with pytest.raises(requests.ConnectionError, match="run again to resume"):
        dataset.download(partial_download=["audio"], remotes=remotes, progress=False)
    part = tmp_path / "home" / "DEAM_audio.zip.part"
    assert 0 < part.stat().st_size < archives["audio"].stat().st_size
    dataset.download(partial_download=["audio"], remotes=remotes, progress=False)
    assert server.requests[-1][1].startswith("bytes=")
    assert (tmp_path / "home" / "MEMD_audio" / "2002.mp3").is_file()


def test_path_traversal_archive_is_refused(built, tmp_path):
    src, archives, index = built
    www = tmp_path / "www"
    www.mkdir()
    evil = www / "metadata.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("metadata/metadata_2013.csv", "song_id\n2\n")
        zf.writestr("../../escaped.csv", "pwned")
    remotes = {"metadata": Remote("metadata.zip", "unused", sha256=sha256_file(evil),
                                  contents=["metadata"])}
    with serve(www) as srv:
        dataset = deam.Dataset(tmp_path / "a" / "home", index=index)
        with pytest.raises(UnsafeArchiveError, match="contains '..'"):
            dataset.download(partial_download=["metadata"], remotes=remotes, mirror=srv.url,
                             progress=False)
    assert not (tmp_path / "escaped.csv").exists()
    assert not (tmp_path / "a" / "home" / "metadata").exists()


def test_install_from_local_archives_and_extracted_folder(built, tmp_path):
    src, archives, index = built
    remotes = remotes_for(archives, "https://unreachable.invalid")
    from_archives = deam.Dataset(tmp_path / "h1", index=index)
    from_archives.download(from_path=archives["audio"].parent, remotes=remotes, progress=False)
    assert not any(from_archives.validate(verbose=False)[0].values())
    single = deam.Dataset(tmp_path / "h2", index=index)
    single.download(partial_download=["metadata"], from_path=archives["metadata"],
                    remotes=remotes, progress=False)
    assert (tmp_path / "h2" / "metadata" / "metadata_2015.csv").is_file()
    from_folder = deam.Dataset(tmp_path / "h3", index=index)
    from_folder.download(from_path=src, remotes=remotes, progress=False)
    assert not any(from_folder.validate(verbose=False)[0].values())
    remotes["metadata"].sha256 = "e" * 64  # a local archive is verified too
    with pytest.raises(ChecksumError, match="e" * 64):
        deam.Dataset(tmp_path / "h5", index=index).download(
            partial_download=["metadata"], from_path=archives["metadata"], remotes=remotes,
            progress=False)
    with pytest.raises(FileNotFoundError, match="found neither DEAM_audio.zip"):
        deam.Dataset(tmp_path / "h4", index=index).download(
            from_path=tmp_path / "h2", remotes=remotes, progress=False)


# ------------------------------------------------------------------ track


def test_track_annotations(installed):
    t = installed.track("1003")
    assert (t.year, t.has_rater_ids) == (2014, True)
    np.testing.assert_allclose(t.dynamic.times, 15.0 + 0.5 * np.arange(fx.n_frames("1003")))
    assert t.dynamic.labels.dtype == np.float32
    assert sorted(t.rater_dynamic) == fx.WORKERS
    a = t.rater_dynamic["W_a"]
    assert a.shape == (fx.n_frames("1003"), 2)  # padding cells are not frames
    expected = fx.curve("1003", 0, 0)
    assert a[2, 0] == pytest.approx((expected[1] + expected[3]) / 2)  # interpolated
    np.testing.assert_allclose(t.rater_dynamic["W_b"][:, 1], fx.curve("1003", 1, 1), atol=1e-6)
    # The averaged curve is the mean of the raters (as the fixture wrote it).
    np.testing.assert_allclose(
        t.dynamic.labels[:, 0], np.mean([fx.curve("1003", w, 0) for w in range(3)], 0),
        atol=1e-6)
    assert t.rater_dynamic is t.rater_dynamic  # cached


def test_tracks_without_worker_ids_are_anonymous(installed):
    t = installed.track("2")
    assert (t.year, t.has_rater_ids) == (2013, False)
    assert sorted(t.rater_dynamic) == ["#0", "#1", "#2"]
    assert "W_d" not in installed.track("1005").rater_dynamic  # in the arousal file only


def test_static_labels_and_metadata(installed):
    clip, full = installed.track("1001"), installed.track("2002")
    assert clip.static == {"valence_mean": 7.1, "valence_std": 1.2,
                           "arousal_mean": 5.3, "arousal_std": 0.9}
    assert full.static["valence_max_mean"] == 7.5  # header typo 'valence_ max_mean'
    assert full.static["arousal_mean"] == 3.5
    assert [r["rater"] for r in clip.rater_static] == fx.WORKERS
    assert clip.rater_static[1] == {"rater": "W_b", "arousal": 5.0, "valence": 6.0}
    assert full.rater_static[0]["arousal"] == 3.0 and full.rater_static[0]["valence"] == 6.0
    assert full.rater_static[0]["arousal_std"] == 0.5
    assert installed.track("2").metadata["title"] == "Title 2"
    assert installed.track("1004").metadata["title"] == "Track 1004"  # tab-separated
    assert installed.track("2001").metadata["artist"] == "Artist 2001"
    assert len(installed.load_tracks()) == len(fx.SONGS)


def test_missing_annotation_file_is_a_clear_error(built, tmp_path):
    dataset = deam.Dataset(tmp_path / "empty", index=built[2])
    with pytest.raises(FileNotFoundError, match="pdmer download deam"):
        dataset.track("1001").dynamic


def test_cite_and_license(installed, capsys):
    installed.cite()
    installed.license()
    out = capsys.readouterr().out
    assert "Aljanaki" in out and "Creative Commons" in out


# ------------------------------------------------------------------ tables


def test_splits(installed):
    assert installed.split_song_ids("test") == ["2001", "2002"]
    train = installed.split_song_ids("train", validation_size=0.25, random_state=1)
    val = installed.split_song_ids("validation", validation_size=0.25, random_state=1)
    assert len(val) == 2 and not set(train) & set(val)
    assert sorted(train + val, key=int) == [s for s in fx.SONGS if int(s) <= 2000]
    assert val == installed.split_song_ids("validation", validation_size=0.25, random_state=1)
    with pytest.raises(ValueError, match="split must be"):
        installed.split_song_ids("dev")


def test_mean_table(installed):
    table = installed.mean_table(split="test")
    X, y, annotators = table
    assert annotators is None and table.frame_offset == 15.0
    assert list(table.song_ids) == ["2001", "2002"]
    assert [len(v) for v in y] == [fx.n_frames("2001"), fx.n_frames("2002")]
    assert all(v.shape[1] == 2 and v.dtype == np.float32 for v in y)
    assert X[0].endswith("2001.mp3")
    assert len(installed.mean_table(split="train", validation_size=0.0)) == 8
    assert max(len(v) for v in installed.mean_table(split="test", max_frames=3).y) == 3


def test_annotator_table_filters(installed):
    table = installed.annotator_table(split="train", validation_size=0.0, min_songs=1)
    # Only 2014 songs (with WorkerIds); W_d (arousal file only) never appears.
    assert set(table.song_ids) == {"1001", "1002", "1003", "1004", "1005", "1006"}
    assert set(table.annotators) == set(fx.WORKERS)
    # W_c's flat curve on 1002 is dropped; 18 curves - 1.
    assert len(table) == 17
    assert ("1002", "W_c") not in set(zip(table.song_ids, table.annotators))
    keep_flat = installed.annotator_table(split="train", validation_size=0.0, min_songs=1,
                                          flat_threshold=0.0)
    assert len(keep_flat) == 18
    # min_songs: W_c has 5 songs left, the others 6.
    six = installed.annotator_table(split="train", validation_size=0.0, min_songs=6)
    assert set(six.annotators) == {"W_a", "W_b"}
    assert len(installed.annotator_table(split="train", validation_size=0.0)) == 0  # <= 15
    for row, sid in enumerate(table.song_ids):
        assert table.y[row].shape == (fx.audio_frames(sid), 2)
    with pytest.raises(ValueError, match="min_songs must be a positive integer"):
        installed.annotator_table(min_songs=0)


def test_labels_are_trimmed_to_the_decoded_audio(installed):
    # Song 1006: labels for 18 s, audio 17.8 s: the 6th frame [17.5, 18] is dropped.
    assert installed.track("1006").dynamic.labels.shape == (6, 2)
    kw = dict(split="train", validation_size=0.0)
    trimmed = installed.mean_table(**kw)
    full = installed.mean_table(**kw, trim_to_audio=False)
    lengths = dict(zip(trimmed.song_ids, map(len, trimmed.y)))
    assert lengths["1006"] == 5 and dict(zip(full.song_ids, map(len, full.y)))["1006"] == 6
    assert all(lengths[s] == fx.n_frames(s) for s in lengths if s != "1006")
    rows = installed.annotator_table(**kw, min_songs=1)
    assert {len(v) for v, s in zip(rows.y, rows.song_ids) if s == "1006"} == {5}
    cache = json.loads((installed.data_home / ".pdmer" / "audio_durations.json").read_text())
    assert cache["MEMD_audio/1006.mp3"][1] == pytest.approx(17.8)


def test_annotator_table_validation_and_test(installed):
    kw = dict(validation_size=0.25, random_state=1, min_songs=1)
    train = installed.annotator_table(split="train", **kw)
    val = installed.annotator_table(split="validation", **kw)
    assert not set(train.song_ids) & set(val.song_ids)
    assert set(val.song_ids) <= set(installed.split_song_ids("validation", 0.25, 1))
    test = installed.annotator_table(split="test")
    assert set(test.song_ids) == {"2001", "2002"} and len(test) == 6
    assert test.frame_offset == 15.0


def test_dsaml_fits_on_the_annotator_table(installed):
    from helpers import TINY_MODEL
    from pdmer import DSAMLRegressor
    from pdmer.features import AudioFeatures

    table = installed.annotator_table(split="train", validation_size=0.0, min_songs=1)
    features = AudioFeatures(n_mels=16, frame_offset=table.frame_offset,
                             global_window=2.0)
    model = DSAMLRegressor(**{**TINY_MODEL, "validation_fraction": 0.0},
                           front_end=features, precision="fp32")
    model.fit(*table)
    test = installed.annotator_table(split="test")
    [pred] = model.predict(test.X[:1])
    assert pred.shape == test.y[0].shape and np.all(np.isfinite(pred))


# ------------------------------------------------------------------ CLI


def test_cli_download_and_validate(built, server, tmp_path, monkeypatch):
    src, archives, index = built
    for part, remote in remotes_for(archives, "https://unreachable.invalid").items():
        monkeypatch.setitem(deam.REMOTES, part, remote)
    home = tmp_path / "home"
    runner = CliRunner()
    args = ["--data-home", str(home), "--index", str(index)]
    result = runner.invoke(main, ["validate", "deam", *args])
    assert result.exit_code == 1 and "file(s) missing" in result.output
    result = runner.invoke(main, ["download", "deam", *args, "--only", "annotations",
                                  "--mirror", server.url])
    assert result.exit_code == 0, result.output
    assert "annotations present" in result.output
    result = runner.invoke(main, ["download", "deam", *args, "--mirror", server.url])
    assert result.exit_code == 0, result.output
    n = len(server.requests)
    result = runner.invoke(main, ["download", "deam", *args, "--mirror", server.url])
    assert result.exit_code == 0 and len(server.requests) == n  # nothing to do
    result = runner.invoke(main, ["validate", "deam", *args])
    assert result.exit_code == 0, result.output
    quiet = runner.invoke(main, ["validate", "deam", *args, "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""
    quiet = runner.invoke(main, ["download", "deam", *args, "--mirror", server.url, "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""  # no "already installed", no bars
    (home / "MEMD_audio" / "3.mp3").unlink()
    (home / "metadata" / "metadata_2015.csv").write_text("")
    result = runner.invoke(main, ["validate", "deam", *args])
    assert result.exit_code == 1
    assert "3.mp3" in result.output and "invalid" in result.output
    quiet = runner.invoke(main, ["validate", "deam", *args, "-q"])
    assert quiet.exit_code == 1
    assert quiet.output.splitlines() == [
        f"deam: 1 file(s) missing in {home}",
        f"deam: 1 file(s) invalid (empty or wrong checksum) in {home}"]


def test_cli_checksum_mismatch(built, server, tmp_path, monkeypatch):
    src, archives, index = built
    remote = remotes_for(archives, "x")["metadata"]
    remote.sha256 = "0" * 64
    monkeypatch.setitem(deam.REMOTES, "metadata", remote)
    args = ["download", "deam", "--data-home", str(tmp_path / "h"), "--index", str(index),
            "--only", "metadata", "--mirror", server.url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "0" * 64 in result.output
    result = CliRunner().invoke(main, args + ["--accept-checksum-mismatch"])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ real files


def test_real_averaged_annotations(shared_data):
    folder = shared_data / "deam" / "annotations-averaged-dynamic"
    arousal = deam.read_averaged_dynamic(folder / "arousal.csv")
    valence = deam.read_averaged_dynamic(folder / "valence.csv")
    assert len(arousal) == len(valence) == 1802
    lengths = {s: min(len(arousal[s]), len(valence[s])) for s in arousal}
    assert sum(n == 60 for n in lengths.values()) == 1744
    assert all(lengths[s] == 60 for s in lengths if int(s) <= 2000)
    full = [lengths[s] for s in lengths if int(s) > 2000]
    assert len(full) == 58 and min(full) >= 68 and max(full) == 1223
    assert all(np.all(np.abs(arousal[s]) <= 1) for s in arousal)
    assert sum(deam.year_of(s) == 2013 for s in arousal) == 744
    assert sum(deam.year_of(s) == 2014 for s in arousal) == 1000


def test_shipped_index_matches_the_real_song_ids(shared_data):
    ids = deam.read_averaged_dynamic(
        shared_data / "deam" / "annotations-averaged-dynamic" / "arousal.csv")
    shipped = deam.Dataset("/nonexistent")
    assert sorted(shipped.track_ids, key=int) == sorted(ids, key=int)
    assert shipped._index == deam.make_index(ids)


def test_interrupted_extraction_is_redone_without_downloading_again(built, server, tmp_path,
                                                                    monkeypatch):
    import pdmer_datasets._install as install

    src, archives, index = built
    remotes = remotes_for(archives, server.url)
    dataset = deam.Dataset(tmp_path / "home", index=index)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "safe_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset.download(partial_download=["metadata"], remotes=remotes, progress=False)
    monkeypatch.undo()
    assert not (tmp_path / "home" / ".pdmer" / "metadata.zip.installed").exists()
    n = len(server.requests)
    assert dataset.download(partial_download=["metadata"], remotes=remotes,
                            progress=False) == ["metadata"]
    assert len(server.requests) == n  # the verified archive was reused
    assert (tmp_path / "home" / "metadata" / "metadata_2013.csv").is_file()


# ------------------------------------------------------------------ issue 12 / 10.3


def test_never_downloaded_says_to_run_pdmer_download(tmp_path):
    # The shipped index, nothing installed: the first per-rater file is missing.
    dataset = pdmer_datasets.initialize("deam", data_home=tmp_path / "nothing")
    with pytest.raises(FileNotFoundError) as err:
        dataset.annotator_table(split="train")
    message = str(err.value)
    assert "1001.csv is missing" in message
    assert "run `pdmer download deam --only annotations`" in message.lower()
    assert "Errno" not in message
    with pytest.raises(FileNotFoundError, match="pdmer download deam --only annotations"):
        dataset.mean_table(split="test", trim_to_audio=False)
    with pytest.raises(FileNotFoundError, match="pdmer download deam --only metadata"):
        dataset.track("1001").metadata


def test_official_split_through_mirdata(installed):
    splits = installed.get_track_splits()
    assert sorted(splits) == ["test", "train"]
    assert sorted(splits["test"], key=int) == installed.split_song_ids("test")
    assert installed.track("2001").split == "test" and installed.track("3").split == "train"
    # mirdata's convention: one metadata dict per track.
    assert set(installed._metadata) == set(installed.track_ids)
    assert installed._metadata["1001"]["split"] == "train"


@pytest.fixture
def with_new_rater(built, tmp_path):
    """The tiny DEAM plus a rater W_new who rated only the test song 2001."""
    import shutil

    src, archives, index = built
    home = tmp_path / "home"
    shutil.copytree(src, home)
    for dim in (0, 1):
        name = ("arousal", "valence")[dim]
        path = home / fx.RATER / fx.DYN / name / "2001.csv"
        values = ",".join(f"{v:g}" for v in fx.curve("2001", 5, dim))
        path.write_text(path.read_text() + f"W_new,{values}\n")
    return deam.Dataset(home, index=index)


def test_test_annotators_seen_in_training(with_new_rater):
    dataset = with_new_rater
    assert dataset.test_annotators_seen_in_training() == fx.WORKERS
    everyone = dataset.annotator_table(split="test", trim_to_audio=False)
    assert set(everyone.annotators) == set(fx.WORKERS) | {"W_new"}
    unseen = dataset.annotator_table(split="test", unseen_only=True, trim_to_audio=False)
    assert set(unseen.annotators) == {"W_new"} and list(unseen.song_ids) == ["2001"]
    # The same, from the tables.
    train = dataset.annotator_table(split="train", validation_size=0.0, min_songs=1,
                                    trim_to_audio=False)
    assert list(pdmer_datasets.shared_annotators(train, everyone)) == fx.WORKERS
    with pytest.raises(ValueError, match="split='test' only"):
        dataset.annotator_table(split="train", unseen_only=True)
