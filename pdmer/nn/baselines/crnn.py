"""CRNN (Malik et al., 2017): stacked convolutional and recurrent layers on log-mel."""

from __future__ import annotations

from torch import Tensor, nn

from pdmer.nn.baselines._sequence import FrameSequenceNet, pooled_length


class _LogMelConvStack(nn.Module):
    """3x3 convolutions with max pooling over frequency only, then a mean over time."""

    def __init__(self, n_mels: int, channels: int, n_layers: int,
                 freq_pool: int) -> None:
        super().__init__()
        layers, in_channels, width = [], 1, n_mels
        for _ in range(n_layers):
            layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                       nn.ReLU(), nn.MaxPool2d((1, freq_pool), ceil_mode=True)]
            in_channels, width = channels, pooled_length(width, freq_pool)
        self.layers = nn.Sequential(*layers)
        self.out_dim = channels * width

    def forward(self, patches: Tensor) -> Tensor:  # (n, P, M) -> (n, out_dim)
        x = self.layers(patches.unsqueeze(1))  # (n, C, P, M')
        return x.mean(dim=2).flatten(1)


class CRNNNet(FrameSequenceNet):
    """Convolutional recurrent network of Malik et al. (2017) on log-mel patches.

    Each frame's log-mel patch goes through ``n_conv_layers`` blocks of
    ``Conv2d(3x3) -> BatchNorm -> ReLU -> MaxPool over frequency`` (time is
    never pooled, as in the paper), is averaged over the patch's time steps
    and flattened (channels x remaining bands); a stacked bidirectional GRU
    runs over the frames and a small head predicts (arousal, valence).

    Parameters
    ----------
    n_mels : int
        Mel bands of each frame's log-mel patch (any number of time steps).
    conv_channels : int, default=32
    n_conv_layers : int, default=3
    freq_pool : int, default=4
        Max-pooling factor over mel bands in every block.
    rnn_hidden : int, default=32
        GRU size per direction.
    rnn_layers : int, default=2
    dropout : float, default=0.1
    """

    def __init__(self, n_mels: int, conv_channels: int = 32,
                 n_conv_layers: int = 3, freq_pool: int = 4, rnn_hidden: int = 32,
                 rnn_layers: int = 2, dropout: float = 0.1) -> None:
        encoder = _LogMelConvStack(n_mels, conv_channels, n_conv_layers,
                                   freq_pool)
        super().__init__(encoder, encoder.out_dim, "gru", rnn_hidden, rnn_layers, dropout)
