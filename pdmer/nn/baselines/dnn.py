"""DNN (Orjesek et al., 2019): 1-D convolutions and recurrent layers on raw audio."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pdmer.nn.baselines._sequence import FrameSequenceNet


class _WaveformConvStack(nn.Module):
    """A strided first convolution, further 1-D convolutions, then mean and max over time."""

    def __init__(self, n_samples: int, channels: int, n_layers: int, first_kernel: int,
                 first_stride: int, kernel: int, pool: int) -> None:
        super().__init__()
        if n_samples < first_kernel:
            raise ValueError(
                f"Each frame has {n_samples} raw samples, fewer than the first "
                f"convolution's kernel ({first_kernel}); extract the waveforms at a "
                "higher waveform_rate or choose a smaller first_kernel.")
        layers = [nn.Conv1d(1, channels, first_kernel, stride=first_stride),
                  nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(pool, ceil_mode=True)]
        for _ in range(n_layers - 1):
            layers += [nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
                       nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(pool, ceil_mode=True)]
        self.layers = nn.Sequential(*layers)
        self.out_dim = 2 * channels

    def forward(self, waves: Tensor) -> Tensor:  # (n, S) -> (n, 2C)
        x = self.layers(waves.unsqueeze(1))
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)


class DNNNet(FrameSequenceNet):
    """End-to-end network of Orjesek et al. (2019) on each frame's raw waveform.

    ``Conv1d(first_kernel, stride first_stride) -> BatchNorm -> ReLU ->
    MaxPool`` learns a filterbank from the samples, ``n_conv_layers - 1``
    further ``Conv1d(kernel)`` blocks follow, the result is summarised by its
    mean and maximum over time, and a stacked bidirectional GRU over the
    frames feeds the head.

    Parameters
    ----------
    n_samples : int
        Raw samples per 0.5 s frame.
    conv_channels : int, default=64
    n_conv_layers : int, default=3
    first_kernel, first_stride : int, default=64, 8
    kernel : int, default=8
        Kernel of the later convolutions.
    pool : int, default=4
    rnn_hidden : int, default=64
    rnn_layers : int, default=2
    dropout : float, default=0.1
    """

    def __init__(self, n_samples: int, conv_channels: int = 64, n_conv_layers: int = 3,
                 first_kernel: int = 64, first_stride: int = 8, kernel: int = 8, pool: int = 4,
                 rnn_hidden: int = 64, rnn_layers: int = 2, dropout: float = 0.1) -> None:
        encoder = _WaveformConvStack(n_samples, conv_channels, n_conv_layers, first_kernel,
                                     first_stride, kernel, pool)
        super().__init__(encoder, encoder.out_dim, "gru", rnn_hidden, rnn_layers, dropout)
