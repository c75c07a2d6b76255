"""MCRNN (He and Ferguson, 2020): multi-view 1-D CNNs on raw audio and a BiLSTM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pdmer.nn.baselines._sequence import FrameSequenceNet


class _View(nn.Module):
    """One view: a CNN whose first kernel sets its time resolution."""

    def __init__(self, kernel: int, channels: int, pool: int) -> None:
        super().__init__()
        stride = max(1, kernel // 4)
        self.layers = nn.Sequential(
            nn.Conv1d(1, channels, kernel, stride=stride), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.MaxPool1d(pool, ceil_mode=True),
            nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:  # (n, 1, S) -> (n, C)
        return self.layers(x).amax(dim=-1)


class _MultiView(nn.Module):
    def __init__(self, n_samples: int, kernels, channels: int, pool: int, out_dim: int) -> None:
        super().__init__()
        kernels = tuple(int(k) for k in kernels)
        if not kernels:
            raise ValueError("view_kernels must name at least one kernel size.")
        if n_samples < max(kernels):
            raise ValueError(
                f"Each frame has {n_samples} raw samples, fewer than the largest view "
                f"kernel ({max(kernels)}); extract the waveforms at a higher "
                "waveform_rate or choose smaller view_kernels.")
        self.views = nn.ModuleList(_View(k, channels, pool) for k in kernels)
        self.fuse = nn.Sequential(nn.Linear(len(kernels) * channels, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, waves: Tensor) -> Tensor:  # (n, S) -> (n, out_dim)
        x = waves.unsqueeze(1)
        return self.fuse(torch.cat([view(x) for view in self.views], dim=-1))


class MCRNNNet(FrameSequenceNet):
    """Multi-view convolutional recurrent network of He and Ferguson (2020).

    Several 1-D CNNs ("views") read each frame's raw waveform in parallel,
    each with a different first kernel (short kernels resolve fine temporal
    detail, long ones low frequencies); each view is max-pooled over time,
    the views are concatenated and fused by a dense layer, and a
    bidirectional LSTM over the frames feeds the head.

    Parameters
    ----------
    n_samples : int
        Raw samples per 0.5 s frame.
    view_kernels : tuple of int, default=(16, 64, 256)
        First-layer kernel of each view (its stride is a quarter of it).
    conv_channels : int, default=64
    pool : int, default=4
    fusion_dim : int, default=128
    rnn_hidden : int, default=128
    rnn_layers : int, default=1
    dropout : float, default=0.1
    """

    def __init__(self, n_samples: int, view_kernels=(16, 64, 256), conv_channels: int = 64,
                 pool: int = 4, fusion_dim: int = 128, rnn_hidden: int = 128,
                 rnn_layers: int = 1, dropout: float = 0.1) -> None:
        encoder = _MultiView(n_samples, view_kernels, conv_channels, pool, fusion_dim)
        super().__init__(encoder, encoder.out_dim, "lstm", rnn_hidden, rnn_layers, dropout)
