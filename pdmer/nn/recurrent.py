"""Bidirectional LSTM over padded batches, fused or unrolled for ``torch.func.vmap``.

:func:`torch.func.vmap` has no batching rule for :class:`torch.nn.LSTM` and
cannot batch data-dependent shapes (packing padded sequences needs the
lengths on the host). Inside :func:`vmappable`, pdmer's networks run their
LSTMs as a Python loop over time steps written with batched matrix products
(:func:`unrolled_lstm`) and never branch on tensor values, so a whole
network can be mapped over per-task parameters (see
:mod:`pdmer.meta.vmapped`).
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

_VMAPPABLE = contextvars.ContextVar("pdmer_vmappable", default=False)


@contextlib.contextmanager
def vmappable():
    """Run pdmer's networks with operations :func:`torch.func.vmap` can batch.

    Inside this context LSTMs are unrolled (:func:`unrolled_lstm`) and
    padding masks are always applied instead of being dropped when a batch
    has no padding (a test that would read tensor values).

    Examples
    --------
    >>> from pdmer.nn.recurrent import vmappable
    >>> with vmappable():                                   # doctest: +SKIP
    ...     losses = torch.func.vmap(task_loss)(params, batches)
    """
    token = _VMAPPABLE.set(True)
    try:
        yield
    finally:
        _VMAPPABLE.reset(token)


def is_vmappable() -> bool:
    """Whether the caller is inside :func:`vmappable`."""
    return _VMAPPABLE.get()


def _reverse_valid(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse the first ``lengths[b]`` steps of each sequence; padding stays in place."""
    if lengths is None:
        return x.flip(1)
    n_frames = x.shape[1]
    step = torch.arange(n_frames, device=x.device)
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(step < lengths, lengths - 1 - step, step)
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def unrolled_lstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """A one-layer bidirectional batch-first LSTM as a loop over time steps.

    Equal to running ``lstm`` on the packed sequences (to float rounding):
    the backward direction starts at each sequence's last valid step.
    Outputs at padding steps are meaningless.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        One layer, bidirectional, ``batch_first=True``, with biases. Its
        weights are read as attributes, so :func:`torch.func.functional_call`
        can substitute them.
    x : Tensor of shape (batch, n_frames, input_size)
    lengths : LongTensor of shape (batch,), default=None
        Valid steps per sequence; None means all.

    Returns
    -------
    Tensor of shape (batch, n_frames, 2 * hidden_size)
        Forward and backward hidden states, concatenated.
    """
    if not (lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1 and lstm.bias
            and lstm.proj_size == 0):
        raise ValueError(
            "unrolled_lstm supports one-layer bidirectional batch-first LSTMs with biases "
            "and no projection.")
    hidden = lstm.hidden_size
    # Both directions step together: direction is a leading batch dimension.
    w_ih = torch.stack([lstm.weight_ih_l0, lstm.weight_ih_l0_reverse])
    w_hh = torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse])
    bias = torch.stack([lstm.bias_ih_l0 + lstm.bias_hh_l0,
                        lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse])
    inputs = torch.stack([x, _reverse_valid(x, lengths)])  # (2, B, T, I)
    gates_x = inputs @ w_ih.transpose(1, 2)[:, None] + bias[:, None, None]
    batch, n_frames = x.shape[:2]
    h = c = x.new_zeros(2, batch, hidden)
    states = []
    for t in range(n_frames):
        gates = gates_x[:, :, t] + h @ w_hh.transpose(1, 2)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        states.append(h)
    out = torch.stack(states, dim=2)  # (2, B, T, H)
    return torch.cat([out[0], _reverse_valid(out[1], lengths)], dim=-1)


def bidirectional_lstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Run ``lstm`` over padded sequences, keeping padding out of both directions.

    Uses the fused :class:`torch.nn.LSTM` (packing the batch only when it has
    padding), or :func:`unrolled_lstm` inside :func:`vmappable`.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        Batch-first, bidirectional.
    x : Tensor of shape (batch, n_frames, input_size)
    lengths : LongTensor of shape (batch,), default=None
        Valid steps per sequence; None means all.

    Returns
    -------
    Tensor of shape (batch, n_frames, 2 * hidden_size)
        Outputs at padding steps are zero (fused) or meaningless (unrolled).
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # oneDNN's bfloat16 LSTM backward is 3x slower than float32 on CPUs
        # (measured on AVX512-BF16, benchmarks/scale.md); the LSTM is a few
        # percent of the work, so it stays in float32.
        with torch.autocast("cpu", enabled=False):
            return bidirectional_lstm(lstm, x.float(), lengths)
    if is_vmappable():
        return unrolled_lstm(lstm, x, lengths)
    if lengths is None:
        return lstm(x)[0]
    # Packing keeps padding out of both directions; the backward direction
    # would otherwise start from the padded end.
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]
