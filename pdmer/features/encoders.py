"""The global encoders pdmer offers by name, and how any encoder plugs in.

An encoder sees the whole song once and returns, for every label frame, an
embedding of the audio in a window centred on that frame. Three kinds plug
into :class:`~pdmer.features.AudioFeatures` the same way:

- a registered name (:func:`available_encoders`): ``"logmel-stats"``
  (:class:`~pdmer.features.LogMelStatsEncoder`), ``"imagebind"``
  (:class:`ImageBindEncoder`), or ``"auto"`` (ImageBind when its weights are
  installed, else logmel-stats);
- any object with the attributes and method of
  :class:`~pdmer.features.GlobalEncoder`;
- a clip model: an ``nn.Module`` or callable mapping a batch of mono clips
  ``(batch, n_samples)`` (float32 torch tensor, 16 kHz, 2 s) to embeddings
  ``(batch, dim)``; :class:`~pdmer.features.ClipEncoder` averages it over
  evenly spaced clips of each window, as ImageBind does.
"""

from __future__ import annotations

import os

import torch

from pdmer.features.base import GlobalEncoder
from pdmer.features.clips import ClipEncoder
from pdmer.features.imagebind import (
    SAMPLE_RATE,
    imagebind_weights_path,
    load_imagebind_audio,
    weights_id,
)
from pdmer.features.logmel import LogMelStatsEncoder
from pdmer.nn.precision import check_precision, resolve_precision

__all__ = ["ClipEncoder", "GlobalEncoder", "ImageBindEncoder", "LogMelStatsEncoder",
           "available_encoders", "get_global_encoder", "imagebind_weights_path",
           "register_encoder"]

# ------------------------------------------------------------------ ImageBind

_LOADED: dict = {}


class ImageBindEncoder(ClipEncoder):
    """The frozen ImageBind-huge audio branch as a global encoder, fed as Meta feeds it.

    The input follows ImageBind's ``load_and_transform_audio_data``: the file
    is resampled to 16 kHz with torchaudio's default sinc resampler
    (re-implemented in torch, :mod:`pdmer.features.resample`), and only
    channel 0 of a multichannel file is used (its Kaldi fbank reads
    ``waveform[0]``). Each frame's window gets ImageBind's three evenly
    spaced 2 s clips; their 1024-d embeddings (L2 norm 20 each) are
    averaged, as ImageBind does for a clip of several views, so the window
    embedding's norm is at most 20. The model is loaded once per process and
    weights file, and runs in batches that span songs (by default bf16
    autocast on CUDA).

    Parameters
    ----------
    weights : str or os.PathLike, optional
        A safetensors file of the audio branch (``pdmer download imagebind``
        writes one) or the official ``imagebind_huge.pth``. Defaults to
        :func:`imagebind_weights_path`.
    device : str, default="cpu"
    batch_size : int, optional
        Clips per forward pass; default 16 on the CPU, 128 on CUDA.
    shared_grid : bool, default=True
        See :class:`ClipEncoder`.
    precision : {"auto", "bf16", "fp32"}, default="auto"
        pdmer's precision policy (:mod:`pdmer.nn.precision`, as the
        estimators' ``precision``): ``"auto"`` is bf16 autocast on CUDA and
        float32 on the CPU; ``"bf16"`` also autocasts on CPUs with native
        bfloat16 (AVX512-BF16 or AMX), several times faster there with
        slightly different values (see benchmarks/README.md), and runs
        float32 with a warning on devices without it; ``"fp32"`` is
        float32 everywhere. The cache token records the precision that
        runs, so features of the two are cached apart.
    channels : {"first", "mean"}, default="first"
        ``"first"``: channel 0, as ImageBind's own pipeline (and so the
        paper's) reads a stereo file; ``"mean"``: the mix of all channels,
        as pdmer's local patches use. Mono files give the same either way;
        on real stereo songs the two differ (cosine 0.96-0.999).
    config : dict, optional
        Architecture overrides for :class:`~pdmer.features.imagebind.ImageBindAudio`
        (tests use a tiny one); the default is ImageBind-huge.
    """

    def __init__(self, weights=None, device="cpu", batch_size=None, shared_grid=True,
                 precision="auto", channels="first", config=None):
        self.weights = os.fspath(imagebind_weights_path() if weights is None else weights)
        if not os.path.isfile(self.weights):
            raise FileNotFoundError(
                f"ImageBind weights not found at {self.weights}. Run `pdmer download "
                "imagebind` (the weights are licensed CC BY-NC-SA 4.0), pass "
                "weights=<path to imagebind_huge.pth>, or use "
                "global_encoder='logmel-stats', which needs no weights.")
        self.precision = check_precision(precision)
        self.config = dict(config or {})
        cuda = torch.device(device).type == "cuda"
        if batch_size is None:
            batch_size = 128 if cuda else 16
        super().__init__(self._forward, sample_rate=SAMPLE_RATE, clip_seconds=2.0,
                         clips_per_window=3, shared_grid=shared_grid, batch_size=batch_size,
                         device=device, name="imagebind", dim=self.config.get("out_dim", 1024),
                         channels=channels, resampler="sinc")
        config_tag = ",".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        bf16 = resolve_precision(precision, device, warn=True, stacklevel=2) == torch.bfloat16
        self._token = (f"imagebind/{weights_id(self.weights)}/{config_tag}/"
                       f"{'bf16' if bf16 else 'fp32'}")

    def _key(self):
        stat = os.stat(self.weights)
        return (os.path.abspath(self.weights), stat.st_size, stat.st_mtime_ns,
                str(self.device), tuple(sorted(self.config.items())))

    def network(self):
        """The loaded :class:`~pdmer.features.imagebind.ImageBindAudio` (cached per process)."""
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
        return (f"ImageBindEncoder(weights={self.weights!r}, device={self.device!r}, "
                f"channels={self.channels!r})")


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
