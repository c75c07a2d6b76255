"""DSAMLRegressor: the DSAML model of Zhang et al. (AAAI 2025) as an estimator."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from torch.func import functional_call

from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.nn.dsaml import DSAMLNet
from pdmer.nn.losses import diagonal_attention_loss
from pdmer.sklearn_compat import Interval

SIZES = {
    # The paper's model (method.md): about 29 M trainable parameters.
    "paper": dict(d_model=1024, n_heads=16, n_layers=3, d_ff=2048, lstm_hidden=256,
                  head_hidden=256),
    # For CPUs: the same architecture, narrower.
    "small": dict(d_model=128, n_heads=4, n_layers=2, d_ff=256, lstm_hidden=64,
                  head_hidden=64),
}
"""Architectures of the presets selected by ``DSAMLRegressor(size=...)``
(the training settings are in :data:`pdmer.estimators.sizes.TRAINING_PRESETS`)."""


class DSAMLRegressor(BaseEmotionRegressor):
    """Dual-scale attention-based meta-learning (DSAML) for personalized DMER.

    Local log-mel features and global embeddings are fused, passed through
    one transformer under a local and a global band mask, and decoded by a
    BiLSTM into (arousal, valence) every 0.5 s. Meta-learning with one task
    per annotator makes the model adapt to a new listener from one annotated
    song (:meth:`personalize`).

    Parameters
    ----------
    size : {"paper", "small"}, default="paper"
        Preset of the architecture (:data:`SIZES`) and of every
        training setting left at None (:meth:`presets`). "paper" is the
        paper's model and training; "small" fits a CPU.
    d_model, n_heads, n_layers, d_ff, lstm_hidden, head_hidden : int, optional
        Transformer width, heads, layers and feed-forward size; BiLSTM size
        per direction; size of the head's hidden layer.
    dropout : float, default=0.1
    local_context, global_context : int, default=5, 30
        Half-widths in frames of the local and global attention bands.
    local_attention, global_attention : bool, default=True
        Run the transformer under the local / global mask (ablations).
    attention_loss_weight : float, default=1.0
        Weight of the diagonal attention loss; 0 disables it (ablation).
    local_target, global_target : float, default=0.9, 0.1
        Targets of the attention maps' diagonals.
    adapter : bool, default=True
        Use the local spectrogram adapter (False: global embeddings only).
%(shared_parameters)s

    Attributes
    ----------
    network_ : DSAMLNet
        The meta-trained network.
    listener_ : ListenerAdaptation or None
        The current listener's adaptation.
    encoder_ : str
        Name of the global encoder of the training features.
%(training_attributes)s

    Examples
    --------
    >>> from pdmer import DSAMLRegressor
    >>> model = DSAMLRegressor(size="small", n_episodes=100, random_state=0)
    >>> model.fit(X, y, annotators=annotators)              # doctest: +SKIP
    >>> model.personalize([my_song], [my_labels])           # doctest: +SKIP
    >>> curves = model.predict(other_songs)                 # doctest: +SKIP
    """

    _head_prefixes = ("lstm.", "head.")
    _architectures = SIZES
    _batchable_tasks = True
    # float32, one thread, 2026-11 (benchmarks/scale.md: a paper-size FOMAML task).
    _cpu_seconds_per_task = {"paper": 5.0}  # the network runs under torch.func.vmap (pdmer.nn.recurrent)
    _parameter_constraints = {
        **BaseEmotionRegressor._parameter_constraints,
        **{name: [Interval(Integral, 1, None, closed="left"), None]
           for name in ("d_model", "n_heads", "n_layers", "d_ff", "lstm_hidden", "head_hidden")},
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "local_context": [Interval(Integral, 0, None, closed="left")],
        "global_context": [Interval(Integral, 0, None, closed="left")],
        "local_attention": ["boolean"],
        "global_attention": ["boolean"],
        "attention_loss_weight": [Interval(Real, 0, np.inf, closed="left")],
        "local_target": [Interval(Real, 0, 1, closed="both")],
        "global_target": [Interval(Real, 0, 1, closed="both")],
        "adapter": ["boolean"],
    }

    def __init__(self, size="paper", d_model=None, n_heads=None, n_layers=None, d_ff=None,
                 lstm_hidden=None, head_hidden=None, dropout=0.1, local_context=5,
                 global_context=30, local_attention=True, global_attention=True,
                 attention_loss_weight=1.0, local_target=0.9, global_target=0.1, adapter=True,
                 meta_learning=None, tasks="auto", n_episodes=None, tasks_per_step=None,
                 n_support=1, n_query=None, inner_steps=None, inner_lr=None, outer_lr=None,
                 inner_params=None, train_window=None, validation_fraction=0.1,
                 validation_interval=None, patience=None, max_grad_norm=None,
                 input_normalization=None, checkpoint_path=None, checkpoint_interval=100,
                 predict_batch_size=8, front_end=None, frame_offset=None, device="auto",
                 precision="auto", task_batching="auto", distributed="auto",
                 random_state=None, verbose="auto"):
        self.size = size
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.d_ff = d_ff
        self.lstm_hidden = lstm_hidden
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.local_context = local_context
        self.global_context = global_context
        self.local_attention = local_attention
        self.global_attention = global_attention
        self.attention_loss_weight = attention_loss_weight
        self.local_target = local_target
        self.global_target = global_target
        self.adapter = adapter
        super().__init__(**self._shared(locals()))

    def _build_network(self, spec):
        return self._assemble(DSAMLNet(
            spec["n_patch_times"], spec["n_mels"], spec["global_dim"], **self.architecture(),
            dropout=self.dropout, local_context=self.local_context,
            global_context=self.global_context, local_attention=self.local_attention,
            global_attention=self.global_attention, adapter=self.adapter), spec)

    def _forward(self, network, state, batch, context=None):
        # Attention maps only where the diagonal loss needs them.
        attention_loss = bool(self.attention_loss_weight) and network.training and context is None
        args = (batch.local_patches, batch.global_embeddings, batch.lengths, context,
                attention_loss)
        out = network(*args) if state is None else functional_call(network, state, args)
        aux = None
        if attention_loss:
            aux = self.attention_loss_weight * diagonal_attention_loss(
                out.local_attention, out.global_attention, batch.lengths,
                local_target=self.local_target, global_target=self.global_target,
                layout="band")
        return out.prediction, aux, out.context
