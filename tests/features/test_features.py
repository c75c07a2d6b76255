"""Audio front end: log-mel patches, label-grid segmentation, encoders, containers."""

from __future__ import annotations

import csv
import pickle

import joblib
import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from pdmer.features import (
    AudioError,
    AudioFeatures,
    GlobalEncoder,
    LogMelStatsEncoder,
    SongFeatures,
    available_encoders,
    get_global_encoder,
    load_audio,
)
from pdmer.features.logmel import frame_segments, log_mel
from pdmer.labels import FRAME_SECONDS

# Mel bins of the reference settings (44.1 kHz, 128 mels) whose centre is below
# 7 kHz: content every test rate (16 kHz included) can represent.
MEL_BELOW_7K = librosa.mel_frequencies(128 + 2, fmax=22050)[1:-1] < 7000


def tones(sr, duration, fade=0.1):
    """The same band-limited continuous signal (< 3.2 kHz) sampled at ``sr``.

    A slowly varying envelope with short fades in and out, so resamplers see
    no hard edges.
    """
    t = np.arange(int(round(duration * sr))) / sr
    env = 0.2 + 0.15 * np.sin(2 * np.pi * 0.3 * t)
    env *= np.clip(np.minimum(t, duration - t) / fade, 0, 1) ** 2
    partials = ((1.0, 220, 0.0), (0.5, 660, 1.0), (0.3, 1500, 2.0), (0.2, 3100, 0.5))
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in partials)
    return (env * x / 2).astype(np.float32)


def noise(sr, duration, seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=int(round(duration * sr)))).astype(np.float32)


def write_wav(path, data, sr):
    sf.write(path, data, sr, subtype="FLOAT")
    return path


def librosa_log_mel(y, sr, n_mels=128):
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=round(0.06 * sr), hop_length=round(0.01 * sr), n_mels=n_mels,
        center=True, pad_mode="constant")
    return np.log(mel + 1e-6).T


# --------------------------------------------------------------------------- log_mel


@pytest.mark.parametrize("sr", [44100, 22050, 16000])
def test_log_mel_matches_librosa(sr):
    n = int(round(FRAME_SECONDS * sr))
    t = np.arange(n) / sr
    segments = np.stack([
        noise(sr, FRAME_SECONDS, seed=1) * np.linspace(0, 1, n, dtype=np.float32),
        (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        np.zeros(n, np.float32),  # all-zero: log(1e-6) floor everywhere
    ])
    segments[2, 100:200] = 0.1
    got = log_mel(torch.from_numpy(segments), sr, 128, 0.06, 0.01).numpy()
    assert got.shape == (3, 51, 128)  # 1 + 0.5 s / 10 ms centred frames
    for k in range(3):
        ref = librosa_log_mel(segments[k], sr)
        assert ref.shape == (51, 128)
        np.testing.assert_allclose(got[k], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_reference_patch_shape_at_44k():
    [song] = AudioFeatures().transform([(noise(44100, 2.0), 44100)])
    assert song.local_patches.shape == (4, 51, 128)
    assert song.local_patches.dtype == np.float32


def test_local_patches_are_log_mel_of_the_frame_audio():
    sr = 44100
    y = noise(sr, 3.0, seed=3)
    [song] = AudioFeatures(frame_offset=0.5).transform([(y, sr)])
    assert song.n_frames == 5
    for i in (0, 4):
        start = int(round((0.5 + 0.5 * i) * sr))
        ref = librosa_log_mel(y[start:start + sr // 2], sr)
        np.testing.assert_allclose(song.local_patches[i], ref, rtol=1e-4,
                                   atol=1e-4 * np.abs(ref).max())


# ------------------------------------------------------------------- frame_segments


@pytest.mark.parametrize("sr", [44100, 16000, 11025, 22050, 8001])
@pytest.mark.parametrize("offset", [0.0, 15.0, 15.5, 0.3])
def test_frame_boundaries_follow_absolute_time(sr, offset):
    # 200 s: per-frame rounding that accumulated (0.5 sample a frame at
    # 11025 Hz) would be off by 200 samples at the end.
    n_frames = 400
    duration = offset + FRAME_SECONDS * n_frames
    time = np.arange(int(np.ceil(duration * sr)) + 1, dtype=np.float64)  # sample index
    frames = frame_segments(time, sr, offset, n_frames)
    length = int(round(FRAME_SECONDS * sr))
    assert frames.shape == (n_frames, length)
    exact_start = (offset + FRAME_SECONDS * np.arange(n_frames)) * sr
    exact_end = exact_start + FRAME_SECONDS * sr
    # First sample of frame i is the nearest sample to offset + 0.5 i s ...
    assert np.all(np.abs(frames[:, 0] - exact_start) <= 0.5)
    # ... its end (exclusive) is within one sample of offset + 0.5 (i + 1) s ...
    assert np.all(np.abs(frames[:, -1] + 1 - exact_end) <= 1.0)
    # ... and samples within a frame are consecutive.
    assert np.all(np.diff(frames, axis=1) == 1)
    # Consecutive frames meet: no gap or overlap beyond one sample.
    assert np.all(np.abs(frames[1:, 0] - (frames[:-1, -1] + 1)) <= 1)


def test_frame_segments_half_sample_frames_do_not_drift():
    sr = 11025  # 0.5 s = 5512.5 samples
    n_frames = 2400  # 20 minutes
    time = np.arange(int(n_frames * FRAME_SECONDS * sr) + 1, dtype=np.float64) / sr
    frames = frame_segments(time, sr, 0.0, n_frames)
    assert frames.shape[1] == 5512
    # Sample values are times in seconds: the last frame still starts at 1199.5 s.
    error = np.abs(frames[:, 0] - FRAME_SECONDS * np.arange(n_frames))
    assert error.max() <= 0.5 / sr + 1e-9
    assert abs(frames[-1, 0] - 1199.5) <= 0.5 / sr + 1e-9


def test_frame_segments_pads_sub_sample_shortfall_at_the_end():
    sr = 11025
    y = np.ones(int(np.floor(1.5 * sr)) - 1, np.float32)  # one sample short of 3 frames
    frames = frame_segments(y, sr, 0.0, 3)
    assert frames.shape == (3, 5512)
    assert frames[-1, -1] == 0.0 and frames[0].min() == 1.0


# ------------------------------------------------------------------ AudioFeatures


@pytest.fixture(scope="module")
def reference_song(tmp_path_factory):
    path = write_wav(tmp_path_factory.mktemp("ref") / "ref.wav", tones(44100, 4.0), 44100)
    [song] = AudioFeatures().transform([path])
    return song


@pytest.mark.parametrize("sr", [48000, 22050, 16000])
def test_same_content_at_other_sample_rates(tmp_path, reference_song, sr):
    path = write_wav(tmp_path / f"song_{sr}.wav", tones(sr, 4.0), sr)
    [song] = AudioFeatures().transform([path])
    assert song.n_frames == reference_song.n_frames == 8
    assert song.local_patches.shape == reference_song.local_patches.shape
    np.testing.assert_allclose(song.local_patches[..., MEL_BELOW_7K],
                               reference_song.local_patches[..., MEL_BELOW_7K], atol=0.05)
    np.testing.assert_allclose(song.global_embeddings, reference_song.global_embeddings,
                               atol=1e-3)
    assert song.source == str(path)


def test_stereo_file_equals_mono_mix(tmp_path, reference_song):
    sr = 44100
    x = tones(sr, 4.0)
    d = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(len(x)) / sr).astype(np.float32)
    path = write_wav(tmp_path / "stereo.wav", np.stack([x + d, x - d], axis=1), sr)
    assert sf.info(path).channels == 2
    [song] = AudioFeatures().transform([path])
    assert song.n_frames == reference_song.n_frames
    np.testing.assert_allclose(song.local_patches, reference_song.local_patches, atol=1e-3)
    np.testing.assert_allclose(song.global_embeddings, reference_song.global_embeddings,
                               atol=1e-4)


def test_waveform_tuples_follow_soundfiles_layout(reference_song):
    sr = 44100
    x = tones(sr, 4.0)
    stereo = np.stack([x, x], axis=1)  # (n_samples, 2), as soundfile.read returns
    mono, last = AudioFeatures().transform([(x, sr), (stereo, sr)])
    for song in (mono, last):
        assert song.n_frames == 8
        assert song.source == "<array>"
        np.testing.assert_allclose(song.local_patches, reference_song.local_patches,
                                   atol=1e-5)
        np.testing.assert_allclose(song.global_embeddings,
                                   reference_song.global_embeddings, atol=1e-5)
    # (channels, samples), librosa's and torchaudio's layout, is refused with the fix.
    with pytest.raises(AudioError, match=r"shape \(2, 176400\).*pass waveform\.T"):
        AudioFeatures().transform([(stereo.T, sr)])


def test_many_channels_are_not_misread(reference_song):
    # Ten channels: the old guess read (n_samples, 10) right but took a
    # (10, n_samples) array for 10 samples of many channels.
    sr = 44100
    x = tones(sr, 4.0)
    gains = np.linspace(0.5, 1.5, 10, dtype=np.float32)  # mean 1: the mix is x
    ten = x[:, None] * gains[None, :]
    [song] = AudioFeatures().transform([(ten, sr)])
    # float32 rounding of the mix: log-mel values near the floor move by ~1e-4.
    np.testing.assert_allclose(song.local_patches, reference_song.local_patches, atol=1e-3)
    with pytest.raises(AudioError, match="more channels than samples"):
        AudioFeatures().transform([(ten.T, sr)])


@pytest.mark.parametrize("subtype, dtype", [("PCM_16", np.int16), ("PCM_32", np.int32),
                                            ("PCM_U8", np.uint8)])
def test_integer_waveforms_are_scaled_like_the_file(tmp_path, subtype, dtype):
    sr = 22050
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, noise(sr, 3.0, scale=0.2), sr, subtype=subtype)
    pcm, _ = sf.read(path, dtype=dtype if dtype != np.uint8 else "int16")
    if dtype == np.uint8:  # soundfile has no uint8 read: 8-bit WAV holds pcm // 256 + 128
        pcm = (pcm // 256 + 128).astype(np.uint8)
    from_file, from_array = AudioFeatures(n_mels=32).transform([path, (pcm, sr)])
    np.testing.assert_allclose(from_array.local_patches, from_file.local_patches, atol=1e-4)
    np.testing.assert_allclose(from_array.global_embeddings, from_file.global_embeddings,
                               atol=1e-4)


def test_non_audio_dtypes_are_refused():
    with pytest.raises(AudioError, match="dtype complex64"):
        AudioFeatures().transform([(np.ones(16000, np.complex64), 16000)])
    with pytest.raises(AudioError, match="dtype bool"):
        AudioFeatures().transform([(np.ones(16000, bool), 16000)])


def test_frame_offset_and_frame_count_of_a_deam_length_clip(tmp_path):
    sr = 44100
    path = tmp_path / "clip.wav"
    sf.write(path, noise(sr, 45.6, seed=4), sr, subtype="PCM_16")
    [song] = AudioFeatures(frame_offset=15).transform([path])
    assert song.n_frames == 61  # floor((45.6 - 15) / 0.5)
    assert song.frame_offset == 15.0
    assert song.global_embeddings.shape == (61, LogMelStatsEncoder().dim)
    assert np.all(np.isfinite(song.local_patches))
    assert np.all(np.isfinite(song.global_embeddings))


def test_n_frames_crops_and_rejects_labels_longer_than_audio(tmp_path):
    sr = 22050
    path = write_wav(tmp_path / "a.wav", noise(sr, 5.2), sr)
    features = AudioFeatures(frame_offset=1.0)
    [full] = features.transform([path])
    assert full.n_frames == 8
    [cropped] = features.transform([path], n_frames=[5])
    assert cropped.n_frames == 5
    np.testing.assert_allclose(cropped.local_patches, full.local_patches[:5], atol=1e-6)
    # Each frame's global window is centred on the frame: cropping changes nothing.
    np.testing.assert_allclose(cropped.global_embeddings, full.global_embeddings[:5],
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"9 frames.*enough for 8 frames") as info:
        features.transform([path], n_frames=[9])
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="n_frames has 2 entries for 1 items"):
        features.transform([path], n_frames=[3, 4])


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_n_frames_must_be_positive_whole_numbers(bad):
    with pytest.raises(ValueError, match=r"n_frames\[0\] must be a positive"):
        AudioFeatures().transform([(noise(16000, 2.0), 16000)], n_frames=[bad])


def test_audio_shorter_than_offset(tmp_path):
    path = write_wav(tmp_path / "short.wav", noise(16000, 2.0), 16000)
    with pytest.raises(AudioError, match="too short") as info:
        AudioFeatures(frame_offset=15).transform([path])
    assert str(path) in str(info.value)


def test_silent_audio(tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 2, np.float32), 16000)
    with pytest.raises(AudioError, match="silent") as info:
        AudioFeatures().transform([path])
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["corrupt.wav", "corrupt.mp3", "corrupt.flac"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(5).bytes(4096))
    with pytest.raises(AudioError, match="Cannot decode") as info:
        AudioFeatures().transform([path])
    assert str(path) in str(info.value)


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav"):
        load_audio(empty)
    header_only = tmp_path / "no_samples.wav"
    sf.write(header_only, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"no_samples\.wav: the audio is empty"):
        AudioFeatures().transform([header_only])


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "missing.wav"
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        AudioFeatures().transform([path])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        AudioFeatures().transform([str(path)])


@pytest.mark.parametrize("waveform, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((0, 2), np.float32), "empty"),
    (np.zeros((2, 3, 4), np.float32), "1-D or"),
    (np.array([0.1, np.nan] * 8000, np.float32), "NaN"),
])
def test_bad_waveform_arrays(waveform, message):
    with pytest.raises(AudioError, match=message):
        AudioFeatures().transform([(waveform, 16000)])


def test_bad_sample_rate():
    with pytest.raises(AudioError, match="sample rate"):
        AudioFeatures().transform([(noise(16000, 1.0), 0)])


def test_song_features_pass_through():
    song = SongFeatures(np.zeros((6, 51, 128)), np.ones((6, 4)), frame_offset=15.0,
                        encoder="x", source="s.mp3")
    [same] = AudioFeatures().transform([song])
    assert same is song
    [cropped] = AudioFeatures().transform([song], n_frames=[4])
    assert cropped.n_frames == 4 and cropped.frame_offset == 15.0
    with pytest.raises(ValueError, match=r"s\.mp3: the labels have 7 frames"):
        AudioFeatures().transform([song], n_frames=[7])


@pytest.mark.parametrize("item", [42, ["a.wav"], (np.zeros(10), 16000, "extra"), None])
def test_wrong_item_type(item):
    with pytest.raises(TypeError, match="Each item of X"):
        AudioFeatures().transform([item])


def test_n_jobs_gives_the_same_result(tmp_path):
    sr = 22050
    X = [write_wav(tmp_path / f"{i}.wav", noise(sr, 3.0 + i, seed=i), sr) for i in range(3)]
    X.append((noise(16000, 2.5, seed=9), 16000))
    serial = AudioFeatures(frame_offset=0.5).transform(X, n_frames=[4, None, 6, None])
    # The process backend costs ~15 s of worker start-up (torch imports) on a
    # small machine; threads exercise the same dispatch, and the pickle round
    # trip below checks what the process backend would need.
    with joblib.parallel_backend("threading"):
        parallel = AudioFeatures(frame_offset=0.5, n_jobs=2).transform(
            X, n_frames=[4, None, 6, None])
    assert [s.n_frames for s in serial] == [4, 7, 6, 4]
    for a, b in zip(serial, parallel):
        assert a.source == b.source
        np.testing.assert_array_equal(a.local_patches, b.local_patches)
        np.testing.assert_array_equal(a.global_embeddings, b.global_embeddings)
    features = pickle.loads(pickle.dumps(AudioFeatures(n_jobs=2)))
    assert features.get_params()["n_jobs"] == 2
    song = pickle.loads(pickle.dumps(serial[0]))
    np.testing.assert_array_equal(song.local_patches, serial[0].local_patches)


# ---------------------------------------------------------------- global encoders


def direct_stats(encoder, waveform, frame_start, window, first):
    """Mean and std over the 0.5 s cells (grid from ``first``) that overlap the window."""
    sr = encoder.sample_rate
    n_cells = int(np.floor((len(waveform) / sr - first) / FRAME_SECONDS + 1e-9))
    centre = frame_start + FRAME_SECONDS / 2
    cell_start = first + FRAME_SECONDS * np.arange(n_cells)
    use = (cell_start + FRAME_SECONDS > centre - window / 2) & (cell_start < centre + window / 2)
    cells = frame_segments(waveform, sr, first, n_cells)[use]
    with torch.no_grad():
        mel = log_mel(torch.from_numpy(cells), sr, encoder.n_mels, 0.025, 0.010)
    values = mel.numpy().astype(np.float64).reshape(-1, encoder.n_mels)
    return np.concatenate([values.mean(0), values.std(0)])


def test_logmel_stats_shape():
    enc = LogMelStatsEncoder(n_mels=32)
    assert enc.dim == 64 and enc.name == "logmel-stats"
    out = enc.embed(noise(16000, 10.0), FRAME_SECONDS * np.arange(20), 4.0)
    assert out.shape == (20, 64) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.all(out[:, 32:] >= 0)


def test_logmel_stats_louder_section_raises_nearby_means():
    sr = 16000
    y = noise(sr, 20.0, seed=1, scale=0.01)
    y[9 * sr:11 * sr] *= 100  # +40 dB between 9 s and 11 s
    enc = LogMelStatsEncoder(n_mels=32)
    starts = FRAME_SECONDS * np.arange(40)
    out = enc.embed(y, starts, 3.0)
    loudness = out[:, :32].mean(1)
    centres = starts + 0.25
    near = np.abs(centres - 10.0) < 1.0
    far = (centres < 6.0) | (centres > 14.0)
    assert loudness[near].min() > loudness[far].max() + 3.0  # log-power: e^3 ~ 13 dB
    np.testing.assert_allclose(loudness[far], loudness[far].mean(), atol=0.5)


def test_logmel_stats_window_longer_than_song_is_clipped():
    sr = 16000
    y = noise(sr, 6.0, seed=2) * np.linspace(0.1, 1.0, 6 * sr, dtype=np.float32)
    enc = LogMelStatsEncoder(n_mels=16)
    starts = FRAME_SECONDS * np.arange(12)
    out = enc.embed(y, starts, 30.0)
    assert np.all(np.isfinite(out))
    # Every 30 s window covers the whole 6 s song: identical rows.
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), rtol=1e-5)
    np.testing.assert_allclose(out[0], direct_stats(enc, y, 0.0, 30.0, 0.0), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 15.0, 0.3])
def test_logmel_stats_cumulative_sums_equal_direct_computation(offset):
    sr = 16000
    duration = offset + 12.0
    y = noise(sr, duration, seed=6) * (1 + np.sin(np.arange(int(duration * sr)) / sr))
    y = y.astype(np.float32)
    enc = LogMelStatsEncoder(n_mels=24)
    n_frames = 24
    starts = offset + FRAME_SECONDS * np.arange(n_frames)
    first = offset % FRAME_SECONDS
    for window in (3.0, 4.0, 30.0):
        out = enc.embed(y, starts, window)
        for i in (0, 1, 7, n_frames - 1):  # edges are clipped windows
            expected = direct_stats(enc, y, starts[i], window, first)
            np.testing.assert_allclose(out[i], expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f"frame {i}, window {window}")


def test_get_global_encoder_by_name():
    assert isinstance(get_global_encoder("logmel-stats"), LogMelStatsEncoder)
    with pytest.raises(ValueError, match=r"'imagebnd'.*available: 'logmel-stats', 'imagebind'"):
        get_global_encoder("imagebnd")
    with pytest.raises(ValueError, match="logmel-stats"):
        AudioFeatures(global_encoder="nope").fit()


class ProbeEncoder(GlobalEncoder):
    """Embeds what it was given: frame start, window and song duration."""

    name = "probe"
    sample_rate = 8000
    dim = 3

    def embed(self, waveform, frame_starts, window):
        frame_starts = np.asarray(frame_starts, dtype=np.float64)
        return np.stack([frame_starts, np.full_like(frame_starts, window),
                         np.full_like(frame_starts, len(waveform) / self.sample_rate)], 1)


def test_custom_encoder_plugs_in():
    enc = ProbeEncoder()
    assert get_global_encoder(enc) is enc
    [song] = AudioFeatures(frame_offset=1.5, global_encoder=enc, global_window=12.0).transform(
        [(noise(22050, 5.0), 22050)])
    assert song.encoder == "probe"
    assert song.global_embeddings.shape == (7, 3)
    np.testing.assert_allclose(song.global_embeddings[:, 0], 1.5 + 0.5 * np.arange(7))
    np.testing.assert_allclose(song.global_embeddings[:, 1], 12.0)
    # The encoder gets the whole song at its own sample rate.
    np.testing.assert_allclose(song.global_embeddings[:, 2], 5.0, atol=1e-3)


def test_duck_typed_encoder_plugs_in():
    class Duck:
        name, sample_rate, dim = "duck", 16000, 2

        def embed(self, waveform, frame_starts, window):
            return np.ones((len(frame_starts), 2))

    [song] = AudioFeatures(global_encoder=Duck()).transform([(noise(16000, 2.0), 16000)])
    assert song.encoder == "duck"
    np.testing.assert_array_equal(song.global_embeddings, np.ones((4, 2)))


def test_plain_callable_is_a_clip_model():
    calls = []

    def clip_rms(clips):  # (batch, n_samples) float32 tensor at 16 kHz -> (batch, 1)
        calls.append(tuple(clips.shape))
        return clips.square().mean(dim=1, keepdim=True).sqrt()

    enc = get_global_encoder(clip_rms)
    assert enc.name == "custom:function" and enc.cache_token is None
    [song] = AudioFeatures(global_encoder=clip_rms, global_window=4.0).transform(
        [(noise(16000, 3.0), 16000)])
    assert song.encoder == "custom:function" and song.global_embeddings.shape == (6, 1)
    assert (1, 32000) in calls  # the dim probe: one silent 2 s clip
    assert all(shape[1] == 32000 for shape in calls)
    # Windows reaching into the zero padding have less energy.
    assert song.global_embeddings[0, 0] < song.global_embeddings[2, 0]


def test_available_encoders_name_every_registered_encoder():
    encoders = available_encoders()
    assert {"auto", "logmel-stats", "imagebind"} <= set(encoders)
    assert "pdmer download imagebind" in encoders["imagebind"]  # no weights in tests
    assert "now: logmel-stats" in encoders["auto"]
    assert AudioFeatures().encoder().name == "logmel-stats"


def test_encoder_missing_attributes():
    class Partial:
        name = "partial"

        def embed(self, waveform, frame_starts, window):
            return None

    with pytest.raises(TypeError, match="lacks sample_rate, dim"):
        get_global_encoder(Partial())
    with pytest.raises(TypeError, match="GlobalEncoder"):
        AudioFeatures(global_encoder=Partial()).transform([(noise(16000, 2.0), 16000)])
    with pytest.raises(TypeError, match="lacks"):
        AudioFeatures(global_encoder=object()).fit()


@pytest.mark.parametrize("shape", [(4, 2), (3, 3), (4,)])
def test_encoder_wrong_output_shape(shape):
    class Wrong(ProbeEncoder):
        name = "wrong"

        def embed(self, waveform, frame_starts, window):
            return np.zeros(shape)

    with pytest.raises(ValueError, match=r"'wrong' returned shape .* expected \(4, 3\)"):
        AudioFeatures(global_encoder=Wrong()).transform([(noise(16000, 2.0), 16000)])


# -------------------------------------------------------------------- SongFeatures


def test_song_features_validation():
    ok_local, ok_glob = np.zeros((5, 51, 8)), np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"local_patches of s\.wav must have shape"):
        SongFeatures(np.zeros((5, 51)), ok_glob, source="s.wav")
    with pytest.raises(ValueError, match="global_embeddings of .* must have shape"):
        SongFeatures(ok_local, np.zeros((5, 4, 1)))
    with pytest.raises(ValueError, match="local_patches has 5 frames but global_embeddings has 6"):
        SongFeatures(ok_local, np.zeros((6, 4)))
    with pytest.raises(ValueError, match="at least one frame"):
        SongFeatures(np.zeros((0, 51, 8)), np.zeros((0, 4)))
    song = SongFeatures(ok_local.astype(np.float64), ok_glob)
    assert song.local_patches.dtype == np.float32 and len(song) == song.n_frames == 5


def test_song_features_crop():
    local = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    glob = np.arange(10 * 4, dtype=np.float32).reshape(10, 4)
    song = SongFeatures(local, glob, frame_offset=15.0, encoder="e", source="s",
                        waveforms=np.zeros((10, 7)), waveform_rate=14)
    part = song.crop(2, 5)
    assert part.n_frames == 3
    assert part.frame_offset == 16.0  # 15 + 2 * 0.5
    assert part.encoder == "e" and part.source == "s" and part.waveform_rate == 14
    assert part.waveforms.shape == (3, 7)
    np.testing.assert_array_equal(part.local_patches, local[2:5])
    np.testing.assert_array_equal(part.global_embeddings, glob[2:5])
    assert np.shares_memory(part.local_patches, song.local_patches)
    assert part.crop(1, 3).frame_offset == 16.5
    for start, stop in ((3, 3), (-1, 2), (5, 11), (4, 2)):
        with pytest.raises(ValueError, match="outside the 10 frames"):
            song.crop(start, stop)


# ------------------------------------------------------------------ real PMEmo clip


def pmemo_labels(shared_data, music_id):
    with open(shared_data / "pmemo" / "dynamic_annotations.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["musicId"]) == music_id]
    times = np.array([float(r["frameTime"]) for r in rows])
    labels = np.array([[float(r["Arousal(mean)"]), float(r["Valence(mean)"])] for r in rows])
    return times, labels


@pytest.fixture
def pmemo_108(shared_data):
    path = shared_data / "pmemo" / "chorus" / "108.mp3"
    waveform, sr = load_audio(path)
    times, labels = pmemo_labels(shared_data, 108)
    return path, waveform, sr, times, labels


def test_pmemo_mp3_decodes(pmemo_108):
    path, waveform, sr, times, labels = pmemo_108
    info = sf.info(path)
    assert (info.samplerate, info.channels) == (44100, 2)
    assert sr == 44100 and waveform.ndim == 1 and waveform.dtype == np.float32
    # metadata.csv says 49.14 s and sf.info 49.15 s, but libsndfile decodes
    # 2162304 samples (49.03 s): sf.info().frames overestimates MP3 lengths.
    assert 49.0 < len(waveform) / sr < 49.2
    assert 0.05 < np.abs(waveform).max() < 2.0  # MP3 decoding may overshoot 1.0
    # PMEmo labels: 2 Hz from 15.5 s.
    assert len(labels) == 68 and labels.shape == (68, 2)
    np.testing.assert_allclose(times, 15.5 + FRAME_SECONDS * np.arange(len(times)))


def test_pmemo_labels_fit_whole_audio_frames(pmemo_108):
    # Whole 0.5 s frames from 15.5 s in the decoded 49.03 s: 67. The last
    # label (frameTime 49.0, frame [49.0, 49.5] s) has only 0.03 s of audio.
    path, waveform, sr, times, labels = pmemo_108
    features = AudioFeatures(frame_offset=15.5)
    [song] = features.transform([(waveform, sr)])
    assert song.n_frames == 67
    [song] = features.transform([path], n_frames=[67])
    assert song.n_frames == 67 and song.source == str(path)
    assert song.local_patches.shape == (67, 51, 128)
    assert np.all(np.isfinite(song.local_patches))
    assert np.all(np.isfinite(song.global_embeddings))


def test_pmemo_all_labels_fit_audio(pmemo_108):
    # The PMEmo loader's convention (pdmer_datasets.pmemo): frameTime t rates the
    # half second ENDING at t, so frame 0 covers [15.0, 15.5] s and every label
    # frame, the last one [48.5, 49.0] s included, lies within the 49.03 s of audio.
    from pdmer_datasets.pmemo import FRAME_OFFSET

    path, waveform, sr, times, labels = pmemo_108
    assert FRAME_OFFSET == times[0] - FRAME_SECONDS == 15.0
    [song] = AudioFeatures(frame_offset=FRAME_OFFSET).transform([(waveform, sr)],
                                                                n_frames=[len(labels)])
    assert song.n_frames == len(labels) == 68
    frame_ends = FRAME_OFFSET + FRAME_SECONDS * np.arange(1, len(labels) + 1)
    np.testing.assert_allclose(frame_ends, times)
    assert frame_ends[-1] <= len(waveform) / sr


def test_pmemo_label_times_end_with_the_audio(shared_data):
    # The evidence behind the PMEmo loader's frame_offset=15.0: in all four real
    # clips the last frameTime is within 0.04 s of the decoded end, so the labels
    # fit whole frames with frame_offset=15.0 but are one frame too many with 15.5.
    for music_id in (108, 372, 634, 683):
        waveform, sr = load_audio(shared_data / "pmemo" / "chorus" / f"{music_id}.mp3")
        times, labels = pmemo_labels(shared_data, music_id)
        duration = len(waveform) / sr
        assert times[0] == 15.5
        assert 0.0 <= duration - times[-1] < 0.04, music_id
        whole = {offset: int(np.floor((duration - offset) / FRAME_SECONDS + 1e-6))
                 for offset in (15.0, 15.5)}
        assert whole[15.5] == len(labels) - 1, music_id
        assert whole[15.0] == len(labels), music_id


def test_waveform_rate_keeps_each_frames_raw_audio():
    rng = np.random.default_rng(3)
    sr = 22050
    wave = rng.normal(scale=0.1, size=sr * 4).astype(np.float32)
    [feats] = AudioFeatures(frame_offset=1.0, waveform_rate=sr, n_mels=16).transform([(wave, sr)])
    assert feats.waveform_rate == sr
    assert feats.waveforms.shape == (feats.n_frames, sr // 2)
    # Frame i is audio [offset + 0.5 i, offset + 0.5 (i + 1)].
    np.testing.assert_array_equal(feats.waveforms[2], wave[sr + sr: sr + sr + sr // 2])
    cropped = feats.crop(1, 3)
    np.testing.assert_array_equal(cropped.waveforms, feats.waveforms[1:3])
    [resampled] = AudioFeatures(waveform_rate=8000, n_mels=16).transform([(wave, sr)])
    assert resampled.waveforms.shape == (resampled.n_frames, 4000)
    [none] = AudioFeatures(n_mels=16).transform([(wave, sr)])
    assert none.waveforms is None and none.n_waveform_samples == 0


@pytest.mark.parametrize("rate", [0, -5, 1.5, True])
def test_waveform_rate_is_validated(rate):
    with pytest.raises(ValueError, match="waveform_rate"):
        AudioFeatures(waveform_rate=rate).transform([(np.ones(8000, np.float32), 8000)])


def test_song_features_waveforms_validation():
    local, glob = np.zeros((3, 4, 5)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="one row per frame"):
        SongFeatures(local, glob, waveforms=np.zeros((2, 10)), waveform_rate=100)
    with pytest.raises(ValueError, match="waveform_rate"):
        SongFeatures(local, glob, waveforms=np.zeros((3, 10)))
