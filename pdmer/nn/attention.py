"""Transformer encoder with relative-key positions and banded self-attention.

Attention is written out explicitly instead of calling
:func:`torch.nn.functional.scaled_dot_product_attention`: the fused kernels
have no double backward (needed by second-order MAML) and return no attention
weights (needed by the diagonal attention loss).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def band_mask(n: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean mask of the positions within ``width`` frames of each other.

    Parameters
    ----------
    n : int
        Sequence length.
    width : int
        Largest allowed distance ``|i - j|``.
    device : torch.device or str, default=None
        Device of the returned mask.

    Returns
    -------
    Tensor of shape (n, n) and dtype bool
        True where query ``i`` may attend to key ``j``, i.e. ``|i - j| <= width``.
    """
    if width < 0:
        raise ValueError(f"width must be non-negative; got {width}.")
    position = torch.arange(n, device=device)
    return (position[:, None] - position[None, :]).abs() <= width


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with clipped relative-key position scores.

    Scores follow BERT's ``relative_key`` variant: every query also scores a
    learned embedding of its distance to the key,
    ``(q_i . k_j + q_i . E[i - j]) / sqrt(head_dim)``. Unlike BERT, distances
    are clipped to ``[-max_relative_position, max_relative_position]``, so
    sequences of any length are accepted; under a band mask no wider than
    ``max_relative_position`` the clipping never affects an allowed pair.

    Parameters
    ----------
    d_model : int
        Input and output feature size.
    n_heads : int
        Number of attention heads; must divide ``d_model``.
    dropout : float, default=0.1
        Dropout on the attention weights.
    max_relative_position : int, default=30
        Largest distinguished distance between query and key.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.1,
        max_relative_position: int = 30,
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})."
            )
        if max_relative_position < 0:
            raise ValueError(
                "max_relative_position must be non-negative; got "
                f"{max_relative_position}."
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.max_relative_position = max_relative_position
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.output = nn.Linear(d_model, d_model)
        # One embedding per clipped distance, shared by all heads (as in BERT).
        self.distance_embedding = nn.Embedding(
            2 * max_relative_position + 1, self.head_dim
        )
        nn.init.normal_(self.distance_embedding.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, n_frames, _ = x.shape
        return x.view(batch, n_frames, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attend over the sequence.

        Parameters
        ----------
        x : Tensor of shape (batch, n_frames, d_model)
            Input sequence.
        allowed : Tensor of shape (n_frames, n_frames), dtype bool, default=None
            True where query ``i`` may attend to key ``j`` (e.g. a
            :func:`band_mask`). None allows every pair.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames, which no query attends to.

        Returns
        -------
        output : Tensor of shape (batch, n_frames, d_model)
            Attended sequence after the output projection.
        weights : Tensor of shape (batch, n_heads, n_frames, n_frames)
            Attention weights after the softmax and before dropout.
        """
        batch, n_frames, _ = x.shape
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))

        scores = q @ k.transpose(-1, -2)
        # Score each query against the 2 * max_relative_position + 1 distance
        # embeddings, then pick each pair's distance: equal to BERT's einsum
        # over a (T, T, head_dim) table without materialising that table.
        relative = q @ self.distance_embedding.weight.T
        position = torch.arange(n_frames, device=x.device)
        limit = self.max_relative_position
        distance = (position[:, None] - position[None, :]).clamp(-limit, limit) + limit
        scores = scores + relative.gather(
            -1, distance.expand(batch, self.n_heads, n_frames, n_frames)
        )
        scores = scores / math.sqrt(self.head_dim)

        blocked = None
        if allowed is not None:
            blocked = ~allowed
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, None, :]
            blocked = padding if blocked is None else blocked | padding
        if blocked is not None:
            # A finite fill, not -inf: a query whose every key is blocked (a
            # padding frame far from valid ones) gets uniform weights instead
            # of NaN, and blocked keys still get exactly zero weight elsewhere.
            scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)

        context = self.dropout(weights) @ v
        context = context.transpose(1, 2).reshape(batch, n_frames, self.d_model)
        return self.output(context), weights


class TransformerEncoderLayer(nn.Module):
    """Post-LayerNorm transformer encoder layer (as in BERT).

    ``h = LayerNorm(x + Dropout(Attention(x)))`` followed by
    ``out = LayerNorm(h + Dropout(Linear(GELU(Linear(h)))))``.

    Parameters
    ----------
    d_model : int
        Feature size.
    n_heads : int
        Number of attention heads; must divide ``d_model``.
    d_ff : int
        Hidden size of the feed-forward block.
    dropout : float, default=0.1
        Dropout on the attention weights and on both residual branches.
    max_relative_position : int, default=30
        Largest distinguished query-key distance, see
        :class:`RelativeSelfAttention`.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        max_relative_position: int = 30,
    ) -> None:
        super().__init__()
        self.attention = RelativeSelfAttention(
            d_model, n_heads, dropout, max_relative_position
        )
        self.attention_dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model)
        )
        self.feed_forward_dropout = nn.Dropout(dropout)
        self.feed_forward_norm = nn.LayerNorm(d_model)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Apply the layer.

        Parameters
        ----------
        x : Tensor of shape (batch, n_frames, d_model)
            Input sequence.
        allowed : Tensor of shape (n_frames, n_frames), dtype bool, default=None
            Allowed query-key pairs, see :meth:`RelativeSelfAttention.forward`.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames.

        Returns
        -------
        output : Tensor of shape (batch, n_frames, d_model)
            Layer output.
        weights : Tensor of shape (batch, n_heads, n_frames, n_frames)
            Attention weights of this layer.
        """
        attended, weights = self.attention(x, allowed, key_padding_mask)
        h = self.attention_norm(x + self.attention_dropout(attended))
        out = self.feed_forward_norm(
            h + self.feed_forward_dropout(self.feed_forward(h))
        )
        return out, weights


class TransformerEncoder(nn.Module):
    """Stack of :class:`TransformerEncoderLayer`.

    Parameters
    ----------
    n_layers : int
        Number of layers.
    d_model : int
        Feature size.
    n_heads : int
        Number of attention heads; must divide ``d_model``.
    d_ff : int
        Hidden size of the feed-forward blocks.
    dropout : float, default=0.1
        Dropout of every layer.
    max_relative_position : int, default=30
        Largest distinguished query-key distance, see
        :class:`RelativeSelfAttention`.
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        max_relative_position: int = 30,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1; got {n_layers}.")
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                d_model, n_heads, d_ff, dropout, max_relative_position
            )
            for _ in range(n_layers)
        )

    def forward(
        self,
        x: Tensor,
        allowed: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Apply all layers with the same masks.

        Parameters
        ----------
        x : Tensor of shape (batch, n_frames, d_model)
            Input sequence.
        allowed : Tensor of shape (n_frames, n_frames), dtype bool, default=None
            Allowed query-key pairs, see :meth:`RelativeSelfAttention.forward`.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames.

        Returns
        -------
        output : Tensor of shape (batch, n_frames, d_model)
            Output of the last layer.
        weights : list of Tensor of shape (batch, n_heads, n_frames, n_frames)
            Attention weights of each layer, first layer first.
        """
        weights = []
        for layer in self.layers:
            x, layer_weights = layer(x, allowed, key_padding_mask)
            weights.append(layer_weights)
        return x, weights
