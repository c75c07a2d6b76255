"""The on-disk feature cache: hits, keys, corruption, parallel extraction, sklearn plumbing."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

from pdmer.features import AudioFeatures, GlobalEncoder, cache_size, default_cache_dir
from pdmer.features.cache import FeatureCache, content_hash
from pdmer.features.frontend import AudioFeatures as _AF


def write_song(path, seconds=3.0, sr=22050, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.normal(size=int(seconds * sr))).astype(np.float32), sr)
    return str(path)


@pytest.fixture
def songs(tmp_path):
    return [write_song(tmp_path / f"song{i}.wav", 2.0 + i, seed=i) for i in range(3)]


def features(cache_dir, **params):
    params.setdefault("global_encoder", "logmel-stats")
    params.setdefault("global_window", 4.0)
    return AudioFeatures(cache_dir=cache_dir, **params)


def entries(cache_dir):
    return sorted(p for p in cache_dir.rglob("*.safetensors"))


def assert_same(a, b):
    np.testing.assert_array_equal(a.local_patches, b.local_patches)
    np.testing.assert_array_equal(a.global_embeddings, b.global_embeddings)
    assert (a.encoder, a.frame_offset, a.n_frames) == (b.encoder, b.frame_offset, b.n_frames)


def forbid_extraction(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("extracted although the cache holds the song")

    monkeypatch.setattr(_AF, "_prepare", fail)


def test_second_extraction_reads_the_cache(tmp_path, songs, monkeypatch):
    cache = tmp_path / "cache"
    first = features(cache).transform(songs)
    assert len(entries(cache)) == 3 and cache_size(cache) > 0
    forbid_extraction(monkeypatch)
    second = features(cache).transform(songs)
    for a, b, path in zip(first, second, songs):
        assert_same(a, b)
        assert b.source == path


def test_key_is_the_content_not_the_path(tmp_path, songs, monkeypatch):
    cache = tmp_path / "cache"
    [first] = features(cache).transform(songs[:1])
    copy = shutil.copy(songs[0], tmp_path / "renamed.wav")
    forbid_extraction(monkeypatch)
    [again] = features(cache).transform([copy])
    assert_same(first, again)
    assert again.source == str(copy)


@pytest.mark.parametrize("change", [dict(frame_offset=0.5), dict(global_window=2.0),
                                    dict(n_mels=64), dict(waveform_rate=8000),
                                    dict(sample_rate=22050)])
def test_every_setting_that_changes_the_result_changes_the_key(tmp_path, songs, change):
    cache = tmp_path / "cache"
    features(cache).transform(songs[:1])
    features(cache, **change).transform(songs[:1])
    assert len(entries(cache)) == 2


class Peek(GlobalEncoder):
    """An encoder whose channel mode and resampler can be set, with a cache token
    that does not name them: the front end's key must."""

    name, sample_rate, dim, cache_token = "peek", 16000, 2, "peek/v1"

    def __init__(self, channels="mean", resampler="soxr"):
        self.channels, self.resampler = channels, resampler

    def embed(self, waveform, frame_starts, window):
        return np.tile([waveform[:100].mean(), waveform.std()], (len(frame_starts), 1))


@pytest.mark.parametrize("change", [dict(channels="first"), dict(resampler="sinc")])
def test_encoder_channels_and_resampler_change_the_key(tmp_path, change):
    rng = np.random.default_rng(0)
    path = tmp_path / "stereo.wav"
    sf.write(path, (0.1 * rng.normal(size=(44100 * 2, 2))).astype(np.float32), 44100)
    cache = tmp_path / "cache"
    [mix] = features(cache, global_encoder=Peek()).transform([path])
    [other] = features(cache, global_encoder=Peek(**change)).transform([path])
    assert len(entries(cache)) == 2
    assert not np.array_equal(mix.global_embeddings, other.global_embeddings)


def test_settings_that_do_not_change_the_result_share_entries(tmp_path, songs):
    cache = tmp_path / "cache"
    features(cache).transform(songs[:2])
    features(cache, n_jobs=2, progress=True).transform(songs[:2])
    assert len(entries(cache)) == 2


def test_changed_file_content_is_recomputed(tmp_path, songs):
    cache = tmp_path / "cache"
    [before] = features(cache).transform(songs[:1])
    write_song(songs[0], 2.0, seed=99)
    os.utime(songs[0], ns=(1, 1))  # even with an old modification time
    [after] = features(cache).transform(songs[:1])
    assert len(entries(cache)) == 2
    assert not np.array_equal(before.global_embeddings, after.global_embeddings)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path, songs, damage):
    cache = tmp_path / "cache"
    [first] = features(cache).transform(songs[:1])
    [entry] = entries(cache)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-50] ^= 0xFF  # inside the arrays: only the checksum notices
    elif damage == "garbage":
        data = bytearray(b"\x00" * 16 + data[16:])
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="unreadable"):
        [again] = features(cache).transform(songs[:1])
    assert_same(first, again)
    assert len(entries(cache)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features(cache).transform(songs[:1])  # healthy again


def test_no_temporary_files_are_left(tmp_path, songs):
    cache = tmp_path / "cache"
    features(cache).transform(songs)
    assert [p.name for p in cache.rglob("*") if p.is_file() and p.suffix != ".safetensors"] == []


def test_cached_song_is_cropped_to_the_labels(tmp_path, songs):
    cache = tmp_path / "cache"
    [full] = features(cache).transform(songs[2:])
    [cropped] = features(cache).transform(songs[2:], n_frames=[4])
    assert full.n_frames == 8 and cropped.n_frames == 4
    np.testing.assert_array_equal(cropped.global_embeddings, full.global_embeddings[:4])
    # Without a cache the same crop is extracted directly.
    [direct] = features(None).transform(songs[2:], n_frames=[4])
    assert_same(direct, cropped)
    with pytest.raises(ValueError, match="labels have 9 frames but the features only 8"):
        features(cache).transform(songs[2:], n_frames=[9])


def test_waveform_arrays_are_cached_by_their_samples(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    wave = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    [first] = features(cache, waveform_rate=8000).transform([(wave, 16000)])
    forbid_extraction(monkeypatch)
    [again] = features(cache, waveform_rate=8000).transform([(wave.copy(), 16000)])
    assert_same(first, again)
    np.testing.assert_array_equal(first.waveforms, again.waveforms)
    assert again.waveform_rate == 8000
    assert content_hash((wave, 16000)) != content_hash((wave, 22050))


class Untokened(GlobalEncoder):
    name, sample_rate, dim = "untokened", 16000, 1

    def embed(self, waveform, frame_starts, window):
        return np.ones((len(frame_starts), 1))


def test_encoder_without_cache_token_is_not_cached(tmp_path, songs):
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match="not cached"):
        features(cache, global_encoder=Untokened()).transform(songs[:1])
    assert not cache.exists()


def test_clip_models_are_keyed_by_their_weights(tmp_path, songs):
    cache = tmp_path / "cache"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Unflatten(1, (1, -1)), torch.nn.AdaptiveAvgPool1d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    [a] = features(cache, global_encoder=model).transform(songs[:1])
    assert a.encoder == "custom:Sequential" and a.global_embeddings.shape == (4, 3)
    with torch.no_grad():
        model[3].weight.add_(1.0)
    [b] = features(cache, global_encoder=model).transform(songs[:1])
    assert len(entries(cache)) == 2
    assert not np.array_equal(a.global_embeddings, b.global_embeddings)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("PDMER_CACHE_DIR")
    assert default_cache_dir().name == "pdmer"
    assert cache_size(tmp_path / "nothing") == 0


class CountFrames(BaseEstimator):
    """A final step that needs only the features (for Pipeline tests)."""

    def fit(self, X, y=None):
        self.n_songs_ = len(X)
        return self

    def predict(self, X):
        return np.array([x.n_frames for x in X])


def test_pipeline_memory_and_clone(tmp_path, songs):
    front = features(tmp_path / "cache", n_jobs=2)
    assert clone(front).get_params() == front.get_params()
    pipe = Pipeline([("features", front), ("count", CountFrames())],
                    memory=str(tmp_path / "joblib"))
    pipe.fit(songs)
    np.testing.assert_array_equal(pipe.predict(songs), [4, 6, 8])
    # joblib's Memory reuses the fitted front end on a refit of a clone.
    clone(pipe).fit(songs)
    assert (tmp_path / "joblib").exists()


def test_feature_cache_key_is_stable():
    cache = FeatureCache("unused")
    settings = {"a": 1, "b": [1.0, None]}
    assert cache.key("abc", settings) == cache.key("abc", dict(reversed(settings.items())))
    assert cache.key("abc", settings) != cache.key("abd", settings)


# ------------------------------------------------------------ pdmer extract


def test_extract_command_fills_the_cache(tmp_path, songs, monkeypatch):
    from click.testing import CliRunner

    from pdmer.cli import main

    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path / "user"))
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(songs[:2]):
        shutil.copy(path, folder / ("sub" if i else "") / f"s{i}.wav")
    (folder / "notes.txt").write_text("not audio")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# one per line\n{os.path.basename(songs[2])}\n")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["extract", str(folder), "--list", str(listing),
                                       "--encoder", "logmel-stats", "--global-window", "4",
                                       "--cache-dir", str(cache), "-j", "2"])
    assert result.exit_code == 0, result.output
    assert "Extracted 3 songs (18 frames, 9 s)" in result.output
    assert "global encoder: logmel-stats" in result.output
    assert len(entries(cache)) == 3
    # Default cache folder: the user cache.
    result = CliRunner().invoke(main, ["extract", songs[0], "--encoder", "logmel-stats"])
    assert result.exit_code == 0, result.output
    assert len(entries(tmp_path / "user" / "features")) == 1
    # The library reads what the command wrote.
    forbid_extraction(monkeypatch)
    features(cache).transform(songs)


def test_extract_command_errors(tmp_path, songs):
    from click.testing import CliRunner

    from pdmer.cli import main

    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["extract", str(empty)])
    assert result.exit_code == 2 and "No audio files found" in result.output
    result = runner.invoke(main, ["extract", str(tmp_path / "nope.wav")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(main, ["extract", songs[0], "--encoder", "imagebnd"])
    assert result.exit_code == 1 and "Unknown global_encoder 'imagebnd'" in result.output
    result = runner.invoke(main, ["extract", songs[0], "--encoder", "logmel-stats",
                                  "--precision", "bf16"])
    assert result.exit_code == 2 and "are for the imagebind encoder" in result.output
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    args = ["extract", songs[0], str(broken), "--encoder", "logmel-stats",
            "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "broken.wav" in result.output
    result = runner.invoke(main, args + ["--skip-errors"])
    assert result.exit_code == 1
    assert "Extracted 1 songs" in result.output and "failed: " in result.output
    assert len(entries(tmp_path / "c")) == 1
