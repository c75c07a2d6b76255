"""Extraction at scale: a catalogue on a Dask cluster, clip batches across songs, the GPU path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from joblib import parallel_config

from pdmer.features import AudioFeatures, ClipEncoder, ImageBindEncoder
from test_imagebind import TINY, write_official_checkpoint

SR = 22050
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def write_catalogue(folder, n=4):
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        path = folder / f"song{i}.wav"
        sf.write(path, (0.1 * rng.normal(size=(int(SR * (3 + i)), 2))).astype(np.float32), SR)
        paths.append(path)
    return paths


def cosine(a, b):
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("ib") / "imagebind_huge.pth"
    write_official_checkpoint(path, seed=2, **TINY)
    return path


# --------------------------------------------------------------------- Dask


def _on_dask(paths, processes, **params):
    distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream, parallel_config(backend="dask"):
            feats = AudioFeatures(n_jobs=-1, **params).transform(paths)
    return feats, {task["worker"] for task in stream.data}


def _assert_same(got, expected):
    assert [f.source for f in got] == [f.source for f in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.local_patches, b.local_patches)
        np.testing.assert_allclose(a.global_embeddings, b.global_embeddings, atol=1e-6)


def test_catalogue_on_a_dask_cluster(tmp_path, tiny_weights):
    paths = write_catalogue(tmp_path)
    encoder = ImageBindEncoder(tiny_weights, config=TINY, batch_size=4)
    # Workers decode and compute the patches; ImageBind runs here, in batches.
    feats, workers = _on_dask(paths, processes=False, n_mels=16, global_encoder=encoder,
                              global_window=4.0)
    assert len(workers) >= 1 and all(w.startswith("inproc://") for w in workers)
    _assert_same(feats, AudioFeatures(n_mels=16, global_encoder=encoder,
                                      global_window=4.0).transform(paths))


@pytest.mark.slow
def test_catalogue_on_dask_worker_processes(tmp_path):
    # Real worker processes: the front end and its encoder travel by pickle.
    paths = write_catalogue(tmp_path, n=3)
    feats, workers = _on_dask(paths, processes=True, n_mels=16, global_encoder="logmel-stats")
    assert workers and all(w.startswith("tcp://") for w in workers)
    _assert_same(feats, AudioFeatures(n_mels=16, global_encoder="logmel-stats").transform(paths))


# ------------------------------------------------------- batches across songs


class Recorder(torch.nn.Module):
    """A clip model that remembers its batch sizes; embeds a clip by its first samples."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, clips):
        self.batches.append(len(clips))
        return torch.stack([clips[:, 0], clips[:, 100], clips.mean(1)], dim=1)


def test_clips_of_several_songs_share_batches():
    rng = np.random.default_rng(0)
    songs = [(rng.normal(size=int(1000 * s)).astype(np.float32), 0.5 * np.arange(n))
             for s, n in ((3.3, 6), (5.0, 10), (2.2, 4))]
    model = Recorder()
    enc = ClipEncoder(model, sample_rate=1000, batch_size=8, dim=3)
    together = enc.embed_songs(songs, 3.0)
    unique_clips = sum(model.batches)
    assert model.batches == [8] * (unique_clips // 8) + ([unique_clips % 8] if unique_clips % 8
                                                         else [])
    # One silent clip for all songs, not one per song.
    per_song = sum(enc.count_forwards(starts, 3.0, len(wave)) for wave, starts in songs)
    assert unique_clips <= per_song
    for (wave, starts), got in zip(songs, together):
        np.testing.assert_allclose(got, enc.embed(wave, starts, 3.0), atol=1e-6)


def test_audio_features_batches_an_in_process_model_across_songs():
    rng = np.random.default_rng(1)
    songs = [(rng.normal(scale=0.1, size=int(16000 * s)).astype(np.float32), 16000)
             for s in (2.5, 3.0, 2.0, 3.5)]
    model = Recorder()
    enc = ClipEncoder(model, batch_size=16, dim=3)
    feats = AudioFeatures(n_mels=16, global_encoder=enc, global_window=3.0).transform(songs)
    # All four songs' clips (fewer than 8 batches) go in full batches of 16.
    assert model.batches[:-1] == [16] * (len(model.batches) - 1)
    alone = [AudioFeatures(n_mels=16, global_encoder=enc, global_window=3.0).transform([s])[0]
             for s in songs]
    for a, b in zip(feats, alone):
        np.testing.assert_allclose(a.global_embeddings, b.global_embeddings, atol=1e-6)


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("encoder", ["logmel-stats", "imagebind"])
def test_extraction_holds_the_mono_signals_not_the_stereo_file(tmp_path, tiny_weights, encoder):
    import tracemalloc

    sr = 44100
    stereo = (0.1 * np.random.default_rng(0).normal(size=(60 * sr, 2))).astype(np.float32)
    path = tmp_path / "minute.wav"
    sf.write(path, stereo, sr, subtype="PCM_16")
    if encoder == "imagebind":  # channel 0, resampled while decoding
        encoder = ImageBindEncoder(tiny_weights, config=TINY)
    front = AudioFeatures(n_mels=32, global_encoder=encoder)
    front.transform([(stereo[:3 * sr], sr)])  # load filters and weights first
    tracemalloc.start()  # numpy's allocations (torch's are not traced)
    try:
        [song] = front.transform([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # What must exist at once: the mono mix at 44.1 kHz, the encoder's 16 kHz
    # signal and the patches. Decoding the stereo file whole and mixing it
    # afterwards, as before, took 2.4-3.5 times that.
    needed = stereo.nbytes / 2 + 60 * 16000 * 4 + song.local_patches.nbytes
    assert peak < 1.5 * needed, (peak / 2**20, needed / 2**20)


# ------------------------------------------------------------------- CUDA

# Tolerances (tiny random-weight ImageBind, embeddings of norm 20): fp32 on
# CUDA may use TF32 convolutions, so it matches the CPU to cosine 0.999;
# bf16 autocast keeps 8 bits of mantissa, cosine 0.99 (as on the CPU).


@CUDA
def test_imagebind_bf16_against_fp32_on_cuda(tiny_weights):
    clips = np.random.default_rng(0).normal(0, 0.1, (12, 32000)).astype(np.float32)
    cpu = ImageBindEncoder(tiny_weights, config=TINY, precision="fp32").embed_clips(clips)
    fp32 = ImageBindEncoder(tiny_weights, config=TINY, device="cuda", precision="fp32")
    bf16 = ImageBindEncoder(tiny_weights, config=TINY, device="cuda")  # auto: bf16 on CUDA
    assert bf16.batch_size == 128 and "bf16" in bf16.cache_token
    a, b = fp32.embed_clips(clips), bf16.embed_clips(clips)
    assert cosine(a, cpu).min() > 0.999
    assert cosine(b, a).min() > 0.99
    assert np.abs(np.linalg.norm(b, axis=1) - 20).max() < 0.2


@CUDA
def test_imagebind_extraction_in_gpu_batches(tmp_path, tiny_weights):
    paths = write_catalogue(tmp_path)
    params = dict(n_mels=16, global_window=4.0)
    cpu = AudioFeatures(global_encoder=ImageBindEncoder(tiny_weights, config=TINY,
                                                        precision="fp32"), **params)
    gpu = AudioFeatures(global_encoder=ImageBindEncoder(tiny_weights, config=TINY,
                                                        device="cuda", precision="bf16"),
                        device="cuda", **params)
    for a, b in zip(cpu.transform(paths), gpu.transform(paths)):
        assert cosine(a.global_embeddings, b.global_embeddings).min() > 0.99
        # Spectrograms on the GPU: float32 FFTs, equal to float tolerance.
        np.testing.assert_allclose(a.local_patches, b.local_patches, atol=1e-3)
