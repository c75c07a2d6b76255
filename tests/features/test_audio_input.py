"""Audio input that must fail safely: cut-off files, FIFOs, bad parameters, odd caches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pdmer.features import AudioError, AudioFeatures, load_audio

SR = 22050


def noise(seconds, sr=SR, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.normal(size=(int(seconds * sr), channels))).astype(np.float32)


def cut(path, fraction, out):
    data = Path(path).read_bytes()
    Path(out).write_bytes(data[:int(len(data) * fraction)])
    return out


# ------------------------------------------------------------- cut-off files


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "W64"])
def test_cut_off_wav_is_refused(tmp_path, fmt):
    full = tmp_path / f"full.{fmt.lower()}"
    sf.write(full, noise(30.0), SR, format=fmt, subtype="PCM_16")
    short = cut(full, 1 / 3, tmp_path / f"short.{fmt.lower()}")
    # libsndfile reads the third that is there without complaint.
    assert sf.info(short).duration == pytest.approx(10.0, abs=0.1)
    with pytest.raises(AudioError, match=r"cut short.*announces about 30\.0 s.*10\.0 s") as info:
        AudioFeatures(n_mels=16).transform([short])
    assert str(short) in str(info.value)
    with pytest.raises(AudioError, match="cut short"):
        load_audio(short)
    # The whole file, and one missing only its last bytes' padding, are fine.
    assert load_audio(full)[0].shape == (30 * SR,)
    assert load_audio(cut(full, 0.9999, tmp_path / f"almost.{fmt.lower()}"))[0].size > 0


def _mp3(tmp_path, shared_data):
    """A real PMEmo clip re-encoded by libsndfile (LAME writes a Xing header), or a
    generated one when the shared data are absent."""
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3 (needs libsndfile >= 1.1 with LAME)")
    source = shared_data / "pmemo" / "chorus" / "108.mp3" if shared_data else None
    if source is not None and source.is_file():
        data, rate = sf.read(source, dtype="float32", frames=20 * 44100)
    else:
        data, rate = noise(20.0, 44100), 44100
    path = tmp_path / "full.mp3"
    sf.write(path, data, rate, format="MP3")
    return path


@pytest.fixture
def maybe_shared_data():
    from helpers import SHARED_DATA

    return SHARED_DATA if SHARED_DATA.is_dir() else None


def test_cut_off_mp3_is_refused(tmp_path, maybe_shared_data):
    full = _mp3(tmp_path, maybe_shared_data)
    short = cut(full, 1 / 3, tmp_path / "short.mp3")
    with pytest.raises(AudioError, match=r"cut short.*announces about 20\.\d s"):
        AudioFeatures(n_mels=16).transform([short])
    [song] = AudioFeatures(n_mels=16).transform([full])
    assert song.n_frames == 40


def test_real_mp3_without_a_length_header_still_loads(shared_data):
    # PMEmo's MP3s announce no length (no Xing/Info header): libsndfile
    # estimates it from the size, 0.25 % long. Not a cut-off file.
    waveform, rate = load_audio(shared_data / "pmemo" / "chorus" / "108.mp3")
    assert len(waveform) / rate == pytest.approx(49.03, abs=0.01)


# ------------------------------------------------------------ non-regular files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (np.inf, "inf"), (1e30, r"1e\+30")])
def test_float_files_with_unusable_samples_are_refused_naming_the_sample(tmp_path, value,
                                                                         shown):
    # Decoded as is, they gave NaN features and NaN curves (issue 19).
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, (3 * 8000, 2)).astype(np.float32)
    waveform[12345, 1] = value
    path = tmp_path / "float.wav"
    sf.write(path, waveform, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=f"float.wav: sample 12345 \\(1.543 s\\), channel 2, "
                                         f"is {shown}"):
        load_audio(path)
    loud = waveform.copy()
    loud[12345, 1] = 8.0  # over full scale, but a level a float file can hold
    sf.write(path, loud, 8000, subtype="FLOAT")
    assert load_audio(path)[0].shape == (3 * 8000,)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    # In a child process with a timeout: the unfixed code blocks forever on open().
    code = ("import sys\nfrom pdmer.features import AudioFeatures\n"
            "try:\n    AudioFeatures(cache_dir=sys.argv[2]).transform([sys.argv[1]])\n"
            "except Exception as err:\n    print(type(err).__name__, err)\n")
    done = subprocess.run([sys.executable, "-c", code, str(fifo), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=60)
    assert "AudioError" in done.stdout and "FIFO" in done.stdout, done.stdout + done.stderr


def test_folder_is_refused(tmp_path):
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        AudioFeatures().transform([tmp_path])


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize("param, value, message", [
    ("frame_offset", float("nan"), r"'frame_offset' parameter .* must be a float in the range"),
    ("frame_offset", -1.0, "'frame_offset' parameter"),
    ("frame_offset", float("inf"), "'frame_offset' parameter"),
    ("frame_offset", True, "'frame_offset' parameter"),
    ("n_jobs", 0, r"'n_jobs' parameter .* Got 0 instead"),
    ("n_jobs", 1.5, "'n_jobs' parameter"),
    ("sample_rate", 0, "'sample_rate' parameter"),
    ("n_mels", True, "'n_mels' parameter"),
    ("hop_seconds", 0.0, "'hop_seconds' parameter"),
    ("window_seconds", float("nan"), "'window_seconds' parameter"),
    ("global_window", -30, "'global_window' parameter"),
    ("cache_dir", 3, "'cache_dir' parameter"),
    ("progress", "yes", "'progress' parameter"),
])
def test_parameters_are_checked_at_the_edge(param, value, message):
    song = (noise(2.0, channels=1)[:, 0], SR)
    front = AudioFeatures(**{param: value})
    with pytest.raises(ValueError, match=message):
        front.transform([song])
    with pytest.raises(ValueError, match=message):
        front.fit()


def test_negative_n_jobs_count_from_the_cpus():
    song = (noise(2.0, channels=1)[:, 0], SR)
    [a] = AudioFeatures(n_jobs=-1, n_mels=16).transform([song])
    [b] = AudioFeatures(n_jobs=None, n_mels=16).transform([song])
    np.testing.assert_array_equal(a.local_patches, b.local_patches)


# ------------------------------------------------------------------ the cache


@pytest.fixture
def two_songs(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"song{i}.wav"
        sf.write(path, noise(3.0, seed=i), SR)
        paths.append(path)
    return paths


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="permissions do not bind root (or on Windows)")
def test_read_only_cache_falls_back_with_one_warning(tmp_path, two_songs):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o555)
    try:
        with pytest.warns(RuntimeWarning, match="Cannot write to the feature cache") as seen:
            feats = AudioFeatures(n_mels=16, cache_dir=cache).transform(two_songs)
    finally:
        os.chmod(cache, 0o755)
    assert len([w for w in seen if "Cannot write" in str(w.message)]) == 1
    assert [f.n_frames for f in feats] == [6, 6]


def test_unwritable_cache_falls_back_with_one_warning(tmp_path, two_songs, monkeypatch):
    # Whoever runs the tests (root ignores permissions): make every write fail.
    from pdmer.features import cache as cache_module

    def refuse(path, write, suffix=".tmp"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module, "atomic_write", refuse)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        feats = AudioFeatures(n_mels=16, cache_dir=tmp_path / "cache").transform(two_songs)
    messages = [str(w.message) for w in seen if "Cannot write" in str(w.message)]
    assert len(messages) == 1 and "cache_dir=None" in messages[0]
    plain = AudioFeatures(n_mels=16).transform(two_songs)
    for a, b in zip(feats, plain):
        np.testing.assert_array_equal(a.global_embeddings, b.global_embeddings)


def test_cache_folder_that_is_a_file_falls_back(tmp_path, two_songs):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="Cannot write to the feature cache"):
        feats = AudioFeatures(n_mels=16, cache_dir=blocker).transform(two_songs)
    assert len(feats) == 2


def test_entry_copied_over_another_key_is_not_served(tmp_path, two_songs):
    front = {i: AudioFeatures(n_mels=16, cache_dir=tmp_path / f"cache{i}") for i in (0, 1)}
    [first], [second] = front[0].transform(two_songs[:1]), front[1].transform(two_songs[1:])
    [entry0] = (tmp_path / "cache0").rglob("*.safetensors")
    [entry1] = (tmp_path / "cache1").rglob("*.safetensors")
    # Song 0's entry under song 1's name: its checksum is intact, its key is not.
    shutil.copyfile(entry0, entry1)
    with pytest.warns(RuntimeWarning, match="belongs to another key"):
        [again] = front[1].transform(two_songs[1:])
    np.testing.assert_array_equal(again.global_embeddings, second.global_embeddings)
    assert not np.array_equal(again.global_embeddings, first.global_embeddings)
