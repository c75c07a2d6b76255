"""The DSAML network: feature fusion, dual-scale attention and a BiLSTM head."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from pdmer.nn.adapter import LocalSpectrogramAdapter
from pdmer.nn.attention import TransformerEncoder
from pdmer.nn.recurrent import bidirectional_lstm, is_vmappable


class DSAMLOutput(NamedTuple):
    """Output of :class:`DSAMLNet`.

    Attributes
    ----------
    prediction : Tensor of shape (batch, n_frames, 2)
        Predicted (arousal, valence) per frame.
    local_attention : Tensor of shape (batch, n_heads, n_frames, 2 * local_context + 1) or None
        Last-layer attention weights of the local (narrow band) pass in band
        layout (:func:`pdmer.nn.attention.band_to_dense` expands them to
        ``(n_frames, n_frames)``); None unless requested with
        ``return_attention=True`` and the pass is enabled.
    global_attention : Tensor of shape (batch, n_heads, n_frames, 2 * global_context + 1) or None
        The same for the global (wide band) pass.
    context : Tensor of shape (batch, n_frames, d_model)
        The dual-scale attention output that enters the BiLSTM head; pass it
        back as ``context=`` to run only the head.
    """

    prediction: Tensor
    local_attention: Tensor | None
    global_attention: Tensor | None
    context: Tensor | None = None


class DSAMLNet(nn.Module):
    """Dual-scale attention network of DSAML (Zhang et al., AAAI 2025).

    Per frame, local features from the :class:`LocalSpectrogramAdapter` and
    the global embedding ``g`` are fused into
    ``H = W_fuse(sigmoid(W_spec(adapter(local)) + g))``. One
    :class:`TransformerEncoder` runs twice over ``H``: with attention limited
    to ``|i - j| <= local_context`` and to ``|i - j| <= global_context``. The
    sum of both outputs goes through a sigmoid, then a BiLSTM and a two-layer
    head predict (arousal, valence) per frame.

    Parameters
    ----------
    n_patch_times : int
        Time steps per log-mel patch.
    n_mels : int
        Mel bands per log-mel patch.
    global_dim : int
        Size of the global embeddings. When it differs from ``d_model`` a
        linear layer projects them to ``d_model``; the paper feeds 1024-d
        ImageBind embeddings straight into a 1024-d model, but other global
        encoders and small model sizes need the projection.
    d_model : int, default=1024
        Transformer feature size.
    n_heads : int, default=16
        Attention heads; must divide ``d_model``.
    n_layers : int, default=3
        Transformer layers.
    d_ff : int, default=2048
        Feed-forward hidden size of the transformer.
    dropout : float, default=0.1
        Dropout in the transformer and in the head.
    local_context : int, default=5
        Attention band half-width of the local pass, in frames.
    global_context : int, default=30
        Attention band half-width of the global pass, in frames; also the
        largest distinguished relative position.
    lstm_hidden : int, default=256
        BiLSTM hidden size per direction.
    head_hidden : int, default=256
        Hidden size of the output head.
    local_attention : bool, default=True
        Run the local pass. False is the paper's "w.o. local attention"
        ablation.
    global_attention : bool, default=True
        Run the global pass. False is the paper's "w.o. global attention"
        ablation.
    adapter : bool, default=True
        Use the local spectrogram branch. False is the paper's "w.o. Adapter"
        ablation, ``H = W_fuse(sigmoid(g))``; the adapter and ``W_spec`` are
        then not created and ``local_patches`` is not used.

    Notes
    -----
    Differences from the reference implementation:

    * The head is ``Linear -> ReLU -> Dropout -> Linear``; the reference has
      no nonlinearity between its two linear layers, which then collapse to
      a single linear map.
    * With one pass disabled the output is still squashed by a sigmoid, so
      the head sees the same value range in every configuration (the
      reference skips the sigmoid then).
    * Padded batches are supported: padding frames are excluded from the
      adapter's BatchNorm statistics, from attention and from the BiLSTM, so
      they never change the predictions of valid frames.

    Only the attention band is computed (memory and time linear in the
    song length), attention maps are kept only when asked for, and both
    passes run through the encoder together (see
    :meth:`TransformerEncoder.forward`).
    """

    def __init__(
        self,
        n_patch_times: int,
        n_mels: int,
        global_dim: int,
        d_model: int = 1024,
        n_heads: int = 16,
        n_layers: int = 3,
        d_ff: int = 2048,
        dropout: float = 0.1,
        local_context: int = 5,
        global_context: int = 30,
        lstm_hidden: int = 256,
        head_hidden: int = 256,
        local_attention: bool = True,
        global_attention: bool = True,
        adapter: bool = True,
    ) -> None:
        super().__init__()
        if not (local_attention or global_attention):
            raise ValueError(
                "At least one of local_attention and global_attention must be "
                "True; both are False."
            )
        if local_context < 0 or global_context < 0:
            raise ValueError(
                "local_context and global_context must be non-negative; got "
                f"{local_context} and {global_context}."
            )
        self.local_context = local_context
        self.global_context = global_context
        self.local_attention = local_attention
        self.global_attention = global_attention

        self.global_proj = (
            nn.Identity() if global_dim == d_model else nn.Linear(global_dim, d_model)
        )
        if adapter:
            self.adapter = LocalSpectrogramAdapter(n_patch_times, n_mels)
            self.spec_proj = nn.Linear(self.adapter.out_dim, d_model)
        else:
            self.adapter = None
            self.spec_proj = None
        self.fuse_proj = nn.Linear(d_model, d_model)

        # Both passes share this encoder; positions are distinguished up to
        # the wider band, beyond which no pair is ever attended.
        self.encoder = TransformerEncoder(
            n_layers, d_model, n_heads, d_ff, dropout, global_context
        )

        self.lstm = nn.LSTM(
            d_model, lstm_hidden, batch_first=True, bidirectional=True
        )
        self.head = nn.Sequential(
            nn.Linear(2 * lstm_hidden, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, 2),
        )

    def forward(
        self,
        local_patches: Tensor | None,
        global_embeddings: Tensor | None,
        lengths: Tensor | None = None,
        context: Tensor | None = None,
        return_attention: bool = False,
    ) -> DSAMLOutput:
        """Predict arousal and valence for every frame.

        Parameters
        ----------
        local_patches : Tensor of shape (batch, n_frames, n_patch_times, n_mels) or None
            Log-mel patch of each frame. May be None only when the network
            was built with ``adapter=False``.
        global_embeddings : Tensor of shape (batch, n_frames, global_dim)
            Global embedding of each frame.
        lengths : LongTensor of shape (batch,), default=None
            Number of valid frames of each sequence; the rest is padding.
            None means every frame is valid.
        context : Tensor of shape (batch, n_frames, d_model), default=None
            A previous output's ``context``: skips everything before the
            BiLSTM head. Adapting only the head (ANIL-style) reuses it for
            every inner step, since the frozen part's output cannot change.
        return_attention : bool, default=False
            Also return the last-layer attention weights of each pass (for
            the diagonal attention loss). Other layers' weights are never
            kept.

        Returns
        -------
        DSAMLOutput
            Per-frame predictions, the attention weights if requested and
            the context. Predictions at padding frames are meaningless.
        """
        source = global_embeddings if context is None else context
        batch, n_frames, _ = source.shape
        device = source.device
        padding = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=device)
            padding = torch.arange(n_frames, device=device) >= lengths[:, None]
            # Without padding the masks and the LSTM packing are pure cost.
            # (Under vmap the test would read a batched value: keep the masks.)
            if not is_vmappable() and not bool(padding.any()):
                lengths = padding = None
        local_map = global_map = None
        if context is None:
            context, local_map, global_map = self._attend(
                local_patches, global_embeddings, padding, return_attention)
        prediction = self.head(bidirectional_lstm(self.lstm, context, lengths))
        return DSAMLOutput(prediction, local_map, global_map, context)

    def _attend(self, local_patches, global_embeddings, padding, return_attention):
        """Fusion and dual-scale attention: (context, local map, global map)."""
        fused = self.global_proj(global_embeddings)
        if self.adapter is not None:
            if local_patches is None:
                raise ValueError(
                    "local_patches is required unless the network was built "
                    "with adapter=False."
                )
            valid = None if padding is None else ~padding
            fused = fused + self.spec_proj(self.adapter(local_patches, valid))
        hidden = self.fuse_proj(torch.sigmoid(fused))

        bands = []
        if self.local_attention:
            bands.append(self.local_context)
        if self.global_attention:
            bands.append(self.global_context)
        outputs, maps = self.encoder(hidden, bands, padding, return_attention)
        local_map = maps[0] if self.local_attention else None
        global_map = maps[-1] if self.global_attention else None
        return torch.sigmoid(sum(outputs)), local_map, global_map
