"""Songs as tensors: the per-song container of the training loop and its batches.

The fields are named as in :class:`~pdmer.features.SongFeatures` (one
vocabulary from extraction to the network); :func:`collate` pads songs of
different lengths into one :class:`SongBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SongBatch:
    """Padded tensors of several songs, named as in :class:`~pdmer.features.SongFeatures`.

    ``local_patches`` (B, T, P, M), ``global_embeddings`` (B, T, G), ``y``
    (B, T, 2) or None, ``lengths`` (B,), ``mask`` (B, T), True on real
    frames, and ``waveforms`` (B, T, S) raw audio per frame or None.
    """

    local_patches: torch.Tensor
    global_embeddings: torch.Tensor
    y: torch.Tensor | None
    lengths: torch.Tensor
    mask: torch.Tensor
    waveforms: torch.Tensor | None = None


@dataclass
class Song:
    """One song's features (and labels) as tensors, ready to crop and batch.

    The fields are those of :class:`~pdmer.features.SongFeatures`, as tensors,
    plus the labels ``y`` of one listener (or their mean).
    """

    local_patches: torch.Tensor
    global_embeddings: torch.Tensor
    y: torch.Tensor | None = None
    encoder: str = "unknown"
    waveforms: torch.Tensor | None = None

    def _map(self, fn) -> "Song":
        return Song(fn(self.local_patches), fn(self.global_embeddings),
                    None if self.y is None else fn(self.y), self.encoder,
                    None if self.waveforms is None else fn(self.waveforms))

    def to(self, device) -> "Song":
        return self._map(lambda t: t.to(device))

    def crop(self, start: int, stop: int) -> "Song":
        """Frames ``[start, stop)`` (views)."""
        return self._map(lambda t: t[start:stop])

    @property
    def n_frames(self) -> int:
        return self.local_patches.shape[0]

    def window(self, n_frames: int | None, rng: np.random.Generator | None) -> "Song":
        """A random ``n_frames`` crop (the whole song if shorter or None)."""
        if n_frames is None or self.n_frames <= n_frames:
            return self
        start = int(rng.integers(0, self.n_frames - n_frames + 1)) if rng is not None else 0
        return self.crop(start, start + n_frames)


def collate(songs: list[Song], device, labels: bool = True) -> SongBatch:
    """Pad songs to the longest one and move them to ``device``."""
    lengths = torch.tensor([s.n_frames for s in songs], dtype=torch.long)
    longest = int(lengths.max())

    def pad(tensors):
        out = tensors[0].new_zeros((len(tensors), longest) + tuple(tensors[0].shape[1:]))
        for i, t in enumerate(tensors):
            out[i, : t.shape[0]] = t
        return out.to(device, non_blocking=True)

    mask = torch.arange(longest)[None, :] < lengths[:, None]
    y = pad([s.y for s in songs]) if labels and songs[0].y is not None else None
    waveforms = pad([s.waveforms for s in songs]) if songs[0].waveforms is not None else None
    return SongBatch(pad([s.local_patches for s in songs]),
                     pad([s.global_embeddings for s in songs]), y, lengths.to(device),
                     mask.to(device), waveforms)
