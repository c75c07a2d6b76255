"""A clip model as a global encoder: evenly spaced clips per window, batched across songs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from pdmer.features.audio import CHANNEL_MODES, RESAMPLERS
from pdmer.features.base import GlobalEncoder
from pdmer.labels import FRAME_SECONDS


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

    Clips of several songs go to the model together
    (:meth:`embed_songs`; :class:`~pdmer.features.AudioFeatures` groups the
    songs it extracts), so batches stay full on a GPU.

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
    channels : {"mean", "first"}, default="mean"
        The mix of all channels, or channel 0 (see :class:`GlobalEncoder`).
    resampler : {"soxr", "sinc"}, default="soxr"
        How audio at other rates reaches ``sample_rate``.
    """

    in_process = True

    def __init__(self, model, sample_rate=16000, clip_seconds=2.0, clips_per_window=3,
                 shared_grid=True, batch_size=16, device="cpu", name=None, dim=None,
                 cache_token=None, channels="mean", resampler="soxr"):
        if not callable(model):
            raise TypeError(f"A clip model must be callable; got {type(model).__name__}.")
        if int(clips_per_window) < 1 or clip_seconds <= 0 or int(batch_size) < 1:
            raise ValueError("clips_per_window and batch_size must be >= 1 and clip_seconds "
                             f"> 0; got {clips_per_window}, {batch_size}, {clip_seconds}.")
        if channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be one of {CHANNEL_MODES}; got {channels!r}.")
        if resampler not in RESAMPLERS:
            raise ValueError(f"resampler must be one of {RESAMPLERS}; got {resampler!r}.")
        self.model = model
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.clips_per_window = int(clips_per_window)
        self.shared_grid = bool(shared_grid)
        self.batch_size = int(batch_size)
        self.device = device
        self.name = name or f"custom:{type(model).__name__}"
        self.channels = channels
        self.resampler = resampler
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
                f"k={self.clips_per_window}/{torch.device(self.device).type}/"
                f"channels={self.channels}/resampler={self.resampler}")

    @property
    def dim(self) -> int:
        if self._dim is None:
            probe = np.zeros((1, int(self.sample_rate * self.clip_seconds)), np.float32)
            self._dim = int(self.embed_clips(probe).shape[1])
        return self._dim

    def embed_clips(self, clips: np.ndarray) -> np.ndarray:
        """Embeddings of clips of shape (n_clips, n_samples), in batches on ``device``."""
        out = []
        pin = torch.device(self.device).type == "cuda"
        with torch.no_grad():
            for lo in range(0, len(clips), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(clips[lo:lo + self.batch_size]))
                if pin:  # page-locked, so the copy to the GPU can overlap
                    batch = batch.pin_memory()
                emb = self.model(batch.to(self.device, non_blocking=pin))
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
        return self.embed_songs([(waveform, frame_starts)], window)[0]

    def embed_songs(self, songs, window: float) -> list:
        """:meth:`embed` of several songs, their clips sent to the model together.

        Parameters
        ----------
        songs : sequence of (waveform, frame_starts)
            Each song's mono waveform at :attr:`sample_rate` and its frames'
            start times in seconds.
        window : float

        Returns
        -------
        list of ndarray of shape (n_frames, dim), one per song
        """
        length = self.clip_length(window)
        waves = [np.asarray(wave, dtype=np.float32) for wave, _ in songs]
        plans = [self.plan(starts, window, len(wave)) for wave, (_, starts) in zip(waves, songs)]
        owner = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(plans)])
        start = np.concatenate([p[0] for p in plans])
        if self.shared_grid:  # one silent clip for all songs
            silent = start == -length
            owner[silent] = 0
            pairs, inverse = np.unique(np.stack([owner, start], 1), axis=0, return_inverse=True)
            owner, start = pairs[:, 0], pairs[:, 1]
        else:
            inverse = np.arange(len(start))
        # Gather one batch at a time: all clips of a long song at once would
        # take n_clips x 2 s of memory.
        step = self.batch_size
        emb = np.concatenate([self.embed_clips(_gather(waves, owner[lo:lo + step],
                                                       start[lo:lo + step], length))
                              for lo in range(0, len(start), step)])
        emb = emb[np.asarray(inverse).reshape(-1)]  # back to each song's own clip list
        bounds = np.cumsum([0] + [len(p[0]) for p in plans])
        return [emb[bounds[i]:bounds[i + 1]][index].mean(axis=1)
                for i, (_, index) in enumerate(plans)]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, clip_seconds={self.clip_seconds}, "
                f"clips_per_window={self.clips_per_window}, shared_grid={self.shared_grid})")


def _gather(waves, owner, start, length) -> np.ndarray:
    """Clips ``waves[owner[i]][start[i]:start[i] + length]``, zero outside each song."""
    clips = np.zeros((len(start), length), np.float32)
    for row, song, first in zip(clips, owner, start):  # slices: no index arrays
        wave = waves[song]
        lo, hi = max(first, 0), min(first + length, len(wave))
        if hi > lo:
            row[lo - first:hi - first] = wave[lo:hi]
    return clips
