"""The skeleton the baseline networks share: frame encoder, BiRNN over frames, head."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class SequenceOutput(NamedTuple):
    """Output of a :class:`FrameSequenceNet`.

    Attributes
    ----------
    prediction : Tensor of shape (batch, n_frames, 2)
        Predicted (arousal, valence) per frame.
    context : Tensor of shape (batch, n_frames, feature_dim)
        Per-frame features entering the recurrent layers; pass it back as
        ``context=`` to run only the recurrent layers and the head.
    """

    prediction: Tensor
    context: Tensor


class FrameSequenceNet(nn.Module):
    """Per-frame encoder, bidirectional RNN over the 0.5 s frames, linear head.

    The structure every pdmer baseline shares (CRNN, DNN, MCRNN, DAMFF):
    ``encoder`` maps one frame's input (a log-mel patch or a raw waveform
    segment) to a ``feature_dim`` vector; a bidirectional GRU or LSTM runs
    over the frames of a song; ``head`` (``Linear -> ReLU -> Dropout ->
    Linear``) predicts (arousal, valence) per frame. The recurrent layers and
    the head (parameter names ``rnn.*`` and ``head.*``) are what
    ``inner_params="head"`` adapts.

    Padding frames never enter the encoder (so not its BatchNorm statistics)
    nor either RNN direction (packed sequences), so they never change the
    predictions of valid frames.

    Parameters
    ----------
    encoder : nn.Module
        Maps a tensor of shape ``(n, *frame_shape)`` to ``(n, feature_dim)``.
    feature_dim : int
        Size of the encoder's output.
    rnn : {"gru", "lstm"}
    rnn_hidden : int
        Hidden size per direction.
    rnn_layers : int
    dropout : float
        Between stacked RNN layers and in the head.
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, rnn: str, rnn_hidden: int,
                 rnn_layers: int, dropout: float) -> None:
        super().__init__()
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm'; got {rnn!r}.")
        for name, value in (("rnn_hidden", rnn_hidden), ("rnn_layers", rnn_layers),
                            ("feature_dim", feature_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive; got {value}.")
        self.encoder = encoder
        self.feature_dim = feature_dim
        cell = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = cell(feature_dim, rnn_hidden, num_layers=rnn_layers, batch_first=True,
                        bidirectional=True, dropout=dropout if rnn_layers > 1 else 0.0)
        self.head = nn.Sequential(
            nn.Linear(2 * rnn_hidden, rnn_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(rnn_hidden, 2),
        )

    def forward(self, frames: Tensor | None, lengths: Tensor | None = None,
                context: Tensor | None = None) -> SequenceOutput:
        """Predict (arousal, valence) for every frame.

        Parameters
        ----------
        frames : Tensor of shape (batch, n_frames, *frame_shape) or None
            The model's input per frame; may be None when ``context`` is given.
        lengths : LongTensor of shape (batch,), optional
            Valid frames per sequence; None means all.
        context : Tensor of shape (batch, n_frames, feature_dim), optional
            A previous output's ``context``: skips the encoder.

        Returns
        -------
        SequenceOutput
        """
        if context is None:
            context = self._encode(frames, lengths)
        return SequenceOutput(self._decode(context, lengths), context)

    def _encode(self, frames: Tensor, lengths: Tensor | None) -> Tensor:
        batch, n_frames = frames.shape[:2]
        if lengths is None:
            flat = self.encoder(frames.reshape(batch * n_frames, *frames.shape[2:]))
            return flat.reshape(batch, n_frames, -1)
        lengths = torch.as_tensor(lengths, device=frames.device)
        valid = torch.arange(n_frames, device=frames.device) < lengths[:, None]
        features = self.encoder(frames[valid])
        out = features.new_zeros(batch, n_frames, features.shape[-1])
        return out.index_put((valid,), features)

    def _decode(self, context: Tensor, lengths: Tensor | None) -> Tensor:
        n_frames = context.shape[1]
        if lengths is None:
            sequence, _ = self.rnn(context)
        else:
            packed = pack_padded_sequence(context, torch.as_tensor(lengths).cpu(),
                                          batch_first=True, enforce_sorted=False)
            sequence, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                              total_length=n_frames)
        return self.head(sequence)


def pooled_length(size: int, pool: int) -> int:
    """Length after ``MaxPool(pool, ceil_mode=True)``: never 0 for a non-empty input."""
    return -(-size // pool)

