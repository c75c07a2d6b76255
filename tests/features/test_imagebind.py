"""ImageBind audio branch: official key layout, strict loading, input pipeline, clip grid."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from pdmer.features import AudioFeatures, ClipEncoder, ImageBindEncoder, get_global_encoder
from pdmer.features.fbank import kaldi_fbank
from pdmer.features.imagebind import (
    ImageBindAudio,
    extract_audio_weights,
    load_imagebind_audio,
    read_checkpoint,
)

TINY = dict(dim=16, depth=2, n_heads=2, out_dim=8)


def official_audio_layout(dim=768, depth=12, out_dim=1024, n_tokens=229):
    """The audio keys and shapes of the official imagebind_huge.pth, written out by hand."""
    layout = {
        "modality_preprocessors.audio.cls_token": (1, 1, dim),
        "modality_preprocessors.audio.rgbt_stem.proj.weight": (dim, 1, 16, 16),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (dim,),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": (dim,),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, n_tokens, dim),
        "modality_heads.audio.0.weight": (dim,),
        "modality_heads.audio.0.bias": (dim,),
        "modality_heads.audio.2.weight": (out_dim, dim),
        "modality_postprocessors.audio.1.log_logit_scale": (),
    }
    for i in range(depth):
        block = f"modality_trunks.audio.blocks.{i}."
        layout.update({
            block + "attn.in_proj_weight": (3 * dim, dim),
            block + "attn.in_proj_bias": (3 * dim,),
            block + "attn.bias_k": (1, 1, dim),
            block + "attn.bias_v": (1, 1, dim),
            block + "attn.out_proj.weight": (dim, dim),
            block + "attn.out_proj.bias": (dim,),
            block + "norm_1.weight": (dim,),
            block + "norm_1.bias": (dim,),
            block + "mlp.fc1.weight": (4 * dim, dim),
            block + "mlp.fc1.bias": (4 * dim,),
            block + "mlp.fc2.weight": (dim, 4 * dim),
            block + "mlp.fc2.bias": (dim,),
            block + "norm_2.weight": (dim,),
            block + "norm_2.bias": (dim,),
        })
    return layout


def write_official_checkpoint(path, seed=0, **config):
    """A random-weight checkpoint laid out like imagebind_huge.pth (all modalities).

    Returns the model whose weights it holds.
    """
    torch.manual_seed(seed)
    model = ImageBindAudio(**config).eval()
    state = dict(model.state_dict())
    # Other modalities, which loading must ignore; like the real file, mostly
    # not audio (4 MB, so a broken-off download has written whole chunks).
    state["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] = torch.randn(4, 3, 2, 4, 4)
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.randn(1024, 1024)
    state["modality_heads.text.proj.0.weight"] = torch.randn(4)
    state["modality_postprocessors.vision.1.log_logit_scale"] = torch.tensor(math.log(20.0))
    torch.save(state, path)
    return model


def test_full_size_layout_matches_the_official_checkpoint():
    with torch.device("meta"):
        model = ImageBindAudio()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_audio_layout()
    assert sum(math.prod(s) for s in got.values()) == pytest.approx(86.2e6, rel=0.01)


def test_tiny_config_keeps_the_key_layout():
    got = {k: tuple(v.shape) for k, v in ImageBindAudio(**TINY).state_dict().items()}
    assert got == official_audio_layout(dim=16, depth=2, out_dim=8)


def test_official_layout_loads_strictly_and_embeds(tmp_path):
    path = tmp_path / "imagebind_huge.pth"
    original = write_official_checkpoint(path, **TINY)
    model = load_imagebind_audio(path, **TINY)
    assert not model.training
    # Left requiring grad on purpose: autocast caches bf16 weights only for those.
    assert all(p.requires_grad for p in model.parameters())
    clips = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (5, 32000)).astype("f4"))
    with torch.no_grad():
        out = model.embed_waveforms(clips)
        ref = original.embed_waveforms(clips)
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.full((5,), 20.0))
    torch.testing.assert_close(out, ref)
    assert len(set(map(tuple, out.numpy().round(4)))) == 5  # distinct clips, distinct output


def test_strict_loading_rejects_missing_or_misshapen_keys(tmp_path):
    state = ImageBindAudio(**TINY).state_dict()
    del state["modality_trunks.audio.blocks.1.attn.bias_k"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="bias_k"):
        load_imagebind_audio(tmp_path / "partial.pth", **TINY)
    torch.save(ImageBindAudio(**TINY).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_imagebind_audio(tmp_path / "tiny.pth", dim=32, depth=2, n_heads=2, out_dim=8)


class Evil:
    """Not a tensor: weights_only loading must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"modality_trunks.audio.x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "evil.pth")


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "not a readable PyTorch checkpoint"),
    (None, "holds no ImageBind audio weights"),
])
def test_bad_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.pth"
    if content is None:
        torch.save({"modality_trunks.vision.w": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")


def test_extracted_audio_weights_are_a_small_safetensors_file(tmp_path):
    original = write_official_checkpoint(tmp_path / "full.pth", **TINY)
    state = extract_audio_weights(tmp_path / "full.pth", tmp_path / "audio.safetensors")
    assert all(".audio." in k for k in state)
    # Its identity for cache keys is stored in the header: no need to hash 345 MB.
    from pdmer.features.imagebind import weights_id
    from pdmer.features.cache import content_hash, state_dict_digest
    assert weights_id(tmp_path / "audio.safetensors") == state_dict_digest(state)
    assert weights_id(tmp_path / "full.pth") == content_hash(tmp_path / "full.pth")
    model = load_imagebind_audio(tmp_path / "audio.safetensors", **TINY)
    clips = torch.randn(2, 32000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(model.embed_waveforms(clips), original.embed_waveforms(clips))
    (tmp_path / "broken.safetensors").write_bytes(
        (tmp_path / "audio.safetensors").read_bytes()[:-100])
    with pytest.raises(ValueError, match="pdmer download imagebind"):
        read_checkpoint(tmp_path / "broken.safetensors")


def test_preprocess_is_imagebinds_pipeline():
    # ImageBind: clip -= mean; kaldi fbank; (mel, time); pad/cut to 204; (x + 4.268) / 9.138.
    model = ImageBindAudio(**TINY)
    rng = np.random.default_rng(1)
    clip = torch.from_numpy((0.1 * rng.normal(size=32000) + 0.3).astype("f4"))
    fbank = kaldi_fbank(clip - clip.mean(), sample_rate=16000, num_mel_bins=128,
                        frame_length=25, frame_shift=10, window_type="hanning").T
    assert fbank.shape == (128, 198)
    expected = (torch.nn.functional.pad(fbank, (0, 6)) + 4.268) / 9.138
    got = model.preprocess(clip[None])
    assert got.shape == (1, 1, 128, 204)
    torch.testing.assert_close(got[0, 0], expected)
    # Padded frames hold 0 before normalising; longer clips are cut to 204 frames.
    torch.testing.assert_close(got[0, 0, :, 200:], torch.full((128, 4), 4.268 / 9.138))
    assert model.preprocess(torch.randn(1, 40000)).shape == (1, 1, 128, 204)


# ------------------------------------------------------------- clip grid


class MeanModel(torch.nn.Module):
    """A clip model whose embedding reveals the clip: its first samples and mean."""

    def forward(self, clips):
        return torch.stack([clips[:, 0], clips[:, 1], clips.mean(1)], dim=1)


def test_clip_starts_follow_imagebinds_sampler():
    enc = ClipEncoder(MeanModel(), sample_rate=100)
    # Frame at 15 s: centre 15.25, window [0.25, 30.25]: clips at 0.25, 14.25, 28.25 s.
    np.testing.assert_array_equal(enc.clip_starts([15.0], 30.0), [[25, 1425, 2825]])
    np.testing.assert_array_equal(enc.clip_starts([0.0], 10.0), [[-475, -75, 325]])
    assert enc.clip_length(30.0) == 200 and enc.clip_length(1.0) == 100
    single = ClipEncoder(MeanModel(), sample_rate=100, clips_per_window=1)
    np.testing.assert_array_equal(single.clip_starts([15.0], 30.0), [[25]])


@pytest.mark.parametrize("window", [30.0, 10.0, 7.3, 1.5])
def test_shared_grid_equals_one_window_per_frame(window):
    rng = np.random.default_rng(0)
    sr = 1000
    wave = rng.normal(size=int(sr * 40.3)).astype(np.float32)
    starts = 3.0 + 0.5 * np.arange(70)
    shared = ClipEncoder(MeanModel(), sample_rate=sr, batch_size=7)
    direct = ClipEncoder(MeanModel(), sample_rate=sr, batch_size=7, shared_grid=False)
    got = shared.embed(wave, starts, window)
    np.testing.assert_allclose(got, direct.embed(wave, starts, window), atol=1e-6)
    # Check one frame by hand: mean over 3 clips of the zero-padded window.
    i = 69
    w0 = int(round((starts[i] + 0.25 - window / 2) * sr))
    padded = np.pad(wave, (sr * 40, sr * 40))
    # pytorchvideo's ConstantClipsPerVideoSampler: exact fractions, int() of the sample.
    step = Fraction(max(window - 2.0, 0)) / 2
    clip_len = int(min(2.0, window) * sr)
    clips = [padded[sr * 40 + w0 + int(j * step * sr):][:clip_len] for j in range(3)]
    np.testing.assert_allclose(got[i], np.mean([[c[0], c[1], c.mean()] for c in clips], 0),
                               atol=1e-5)
    assert shared.count_forwards(starts, window, len(wave)) <= 3 * len(starts)


def test_forward_counts_of_a_deam_clip_and_a_long_song():
    enc = ClipEncoder(MeanModel(), sample_rate=16000)
    per_frame = ClipEncoder(MeanModel(), sample_rate=16000, shared_grid=False)
    deam = 15.0 + 0.5 * np.arange(60)  # 45 s clip, frames from 15 s
    assert per_frame.count_forwards(deam, 30.0, 45 * 16000) == 180
    # Clips start at 0.25 + 0.5 k s, k = 0..115; those from 45 s on (k >= 90)
    # are silence, embedded once: 90 + 1.
    assert enc.count_forwards(deam, 30.0, 45 * 16000) == 91
    song = 0.5 * np.arange(1200)  # 10 minutes from 0 s
    assert per_frame.count_forwards(song, 30.0, 600 * 16000) == 3600
    # k = 0..1255 from -14.75 s; 26 silent clips at each end -> 1256 - 52 + 1.
    assert enc.count_forwards(song, 30.0, 600 * 16000) == 1205


def test_imagebind_encoder_in_audio_features(tmp_path):
    weights = tmp_path / "imagebind_huge.pth"
    write_official_checkpoint(weights, **TINY)
    enc = ImageBindEncoder(weights, config=TINY, batch_size=4)
    assert enc.dim == 8 and enc.sample_rate == 16000 and enc.name == "imagebind"
    rng = np.random.default_rng(0)
    song = (rng.normal(0, 0.1, 44100 * 6).astype(np.float32), 44100)
    feats = AudioFeatures(global_encoder=enc, global_window=4.0)
    [out] = feats.transform([song])
    assert out.encoder == "imagebind" and out.global_embeddings.shape == (12, 8)
    norms = np.linalg.norm(out.global_embeddings, axis=1)
    assert np.all(norms <= 20 + 1e-3) and np.all(norms > 5)
    # Cloning (GridSearchCV) and pickling (joblib workers) keep it working.
    from sklearn.base import clone
    [again] = clone(feats).set_params(n_jobs=2).transform([song])
    np.testing.assert_allclose(again.global_embeddings, out.global_embeddings, atol=1e-5)


def test_bf16_precision_is_close_and_keyed_apart(tmp_path, monkeypatch):
    from pdmer.nn import precision

    weights = tmp_path / "imagebind_huge.pth"
    write_official_checkpoint(weights, **TINY)
    # bf16 where the CPU computes it natively (emulated here if it does not).
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    fp32 = ImageBindEncoder(weights, config=TINY, precision="fp32")
    bf16 = ImageBindEncoder(weights, config=TINY, precision="bf16")
    clips = np.random.default_rng(0).normal(0, 0.1, (4, 32000)).astype(np.float32)
    a, b = fp32.embed_clips(clips), bf16.embed_clips(clips)
    assert not np.array_equal(a, b)
    cosine = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99
    assert fp32.cache_token != bf16.cache_token
    # "auto" is fp32 on the CPU: the same features, the same cache entries.
    assert fp32.cache_token == ImageBindEncoder(weights, config=TINY, precision="auto").cache_token
    with pytest.raises(ValueError, match="precision"):
        ImageBindEncoder(weights, config=TINY, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        bf16.network().embed_waveforms(torch.zeros(1, 32000), precision=True)


def test_bf16_without_native_support_runs_float32_with_a_warning(tmp_path, monkeypatch):
    # The estimators' fallback (pdmer.nn.precision): never emulated bf16.
    from pdmer.nn import precision

    weights = tmp_path / "imagebind_huge.pth"
    write_official_checkpoint(weights, **TINY)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    fp32 = ImageBindEncoder(weights, config=TINY, precision="fp32")
    with pytest.warns(UserWarning, match="precision='bf16' runs float32 on cpu"):
        bf16 = ImageBindEncoder(weights, config=TINY, precision="bf16")
    clips = np.random.default_rng(0).normal(0, 0.1, (2, 32000)).astype(np.float32)
    np.testing.assert_array_equal(bf16.embed_clips(clips), fp32.embed_clips(clips))
    assert bf16.cache_token == fp32.cache_token  # the same features, the same cache entries


def test_missing_imagebind_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pdmer download imagebind"):
        get_global_encoder("imagebind")
    assert get_global_encoder("auto").name == "logmel-stats"
    weights = tmp_path / "weights" / "imagebind_huge_audio.safetensors"
    weights.parent.mkdir()
    write_official_checkpoint(tmp_path / "full.pth", **TINY)
    extract_audio_weights(tmp_path / "full.pth", weights)
    # Resolution only: the huge model loads lazily, at the first embedding.
    assert get_global_encoder("auto").name == "imagebind"


# ------------------------------------------------- pdmer download imagebind


@pytest.fixture
def tiny_architecture(monkeypatch):
    """Make the installer's strict check expect the tiny config (the real one is 345 MB)."""
    import functools

    from pdmer.features import imagebind

    monkeypatch.setattr(imagebind, "ImageBindAudio", functools.partial(ImageBindAudio, **TINY))


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDMER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_imagebind_from_a_server_resumes_and_installs(
        tmp_path, user_cache, tiny_architecture):
    from click.testing import CliRunner
    from http_fixture import serve

    from pdmer.cli import main
    from pdmer.features import imagebind_weights_path

    root = tmp_path / "www"
    root.mkdir()
    original = write_official_checkpoint(root / "imagebind_huge.pth", **TINY)
    size = (root / "imagebind_huge.pth").stat().st_size
    with serve(root) as server:
        server.drop_after["imagebind_huge.pth"] = size // 3  # the first try breaks off
        url = f"{server.url}/imagebind_huge.pth"
        first = CliRunner().invoke(main, ["download", "imagebind", "--url", url, "-q"])
        assert first.exit_code == 1
        assert "CC BY-NC-SA 4.0" in first.output  # the licence comes before the download
        assert "resume" in first.output
        part = user_cache / "downloads" / "imagebind_huge.pth.part"
        assert 0 < part.stat().st_size <= size // 3
        result = CliRunner().invoke(main, ["download", "imagebind", "--url", url, "-q"])
        assert result.exit_code == 0, result.output
        assert server.requests[-1][1].startswith("bytes=")  # resumed, not restarted
    weights = imagebind_weights_path()
    assert weights.is_file() and str(weights) in result.output
    assert not (user_cache / "downloads" / "imagebind_huge.pth").exists()  # big file removed
    clips = torch.randn(2, 32000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(load_imagebind_audio(weights, **TINY).embed_waveforms(clips),
                                   original.embed_waveforms(clips))
    enc = get_global_encoder("auto")
    assert enc.name == "imagebind"
    # A second run finds the weights and downloads nothing.
    again = CliRunner().invoke(main, ["download", "imagebind", "--url", "http://127.0.0.1:9/x"])
    assert again.exit_code == 0, again.output
    assert "already installed" in again.output


def test_download_imagebind_from_a_local_checkpoint(tmp_path, user_cache, tiny_architecture):
    from click.testing import CliRunner

    from pdmer.cli import main

    write_official_checkpoint(tmp_path / "imagebind_huge.pth", **TINY)
    out = tmp_path / "audio.safetensors"
    result = CliRunner().invoke(main, ["download", "imagebind", "--checkpoint",
                                       str(tmp_path / "imagebind_huge.pth"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "imagebind_huge.pth").is_file()  # local copy kept
    assert not (user_cache / "downloads").exists()


def test_download_imagebind_rejects_a_wrong_checkpoint(tmp_path, user_cache):
    from click.testing import CliRunner

    from pdmer.cli import main

    # Right keys, wrong sizes: the real (huge) architecture refuses it.
    torch.save(ImageBindAudio(**TINY).state_dict(), tmp_path / "small.pth")
    result = CliRunner().invoke(main, ["download", "imagebind", "--checkpoint",
                                       str(tmp_path / "small.pth")])
    assert result.exit_code == 1
    assert "is not ImageBind-huge" in result.output
    assert not (user_cache / "weights" / "imagebind_huge_audio.safetensors").exists()


# ------------------------------------------- real-world input through ImageBind


@pytest.fixture(scope="module")
def tiny_imagebind(tmp_path_factory):
    weights = tmp_path_factory.mktemp("ib") / "imagebind_huge.pth"
    write_official_checkpoint(weights, seed=3, **TINY)
    return ImageBindEncoder(weights, config=TINY, batch_size=32)


def tones(sr, seconds):
    t = np.arange(int(round(seconds * sr))) / sr
    env = 0.2 + 0.15 * np.sin(2 * np.pi * 0.3 * t)
    x = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((1.0, 220), (0.5, 660), (0.3, 1500)))
    return (env * x / 2).astype(np.float32)


@pytest.fixture(scope="module")
def reference_embeddings(tiny_imagebind):
    [song] = AudioFeatures(global_encoder=tiny_imagebind, global_window=6.0).transform(
        [(tones(16000, 5.0), 16000)])
    return song.global_embeddings


@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_imagebind_sees_the_same_audio_at_any_sample_rate(tmp_path, tiny_imagebind,
                                                          reference_embeddings, sr):
    import soundfile as sf

    path = tmp_path / f"song_{sr}.wav"
    sf.write(path, tones(sr, 5.0), sr, subtype="FLOAT")
    [song] = AudioFeatures(global_encoder=tiny_imagebind, global_window=6.0).transform([path])
    assert song.global_embeddings.shape == reference_embeddings.shape == (10, 8)
    cosine = np.sum(song.global_embeddings * reference_embeddings, 1) / (
        np.linalg.norm(song.global_embeddings, axis=1)
        * np.linalg.norm(reference_embeddings, axis=1))
    assert cosine.min() > 0.999


def test_imagebind_stereo_is_channel_0_or_the_mono_mix(tiny_imagebind, reference_embeddings):
    x = tones(16000, 5.0)
    d = 0.05 * np.sin(2 * np.pi * 1000 * np.arange(len(x)) / 16000).astype(np.float32)
    stereo = (np.stack([x + d, x - d], axis=1), 16000)
    # channels="mean": the mix, x.
    mix = ImageBindEncoder(tiny_imagebind.weights, config=TINY, channels="mean")
    [song] = AudioFeatures(global_encoder=mix, global_window=6.0).transform([stereo])
    np.testing.assert_allclose(song.global_embeddings, reference_embeddings, atol=1e-4)
    # The default, as ImageBind's own loader: channel 0, x + d.
    assert tiny_imagebind.channels == "first"
    front = AudioFeatures(global_encoder=tiny_imagebind, global_window=6.0)
    [first], [left] = front.transform([stereo]), front.transform([(x + d, 16000)])
    np.testing.assert_allclose(first.global_embeddings, left.global_embeddings, atol=1e-6)
    assert np.abs(first.global_embeddings - song.global_embeddings).max() > 1e-2
    # The local patches are the mix either way.
    np.testing.assert_allclose(first.local_patches, song.local_patches, atol=1e-6)
    assert mix.cache_token != tiny_imagebind.cache_token


def test_imagebind_short_song_is_padded(tiny_imagebind):
    # 1.2 s of audio: two frames; every clip reaches past the song's end.
    [song] = AudioFeatures(global_encoder=tiny_imagebind).transform(
        [(tones(22050, 1.2), 22050)])
    assert song.global_embeddings.shape == (2, 8)
    assert np.all(np.isfinite(song.global_embeddings))


def test_imagebind_on_a_real_pmemo_mp3(shared_data, tiny_imagebind, tmp_path):
    path = shared_data / "pmemo" / "chorus" / "108.mp3"
    feats = AudioFeatures(frame_offset=15.0, global_encoder=tiny_imagebind,
                          cache_dir=tmp_path / "cache")
    [song] = feats.transform([path])
    assert song.n_frames == 68 and song.encoder == "imagebind"
    norms = np.linalg.norm(song.global_embeddings, axis=1)
    assert np.all(norms <= 20 + 1e-3) and np.all(norms > 1)
    [cached] = feats.transform([path])
    np.testing.assert_array_equal(cached.global_embeddings, song.global_embeddings)


# ------------------------------------------- against Meta's own ImageBind code

OFFICIAL = Path(__file__).resolve().parents[1] / "data" / "imagebind_reference.npz"


def official_window():
    # The same formula as tests/data/make_imagebind_reference.py.
    t = np.arange(7 * 16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
         + 0.1 * np.sin(2 * np.pi * 97 * t) * np.sin(2 * np.pi * 0.7 * t) + 0.05)
    return x.astype(np.float32)


def test_embeddings_equal_meta_imagebind_code():
    """Weights and embeddings made with ImageBind's own model and input code."""
    with np.load(OFFICIAL, allow_pickle=False) as data:
        ref = {k: data[k] for k in data.files}
    state = {k[len("state/"):]: torch.from_numpy(v) for k, v in ref.items()
             if k.startswith("state/")}
    model = ImageBindAudio(dim=16, depth=2, n_heads=2, out_dim=8).eval()
    model.load_state_dict(state, strict=True)
    wave = official_window()
    # One frame whose 7 s window is exactly the waveform: centre 3.5 s.
    enc = ClipEncoder(model.embed_waveforms, sample_rate=16000)
    starts = enc.clip_starts([3.25], 7.0)[0]
    np.testing.assert_array_equal(starts, ref["clip_starts_samples"])
    clips = torch.from_numpy(np.stack([wave[s:s + 32000] for s in starts]))
    images = model.preprocess(clips)
    np.testing.assert_allclose(images[:, 0, ::16, ::17].numpy(), ref["clip_images_subsampled"],
                               atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(model(images).numpy(), ref["clip_embeddings"], atol=1e-4)
    window = enc.embed(wave, [3.25], 7.0)
    np.testing.assert_allclose(window, ref["window_embedding"], atol=1e-4)
    assert np.linalg.norm(ref["clip_embeddings"], axis=1) == pytest.approx(20.0, abs=1e-3)
