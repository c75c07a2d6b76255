"""The DMER baselines of the DSAML paper as estimators: CRNN, DNN, MCRNN, DAMFF.

They share everything with :class:`~pdmer.estimators.DSAMLRegressor` except
the network: the same ``fit`` / ``personalize`` / ``predict`` / ``save``,
meta-learning options (``meta_learning="fomaml"`` gives the paper's "trained
with MAML" rows, ``"none"`` the plain ones) and scikit-learn behaviour. No
official code was published for any of them; the networks
(:mod:`pdmer.nn.baselines`) follow each paper's description, and every
docstring lists what is pdmer's interpretation.
"""

from __future__ import annotations

from numbers import Integral, Real

from torch.func import functional_call

from pdmer.estimators._params import TRAINING_ATTRIBUTES
from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.nn.baselines import CRNNNet, DAMFFNet, DNNNet, MCRNNNet
from pdmer.sklearn_compat import Interval

CRNN_SIZES = {
    "paper": dict(conv_channels=32, n_conv_layers=3, rnn_hidden=32, rnn_layers=2),
    "small": dict(conv_channels=16, n_conv_layers=2, rnn_hidden=16, rnn_layers=1),
}
DNN_SIZES = {
    "paper": dict(conv_channels=64, n_conv_layers=3, rnn_hidden=64, rnn_layers=2),
    "small": dict(conv_channels=16, n_conv_layers=2, rnn_hidden=16, rnn_layers=1),
}
MCRNN_SIZES = {
    "paper": dict(view_kernels=(16, 64, 256), conv_channels=64, fusion_dim=128, rnn_hidden=128),
    "small": dict(view_kernels=(16, 64, 256), conv_channels=16, fusion_dim=32, rnn_hidden=32),
}
DAMFF_SIZES = {
    "paper": dict(conv_channels=32, scales=(3, 5, 7), rnn_hidden=128),
    "small": dict(conv_channels=8, scales=(3, 5), rnn_hidden=32),
}


def _sizes_constraints(*names):
    return {name: [Interval(Integral, 1, None, closed="left"), None] for name in names}


class _SequenceBaseline(BaseEmotionRegressor):
    """Plumbing of the baselines: their forward pass and their head.

    The network reads the batch tensor named by ``_input``: ``"local"``
    (log-mel patches, ``SongFeatures.local_patches``) or ``"wave"`` (raw
    audio, ``SongFeatures.waveforms``).
    """

    _head_prefixes = ("rnn.", "head.")
    _parameter_constraints = {**BaseEmotionRegressor._parameter_constraints,
                              "dropout": [Interval(Real, 0, 1, closed="left")]}

    def _forward(self, network, state, batch, context=None):
        frames = batch.waveforms if self._input == "wave" else batch.local_patches
        args = (frames, batch.lengths, context)
        out = network(*args) if state is None else functional_call(network, state, args)
        return out.prediction, None, out.context


_ATTRIBUTES = """\
    Attributes
    ----------
    network_ : torch.nn.Module
        The trained network.
    n_parameters_ : int
        Its trainable parameters (:meth:`count_parameters` gives the count
        for any input shapes without fitting).
    listener_ : ListenerAdaptation or None
        The current listener's adaptation.
""" + TRAINING_ATTRIBUTES


class _ConvRecurrentBaseline(_SequenceBaseline):
    """The parameters CRNN and DNN share: convolution blocks, then a GRU."""

    _parameter_constraints = {
        **_SequenceBaseline._parameter_constraints,
        **_sizes_constraints("conv_channels", "n_conv_layers", "rnn_hidden", "rnn_layers"),
    }

    def __init__(self, size="paper", conv_channels=None, n_conv_layers=None, rnn_hidden=None,
                 rnn_layers=None, dropout=0.1, meta_learning=None, tasks="auto",
                 n_episodes=None, tasks_per_step=None, n_support=1, n_query=None,
                 inner_steps=None, inner_lr=None, outer_lr=None, inner_params=None,
                 train_window=None, validation_fraction=0.1, validation_interval=None,
                 patience=None, max_grad_norm=None, input_normalization=None,
                 checkpoint_path=None, checkpoint_interval=100, predict_batch_size=8,
                 front_end=None, frame_offset=None, device="auto", precision="auto",
                 task_batching="auto", distributed="auto", random_state=None, verbose="auto"):
        self.size = size
        self.conv_channels = conv_channels
        self.n_conv_layers = n_conv_layers
        self.rnn_hidden = rnn_hidden
        self.rnn_layers = rnn_layers
        self.dropout = dropout
        super().__init__(**self._shared(locals()))


class CRNNRegressor(_ConvRecurrentBaseline):
    """Stacked convolutional and recurrent network (CRNN) on log-mel patches.

    Malik, Adavanne, Drossos, Virtanen, Ticha and Jarina, "Stacked
    convolutional and recurrent neural networks for music emotion
    recognition", SMC 2017 (arXiv:1706.02292). A compact model: convolution
    layers over the log-mel spectrogram, then bidirectional GRUs over time.

    **Input**: log-mel patches (``SongFeatures.local_patches``, one per 0.5 s
    frame; the default :class:`~pdmer.features.AudioFeatures` front end).

    **Network** (:class:`pdmer.nn.baselines.CRNNNet`): per frame,
    ``n_conv_layers`` x [3x3 convolution, BatchNorm, ReLU, max pooling over
    frequency by 4], mean over the patch's time steps, flattened; a stacked
    bidirectional GRU over the frames; ``Linear -> ReLU -> Dropout ->
    Linear`` to (arousal, valence).

    Interpretations (not fixed by the paper as pdmer reads it): the
    convolutions run on each 0.5 s frame's patch and the GRU over frames
    (the paper's recurrent layers run over spectrogram time steps of a
    segment); BatchNorm; the channel and GRU sizes of the presets; one model
    for both dimensions; trained with pdmer's loss (1 - mean of CCC, PCC,
    1 - RMSE) like every pdmer model.

    Parameters
    ----------
    size : {"paper", "small"}, default="paper"
        Preset of the architecture (:data:`CRNN_SIZES`; the size parameters
        below override it when not None) and of every training setting left
        at None (:meth:`presets`).
    conv_channels, n_conv_layers, rnn_hidden, rnn_layers : int, optional
        Channels of every convolution, number of convolution blocks, GRU size
        per direction, GRU layers.
    dropout : float, default=0.1
%(shared_parameters)s

    %(attributes)s

    Examples
    --------
    >>> from pdmer import CRNNRegressor
    >>> model = CRNNRegressor(size="small", meta_learning="none", n_episodes=200)
    >>> model.fit(X, y)                                  # doctest: +SKIP
    """

    _architectures = CRNN_SIZES

    def _build_network(self, spec):
        return self._assemble(CRNNNet(spec["n_mels"], **self.architecture(),
                                      dropout=self.dropout), spec)


class DNNRegressor(_ConvRecurrentBaseline):
    """Convolutional-recurrent network (DNN) on the raw waveform.

    Orjesek, Jarina, Chmulik and Kuba, "DNN based music emotion recognition
    from raw audio signal", Radioelektronika 2019. Convolutional layers learn
    features directly from the samples, recurrent layers model time.

    **Input**: raw audio per frame (``SongFeatures.waveforms``): the default
    front end is ``AudioFeatures(waveform_rate=16000)``; features without
    waveforms are refused with a message saying how to extract them.

    **Network** (:class:`pdmer.nn.baselines.DNNNet`): per frame, a strided
    1-D convolution (kernel 64, stride 8) as a learned filterbank, then
    ``n_conv_layers - 1`` blocks of 1-D convolution (kernel 8), each with
    BatchNorm, ReLU and max pooling by 4; mean and max over time; a stacked
    bidirectional GRU over the frames; ``Linear -> ReLU -> Dropout ->
    Linear``.

    Interpretations: kernel sizes, strides, channel counts, GRU as the
    recurrent cell, mean+max pooling per frame, 16 kHz input and the
    recurrence over 0.5 s frames are pdmer's choices.

    Parameters
    ----------
    size : {"paper", "small"}, default="paper"
        Preset of the architecture (:data:`DNN_SIZES`) and of every training
        setting left at None (:meth:`presets`).
    conv_channels, n_conv_layers, rnn_hidden, rnn_layers : int, optional
    dropout : float, default=0.1
%(shared_parameters)s

    %(attributes)s
    """

    _architectures = DNN_SIZES
    _input = "wave"

    def _build_network(self, spec):
        return self._assemble(DNNNet(spec["n_waveform_samples"], **self.architecture(),
                                     dropout=self.dropout), spec)


class MCRNNRegressor(_SequenceBaseline):
    """Multi-view convolutional recurrent network (MCRNN) on the raw waveform.

    He and Ferguson, "Multi-view neural networks for raw audio-based music
    emotion recognition", IEEE ISM 2020. Several CNN "views" with different
    time resolutions learn features from raw audio; a BiLSTM models context.

    **Input**: raw audio per frame (``SongFeatures.waveforms``), default
    front end ``AudioFeatures(waveform_rate=16000)``.

    **Network** (:class:`pdmer.nn.baselines.MCRNNNet`): per frame, one
    1-D CNN per entry of ``view_kernels`` (first kernel k with stride k/4,
    BatchNorm, ReLU, max pooling by 4, a kernel-3 convolution, max over
    time), the views concatenated and fused by ``Linear -> ReLU``; a
    bidirectional LSTM over the frames; ``Linear -> ReLU -> Dropout ->
    Linear``.

    Interpretations: the number of views and their kernels, depths and
    widths, max pooling over time and the fusion layer are pdmer's; the
    paper's data augmentation is not applied (pdmer's training windows are
    random crops of the songs, as for every model).

    Parameters
    ----------
    size : {"paper", "small"}, default="paper"
        Preset of the architecture (:data:`MCRNN_SIZES`) and of every training
        setting left at None (:meth:`presets`).
    view_kernels : tuple of int, optional
        First-layer kernel of each view, in samples.
    conv_channels, fusion_dim, rnn_hidden : int, optional
    dropout : float, default=0.1
%(shared_parameters)s

    %(attributes)s
    """

    _architectures = MCRNN_SIZES
    _parameter_constraints = {
        **_SequenceBaseline._parameter_constraints,
        **_sizes_constraints("conv_channels", "fusion_dim", "rnn_hidden"),
        "view_kernels": [tuple, list, None],
    }
    _input = "wave"

    def __init__(self, size="paper", view_kernels=None, conv_channels=None, fusion_dim=None,
                 rnn_hidden=None, dropout=0.1, meta_learning=None, tasks="auto",
                 n_episodes=None, tasks_per_step=None, n_support=1, n_query=None,
                 inner_steps=None, inner_lr=None, outer_lr=None, inner_params=None,
                 train_window=None, validation_fraction=0.1, validation_interval=None,
                 patience=None, max_grad_norm=None, input_normalization=None,
                 checkpoint_path=None, checkpoint_interval=100, predict_batch_size=8,
                 front_end=None, frame_offset=None, device="auto", precision="auto",
                 task_batching="auto", distributed="auto", random_state=None, verbose="auto"):
        self.size = size
        self.view_kernels = view_kernels
        self.conv_channels = conv_channels
        self.fusion_dim = fusion_dim
        self.rnn_hidden = rnn_hidden
        self.dropout = dropout
        super().__init__(**self._shared(locals()))

    def _build_network(self, spec):
        return self._assemble(MCRNNNet(spec["n_waveform_samples"], **self.architecture(),
                                       dropout=self.dropout), spec)


class DAMFFRegressor(_SequenceBaseline):
    """Dual attention-based multi-scale feature fusion (DAMFF) on log-mel patches.

    Zhang, Yang, Zhang and Luo, "Dual attention-based multi-scale feature
    fusion approach for dynamic music emotion recognition", ISMIR 2023.
    Multi-scale time-frequency features of the spectrogram are fused with
    spatial and channel attention; a BiLSTM learns the sequence.

    **Input**: log-mel patches (``SongFeatures.local_patches``; the default
    front end).

    **Network** (:class:`pdmer.nn.baselines.DAMFFNet`): per frame, a 3x3
    convolutional stem with 2x2 max pooling, parallel convolutions with the
    kernel sizes of ``scales`` concatenated, channel attention (shared MLP
    over average- and max-pooled maps), spatial attention (7x7 convolution
    over the channel mean and max), a 1x1 fusion convolution, mean and max
    pooling; a bidirectional LSTM over the frames; ``Linear -> ReLU ->
    Dropout -> Linear``.

    Interpretations: the attention modules follow the common CBAM form
    (channel, then spatial); the scales as parallel kernel sizes, the
    widths, the pooling and the sizes of the presets are pdmer's.

    Parameters
    ----------
    size : {"paper", "small"}, default="paper"
        Preset of the architecture (:data:`DAMFF_SIZES`) and of every training
        setting left at None (:meth:`presets`).
    conv_channels : int, optional
    scales : tuple of int, optional
        Odd kernel sizes of the parallel multi-scale branches.
    rnn_hidden : int, optional
    dropout : float, default=0.1
%(shared_parameters)s

    %(attributes)s
    """

    _architectures = DAMFF_SIZES
    _parameter_constraints = {
        **_SequenceBaseline._parameter_constraints,
        **_sizes_constraints("conv_channels", "rnn_hidden"),
        "scales": [tuple, list, None],
    }

    def __init__(self, size="paper", conv_channels=None, scales=None, rnn_hidden=None,
                 dropout=0.1, meta_learning=None, tasks="auto",
                 n_episodes=None, tasks_per_step=None, n_support=1, n_query=None,
                 inner_steps=None, inner_lr=None, outer_lr=None, inner_params=None,
                 train_window=None, validation_fraction=0.1, validation_interval=None,
                 patience=None, max_grad_norm=None, input_normalization=None,
                 checkpoint_path=None, checkpoint_interval=100, predict_batch_size=8,
                 front_end=None, frame_offset=None, device="auto", precision="auto",
                 task_batching="auto", distributed="auto", random_state=None, verbose="auto"):
        self.size = size
        self.conv_channels = conv_channels
        self.scales = scales
        self.rnn_hidden = rnn_hidden
        self.dropout = dropout
        super().__init__(**self._shared(locals()))

    def _build_network(self, spec):
        return self._assemble(DAMFFNet(**self.architecture(), dropout=self.dropout), spec)


for _cls in (CRNNRegressor, DNNRegressor, MCRNNRegressor, DAMFFRegressor):
    _cls.__doc__ = _cls.__doc__.replace("%(attributes)s", _ATTRIBUTES.strip())
