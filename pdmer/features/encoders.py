"""Global-context encoders: one embedding per label frame from a long window.

An encoder sees the whole song once and returns, for every label frame, an
embedding of the audio in a window centred on that frame. Three kinds plug
into :class:`~pdmer.features.AudioFeatures` the same way:

- a registered name (:func:`available_encoders`): ``"logmel-stats"``,
  ``"imagebind"``, or ``"auto"`` (ImageBind when its weights are installed,
  else logmel-stats);
- any object with the attributes and method of :class:`GlobalEncoder`;
- a clip model: an ``nn.Module`` or callable mapping a batch of mono clips
  ``(batch, n_samples)`` (float32 torch tensor, 16 kHz, 2 s) to embeddings
  ``(batch, dim)``; :class:`ClipEncoder` averages it over evenly spaced clips
  of each window, as ImageBind does.
"""

from __future__ import annotations

import numpy as np
import torch

from pdmer.features.logmel import log_mel_frames
from pdmer.labels import FRAME_SECONDS


class GlobalEncoder:
    """Interface of a global encoder.

    Attributes
    ----------
    name : str
        Recorded in every :class:`~pdmer.features.SongFeatures` it makes.
    sample_rate : int
        Rate of the waveform :meth:`embed` receives.
    dim : int
        Size of one embedding.
    cache_token : str or None
        Identifies the encoder *and its weights* in feature-cache keys; None
        (the default for objects that lack it) disables the cache.
    in_process : bool
        True for heavy models (loaded once, batched, maybe on a GPU) that
        should run in the calling process rather than in joblib workers.
    """

    name = "base"
    sample_rate = 16000
    dim = 0
    cache_token = None
    in_process = False

    def embed(self, waveform: np.ndarray, frame_starts: np.ndarray,
              window: float) -> np.ndarray:
        """Embeddings of the windows centred on each label frame.

        Parameters
        ----------
        waveform : ndarray of shape (n_samples,)
            The whole song, mono, at :attr:`sample_rate`.
        frame_starts : ndarray of shape (n_frames,)
            Start time in seconds of each 0.5 s label frame.
        window : float
            Window length in seconds, centred on each frame's centre.

        Returns
        -------
        ndarray of shape (n_frames, dim)
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogMelStatsEncoder(GlobalEncoder):
    """Weight-free global descriptor: log-mel mean and standard deviation.

    Statistics are accumulated once per 0.5 s cell of a grid aligned with the
    label frames, then summed over each frame's window with cumulative sums,
    so the cost does not grow with the window length. Windows are clipped to
    the song: at the edges the statistics cover the audio that exists.

    Parameters
    ----------
    n_mels : int, default=64
    sample_rate : int, default=16000
    """

    name = "logmel-stats"

    def __init__(self, n_mels: int = 64, sample_rate: int = 16000):
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.dim = 2 * n_mels
        self.cache_token = f"logmel-stats/n_mels={n_mels}/sample_rate={sample_rate}"

    def embed(self, waveform, frame_starts, window):
        frame_starts = np.asarray(frame_starts, dtype=np.float64)
        # Grid cells from the first whole cell of the song, aligned with frame 0.
        first = frame_starts[0] - FRAME_SECONDS * np.floor(frame_starts[0] / FRAME_SECONDS + 1e-9)
        n_cells = int(np.floor((len(waveform) / self.sample_rate - first) / FRAME_SECONDS + 1e-9))
        mel = log_mel_frames(waveform, self.sample_rate, first, n_cells, self.n_mels,
                             window_seconds=0.025, hop_seconds=0.010).astype(np.float64)
        count = mel.shape[1]
        cum_sum = np.concatenate([np.zeros((1, self.n_mels)), mel.sum(1).cumsum(0)])
        cum_sq = np.concatenate([np.zeros((1, self.n_mels)), np.square(mel).sum(1).cumsum(0)])
        centre_cell = (frame_starts - first) / FRAME_SECONDS + 0.5
        half = window / FRAME_SECONDS / 2
        lo = np.clip(np.floor(centre_cell - half + 1e-9), 0, n_cells - 1).astype(int)
        hi = np.clip(np.ceil(centre_cell + half - 1e-9), lo + 1, n_cells).astype(int)
        n = ((hi - lo) * count)[:, None]
        mean = (cum_sum[hi] - cum_sum[lo]) / n
        var = np.maximum((cum_sq[hi] - cum_sq[lo]) / n - mean**2, 0.0)
        return np.concatenate([mean, np.sqrt(var)], axis=1).astype(np.float32)

    def __repr__(self) -> str:
        return f"LogMelStatsEncoder(n_mels={self.n_mels}, sample_rate={self.sample_rate})"


class ClipEncoder(GlobalEncoder):
    """A clip model averaged over evenly spaced clips of each frame's window.

    ImageBind's recipe: a window of ``window`` seconds gets
    ``clips_per_window`` clips of ``clip_seconds``, the first at the window's
    start, the last at its end, evenly spaced between (pytorchvideo's
    ``ConstantClipsPerVideoSampler``); the window's embedding is the mean of
    the clip embeddings. Windows are centred on each label frame's centre and
    zero-padded where they reach past the song's edges.

    With ``shared_grid=True`` (default) each distinct clip of a song is
    embedded once: windows of consecutive frames are 0.5 s apart, so their
    clips fall on a common 0.5 s grid (whenever the clip spacing is a
    multiple of 0.5 s, as for 30 s windows: spacing 14 s), and a song of
    ``n`` frames costs about ``n + 56`` forwards instead of ``3 n``. Clips
    lying wholly in the padding are silence and share one forward. The
    result equals the per-window computation (``shared_grid=False``).

    Clips are independent: for windows shorter than three clips (6 s), where
    clips overlap, ImageBind's own ``waveform2melspec`` subtracts each clip's
    mean in place and so alters the next clip's shared samples; pdmer does not
    copy that quirk.

    Parameters
    ----------
    model : callable
        ``model(clips) -> embeddings``: ``clips`` a float32 tensor of shape
        (batch, n_samples) on ``device``, mono at ``sample_rate``; returns a
        tensor or array of shape (batch, dim). Called under ``torch.no_grad``;
        an ``nn.Module`` should be in eval mode and on ``device``.
    sample_rate : int, default=16000
    clip_seconds : float, default=2.0
    clips_per_window : int, default=3
    shared_grid : bool, default=True
    batch_size : int, default=16
        Clips per model call.
    device : str, default="cpu"
    name : str, optional
        Defaults to ``"custom:<model class name>"``.
    dim : int, optional
        Embedding size; found by one call on a silent clip if not given.
    cache_token : str, optional
        Identity of the model and its weights for the feature cache. By
        default an ``nn.Module``'s is a hash of its parameters and buffers;
        other callables get None (their features are not cached).
    """

    in_process = True

    def __init__(self, model, sample_rate=16000, clip_seconds=2.0, clips_per_window=3,
                 shared_grid=True, batch_size=16, device="cpu", name=None, dim=None,
                 cache_token=None):
        if not callable(model):
            raise TypeError(f"A clip model must be callable; got {type(model).__name__}.")
        if int(clips_per_window) < 1 or clip_seconds <= 0 or int(batch_size) < 1:
            raise ValueError("clips_per_window and batch_size must be >= 1 and clip_seconds "
                             f"> 0; got {clips_per_window}, {batch_size}, {clip_seconds}.")
        self.model = model
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.clips_per_window = int(clips_per_window)
        self.shared_grid = bool(shared_grid)
        self.batch_size = int(batch_size)
        self.device = device
        self.name = name or f"custom:{type(model).__name__}"
        self._dim = dim
        if cache_token is None and isinstance(model, torch.nn.Module):
            from pdmer.features.cache import state_dict_digest

            digest = state_dict_digest(model.state_dict())
            cache_token = f"{self.name}/{type(model).__qualname__}/{digest}"
        self._token = cache_token

    @property
    def cache_token(self):
        if self._token is None:
            return None
        return (f"{self._token}/sr={self.sample_rate}/clip={self.clip_seconds}/"
                f"k={self.clips_per_window}/{torch.device(self.device).type}")

    @property
    def dim(self) -> int:
        if self._dim is None:
            probe = np.zeros((1, int(self.sample_rate * self.clip_seconds)), np.float32)
            self._dim = int(self.embed_clips(probe).shape[1])
        return self._dim

    def embed_clips(self, clips: np.ndarray) -> np.ndarray:
        """Embeddings of clips of shape (n_clips, n_samples), in batches."""
        out = []
        with torch.no_grad():
            for lo in range(0, len(clips), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(clips[lo:lo + self.batch_size]))
                emb = self.model(batch.to(self.device))
                emb = emb.detach().float().cpu().numpy() if torch.is_tensor(emb) else emb
                out.append(np.asarray(emb, dtype=np.float32))
        emb = np.concatenate(out)
        if emb.ndim != 2 or emb.shape[0] != len(clips):
            raise ValueError(f"clip model {self.name!r} returned shape {emb.shape} for "
                             f"{len(clips)} clips; expected ({len(clips)}, dim).")
        return emb

    def clip_length(self, window: float) -> int:
        """Samples per clip (the whole window if it is shorter than a clip)."""
        return int(min(self.clip_seconds, window) * self.sample_rate)

    def clip_starts(self, frame_starts, window: float) -> np.ndarray:
        """First sample of every clip of every frame's window, (n_frames, clips_per_window).

        Relative to the song's first sample; negative or past-the-end starts
        are clips in the zero padding.
        """
        from fractions import Fraction

        sr = self.sample_rate
        centres = np.asarray(frame_starts, dtype=np.float64) + FRAME_SECONDS / 2
        window_starts = np.round((centres - window / 2) * sr).astype(np.int64)
        spacing = (Fraction(max(window - self.clip_seconds, 0.0))
                   / max(self.clips_per_window - 1, 1))
        # int() of an exact fraction, as ImageBind slices int(start * sample_rate).
        offsets = np.array([int(spacing * j * sr) for j in range(self.clips_per_window)],
                           dtype=np.int64)
        return window_starts[:, None] + offsets[None, :]

    def plan(self, frame_starts, window: float, n_samples: int):
        """Distinct clips to embed and, per frame, which of them to average.

        Returns ``(starts, index)``: ``starts`` the first samples of the clips
        to run (with a shared grid, all clips wholly in the zero padding
        become one clip ending at sample 0), ``index`` of shape
        (n_frames, clips_per_window) into them.
        """
        starts = self.clip_starts(frame_starts, window)
        if not self.shared_grid:
            return starts.ravel(), np.arange(starts.size).reshape(starts.shape)
        length = self.clip_length(window)
        silent = (starts + length <= 0) | (starts >= n_samples)
        starts = np.where(silent, -length, starts)  # every silent clip the same
        unique, inverse = np.unique(starts, return_inverse=True)
        return unique, inverse.reshape(starts.shape)

    def count_forwards(self, frame_starts, window: float, n_samples: int) -> int:
        """Clips the model runs for one song (see :meth:`plan`)."""
        return len(self.plan(frame_starts, window, n_samples)[0])

    def embed(self, waveform, frame_starts, window):
        waveform = np.asarray(waveform, dtype=np.float32)
        length = self.clip_length(window)
        starts, index = self.plan(frame_starts, window, len(waveform))
        pad_left = int(max(0, -starts.min()))
        pad_right = int(max(0, starts.max() + length - len(waveform)))
        padded = np.pad(waveform, (pad_left, pad_right))
        parts = []
        # Gather clips one batch at a time: all clips of a long song at once
        # would take n_clips x 2 s of memory.
        chunk = self.batch_size * 8
        for lo in range(0, len(starts), chunk):
            rows = starts[lo:lo + chunk, None] + pad_left + np.arange(length)[None, :]
            parts.append(self.embed_clips(padded[rows]))
        emb = np.concatenate(parts)
        return emb[index].mean(axis=1)

    def __repr__(self) -> str:
        return (f"ClipEncoder({self.name!r}, clip_seconds={self.clip_seconds}, "
                f"clips_per_window={self.clips_per_window}, shared_grid={self.shared_grid})")


# ------------------------------------------------------------------ ImageBind

_LOADED: dict = {}


def imagebind_weights_path():
    """Where ``pdmer download imagebind`` puts the audio branch's weights."""
    from pdmer.features.cache import default_cache_dir

    return default_cache_dir() / "weights" / "imagebind_huge_audio.safetensors"


class ImageBindEncoder(ClipEncoder):
    """The frozen ImageBind-huge audio branch as a global encoder.

    Each frame's window gets ImageBind's three evenly spaced 2 s clips at
    16 kHz; their 1024-d embeddings (L2 norm 20 each) are averaged, as
    ImageBind does for a clip of several views, so the window embedding's
    norm is at most 20. The model is loaded once per process and weights
    file, and runs in batches (bf16 autocast on CUDA).

    Parameters
    ----------
    weights : str or os.PathLike, optional
        A safetensors file of the audio branch (``pdmer download imagebind``
        writes one) or the official ``imagebind_huge.pth``. Defaults to
        :func:`imagebind_weights_path`.
    device : str, default="cpu"
    batch_size : int, default=16
    shared_grid : bool, default=True
        See :class:`ClipEncoder`.
    precision : {"auto", "bf16", "fp32"}, default="auto"
        bf16 autocast on CUDA and float32 on the CPU for ``"auto"``; bf16
        on the CPU is about twice as fast, with slightly different values
        (see benchmarks/README.md).
    config : dict, optional
        Architecture overrides for :class:`~pdmer.features.imagebind.ImageBindAudio`
        (tests use a tiny one); the default is ImageBind-huge.
    """

    def __init__(self, weights=None, device="cpu", batch_size=16, shared_grid=True,
                 precision="auto", config=None):
        import os

        from pdmer.features.imagebind import SAMPLE_RATE, weights_id

        self.weights = os.fspath(imagebind_weights_path() if weights is None else weights)
        if not os.path.isfile(self.weights):
            raise FileNotFoundError(
                f"ImageBind weights not found at {self.weights}. Run `pdmer download "
                "imagebind` (the weights are licensed CC BY-NC-SA 4.0), pass "
                "weights=<path to imagebind_huge.pth>, or use "
                "global_encoder='logmel-stats', which needs no weights.")
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32'; got {precision!r}.")
        self.precision = precision
        self.config = dict(config or {})
        super().__init__(self._forward, sample_rate=SAMPLE_RATE, clip_seconds=2.0,
                         clips_per_window=3, shared_grid=shared_grid, batch_size=batch_size,
                         device=device, name="imagebind",
                         dim=self.config.get("out_dim", 1024))
        config_tag = ",".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        bf16 = precision == "bf16" or (precision == "auto"
                                       and torch.device(device).type == "cuda")
        self._token = (f"imagebind/{weights_id(self.weights)}/{config_tag}/"
                       f"{'bf16' if bf16 else 'fp32'}")

    def _key(self):
        import os

        stat = os.stat(self.weights)
        return (os.path.abspath(self.weights), stat.st_size, stat.st_mtime_ns,
                str(self.device), tuple(sorted(self.config.items())))

    def network(self):
        """The loaded :class:`~pdmer.features.imagebind.ImageBindAudio` (cached per process)."""
        from pdmer.features.imagebind import load_imagebind_audio

        key = self._key()
        if key not in _LOADED:
            _LOADED.clear()  # one model at a time: the huge one is 345 MB
            _LOADED[key] = load_imagebind_audio(self.weights, device=self.device, **self.config)
        return _LOADED[key]

    def _forward(self, clips):
        return self.network().embed_waveforms(clips, self.precision)

    def __getstate__(self):
        # Pickled into joblib workers without the bound model.
        state = dict(self.__dict__)
        state["model"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.model = self._forward

    def __repr__(self) -> str:
        return f"ImageBindEncoder(weights={self.weights!r}, device={self.device!r})"


# ------------------------------------------------------------------ registry

_REGISTRY: dict = {}


def register_encoder(name: str, factory, describe) -> None:
    """Make ``global_encoder=name`` build ``factory(device=...)``.

    Parameters
    ----------
    name : str
    factory : callable
        ``factory(device=str) -> GlobalEncoder``.
    describe : str or callable
        A description, or a function returning one (e.g. with the status
        of the weights), shown by :func:`available_encoders`.
    """
    _REGISTRY[name] = (factory, describe)


def available_encoders() -> dict:
    """Registered global encoders: ``{name: description and status}``."""
    return {name: describe() if callable(describe) else describe
            for name, (_, describe) in _REGISTRY.items()}


def _describe_imagebind():
    path = imagebind_weights_path()
    status = (f"weights installed at {path}" if path.is_file()
              else "weights not installed: run `pdmer download imagebind`")
    return f"ImageBind-huge audio branch, 1024-d, licence CC BY-NC-SA 4.0 ({status})"


def _auto(device="cpu"):
    if imagebind_weights_path().is_file():
        return ImageBindEncoder(device=device)
    return LogMelStatsEncoder()


def _describe_auto():
    chosen = "imagebind" if imagebind_weights_path().is_file() else "logmel-stats"
    return f"imagebind when its weights are installed, else logmel-stats (now: {chosen})"


register_encoder("logmel-stats", lambda device="cpu": LogMelStatsEncoder(),
                 "weight-free: mean and std of 64 log-mel bands over the window, 128-d")
register_encoder("imagebind", lambda device="cpu": ImageBindEncoder(device=device),
                 _describe_imagebind)
register_encoder("auto", _auto, _describe_auto)

_REQUIRED = ("name", "sample_rate", "dim", "embed")


def get_global_encoder(encoder, device="cpu") -> GlobalEncoder:
    """Resolve a name, an encoder object or a clip model to a :class:`GlobalEncoder`.

    Parameters
    ----------
    encoder : str, GlobalEncoder-like object, nn.Module or callable
        A name from :func:`available_encoders`; an object with ``name``,
        ``sample_rate``, ``dim`` and ``embed``; or a clip model (see
        :class:`ClipEncoder`), wrapped with ImageBind's clip settings.
    device : str, default="cpu"
        Where registered and clip models run.
    """
    if isinstance(encoder, str):
        if encoder not in _REGISTRY:
            raise ValueError(
                f"Unknown global_encoder {encoder!r}; available: "
                f"{', '.join(repr(n) for n in _REGISTRY)}; or pass an object with name, "
                "sample_rate, dim and embed(), or a clip model (nn.Module or callable).")
        return _REGISTRY[encoder][0](device=device)
    if all(hasattr(encoder, a) for a in _REQUIRED):
        return encoder
    if callable(encoder):
        return ClipEncoder(encoder, device=device)
    missing = [a for a in _REQUIRED if not hasattr(encoder, a)]
    raise TypeError(
        f"global_encoder {encoder!r} lacks {', '.join(missing)}; see "
        "pdmer.features.GlobalEncoder for the interface, or pass a clip model "
        "(an nn.Module or callable mapping (batch, n_samples) clips to (batch, dim)).")
