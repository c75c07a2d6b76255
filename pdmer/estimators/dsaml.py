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
    meta_learning : {"fomaml", "maml", "none"}, default="fomaml"
        First-order MAML (the reference), second-order MAML, or plain
        supervised training on the same batches.
    tasks : {"auto", "annotator", "song"}, default="auto"
        Task construction: one task per annotator (the paper's personalized
        construction; needs ``annotators``), or songs with labels averaged
        over annotators (traditional). "auto" picks "annotator" when
        annotator ids are given.
    n_episodes : int, default=2000
        Outer steps.
    tasks_per_step : int, default=16
    n_support, n_query : int, default=1, 15
        Songs per support and query set of a task.
    inner_steps : int, default=16
        SGD steps of the inner loop, and of :meth:`personalize` by default.
    inner_lr : float, default=5e-3
    outer_lr : float, default=5e-5
        Adam learning rate of the outer loop.
    inner_params : {"all", "head"}, default="all"
        Parameters adapted in the inner loop and stored per listener: all
        (the reference) or only the BiLSTM and head (smaller listener files).
    train_window : int or None, default=60
        Training songs are cut to a random window of this many frames (30 s).
    validation_fraction : float, default=0.1
        Share of annotators (or songs) of the training data held out to pick
        the best episode; 0 keeps the last one.
    validation_interval : int, default=50
        Episodes between validations.
    checkpoint_path : str, optional
        Save training state here every ``checkpoint_interval`` episodes; a
        later fit with the same parameters and data resumes from it.
    checkpoint_interval : int, default=100
    predict_batch_size : int, default=8
    features : AudioFeatures, optional
        Front end used when ``X`` holds audio instead of SongFeatures;
        defaults to ``AudioFeatures()``.
    device : {"auto", "cpu", "cuda"}, default="auto"
    mixed_precision : bool, default=True
        bfloat16 autocast on CUDA (ignored on the CPU).
    random_state : int, optional
        Seed for initialisation, task sampling and dropout; runs repeat
        exactly on the CPU.
    verbose : int, default=0
        Show a progress bar of episodes with the running loss.

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
        self.meta_learning = meta_learning
        self.tasks = tasks
        self.n_episodes = n_episodes
        self.tasks_per_step = tasks_per_step
        self.n_support = n_support
        self.n_query = n_query
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.outer_lr = outer_lr
        self.inner_params = inner_params
        self.train_window = train_window
        self.validation_fraction = validation_fraction
        self.validation_interval = validation_interval
        self.checkpoint_path = checkpoint_path
        self.checkpoint_interval = checkpoint_interval
        self.predict_batch_size = predict_batch_size
        self.features = features
        self.device = device
        self.mixed_precision = mixed_precision
        self.random_state = random_state
        self.verbose = verbose

    def architecture(self) -> dict:
        """The network sizes after applying the ``size`` preset and overrides."""
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {tuple(SIZES)}; got {self.size!r}.")
        sizes = dict(SIZES[self.size])
        for name in sizes:
            value = getattr(self, name)
            if value is not None:
                sizes[name] = value
        return sizes

    def _build_network(self, spec):
        return DSAMLNet(
            spec["n_patch_times"], spec["n_mels"], spec["global_dim"], **self.architecture(),
            dropout=self.dropout, local_context=self.local_context,
            global_context=self.global_context, local_attention=self.local_attention,
            global_attention=self.global_attention, adapter=self.adapter)

    def _forward(self, network, state, batch, context=None):
        args = (batch.local, batch.glob, batch.lengths, context)
        out = network(*args) if state is None else functional_call(network, state, args)
        aux = None
        if self.attention_loss_weight and network.training and context is None:
            aux = self.attention_loss_weight * diagonal_attention_loss(
                out.local_attention, out.global_attention, batch.lengths,
                local_target=self.local_target, global_target=self.global_target)
        return out.prediction, aux, out.context
