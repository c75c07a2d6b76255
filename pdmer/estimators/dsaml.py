"""DSAMLRegressor: the DSAML model of Zhang et al. (AAAI 2025) as an estimator."""

from __future__ import annotations

from torch.func import functional_call

from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.nn.dsaml import DSAMLNet
from pdmer.nn.losses import diagonal_attention_loss

SIZES = {
    # The paper's model (method.md): about 29 M trainable parameters.
    "paper": dict(d_model=1024, n_heads=16, n_layers=3, d_ff=2048, lstm_hidden=256,
                  head_hidden=256),
    # For CPUs: the same architecture, narrower.
    "small": dict(d_model=128, n_heads=4, n_layers=2, d_ff=256, lstm_hidden=64,
                  head_hidden=64),
}
"""Architecture presets selected by ``DSAMLRegressor(size=...)``."""


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
        Architecture preset (see :data:`SIZES`); the size parameters below
        override it when not None.
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
    history_ : dict
        Training loss per episode and validation CCC.
    encoder_ : str
        Name of the global encoder of the training features.

    Examples
    --------
    >>> from pdmer import DSAMLRegressor
    >>> model = DSAMLRegressor(size="small", n_episodes=100, random_state=0)
    >>> model.fit(X, y, annotators=annotators)              # doctest: +SKIP
    >>> model.personalize([my_song], [my_labels])           # doctest: +SKIP
    >>> curves = model.predict(other_songs)                 # doctest: +SKIP
    """

    _head_prefixes = ("lstm.", "head.")
    _sizes = SIZES

    def __init__(self, size="paper", d_model=None, n_heads=None, n_layers=None, d_ff=None,
                 lstm_hidden=None, head_hidden=None, dropout=0.1, local_context=5,
                 global_context=30, local_attention=True, global_attention=True,
                 attention_loss_weight=1.0, local_target=0.9, global_target=0.1, adapter=True,
                 meta_learning="fomaml", tasks="auto", n_episodes=2000, tasks_per_step=16,
                 n_support=1, n_query=15, inner_steps=16, inner_lr=5e-3, outer_lr=5e-5,
                 inner_params="all", train_window=60, validation_fraction=0.1,
                 validation_interval=50, checkpoint_path=None, checkpoint_interval=100,
                 predict_batch_size=8, features=None, device="auto", mixed_precision=True,
                 random_state=None, verbose=0):
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
        super().__init__(
            meta_learning=meta_learning, tasks=tasks, n_episodes=n_episodes,
            tasks_per_step=tasks_per_step, n_support=n_support, n_query=n_query,
            inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr,
            inner_params=inner_params, train_window=train_window,
            validation_fraction=validation_fraction, validation_interval=validation_interval,
            checkpoint_path=checkpoint_path, checkpoint_interval=checkpoint_interval,
            predict_batch_size=predict_batch_size, features=features, device=device,
            mixed_precision=mixed_precision, random_state=random_state, verbose=verbose)

    def _build_network(self, spec):
        return DSAMLNet(
            spec["n_patch_times"], spec["n_mels"], spec["global_dim"], **self.architecture(),
            dropout=self.dropout, local_context=self.local_context,
            global_context=self.global_context, local_attention=self.local_attention,
            global_attention=self.global_attention, adapter=self.adapter)

    def _forward(self, network, state, batch, context=None):
        # Attention maps only where the diagonal loss needs them.
        attention_loss = bool(self.attention_loss_weight) and network.training and context is None
        args = (batch.local, batch.glob, batch.lengths, context, attention_loss)
        out = network(*args) if state is None else functional_call(network, state, args)
        aux = None
        if attention_loss:
            aux = self.attention_loss_weight * diagonal_attention_loss(
                out.local_attention, out.global_attention, batch.lengths,
                local_target=self.local_target, global_target=self.global_target,
                layout="band")
        return out.prediction, aux, out.context
