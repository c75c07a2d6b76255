"""The parameters every estimator shares: their documentation and constraints."""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np

from pdmer.labels import FRAME_OFFSET_CONSTRAINT
from pdmer.meta.methods import METHODS, MetaLearningMethod
from pdmer.nn.precision import PRECISIONS
from pdmer.sklearn_compat import HasMethods, Interval, InvalidParameterError, Options, StrOptions

DEFAULT_WAVEFORM_RATE = 16000
"""Sample rate of the raw audio that waveform models get from their default front end."""

_POSITIVE = [Interval(Integral, 1, None, closed="left")]
_POSITIVE_OR_PRESET = [Interval(Integral, 1, None, closed="left"), None]
_RATE_OR_PRESET = [Interval(Real, 0, np.inf, closed="neither"), None]

SHARED_PARAMETERS = """\
    meta_learning : str or MetaLearningMethod, optional
        The meta-learning method (:mod:`pdmer.meta.methods`), by name or as
        an instance with its own settings: "fomaml" first-order MAML (the
        paper's), "maml" second-order MAML, "metasgd" first-order Meta-SGD
        (learned per-parameter inner learning rates, saved with the model
        and used by :meth:`personalize`), or "none", plain supervised
        training on the same batches (then :meth:`personalize` fine-tunes).
        None: the ``size`` preset's.
    tasks : {"auto", "annotator", "song"}, default="auto"
        Task construction: one task per annotator (the paper's personalized
        construction; needs ``annotators``), or songs with labels averaged
        over annotators (traditional). "auto" picks "annotator" when
        annotator ids are given.
    n_episodes : int, optional
        Outer steps (at most: early stopping may end training sooner).
        This and every other training parameter given as "optional" below
        default to None, the ``size`` preset's value (:meth:`presets`); the
        values a fit used are in ``resolved_params_``.
    tasks_per_step : int, optional
    n_support : int, default=1
        Songs per support set of a task.
    n_query : int, optional
        Songs per query set of a task.
    inner_steps : int, optional
        SGD steps of the inner loop, and of :meth:`personalize` by default
        unless the method has its own number (``personalization_steps_``:
        the ``small`` preset's method personalizes in 4 steps from its
        recentered start).
    inner_lr : float, optional
        Step size of the inner loop (Meta-SGD: the rates' starting value).
    outer_lr : float, optional
        Adam learning rate of the outer loop.
    inner_params : {"all", "head"}, optional
        Parameters adapted in the inner loop and stored per listener: all
        (the reference) or only the recurrent layers and the head (ANIL:
        smaller listener files, faster inner loops).
    train_window : int or "full", optional
        Training songs are cut to a random window of this many frames (60 =
        30 s); "full" trains on whole songs.
    validation_fraction : float, default=0.1
        Share of annotators (or songs) of the training data held out to pick
        the best episode and stop early; 0 keeps the last episode.
    validation_interval : int, optional
        Episodes between validations.
    patience : int, optional
        Stop after this many validations in a row without improvement; 0
        never stops early.
    max_grad_norm : float, optional
        Clip the outer gradient's L2 norm to this; 0 does not clip.
    input_normalization : bool, optional
        Standardise local patches (per mel band) and global embeddings (per
        dimension) with statistics of the training songs, stored in the
        model.
    checkpoint_path : str, optional
        Save training state here every ``checkpoint_interval`` episodes; a
        later fit with the same parameters and data resumes from it (or
        continues it up to a larger ``n_episodes``).
    checkpoint_interval : int, default=100
    predict_batch_size : int, default=8
    front_end : AudioFeatures, optional
        Feature extractor used when ``X`` holds audio instead of
        SongFeatures; None uses the model's default (``AudioFeatures()``,
        with ``waveform_rate`` set for the raw-audio models).
    frame_offset : float, optional
        Audio time in seconds of label frame 0 when ``X`` holds audio (15
        for DEAM and PMEmo); None uses the front end's. SongFeatures carry
        their own.
    device : {"auto", "cpu", "cuda"}, default="auto"
    precision : {"auto", "bf16", "fp32"}, default="auto"
        Arithmetic of training, personalization and prediction
        (:mod:`pdmer.nn.precision`, the same policy as the ImageBind
        encoder's). "auto": bfloat16 autocast on CUDA GPUs with bfloat16,
        float32 on the CPU (CPU results then repeat exactly, and are the
        same on every CPU). "bf16": also on CPUs that compute bfloat16
        natively (AVX512-BF16 or AMX), about twice as fast at the paper's
        size with accuracy within the seed-to-seed spread
        (``benchmarks/scale.md``); results then depend on the CPU, and
        devices without native bfloat16 run float32 with a warning.
        "fp32": float32 everywhere. Model files saved with the former
        ``mixed_precision`` (True, False, "bf16") load as "auto", "fp32"
        and "bf16".
    task_batching : {"auto", "sequential", "vmap"} or int, default="auto"
        How the tasks of an episode run: one after another, or together in
        one :func:`torch.func.vmap` (:mod:`pdmer.meta.vmapped`; an int runs
        at most that many together, to bound memory). Both give the same
        gradients; dropout masks are drawn differently. "auto" batches on
        CUDA and runs sequentially on the CPU (where batching measured 2x
        slower). Models whose network cannot run under vmap (the
        baselines) and Meta-SGD run sequentially; asking them for "vmap"
        is an error.
    distributed : {"auto", False}, default="auto"
        "auto": when the process is one of several started by ``torchrun``
        (or a :mod:`torch.distributed` process group is initialized), the
        tasks of every episode are split among the processes and their
        gradients summed, giving the model one process would train (to
        float rounding); see the performance guide. False: this process
        trains alone.
    random_state : int, optional
        Seed for initialisation, task sampling and dropout; runs repeat
        exactly on the CPU.
    verbose : "auto" or int, default="auto"
        Show a progress bar of episodes with the running loss."""
"""The parameters every estimator shares, as numpydoc; estimator docstrings
include them where they write ``%(shared_parameters)s``."""

TRAINING_ATTRIBUTES = """\
    history_ : dict of str -> list
        Per episode ``episode``, ``loss`` and ``grad_norm`` (before
        clipping); per validation ``validation_episode`` and
        ``validation_ccc``.
    resolved_params_ : dict
        The preset's settings with the parameters applied: what fit used.
    best_episode_ : int or None
        The episode whose state was kept (the best validation; the last one
        without a validation split).
    best_validation_ccc_ : float or None
        Its validation CCC (None without a validation split).
    validation_listeners_ : list of str
        The training annotators held out for validation (not trained on):
        where settings of competitors can be chosen fairly
        (:mod:`pdmer.evaluation.competitors`).
    personalization_choices_ : dict
        What the meta-learning method chose for personalization on those
        listeners after training (e.g. whether to ``calibrate``, and the
        longest delay ``max_lag`` to look for, for
        :class:`~pdmer.meta.methods.CalibrateThenAdapt` given ``"auto"``);
        empty when it chooses nothing (the defaults).
    n_episodes_run_ : int
        Episodes trained: fewer than ``n_episodes`` when stopped early.
    stopped_early_ : bool
    prediction_std_ratio_ : list of float
        How much the predictions move within songs relative to the labels,
        (arousal, valence), on the validation songs (training songs without
        a validation split): :func:`pdmer.evaluation.prediction_spread`.
        A mean under 0.5, or a best validation CCC under 0.05, gives a
        :class:`~pdmer.estimators.CollapseWarning`
        (:func:`pdmer.evaluation.collapse_problems`, the benchmark's
        judgment too).
    training_data_ : dict
        What fit saw: ``n_rows``, ``n_songs``, ``n_annotators``, ``tasks``,
        ``frame_offset``, ``encoder`` and the ``dataset`` (name, licence)
        when :meth:`save` was told it; the model card shows it.
    model_id_ : str
        Fingerprint of the fitted network, carried by listener files.
    seed_ : int
        The run's seed."""
"""Fitted attributes every estimator documents where it writes ``%(training_attributes)s``."""

PARAMETER_CONSTRAINTS = {
    "size": [str],  # one of the estimator's presets: checked by resolved_params()
    "meta_learning": [StrOptions(set(METHODS)), MetaLearningMethod, None],
    "tasks": [StrOptions({"auto", "annotator", "song"})],
    "n_episodes": _POSITIVE_OR_PRESET,
    "tasks_per_step": _POSITIVE_OR_PRESET,
    "n_support": _POSITIVE,
    "n_query": _POSITIVE_OR_PRESET,
    "inner_steps": _POSITIVE_OR_PRESET,
    "inner_lr": _RATE_OR_PRESET,
    "outer_lr": _RATE_OR_PRESET,
    "inner_params": [StrOptions({"all", "head"}), None],
    "train_window": [Interval(Integral, 1, None, closed="left"), StrOptions({"full"}),
                     None],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "validation_interval": _POSITIVE_OR_PRESET,
    "patience": [Interval(Integral, 0, None, closed="left"), None],
    "max_grad_norm": [Interval(Real, 0, np.inf, closed="left"), None],
    "input_normalization": ["boolean", None],
    "checkpoint_path": [str, os.PathLike, None],
    "checkpoint_interval": _POSITIVE,
    "predict_batch_size": _POSITIVE,
    "front_end": [HasMethods(["transform"]), None],
    "frame_offset": [FRAME_OFFSET_CONSTRAINT, None],
    "device": [str],
    "precision": [StrOptions(set(PRECISIONS))],
    "task_batching": [StrOptions({"auto", "sequential", "vmap"}),
                      Interval(Integral, 1, None, closed="left")],
    "distributed": [StrOptions({"auto"}), Options(bool, {False})],
    "random_state": [Interval(Integral, 0, None, closed="left"), None],
    "verbose": [StrOptions({"auto"}), "verbose"],
}
"""Constraints of the shared parameters (scikit-learn's ``_parameter_constraints``)."""


def refuse_bool_integers(estimator) -> None:
    """Refuse True and False for parameters whose constraints ask for an int.

    scikit-learn's checks take a bool for an int; ``estimator`` is checked
    against its ``_parameter_constraints``.
    """
    for name, constraints in estimator._parameter_constraints.items():
        value = getattr(estimator, name)
        integer = any(isinstance(c, Interval) and c.type is Integral for c in constraints)
        if integer and isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be an int, not a "
                f"bool. Got {value!r} instead.")
