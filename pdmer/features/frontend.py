"""The scikit-learn transformer that turns audio items into SongFeatures."""

from __future__ import annotations

import os
import sys
import warnings
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from pdmer.features.audio import (
    AudioError,
    Signal,
    as_waveform,
    check_audio_path,
    read_audio,
    resample,
    waveform_signals,
)
from pdmer.features.base import encoder_input
from pdmer.features.cache import FeatureCache, content_hash
from pdmer.features.container import SongFeatures
from pdmer.features.encoders import get_global_encoder
from pdmer.features.logmel import frame_segments, log_mel_frames
from pdmer.labels import (
    DEFAULT_FRAME_OFFSET,
    FRAME_OFFSET_CONSTRAINT,
    FRAME_SECONDS,
    frame_times,
    whole_frames,
)
from pdmer.sklearn_compat import StrictInterval

# Peak level below which a song counts as silent (about -100 dBFS).
_SILENCE = 1e-5
# Songs for an in-process clip model are embedded together until they hold
# this many batches of clips, so that batches stay full across songs.
_GROUP_BATCHES = 8


class AudioFeatures(TransformerMixin, BaseEstimator):
    """Audio items -> :class:`~pdmer.features.SongFeatures` on the 2 Hz label grid.

    Label frame ``i`` covers audio ``[frame_offset + 0.5 i, frame_offset +
    0.5 (i + 1)]`` seconds. Each frame gets a log-mel patch (the local branch's
    input) and a global embedding of a window centred on it.

    Parameters
    ----------
    sample_rate : int, default=44100
        Rate the local log-mel patches are computed at (audio is resampled).
    n_mels : int, default=128
    window_seconds : float, default=0.06
        STFT window of the local patches (60 ms, the reference setting).
    hop_seconds : float, default=0.01
    frame_offset : float, default=0.0
        Audio time of label frame 0 in seconds (15.0 for DEAM).
    global_encoder : str, GlobalEncoder, nn.Module or callable, default="auto"
        ``"auto"`` is ``"imagebind"`` when its weights are installed
        (``pdmer download imagebind``) and ``"logmel-stats"`` (no weights)
        otherwise; every :class:`SongFeatures` records the encoder's name in
        ``encoder``. See :func:`~pdmer.features.available_encoders`. Any object
        following :class:`~pdmer.features.GlobalEncoder`, or a clip model
        (:class:`~pdmer.features.ClipEncoder`), plugs in the same way.
    global_window : float, default=30.0
        Seconds of audio, centred on each frame, the global encoder sees; the
        same in training and prediction, zero-padded past the song's edges
        (logmel-stats clips it to the song instead).
    waveform_rate : int, optional
        Also keep each frame's raw audio at this sample rate
        (``SongFeatures.waveforms``), for models that learn from the
        waveform (DNN, MCRNN). None keeps no raw audio.
    cache_dir : str or os.PathLike, optional
        Keep extracted features in this folder, keyed by the audio's content
        and every setting above that changes the result, and reuse them
        (``pdmer.features.default_feature_dir()`` is the usual place). None
        caches nothing. Encoders without a ``cache_token`` are not cached. A
        folder that cannot be written is still read; the rest is computed
        without caching, with one warning.
    n_jobs : int, optional
        Songs decoded and analysed in parallel with joblib. The active joblib
        backend is used, so a cluster can do the work::

            from joblib import parallel_config
            with parallel_config(backend="dask"):   # after dask.distributed.Client(...)
                feats = AudioFeatures(n_jobs=-1).transform(paths)

        (``backend="ray"`` after ``ray.util.joblib.register_ray()``). Heavy
        models (ImageBind) run in the calling process in batches, on ``device``,
        while the workers prepare the next songs.
    device : str, default="cpu"
        Torch device for the spectrograms and the global encoder.
    progress : bool, default=False
        Show a progress bar (stderr) over the songs.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.features import AudioFeatures
    >>> song = (np.random.default_rng(0).normal(size=22050 * 3), 22050)
    >>> [features] = AudioFeatures(global_encoder="logmel-stats").transform([song])
    >>> features.n_frames, features.local_patches.shape[1:], features.encoder
    (6, (51, 128), 'logmel-stats')
    """

    _parameter_constraints = {
        "sample_rate": [StrictInterval(Integral, 1, None, closed="left")],
        "n_mels": [StrictInterval(Integral, 1, None, closed="left")],
        "window_seconds": [StrictInterval(Real, 0, None, closed="neither")],
        "hop_seconds": [StrictInterval(Real, 0, None, closed="neither")],
        "frame_offset": [FRAME_OFFSET_CONSTRAINT],
        "global_encoder": "no_validation",  # get_global_encoder says what is wrong
        "global_window": [StrictInterval(Real, 0, None, closed="neither")],
        "waveform_rate": [StrictInterval(Integral, 1, None, closed="left"), None],
        "cache_dir": [str, os.PathLike, None],
        "n_jobs": [StrictInterval(Integral, None, -1, closed="right"),
                   StrictInterval(Integral, 1, None, closed="left"), None],
        "device": "no_validation",  # torch says what is wrong
        "progress": ["boolean"],
    }

    def __init__(self, sample_rate=44100, n_mels=128, window_seconds=0.06,
                 hop_seconds=0.01, frame_offset=DEFAULT_FRAME_OFFSET, global_encoder="auto",
                 global_window=30.0, waveform_rate=None, cache_dir=None, n_jobs=None,
                 device="cpu", progress=False):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.frame_offset = frame_offset
        self.global_encoder = global_encoder
        self.global_window = global_window
        self.waveform_rate = waveform_rate
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.device = device
        self.progress = progress

    def fit(self, X=None, y=None):
        """Nothing to learn; checks the parameters and resolves the global encoder."""
        self._validate_params()
        get_global_encoder(self.global_encoder, device=self.device)
        return self

    def encoder(self):
        """The resolved global encoder (e.g. what ``"auto"`` stands for now)."""
        return get_global_encoder(self.global_encoder, device=self.device)

    def _settings(self, token, spec) -> dict:
        """Everything that changes extracted features, for cache keys."""
        return {"sample_rate": int(self.sample_rate), "n_mels": int(self.n_mels),
                "window_seconds": float(self.window_seconds),
                "hop_seconds": float(self.hop_seconds),
                "frame_offset": float(self.frame_offset),
                "global_window": float(self.global_window),
                "waveform_rate": None if self.waveform_rate is None else int(self.waveform_rate),
                "encoder": token, "encoder_input": list(spec)}

    def transform(self, X, n_frames=None):
        """Extract features of every item of ``X``.

        Parameters
        ----------
        X : sequence
            Paths of audio files (regular files; a file cut short of what its
            header announces is refused), ``(waveform, sample_rate)`` tuples
            in soundfile's layout (``(n_samples,)`` or ``(n_samples,
            n_channels)``, floats in [-1, 1] or integer PCM, scaled as
            soundfile scales it), or SongFeatures (passed through unchanged).
        n_frames : sequence of int, optional
            Frames to extract per item (the length of its labels). By default
            every whole 0.5 s frame after ``frame_offset``.

        Returns
        -------
        list of SongFeatures
        """
        if n_frames is None:
            n_frames = [None] * len(X)
        if len(n_frames) != len(X):
            raise ValueError(f"n_frames has {len(n_frames)} entries for {len(X)} items.")
        n_frames = [_frame_count(n, i) for i, n in enumerate(n_frames)]
        self._validate_params()
        encoder = get_global_encoder(self.global_encoder, device=self.device)
        spec = encoder_input(encoder)
        cache = None
        if self.cache_dir is not None:
            token = getattr(encoder, "cache_token", None)
            if token is None:
                warnings.warn(f"global encoder {encoder.name!r} has no cache_token, so its "
                              "features are not cached (see GlobalEncoder.cache_token).",
                              UserWarning, stacklevel=2)
            else:
                cache = FeatureCache(self.cache_dir)
                settings = self._settings(token, spec)

        results = [None] * len(X)
        keys = {}
        todo = []
        for i, item in enumerate(X):
            if isinstance(item, SongFeatures):
                results[i] = _crop(item, n_frames[i])
                continue
            item = _normalise_item(item)
            if cache is not None:
                keys[i] = cache.key(content_hash(item), settings)
                hit = cache.get(keys[i], _source(item))
                if hit is not None:
                    results[i] = _crop(hit, n_frames[i])
                    continue
            todo.append((i, item))

        in_process = bool(getattr(encoder, "in_process", False))
        worker_encoder = None if in_process else encoder
        # A cached entry holds every frame of the song; crop afterwards.
        jobs = (delayed(self._prepare)(item, None if cache else n_frames[i], worker_encoder,
                                       spec) for i, item in todo)
        prepared = Parallel(n_jobs=self.n_jobs, return_as="generator")(jobs)
        bar = tqdm(total=len(todo), desc="Extracting features", unit="song",
                   disable=not self.progress or not todo, file=sys.stderr)

        def finish(group):
            globs = self._embed_group(encoder, [part for _, part in group])
            for (i, part), glob in zip(group, globs, strict=True):
                features = SongFeatures(
                    part["local"], glob, frame_offset=float(self.frame_offset),
                    encoder=encoder.name, source=part["source"], waveforms=part["waves"],
                    waveform_rate=self.waveform_rate)
                if cache is not None:
                    cache.put(keys[i], features)
                results[i] = _crop(features, n_frames[i])
                bar.update()

        # In-process clip models embed several songs per call (full batches on a GPU).
        group_clips = _GROUP_BATCHES * int(getattr(encoder, "batch_size", 1))
        group, clips = [], 0
        with bar:
            for (i, _), part in zip(todo, prepared, strict=True):
                group.append((i, part))
                clips += (encoder.count_forwards(part["starts"], self.global_window,
                                                 len(part["encoder_wave"]))
                          if "encoder_wave" in part and hasattr(encoder, "count_forwards")
                          else group_clips)
                if clips >= group_clips:
                    finish(group)
                    group, clips = [], 0
            if group:
                finish(group)
        return results

    def _prepare(self, item, n_frames, encoder, spec):
        """Decode, check and analyse one song (runs in a joblib worker).

        With ``encoder`` None the global embeddings are left to the calling
        process, which gets the waveform ``spec`` asks for.
        """
        wanted = {"mix": Signal("mean"), "encoder": spec}
        if isinstance(item, tuple):
            signals, rate = waveform_signals(*item, wanted)
        else:
            signals, rate = read_audio(item, wanted)
        source = _source(item)
        mix = signals["mix"]
        duration = len(mix) / rate
        available = whole_frames(duration, self.frame_offset)
        if available < 1:
            raise AudioError(
                f"{source}: the audio lasts {duration:.2f} s, too short for one "
                f"0.5 s frame after frame_offset={self.frame_offset} s."
            )
        if max(mix.max(), -mix.min()) < _SILENCE:  # np.abs would copy the song
            raise AudioError(f"{source}: the audio is silent (all samples ~0).")
        if n_frames is None:
            n_frames = available
        elif n_frames > available:
            raise ValueError(
                f"{source}: the labels have {n_frames} frames ({n_frames * FRAME_SECONDS:g} s "
                f"from {self.frame_offset:g} s) but the audio lasts {duration:.2f} s, "
                f"enough for {available} frames. Check that labels and audio belong "
                "together and that frame_offset is right."
            )
        # Each resampled copy is dropped once used: memory stays near the
        # decoded mono mix, the encoder's signal and the outputs.
        starts = frame_times(n_frames, self.frame_offset)
        part = {"source": source, "starts": starts}
        enc_wave = signals.pop("encoder")
        del signals
        if encoder is None:
            part["encoder_wave"] = enc_wave
        else:
            part["global"] = self._embed(encoder, enc_wave, starts, source)
        del enc_wave
        part["local"] = log_mel_frames(resample(mix, rate, self.sample_rate), self.sample_rate,
                                       self.frame_offset, n_frames, self.n_mels,
                                       self.window_seconds, self.hop_seconds,
                                       device=self.device)
        part["waves"] = None
        if self.waveform_rate is not None:
            part["waves"] = frame_segments(resample(mix, rate, self.waveform_rate),
                                           self.waveform_rate, self.frame_offset, n_frames)
        return part

    def _embed(self, encoder, enc_wave, starts, source):
        glob = encoder.embed(enc_wave, starts, self.global_window)
        return _check_embeddings(encoder, glob, len(starts), source)

    def _embed_group(self, encoder, parts):
        """Global embeddings of prepared songs, all at once where the encoder can."""
        todo = [p for p in parts if "global" not in p]
        if todo and hasattr(encoder, "embed_songs"):
            globs = encoder.embed_songs([(p["encoder_wave"], p["starts"]) for p in todo],
                                        self.global_window)
        else:
            globs = [encoder.embed(p["encoder_wave"], p["starts"], self.global_window)
                     for p in todo]
        for part, glob in zip(todo, globs, strict=True):
            part["global"] = _check_embeddings(encoder, glob, len(part["starts"]),
                                               part["source"])
            del part["encoder_wave"]
        return [p["global"] for p in parts]


def _check_embeddings(encoder, glob, n_frames, source) -> np.ndarray:
    glob = np.asarray(glob, np.float32)
    if glob.shape != (n_frames, encoder.dim):
        raise ValueError(
            f"global encoder {encoder.name!r} returned shape {glob.shape} for "
            f"{source}; expected ({n_frames}, {encoder.dim})."
        )
    return glob


def _normalise_item(item):
    """A regular file's path, or a ``(waveform, rate)`` tuple in soundfile's layout.

    Anything else is refused, before any reading (a FIFO would block).
    """
    if isinstance(item, (str, os.PathLike)):
        check_audio_path(item)
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return (as_waveform(item[0]), item[1])
    raise TypeError(
        "Each item of X must be an audio path, a (waveform, sample_rate) "
        f"tuple or SongFeatures; got {type(item).__name__}."
    )


def _source(item) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else "<array>"


def _crop(features: SongFeatures, n_frames) -> SongFeatures:
    if n_frames is None:
        return features
    if n_frames > features.n_frames:
        raise ValueError(
            f"{features.source}: the labels have {n_frames} frames but the "
            f"features only {features.n_frames} (the audio's whole frames after "
            f"frame_offset). Check that labels and audio belong together and that "
            "frame_offset is right."
        )
    return features if n_frames == features.n_frames else features.crop(0, n_frames)


def _frame_count(n, index):
    """``n_frames[index]`` as a positive int (None stays None)."""
    if n is None:
        return None
    try:
        count = int(n)
        whole = count == n
    except (TypeError, ValueError):
        whole = False
    if not whole or count < 1:
        raise ValueError(f"n_frames[{index}] must be a positive whole number of frames; "
                         f"got {n!r}.")
    return count
