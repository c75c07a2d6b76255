"""The estimator base every pdmer model shares: fit, personalize, predict, save.

The estimator is the scikit-learn face: parameters, presets, the hooks its
subclasses fill in, checks of parameters and data. It runs the network
through a :class:`~pdmer.estimators._session.NetworkSession`, hands the
training loop to :mod:`pdmer.estimators._training` and listeners to
:class:`~pdmer.estimators._personalization.PersonalizationMixin`.
"""

from __future__ import annotations

import inspect

import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from pdmer.estimators import _training
from pdmer.estimators.validation import check_annotators, check_X, check_y
from pdmer.estimators._params import (
    DEFAULT_WAVEFORM_RATE,
    PARAMETER_CONSTRAINTS,
    SHARED_PARAMETERS,
    TRAINING_ATTRIBUTES,
    refuse_bool_integers,
)
from pdmer.estimators._personalization import PersonalizationMixin
from pdmer.estimators._session import NetworkSession, assemble, device_and_seed
from pdmer.estimators._songs import check_features, check_spec, feature_spec, front_end_for
from pdmer.estimators._songs import mean_label_rows, read_songs
from pdmer.estimators.sizes import merge_presets
from pdmer.estimators.card import describe_training_data, write_model_card
from pdmer.estimators.persistence import model_id, register, save_estimator
from pdmer.evaluation.protocol import Episode
from pdmer.features.container import SongFeatures
from pdmer.features.frontend import AudioFeatures
from pdmer.meta.learner import MetaLearner
from pdmer.meta.tasks import TaskSampler, split_tasks
from pdmer.nn.device import resolve_device
from pdmer.scoring import ccc
from pdmer.sklearn_compat import InvalidParameterError, fit_context


class BaseEmotionRegressor(PersonalizationMixin, RegressorMixin, BaseEstimator):
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
    # Whether the network can run under torch.func.vmap (task_batching="vmap").
    _batchable_tasks: bool = False
    # Seconds of one meta-training task on one CPU thread, for the size presets
    # that take hours on a CPU (benchmarks/scale.md): fit warns with an estimate.
    _cpu_seconds_per_task: dict = {}
    # With metadata routing on, fit asks for annotators without set_fit_request.
    __metadata_request__fit = {"annotators": True}

    _parameter_constraints: dict = dict(PARAMETER_CONSTRAINTS)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register(cls)
        if cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("%(shared_parameters)s", SHARED_PARAMETERS) \
                .replace("%(training_attributes)s", TRAINING_ATTRIBUTES)

    def __init__(self, *, meta_learning=None, tasks="auto", n_episodes=None,
                 tasks_per_step=None, n_support=1, n_query=None, inner_steps=None,
                 inner_lr=None, outer_lr=None, inner_params=None, train_window=None,
                 validation_fraction=0.1, validation_interval=None, patience=None,
                 max_grad_norm=None, input_normalization=None, checkpoint_path=None,
                 checkpoint_interval=100, predict_batch_size=8, front_end=None,
                 frame_offset=None, device="auto", precision="auto", task_batching="auto",
                 distributed="auto", random_state=None, verbose="auto"):
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
        self.precision = precision
        self.task_batching = task_batching
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

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
                f"The 'size' parameter of {type(self).__name__} must be a str among "
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
        fitted = getattr(self, "resolved_params_", None)
        if not fitted:
            return self.resolved_params()
        # Lists come back from JSON (model files) where tuples went in.
        return {k: tuple(v) if isinstance(v, list) else v for k, v in fitted.items()}

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
            check_features(feature_spec, type(self).__name__, self._input)
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
        """Finish a subclass's network: input statistics, the method's modules (:func:`assemble`)."""
        return assemble(network, spec, self._settings(), self._head_prefixes)

    def _session(self) -> NetworkSession:
        """The fitted network at work: what ``fit``, ``predict`` and personalization run through."""
        return NetworkSession(
            self.network_, self._forward, self._settings(), name=type(self).__name__,
            device=self.device_, seed=getattr(self, "seed_", None),
            head_prefixes=self._head_prefixes, adapt_mode=self._adapt_mode,
            batchable_tasks=self._batchable_tasks, precision=self.precision,
            task_batching=self.task_batching, distributed=self.distributed,
            predict_batch_size=self.predict_batch_size)

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

    def make_front_end(self, frame_offset=None) -> AudioFeatures:
        """The feature extractor this estimator applies to audio.

        ``front_end`` (or the model's default); a fitted model keeps the
        global encoder it was trained with where the front end says "auto".
        This is the one place that decides where label frame 0 starts: the
        front end's ``frame_offset``, unless the estimator's ``frame_offset``
        parameter or this call's overrides it.

        Parameters
        ----------
        frame_offset : float, optional
            Audio time of label frame 0 for this extraction (audio whose
            labels start elsewhere than the model's); None keeps the
            estimator's.

        Returns
        -------
        AudioFeatures
            Not a copy when nothing had to change.
        """
        front_end = self.front_end if self.front_end is not None else self._default_features()
        return front_end_for(front_end, self.frame_offset if frame_offset is None else frame_offset,
                             getattr(self, "encoder_", None))

    @fit_context(prefer_skip_nested_validation=True)
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
        self.device_, self.seed_ = device_and_seed(self.device, self.distributed,
                                                   self.random_state, self.checkpoint_path)
        _training.warn_if_slow(type(self).__name__, self.size,
                               self._cpu_seconds_per_task.get(self.size), settings,
                               self.device_, self.distributed)
        songs = self._songs(X, y)
        spec = feature_spec(songs)
        check_features(spec, type(self).__name__, self._input)
        self.feature_spec_, self.encoder_, self.resolved_params_ = spec, spec["encoder"], settings
        self.training_data_ = describe_training_data(
            X, annotators, tasks, self._frame_offset_used(X), spec["encoder"])
        if tasks == "song":
            songs, annotators = mean_label_rows(X, songs), None
        self.tasks_ = tasks
        train_groups, validation = split_tasks(
            len(songs), annotators, self.validation_fraction, self.n_support, self.seed_)
        self.validation_listeners_ = sorted({e.listener for e in validation} - {"songs"})
        sampler = TaskSampler(train_groups, self.n_support, settings["n_query"])
        self.network_ = _training.initial_network(
            self._build_network, spec, settings, self.seed_, self.device_,
            [songs[i] for g in train_groups.values() for i in g])
        session = self._session()
        prepared = session.prepare(songs)
        trainer = _training.make_trainer(
            session, prepared, sampler, validation,
            digest=_training.run_digest(self.get_params(deep=False), session.settings, spec, songs),
            checkpoint_path=self.checkpoint_path, checkpoint_interval=self.checkpoint_interval,
            verbose=self.verbose)
        trainer.fit()
        self.history_ = {"validation_episode": [], "validation_ccc": [], **trainer.history}
        validating = trainer.callbacks[0] if validation else None
        self.best_episode_ = validating.best_episode if validating else trainer.episode - 1
        self.best_validation_ccc_ = (None if validating is None or validating.best_state is None
                                     else validating.best_score)
        self.n_episodes_run_ = trainer.episode
        self.stopped_early_ = bool(validating and validating.stopped_early)
        self.personalization_choices_ = {}
        if validation:
            self.personalization_choices_ = _training.tune_personalization(
                session, prepared, annotators, self.validation_listeners_, validation)
        _training.after_training(session, prepared, annotators, self.verbose)
        self.model_id_ = model_id(self.network_)
        self.listener_ = None
        if not validation:
            # Without a validation split: the model as it is on (mean-label)
            # training songs, the best an unadapted model can be judged on.
            if tasks == "annotator":
                prepared = session.prepare(mean_label_rows(X, songs))
            validation = [Episode("songs", (), None, tuple(range(min(32, len(prepared)))))]
        self.prediction_std_ratio_ = _training.prediction_std_ratio(session, prepared, validation)
        _training.warn_if_collapsed(session, self.prediction_std_ratio_, self.best_validation_ccc_,
                                    self.n_episodes_run_, self.best_episode_)
        return self

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
        listener = self._chosen_listener(listener)
        songs = self._songs(check_X(X), None, fitted=True)
        return self._session().predict(songs, None if listener is None else listener.params)

    def meta_learner(self) -> MetaLearner:
        """The fitted network's :class:`~pdmer.meta.learner.MetaLearner`.

        Its losses, inner loops, adaptation and prediction on song tensors,
        with this estimator's settings: for custom training loops and
        benchmarks of single meta-learning tasks.
        """
        return self._session().learner()

    def score(self, X, y, sample_weight=None):
        """Mean CCC of arousal and valence, averaged over songs."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported; scores are averaged over songs.")
        # NaN labels mark frames to ignore, as in pdmer.scoring.
        return ccc(list(y), self.predict(X))

    def save(self, path, *, card=True, dataset=None):
        """Save the fitted model to one safetensors file (no pickle); see :func:`pdmer.load`.

        Parameters
        ----------
        path : str or os.PathLike
            The model file, e.g. ``"model.safetensors"``; written atomically.
        card : bool, default=True
            Also write a model card, ``<name>.md`` beside it
            (:mod:`pdmer.estimators.card`): estimator, size, number of
            parameters, SHA-256 of the file, training data, settings,
            validation scores and the training data's licence.
        dataset : dict, optional
            The training data set, for the card: ``{"name": "DEAM", "license":
            ..., "homepage": ...}``. Recorded in ``training_data_["dataset"]``,
            so the file keeps it (``pdmer train`` passes the data set's own).

        Examples
        --------
        >>> model.save("model.safetensors")  # doctest: +SKIP
        >>> # model.safetensors and model.md, its card
        """
        check_is_fitted(self, "network_")
        if dataset is not None:
            unknown = sorted(set(dataset) - {"name", "license", "homepage"})
            if unknown or "name" not in dataset:
                raise ValueError(f"dataset must be a dict with 'name' and optionally "
                                 f"'license' and 'homepage'; got keys {sorted(dataset)}.")
            self.training_data_ = {**(getattr(self, "training_data_", None) or {}),
                                   "dataset": {k: str(v) for k, v in dataset.items()}}
        save_estimator(self, path)
        if card:
            write_model_card(self, path)

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
        self.resolved_params()
        refuse_bool_integers(self)

    # ------------------------------------------------------------- features
    def _default_features(self) -> AudioFeatures:
        """The front end used when ``front_end=None`` (with raw audio for waveform models)."""
        if self._input == "wave":
            return AudioFeatures(waveform_rate=DEFAULT_WAVEFORM_RATE)
        return AudioFeatures()

    def _frame_offset_used(self, X):
        """The front end's frame offset when fit extracts features, else None."""
        if all(isinstance(item, SongFeatures) for item in X):
            return None  # each SongFeatures carries its own
        return float(self.make_front_end().frame_offset)

    def _songs(self, X, y, fitted=False) -> list:
        """Features of every row as tensors with the estimator's front end (:func:`read_songs`).

        ``fitted=True``: features unlike the fitted model's are refused.
        """
        songs = read_songs(X, y, self.make_front_end, self.frame_offset is not None)
        if fitted:
            check_spec(songs, self.feature_spec_)
        return songs

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
