"""The estimator base every pdmer model shares: fit, personalize, predict, save.

The estimator is the scikit-learn face: it checks parameters and data,
turns songs into tensors, and hands training to
:class:`~pdmer.meta.trainer.Trainer` (with validation, checkpoint and
progress callbacks) and the model's tensor work to
:class:`~pdmer.meta.learner.MetaLearner`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted

from pdmer.estimators import _songs
from pdmer.estimators._data import check_annotators, check_X, check_y, song_key
from pdmer.estimators.exceptions import CollapseWarning
from pdmer.estimators.listener import ListenerAdaptation
from pdmer.estimators.presets import merge_presets
from pdmer.estimators.registry import model_id, register, resolve_device
from pdmer.evaluation.protocol import Episode, plan_episodes
from pdmer.features.container import SongFeatures
from pdmer.features.frontend import AudioFeatures
from pdmer.meta.callbacks import Checkpoint, ProgressBar, Validation, fingerprint
from pdmer.meta.learner import META_LEARNING, MetaLearner
from pdmer.meta.metasgd import LearnedInnerRates
from pdmer.meta.tasks import TaskSampler
from pdmer.meta.trainer import Trainer
from pdmer.metrics import ccc
from pdmer.nn.normalization import InputNormalization

# Kept for pdmer.io, which imports them from here until it reads the registry.
from pdmer.estimators.registry import ESTIMATORS  # noqa: E402,F401
from pdmer.estimators.registry import model_id as _model_id  # noqa: E402,F401
from pdmer.estimators.registry import resolve_device as _resolve_device  # noqa: E402,F401

DEFAULT_WAVEFORM_RATE = 16000
"""Sample rate of the raw audio that waveform models get from their default front end."""

COLLAPSE_STD_RATIO = 0.5
"""A fitted model whose predictions vary less than this share of the labels'
standard deviation (in either dimension) gets a :class:`CollapseWarning`."""

COLLAPSE_CCC = 0.05
"""... as does one whose best validation CCC stays below this."""

_POSITIVE = [Interval(Integral, 1, None, closed="left")]
_POSITIVE_OR_PRESET = [Interval(Integral, 1, None, closed="left"), None]
_RATE_OR_PRESET = [Interval(Real, 0, np.inf, closed="neither"), None]

SHARED_PARAMETERS = """\
    meta_learning : {"fomaml", "maml", "metasgd", "none"}, default="fomaml"
        First-order MAML (the reference), second-order MAML, first-order
        Meta-SGD (learned per-parameter inner learning rates, saved with the
        model and used by :meth:`personalize`), or plain supervised training
        on the same batches (then :meth:`personalize` fine-tunes).
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
        SGD steps of the inner loop, and of :meth:`personalize` by default.
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
    mixed_precision : bool, default=True
        bfloat16 autocast on CUDA (ignored on the CPU).
    random_state : int, optional
        Seed for initialisation, task sampling and dropout; runs repeat
        exactly on the CPU.
    verbose : int, default=0
        Show a progress bar of episodes with the running loss.
    features : AudioFeatures, optional
        Deprecated alias of ``front_end``."""
"""The parameters every estimator shares, as numpydoc; estimator docstrings
include them where they write ``%(shared_parameters)s``."""


class BaseEmotionRegressor(RegressorMixin, BaseEstimator):
    """Shared machinery of pdmer's sequence regressors.

    Subclasses define the network (:meth:`_build_network`, finishing with
    :meth:`_assemble`), how it is called (:meth:`_forward`), which
    parameters form the prediction head (``_head_prefixes``), their
    architecture per preset (``_architectures``, selected by a ``size``
    parameter) and their own ``__init__`` listing every parameter
    explicitly (scikit-learn reads them from the signature) and passing the
    shared ones (:data:`SHARED_PARAMETERS`) on with :meth:`_shared`.
    """

    _head_prefixes: tuple = ()
    _architectures: dict = {}
    # "wave" for models that learn from raw audio (SongFeatures.waveforms).
    _input: str = "local"
    # Module mode of inner loops and personalization, chosen by measurement
    # (benchmarks/bench_training.py): eval mode, as at prediction.
    _adapt_mode: str = "eval"
    # With metadata routing on, fit asks for annotators without set_fit_request.
    __metadata_request__fit = {"annotators": True}

    _parameter_constraints: dict = {
        "meta_learning": [StrOptions(set(META_LEARNING))],
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
        "frame_offset": [Interval(Real, 0, np.inf, closed="left"), None],
        "device": [str],
        "mixed_precision": ["boolean"],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "verbose": ["verbose"],
        "features": [HasMethods(["transform"]), None],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register(cls)
        if cls.__doc__ and "%(shared_parameters)s" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("%(shared_parameters)s", SHARED_PARAMETERS)

    def __init__(self, *, meta_learning="fomaml", tasks="auto", n_episodes=None,
                 tasks_per_step=None, n_support=1, n_query=None, inner_steps=None,
                 inner_lr=None, outer_lr=None, inner_params=None, train_window=None,
                 validation_fraction=0.1, validation_interval=None, patience=None,
                 max_grad_norm=None, input_normalization=None, checkpoint_path=None,
                 checkpoint_interval=100, predict_batch_size=8, front_end=None,
                 frame_offset=None, device="auto", mixed_precision=True, random_state=None,
                 verbose=0, features=None):
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
        self.patience = patience
        self.max_grad_norm = max_grad_norm
        self.input_normalization = input_normalization
        self.checkpoint_path = checkpoint_path
        self.checkpoint_interval = checkpoint_interval
        self.predict_batch_size = predict_batch_size
        self.front_end = front_end
        self.frame_offset = frame_offset
        self.device = device
        self.mixed_precision = mixed_precision
        self.random_state = random_state
        self.verbose = verbose
        self.features = features

    @staticmethod
    def _shared(values: dict) -> dict:
        """The shared parameters among a subclass ``__init__``'s ``locals()``."""
        names = inspect.signature(BaseEmotionRegressor.__init__).parameters
        return {name: values[name] for name in names if name != "self"}

    # ----------------------------------------------------------- presets
    @classmethod
    def presets(cls) -> dict:
        """Every preset of this estimator: ``{size: {parameter: value}}``.

        Each holds the architecture and every training setting (episodes,
        learning rates, inner steps, windows, validation, clipping,
        normalisation) that parameters left at None take.

        Returns
        -------
        dict
            A copy: changing it changes nothing.

        Examples
        --------
        >>> from pdmer import DSAMLRegressor
        >>> DSAMLRegressor.presets()["paper"]["outer_lr"]
        5e-05
        """
        return merge_presets(cls._architectures)

    def resolved_params(self) -> dict:
        """The preset's settings with this estimator's non-None parameters applied.

        Returns
        -------
        dict
            Every preset-controlled parameter with the value fit uses.
        """
        presets = self.presets()
        if self.size not in presets:
            raise InvalidParameterError(
                f"The 'size' parameter of {type(self).__name__} must be one of "
                f"{sorted(presets)}. Got {self.size!r} instead.")
        settings = presets[self.size]
        for name in settings:
            value = getattr(self, name)
            if value is not None:
                # Lists come back from JSON (pdmer.load) where tuples went in.
                settings[name] = tuple(value) if isinstance(value, list) else value
        return settings

    def architecture(self) -> dict:
        """The network sizes after applying the ``size`` preset and the overrides."""
        arch = self._architectures.get(self.size, {})
        return {name: value for name, value in self._settings().items() if name in arch}

    def _settings(self) -> dict:
        """The fitted settings, or the current parameters' before fit."""
        return getattr(self, "resolved_params_", None) or self.resolved_params()

    def count_parameters(self, feature_spec: dict | None = None) -> int:
        """Trainable parameters of the network for given features.

        Parameters
        ----------
        feature_spec : dict, optional
            Shapes of the input features, as in the fitted ``feature_spec_``:
            ``n_patch_times``, ``n_mels``, ``global_dim``, ``encoder`` and
            ``n_waveform_samples``. Defaults to the fitted model's.

        Returns
        -------
        int
            Without fitting anything: the count for this architecture and
            these input shapes.
        """
        if feature_spec is None:
            check_is_fitted(self, "network_")
            network = self.network_
        else:
            self._check_features(feature_spec)
            with torch.random.fork_rng():  # initialisation must not move the caller's RNG
                network = self._build_network(feature_spec)
        return sum(p.numel() for p in network.parameters() if p.requires_grad)

    @property
    def n_parameters_(self) -> int:
        """Trainable parameters of the fitted network."""
        check_is_fitted(self, "network_")
        return self.count_parameters()

    # ------------------------------------------------------------------ hooks
    def _build_network(self, spec: dict) -> torch.nn.Module:
        """The network for input shapes ``spec``, finished by :meth:`_assemble`."""
        raise NotImplementedError

    def _forward(self, network, state, batch, context=None):
        """Return ``(prediction (B, T, 2), auxiliary loss or None, context or None)``.

        ``context`` is what the network computes before its head (or None if
        it cannot say); given back, only the head runs.
        """
        raise NotImplementedError

    def _assemble(self, network: torch.nn.Module, spec: dict) -> torch.nn.Module:
        """Attach what the estimator adds to a network: input statistics, learned rates.

        Both are submodules, so the network's ``state_dict`` (model files,
        the model fingerprint, checkpoints) carries them.
        """
        settings = self._settings()
        if settings["input_normalization"]:
            network.input_normalization = InputNormalization(spec["n_mels"], spec["global_dim"])
        if self.meta_learning == "metasgd":
            shapes = {n: p.shape for n, p in network.named_parameters()
                      if n in self._adapted_names(network)}
            network.inner_rates = LearnedInnerRates(shapes, settings["inner_lr"])
        return network

    # ------------------------------------------------------------- public API
    def check_params(self):
        """Validate the parameters now (``fit`` does it too); returns self.

        Raises
        ------
        ValueError
            Naming the first invalid parameter.
        """
        self._validate_params()
        self.resolved_params()
        resolve_device(self.device, quiet=True)
        return self

    def make_front_end(self) -> AudioFeatures:
        """The feature extractor this estimator applies to audio.

        ``front_end`` (or the model's default), at ``frame_offset`` when it
        is set; a fitted model keeps the global encoder it was trained with
        where the front end says "auto".

        Returns
        -------
        AudioFeatures
            Not a copy when nothing had to change.
        """
        front_end = self.front_end if self.front_end is not None else self.features
        if front_end is None:
            front_end = self._default_features()
        changes = {}
        if self.frame_offset is not None and front_end.frame_offset != self.frame_offset:
            changes["frame_offset"] = float(self.frame_offset)
        if front_end.global_encoder == "auto" and getattr(self, "encoder_", None) in (
                "imagebind", "logmel-stats"):
            # A fitted model extracts with the encoder it was trained with,
            # whatever weights this machine has installed since.
            changes["global_encoder"] = self.encoder_
        return clone(front_end).set_params(**changes) if changes else front_end

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, annotators=None):
        """Meta-train (or train) the model.

        Parameters
        ----------
        X : sequence of songs
            Audio paths, ``(waveform, sample_rate)`` tuples or
            :class:`~pdmer.features.SongFeatures`. The same song may appear in
            several rows, once per annotator.
        y : sequence of ndarray of shape (n_frames_i, 2)
            (arousal, valence) per 0.5 s frame of each row.
        annotators : array-like of shape (n_rows,), optional
            Who annotated each row. With ids, every annotator is one
            meta-learning task (``tasks='auto'``); without, tasks are built
            from the mean labels of each song.

        Returns
        -------
        self
        """
        X = check_X(X)
        y = check_y(y, len(X))
        annotators = check_annotators(annotators, len(X))
        tasks = self.tasks if self.tasks != "auto" else (
            "annotator" if annotators is not None else "song")
        if tasks == "annotator" and annotators is None:
            raise ValueError("tasks='annotator' needs annotator ids: pass annotators=... to fit.")
        settings = self.resolved_params()
        self.device_ = resolve_device(self.device)
        self.seed_ = self._initial_seed()
        songs = self._songs(X, y)
        spec = _songs.feature_spec(songs)
        self._check_features(spec)
        self.feature_spec_, self.encoder_, self.resolved_params_ = spec, spec["encoder"], settings
        if tasks == "song":
            songs, annotators = _songs.mean_label_rows(X, songs), None
        self.tasks_ = tasks
        train_groups, validation = self._split(songs, annotators)
        sampler = TaskSampler(train_groups, self.n_support, settings["n_query"])
        with self._seeded(-2):
            network = self._build_network(spec)
        if settings["input_normalization"]:
            train_songs = _songs.distinct([songs[i] for g in train_groups.values() for i in g])
            network.input_normalization.fit([s.local_patches for s in train_songs],
                                            [s.global_embeddings for s in train_songs])
        self.network_ = network.to(self.device_)
        prepared = self._prepare(songs)
        trainer = self._trainer(songs, prepared, sampler, validation)
        trainer.fit()
        self.history_ = {"validation_episode": [], "validation_ccc": [], **trainer.history}
        validating = trainer.callbacks[0] if validation else None
        self.best_episode_ = validating.best_episode if validating else trainer.episode - 1
        self.best_validation_ccc_ = (None if validating is None or validating.best_state is None
                                     else validating.best_score)
        self.n_episodes_run_ = trainer.episode
        self.stopped_early_ = bool(validating and validating.stopped_early)
        self.model_id_ = model_id(self.network_)
        self.listener_ = None
        if not validation:
            # Without a validation split: the model as it is on (mean-label)
            # training songs, the best an unadapted model can be judged on.
            if tasks == "annotator":
                prepared = self._prepare(_songs.mean_label_rows(X, songs))
            validation = [Episode("songs", (), None, tuple(range(min(32, len(prepared)))))]
        self._check_collapse(prepared, validation)
        return self

    def adapt_listener(self, X, y, steps=None, lr=None, progress=None) -> ListenerAdaptation:
        """Adapt to one listener and return the adaptation, leaving the model as it is.

        Adaptation always starts from the meta-learned parameters; neither they
        nor the current ``listener_`` change, so one fitted model can serve
        many listeners (pass the result to :meth:`predict` as ``listener=``),
        from several threads at once.

        Parameters
        ----------
        X : sequence of songs
            The listener's annotated song(s); one is enough.
        y : sequence of ndarray of shape (n_frames_i, 2)
            The listener's labels of those songs.
        steps : int, optional
            Gradient steps; defaults to ``inner_steps``.
        lr : float, optional
            Step size; defaults to ``inner_lr`` (Meta-SGD: the learned rates).
        progress : callable, optional
            Called as ``progress(step, steps)`` after every gradient step.

        Returns
        -------
        ListenerAdaptation
        """
        check_is_fitted(self, "network_")
        X = check_X(X)
        y = check_y(y, len(X))
        settings = self._settings()
        steps = settings["inner_steps"] if steps is None else steps
        if (isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1
                or (lr is not None and (isinstance(lr, bool) or not isinstance(lr, Real)
                                        or not 0 < lr < np.inf))):
            raise ValueError(f"personalize needs steps >= 1 and lr > 0 (finite); got "
                             f"steps={steps!r}, lr={lr!r}.")
        support = self._songs(X, y)
        self._check_spec(support)
        learner = self._learner()
        context = self._seeded(-1) if learner.adapt_mode == "train" else contextlib.nullcontext()
        with context:
            params = learner.adapt(self._prepare(support), int(steps), lr, progress)
        bad = sorted(n for n, p in params.items() if not torch.isfinite(p).all())
        if bad:
            raise FloatingPointError(
                f"Adaptation diverged: {len(bad)} adapted parameter(s) are not finite (e.g. "
                f"{bad[0]}). Use a smaller lr or fewer steps.")
        rates = learner.rates(lr)
        mean_lr = float(lr) if lr is not None else (
            float(rates) if not isinstance(rates, dict) else
            float(torch.cat([r.detach().reshape(-1) for r in rates.values()]).mean()))
        return ListenerAdaptation(
            params={n: p.cpu() for n, p in params.items()},
            model_id=self.model_id_, estimator=type(self).__name__,
            info={"n_songs": len(support), "n_frames": int(sum(s.n_frames for s in support)),
                  "steps": int(steps), "lr": mean_lr,
                  "learned_rates": lr is None and isinstance(rates, dict)},
        )

    def personalize(self, X, y, steps=None, lr=None):
        """Adapt to one listener from the song(s) they annotated.

        Adaptation always starts from the meta-learned parameters, so calling
        it again replaces the previous listener instead of stacking on it.
        The meta-parameters are never changed.

        Parameters
        ----------
        X : sequence of songs
            The listener's annotated song(s); one is enough.
        y : sequence of ndarray of shape (n_frames_i, 2)
            The listener's labels of those songs.
        steps : int, optional
            Gradient steps; defaults to ``inner_steps``.
        lr : float, optional
            Step size; defaults to ``inner_lr`` (Meta-SGD: the learned rates).

        Returns
        -------
        self
            With ``listener_`` set (a :class:`ListenerAdaptation`).
        """
        self.listener_ = self.adapt_listener(X, y, steps=steps, lr=lr)
        return self

    def reset_personalization(self):
        """Forget the current listener; predictions use the meta-parameters again."""
        check_is_fitted(self, "network_")
        self.listener_ = None
        return self

    def use_listener(self, listener):
        """Predict for a stored listener (a :class:`ListenerAdaptation` or its file)."""
        self.listener_ = self._check_listener(listener)
        return self

    def _check_listener(self, listener) -> ListenerAdaptation:
        check_is_fitted(self, "network_")
        if not isinstance(listener, ListenerAdaptation):
            listener = ListenerAdaptation.load(listener)
        if listener.model_id != self.model_id_:
            raise ValueError(
                f"This listener was adapted from model {listener.model_id}, not from "
                f"this one ({self.model_id_}); personalize this model again."
            )
        return listener

    def predict(self, X, listener=None):
        """Predict (arousal, valence) every 0.5 s for whole songs of any length.

        Parameters
        ----------
        X : sequence of songs
        listener : ListenerAdaptation or path, optional
            Predict for this listener (from :meth:`adapt_listener` or a
            listener file) without changing the model. By default the current
            ``listener_`` (set by :meth:`personalize` or :meth:`use_listener`)
            is used, or the meta-parameters when there is none.

        Returns
        -------
        list of ndarray of shape (n_frames_i, 2)
        """
        check_is_fitted(self, "network_")
        listener = (getattr(self, "listener_", None) if listener is None
                    else self._check_listener(listener))
        X = check_X(X)
        songs = self._songs(X, None)
        self._check_spec(songs)
        state = None
        if listener is not None:
            state = {n: t.to(self.device_) for n, t in listener.params.items()}
        return self._learner().predict(self._prepare(songs), state, self.predict_batch_size)

    def score(self, X, y, sample_weight=None):
        """Mean CCC of arousal and valence, averaged over songs."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported; scores are averaged over songs.")
        # NaN labels mark frames to ignore, as in pdmer.metrics.
        return ccc(list(y), self.predict(X))

    def save(self, path):
        """Save the fitted model to one safetensors file (no pickle); see :func:`pdmer.load`."""
        from pdmer.io import save_estimator

        check_is_fitted(self, "network_")
        save_estimator(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Songs are sequences of audio or SongFeatures, not rows of a matrix.
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    # ------------------------------------------------------------ validation
    def _validate_params(self):
        super()._validate_params()
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name)
            integer = any(isinstance(c, Interval) and c.type is Integral for c in constraints)
            if integer and isinstance(value, (bool, np.bool_)):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, not a "
                    f"bool. Got {value!r} instead.")
        if self.features is not None:
            if self.front_end is not None:
                raise ValueError("features is the old name of front_end: give front_end only.")
            warnings.warn("The 'features' parameter was renamed 'front_end' in pdmer 0.2 and "
                          "will be removed in 0.4; pass front_end= instead.", FutureWarning,
                          stacklevel=3)

    def _check_features(self, spec: dict) -> None:
        """Refuse features the model cannot use: raw-audio models need waveforms."""
        if self._input == "wave" and not spec["n_waveform_samples"]:
            raise ValueError(
                f"{type(self).__name__} learns from raw audio, but these features hold no "
                "waveforms. Extract them with AudioFeatures(waveform_rate="
                f"{DEFAULT_WAVEFORM_RATE}) (or pass such a front end as front_end=, or audio "
                "paths with front_end=None).")

    def _check_spec(self, songs):
        spec = _songs.feature_spec(songs)
        if spec != self.feature_spec_:
            raise ValueError(
                f"These features do not match the ones the model was trained on: "
                f"{spec} vs {self.feature_spec_}. Extract them with the same "
                "AudioFeatures settings and global encoder."
            )

    def _check_collapse(self, songs, episodes):
        """Record the prediction / label spread and warn when the model barely moves."""
        with self._seeded(-3):
            truth, predictions, _ = self._learner().run_episodes(songs, episodes,
                                                                 self.predict_batch_size)
        label_std = np.concatenate(truth).std(axis=0)
        prediction_std = np.concatenate(predictions).std(axis=0)
        ratio = prediction_std / np.maximum(label_std, 1e-8)
        self.prediction_std_ratio_ = [float(r) for r in ratio]
        flat = [f"{d} {r:.2f}" for d, r in zip(("arousal", "valence"), ratio)
                if r < COLLAPSE_STD_RATIO]
        low = self.best_validation_ccc_ is not None and self.best_validation_ccc_ < COLLAPSE_CCC
        if flat or low:
            where = "training" if self.best_validation_ccc_ is None else "validation"
            problems = ([f"its predictions vary {', '.join(flat)} times as much as the labels "
                         f"on the {where} songs"] if flat else []) + (
                [f"its best validation CCC is {self.best_validation_ccc_:.3f}"] if low else [])
            warnings.warn(
                f"{type(self).__name__} may have collapsed to a near-constant output: "
                f"{' and '.join(problems)} (best of {self.n_episodes_run_} episodes, at "
                f"{self.best_episode_}). Try a lower outer_lr, input_normalization=True, "
                "max_grad_norm, or more episodes.", CollapseWarning, stacklevel=4)

    # ------------------------------------------------------------- features
    def _default_features(self) -> AudioFeatures:
        """The front end used when ``front_end=None`` (with raw audio for waveform models)."""
        if self._input == "wave":
            return AudioFeatures(waveform_rate=DEFAULT_WAVEFORM_RATE)
        return AudioFeatures()

    def _songs(self, X, y) -> list:
        """Features of every row as tensors, extracting each distinct song once."""
        keys = [song_key(item) for item in X]
        first = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        todo = [X[i] for i in first.values()]
        front_end = None
        if all(isinstance(item, SongFeatures) for item in todo):
            extracted = todo
        else:
            front_end = self.make_front_end()
            extracted = front_end.transform(todo)
        by_key = dict(zip(first, extracted))
        explicit = self.frame_offset is not None or bool(front_end and front_end.frame_offset)
        return _songs.to_songs([by_key[key] for key in keys], y, explicit_offset=explicit)

    def _prepare(self, songs) -> list:
        """Songs standardised as the network expects, on its device."""
        normalization = getattr(self.network_, "input_normalization", None)
        out = []
        for song in songs:
            song = song.to(self.device_)
            if normalization is not None and normalization.fitted:
                local, glob = normalization(song.local_patches, song.global_embeddings)
                song = type(song)(local, glob, song.y, song.encoder, song.waveforms)
            out.append(song)
        return out

    def _split(self, songs, annotators):
        """Training task groups, and the validation episodes taken from the training data.

        Validation listeners are adapted and scored as the evaluation
        protocol does (:func:`pdmer.evaluation.plan_episodes` picks their
        support songs); without annotators, held-out songs are scored as
        they are.
        """
        rng = np.random.default_rng(self._seed())
        if annotators is not None:
            ids = np.unique(annotators)
            counts = {a: int(np.sum(annotators == a)) for a in ids}
            n_val = int(np.ceil(self.validation_fraction * len(ids)))
            eligible = [a for a in ids if counts[a] >= 2]
            if self.validation_fraction == 0 or len(ids) - n_val < 2 or len(eligible) < n_val:
                n_val = 0
            val_ids = set(rng.choice(eligible, size=n_val, replace=False)) if n_val else set()
            train = {a: np.flatnonzero(annotators == a) for a in ids if a not in val_ids}
            rows = np.flatnonzero(np.isin(annotators, list(val_ids)))
            episodes = [
                Episode(e.listener, tuple(int(rows[i]) for i in e.support), e.support_frames,
                        tuple(int(rows[i]) for i in e.query), e.query_start)
                for e in plan_episodes(annotators[rows], n_support=1,
                                       random_state=self._seed())] if n_val else []
            return train, episodes
        order = rng.permutation(len(songs))
        n_val = int(np.ceil(self.validation_fraction * len(songs)))
        if self.validation_fraction == 0 or len(songs) - n_val < self.n_support + 1:
            n_val = 0
        episodes = ([Episode("songs", (), None, tuple(int(i) for i in np.sort(order[:n_val])))]
                    if n_val else [])
        return {"songs": np.sort(order[n_val:])}, episodes

    # ------------------------------------------------------------- training
    def _trainer(self, songs, prepared, sampler, validation) -> Trainer:
        """The training loop with its callbacks.

        ``songs`` are the rows as extracted (their digest identifies the
        run's checkpoint), ``prepared`` the same standardised on the device.
        """
        settings = self._settings()
        learner = self._learner()
        window = None if settings["train_window"] == "full" else settings["train_window"]
        seed = self._seed()

        def step(episode):
            rng = np.random.default_rng([seed, episode])
            tasks = sampler.sample(settings["tasks_per_step"], rng)
            with self._seeded(episode):
                return learner.episode_backward(tasks, prepared, window, rng)

        def score():
            with self._seeded(-3):
                truth, predictions, listeners = learner.run_episodes(
                    prepared, validation, self.predict_batch_size)
            listeners = np.asarray(listeners)
            return float(np.mean([
                ccc([t for t, k in zip(truth, listeners) if k == who],
                    [p for p, k in zip(predictions, listeners) if k == who])
                for who in np.unique(listeners)]))

        callbacks = []
        if validation:
            callbacks.append(Validation(score, settings["validation_interval"],
                                        settings["patience"]))
        if self.checkpoint_path:
            callbacks.append(Checkpoint(self.checkpoint_path, self.checkpoint_interval,
                                        self._fingerprint(songs), extra={"seed": self.seed_},
                                        verbose=bool(self.verbose)))
        callbacks.append(ProgressBar(f"{type(self).__name__} ({self.meta_learning})",
                                     enabled=bool(self.verbose)))
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=settings["outer_lr"])
        return Trainer(self.network_, optimizer, step, settings["n_episodes"],
                       max_grad_norm=settings["max_grad_norm"] or None, callbacks=callbacks)

    def _learner(self) -> MetaLearner:
        settings = self._settings()
        return MetaLearner(
            self.network_, self._forward, self._adapted_names(self.network_),
            meta_learning=self.meta_learning, inner_steps=settings["inner_steps"],
            inner_lr=settings["inner_lr"], device=self.device_,
            mixed_precision=self.mixed_precision, adapt_mode=self._adapt_mode)

    def _adapted_names(self, network) -> list:
        names = [n for n, _ in network.named_parameters() if not n.startswith("inner_rates.")]
        if self._settings()["inner_params"] == "head":
            names = [n for n in names if n.startswith(self._head_prefixes)]
        return names

    def _fingerprint(self, songs) -> str:
        """Identity of a run's settings and data: the checkpoint of another run is refused."""
        skip = {"verbose", "checkpoint_path", "checkpoint_interval", "device", "n_episodes",
                "predict_batch_size", "features", "front_end", "frame_offset"}
        settings = {**self.get_params(deep=False), **self._settings(),
                    "feature_spec": self.feature_spec_}
        tensors = [t for s in songs for t in (s.local_patches, s.global_embeddings, s.y,
                                              s.waveforms) if t is not None]
        return fingerprint({k: v for k, v in settings.items() if k not in skip}, tensors)

    def _seed(self) -> int:
        return self.seed_

    def _initial_seed(self) -> int:
        """The run's seed: random_state, or the interrupted run's, or a fresh one."""
        if self.random_state is not None:
            return int(self.random_state)
        state = Checkpoint.read(self.checkpoint_path)
        if state is not None:
            return int(state["seed"])
        return int(np.random.SeedSequence().entropy % (2**31))

    @contextlib.contextmanager
    def _seeded(self, step: int):
        """Seed torch for one step, leaving the caller's global RNG untouched."""
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self._seed() * 1_000_003 + step) % (2**63))
            yield

    # -------------------------------------------- kept for pdmer.cli (to be moved)
    def _front_end(self):
        return self.make_front_end()

    def _check_params(self):
        return self.check_params()

    def __getstate__(self):
        state = self.__dict__.copy()
        # Pickles load on machines without the GPU the model was trained on.
        if "network_" in state:
            state["network_"] = _cpu_copy(state["network_"])
            state["device_"] = torch.device("cpu")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "network_" in state and self.device != "cpu":
            device = resolve_device(self.device, quiet=True)
            self.network_.to(device)
            self.device_ = device


def _cpu_copy(module):
    import copy

    device = next(module.parameters()).device
    return module if device.type == "cpu" else copy.deepcopy(module).cpu()
