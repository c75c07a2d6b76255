"""DAMFF (Zhang et al., ISMIR 2023): dual attention over multi-scale spectrogram features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pdmer.nn.baselines._sequence import FrameSequenceNet


class ChannelAttention(nn.Module):
    """Channel weights from average- and max-pooled maps through a shared MLP."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:  # (n, C, H, W)
        weights = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        return x * weights[:, :, None, None]


class SpatialAttention(nn.Module):
    """Time-frequency weights from the channel mean and maximum through a convolution."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:  # (n, C, H, W)
        pooled = torch.stack([x.mean(dim=1), x.amax(dim=1)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class _MultiScaleDualAttention(nn.Module):
    def __init__(self, channels: int, scales, reduction: int) -> None:
        super().__init__()
        scales = tuple(int(k) for k in scales)
        if not scales or any(k < 1 or k % 2 == 0 for k in scales):
            raise ValueError(f"scales must be odd kernel sizes; got {scales}.")
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                  nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, k, padding=k // 2),
                          nn.BatchNorm2d(channels), nn.ReLU())
            for k in scales)
        fused = channels * len(scales)
        self.channel_attention = ChannelAttention(fused, reduction)
        self.spatial_attention = SpatialAttention()
        self.project = nn.Sequential(nn.Conv2d(fused, channels, 1), nn.BatchNorm2d(channels),
                                     nn.ReLU())
        self.out_dim = 2 * channels

    def forward(self, patches: Tensor) -> Tensor:  # (n, P, M) -> (n, 2C)
        x = self.stem(patches.unsqueeze(1))
        x = torch.cat([branch(x) for branch in self.branches], dim=1)
        x = self.project(self.spatial_attention(self.channel_attention(x)))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=-1)


class DAMFFNet(FrameSequenceNet):
    """Dual attention-based multi-scale feature fusion (Zhang et al., ISMIR 2023).

    Each frame's log-mel patch (of any shape) passes a convolutional stem, then parallel
    convolutions with different kernel sizes (the scales) whose maps are
    concatenated; channel attention re-weights the scales' channels and
    spatial attention the time-frequency cells, a 1x1 convolution fuses
    them, and mean and max pooling give one vector per frame. A
    bidirectional LSTM over the frames feeds the head.

    Parameters
    ----------
    conv_channels : int, default=32
    scales : tuple of int, default=(3, 5, 7)
        Kernel sizes of the parallel branches (odd).
    reduction : int, default=4
        Channel-attention bottleneck factor.
    rnn_hidden : int, default=128
    rnn_layers : int, default=1
    dropout : float, default=0.1
    """

    def __init__(self, conv_channels: int = 32,
                 scales=(3, 5, 7), reduction: int = 4, rnn_hidden: int = 128,
                 rnn_layers: int = 1, dropout: float = 0.1) -> None:
        encoder = _MultiScaleDualAttention(conv_channels, scales, reduction)
        super().__init__(encoder, encoder.out_dim, "lstm", rnn_hidden, rnn_layers, dropout)
