"""Transformer encoder with relative-key positions and banded self-attention.

Attention is written out explicitly instead of calling
:func:`torch.nn.functional.scaled_dot_product_attention`: the fused kernels
have no double backward (needed by second-order MAML) and return no attention
weights (needed by the diagonal attention loss).

A query attends only to the keys of its band ``|i - j| <= band``, and only
that band is computed: queries are cut into blocks of ``block`` frames and
each block is scored against the ``block + 2 * band`` keys that its band can
reach. Time and memory grow linearly with the sequence length, so songs of
any length are attended in one pass. The attention weights come back in
*band layout*: ``weights[..., i, band + d]`` is the weight of query ``i`` on
key ``i + d`` (:func:`band_to_dense` expands them to a ``(T, T)`` map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
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


def band_to_dense(weights: Tensor) -> Tensor:
    """Expand band-layout attention weights to a dense ``(T, T)`` map.

    Parameters
    ----------
    weights : Tensor of shape (..., n_frames, 2 * band + 1)
        Weights in band layout, as returned by :class:`RelativeSelfAttention`:
        ``weights[..., i, band + d]`` is the weight of query ``i`` on key
        ``i + d``.

    Returns
    -------
    Tensor of shape (..., n_frames, n_frames)
        ``dense[..., i, j]``: the weight of query ``i`` on key ``j``, zero
        outside the band.

    Examples
    --------
    >>> import torch
    >>> band_to_dense(torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]))
    tensor([[1.0000, 0.0000],
            [0.5000, 0.5000]])
    """
    n_frames, width = weights.shape[-2], weights.shape[-1]
    if width % 2 != 1:
        raise ValueError(
            f"Band-layout weights have an odd last dimension (2 * band + 1); got {width}."
        )
    band = width // 2
    key = torch.arange(n_frames, device=weights.device)
    column = key[None, :] - key[:, None] + band  # band column of key j in row i
    inside = (column >= 0) & (column <= 2 * band)
    index = column.clamp(0, 2 * band).expand(*weights.shape[:-1], n_frames)
    return weights.gather(-1, index) * inside


def _block_size(band: int) -> int:
    # Blocks of about twice the band: at most half of the scored pairs lie
    # outside the band, and the matrix products stay large enough to be
    # efficient for narrow bands.
    return max(2 * band, 16)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with clipped relative-key position scores.

    Scores follow BERT's ``relative_key`` variant: every query also scores a
    learned embedding of its distance to the key,
    ``(q_i . k_j + q_i . E[i - j]) / sqrt(head_dim)``. Unlike BERT, distances
    are clipped to ``[-max_relative_position, max_relative_position]``, so
    sequences of any length are accepted; under a band no wider than
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

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of ``x``, each (batch, n_heads, n_frames, head_dim)."""
        return (self._split_heads(self.query(x)), self._split_heads(self.key(x)),
                self._split_heads(self.value(x)))

    def forward(
        self,
        x: Tensor,
        band: int | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend over the sequence.

        Parameters
        ----------
        x : Tensor of shape (batch, n_frames, d_model)
            Input sequence.
        band : int, default=None
            Largest distance ``|i - j|`` between a query and the keys it
            attends to; None attends to every key.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames, which no query attends to. A query with
            no allowed key (a padding frame far from valid ones) gets zero
            weights and a zero context.
        need_weights : bool, default=False
            Also return the attention weights.

        Returns
        -------
        output : Tensor of shape (batch, n_frames, d_model)
            Attended sequence after the output projection.
        weights : Tensor of shape (batch, n_heads, n_frames, 2 * band + 1) or None
            Attention weights after the softmax and before dropout, in band
            layout (see :func:`band_to_dense`; ``band = n_frames - 1`` when
            ``band`` is None). None unless ``need_weights``.
        """
        context, weights = self.attend(*self.project(x), band, key_padding_mask, need_weights)
        return self.output(context), weights

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        band: int | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Banded attention of projected queries, keys and values.

        The part of :meth:`forward` between the input and the output
        projections; returns the context (batch, n_frames, d_model), before
        the output projection, and the weights as in :meth:`forward`.
        """
        if band is not None and (isinstance(band, Tensor) or band < 0):
            raise TypeError(
                "band must be a non-negative int (the largest query-key distance); got "
                f"{band!r}. Arbitrary (T, T) masks are not supported: attention is "
                "computed for a band only."
            )
        batch, n_heads, n_frames, head_dim = q.shape
        band = max(n_frames - 1, 0) if band is None else band
        block = _block_size(band)
        n_blocks = -(-n_frames // block)
        if n_blocks == 1:
            # One block: score every key, as a dense masked attention would.
            block, front, window = n_frames, 0, n_frames
        else:
            front, window = band, block + 2 * band
        padded_frames = n_blocks * block
        back = padded_frames - n_frames + 2 * band - front if n_blocks > 1 else 0

        # Query a of block n is frame n * block + a; key c of its window is
        # frame n * block - front + c.
        q_blocks = F.pad(q, (0, 0, 0, padded_frames - n_frames)).reshape(
            batch, n_heads, n_blocks, block, head_dim)
        k_windows = _key_windows(k, n_blocks, block, front, padded_frames)
        v_windows = _key_windows(v, n_blocks, block, front, padded_frames)
        scores = q_blocks @ k_windows.transpose(-1, -2)  # (B, H, n_blocks, block, window)

        # Relative-key term: each query scores the 2 L + 1 clipped distances,
        # then every pair picks its own; i - j = a - c + front in every block.
        limit = self.max_relative_position
        relative = q_blocks @ self.distance_embedding.weight.T
        a = torch.arange(block, device=q.device)[:, None]
        c = torch.arange(window, device=q.device)[None, :]
        distance = a - c + front
        index = distance.clamp(-limit, limit) + limit
        scores = scores + relative.gather(-1, index.expand(*scores.shape))
        scores = scores / math.sqrt(head_dim)

        # Allowed pairs: within the band and a real, non-padding key.
        allowed = distance.abs() <= band  # (block, window)
        key_valid = torch.ones(n_frames, dtype=torch.bool, device=q.device)
        if key_padding_mask is not None:
            key_valid = ~key_padding_mask  # (B, T)
        key_valid = F.pad(key_valid, (front, back), value=False).unfold(-1, window, block)
        if key_padding_mask is None:
            allowed = (allowed & key_valid[:, None, :])[None, None]
        else:
            allowed = (allowed & key_valid[:, :, None, :])[:, None]
        # A finite fill, not -inf, so a query with no allowed key gets no NaN.
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        if key_padding_mask is not None:
            weights = weights * allowed.any(dim=-1, keepdim=True)

        context = self.dropout(weights) @ v_windows  # (B, H, n_blocks, block, head_dim)
        context = context.reshape(batch, n_heads, padded_frames, head_dim)[:, :, :n_frames]
        context = context.transpose(1, 2).reshape(batch, n_frames, n_heads * head_dim)
        if not need_weights:
            return context, None
        return context, _to_band_layout(weights, band, front, n_frames)


def _key_windows(x: Tensor, n_blocks: int, block: int, front: int, padded_frames: int) -> Tensor:
    """The keys (or values) each block of queries sees: (B, H, n_blocks, block + 2 front, D).

    Window ``n`` holds frames ``n * block - front`` to ``(n + 1) * block + front - 1``
    (zeros outside the song): the ``front`` frames before block ``n``, the
    block, and the ``front`` frames after it (``front <= block``). Built from
    three non-overlapping block views instead of ``Tensor.unfold``, whose
    backward pass (a scatter-add over overlapping windows) is slow on CPUs.
    """
    batch, n_heads, n_frames, head_dim = x.shape
    if n_blocks == 1:
        return x[:, :, None]
    span = n_blocks * block
    # Row r of the padded keys is frame r - front.
    padded = F.pad(x, (0, 0, front, padded_frames - n_frames + block))

    def blocks(start):
        return padded[:, :, start: start + span].reshape(batch, n_heads, n_blocks, block, head_dim)

    return torch.cat([blocks(0)[..., :front, :], blocks(front),
                      blocks(front + block)[..., :front, :]], dim=3)


def _to_band_layout(weights: Tensor, band: int, front: int, n_frames: int) -> Tensor:
    """Block-window weights (B, H, n_blocks, block, window) -> (B, H, T, 2 band + 1)."""
    batch, n_heads, n_blocks, block, window = weights.shape
    # Key i - band + m of query a sits at window column a + front - band + m;
    # with one block (front = 0) that can fall before the window: pad it.
    shift = band - front
    weights = F.pad(weights, (shift, max(block + band + front - window, 0)))
    columns = (torch.arange(block, device=weights.device)[:, None]
               + torch.arange(2 * band + 1, device=weights.device)[None, :])
    band_weights = weights.gather(-1, columns.expand(batch, n_heads, n_blocks, -1, -1))
    return band_weights.reshape(batch, n_heads, n_blocks * block, 2 * band + 1)[:, :, :n_frames]


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
        bands: Sequence[int | None] = (None,),
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
        shared_input: bool = False,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Apply the layer once per band.

        Parameters
        ----------
        x : Tensor of shape (n_bands * batch, n_frames, d_model)
            One input sequence batch per band, stacked band after band; with
            ``shared_input`` a single (batch, n_frames, d_model) batch that
            every band reads.
        bands : sequence of int or None, default=(None,)
            Band of each pass, see :meth:`RelativeSelfAttention.forward`.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames.
        need_weights : bool, default=False
            Also return each pass's attention weights.
        shared_input : bool, default=False
            All passes read the same ``x``: its queries, keys and values are
            computed once.

        Returns
        -------
        output : Tensor of shape (n_bands * batch, n_frames, d_model)
            Layer output of every pass, stacked band after band.
        weights : list of Tensor or None
            Attention weights of each pass in band layout, or None each
            unless ``need_weights``.
        """
        q, k, v = self.attention.project(x)
        batch = q.shape[0] if shared_input else q.shape[0] // len(bands)
        contexts, weights = [], []
        for n, band in enumerate(bands):
            part = slice(0, batch) if shared_input else slice(n * batch, (n + 1) * batch)
            context, band_weights = self.attention.attend(
                q[part], k[part], v[part], band, key_padding_mask, need_weights)
            contexts.append(context)
            weights.append(band_weights)
        attended = self.attention.output(torch.cat(contexts))
        if shared_input:
            x = x.repeat(len(bands), 1, 1)
        h = self.attention_norm(x + self.attention_dropout(attended))
        out = self.feed_forward_norm(h + self.feed_forward_dropout(self.feed_forward(h)))
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
        bands: Sequence[int | None] = (None,),
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[list[Tensor], list[Tensor | None]]:
        """Run all layers once per band, over the same input.

        The passes share the encoder's weights and differ only in their band
        (DSAML's local and global pass). Running them together computes the
        first layer's queries, keys and values once and multiplies the
        passes' rows by each weight matrix in one product.

        Parameters
        ----------
        x : Tensor of shape (batch, n_frames, d_model)
            Input sequence.
        bands : sequence of int or None, default=(None,)
            Band of each pass: the largest attended query-key distance, None
            for no limit.
        key_padding_mask : Tensor of shape (batch, n_frames), dtype bool, default=None
            True at padding frames.
        need_weights : bool, default=False
            Also return the last layer's attention weights of each pass.

        Returns
        -------
        outputs : list of Tensor of shape (batch, n_frames, d_model)
            Output of the last layer, one per band.
        weights : list of Tensor of shape (batch, n_heads, n_frames, 2 * band + 1) or None
            Last-layer attention weights of each pass in band layout (see
            :func:`band_to_dense`), or None each unless ``need_weights``.
        """
        bands = list(bands)
        if not bands:
            raise ValueError("bands must name at least one band.")
        weights = [None] * len(bands)
        for n, layer in enumerate(self.layers):
            last = n == len(self.layers) - 1
            x, weights = layer(x, bands, key_padding_mask, need_weights and last,
                               shared_input=n == 0)
        return list(x.chunk(len(bands))), weights
