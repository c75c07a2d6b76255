"""The estimator base every pdmer model shares: fit, personalize, predict, save."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from pdmer._files import atomic_write
from pdmer.estimators._data import (
    Song,
    check_annotators,
    check_X,
    check_y,
    collate,
    song_key,
)
from pdmer.estimators.listener import ListenerAdaptation
from pdmer.features.container import SongFeatures
from pdmer.features.frontend import AudioFeatures
from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.tasks import TaskSampler
from pdmer.metrics import ccc
from pdmer.nn.losses import emotion_loss

ESTIMATORS: dict[str, type] = {}
"""Estimator classes by name, for :func:`pdmer.load`."""

DEFAULT_WAVEFORM_RATE = 16000
"""Sample rate of the raw audio that waveform models get from their default front end."""

_META_LEARNING = ("fomaml", "maml", "none")
_TASKS = ("auto", "annotator", "song")
_INNER_PARAMS = ("all", "head")


SHARED_PARAMETERS = """\
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
        (the reference) or only the recurrent layers and the head (smaller
        listener files, faster inner loops).
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
        None uses the model's default (``AudioFeatures()``, with
        ``waveform_rate`` set for the raw-audio models).
    device : {"auto", "cpu", "cuda"}, default="auto"
    mixed_precision : bool, default=True
        bfloat16 autocast on CUDA (ignored on the CPU).
    random_state : int, optional
        Seed for initialisation, task sampling and dropout; runs repeat
        exactly on the CPU.
    verbose : int, default=0
        Show a progress bar of episodes with the running loss."""
"""The parameters every estimator shares, as numpydoc; estimator docstrings
include them where they write ``%(shared_parameters)s``."""


class BaseEmotionRegressor(RegressorMixin, BaseEstimator):
    """Shared machinery of pdmer's sequence regressors.

    Subclasses define the network (:meth:`_build_network`), how it is called
    (:meth:`_forward`), which parameters form the prediction head
    (``_head_prefixes``), their architecture presets (``_sizes``, selected by
    a ``size`` parameter) and their own ``__init__`` listing every parameter
    explicitly (scikit-learn reads them from the signature) and passing the
    shared ones (:data:`SHARED_PARAMETERS`) to this ``__init__``.
    """

    _head_prefixes: tuple = ()
    _sizes: dict = {}
    # "wave" for models that learn from raw audio (SongFeatures.waveforms).
    _input: str = "local"
    # With metadata routing on, fit asks for annotators without set_fit_request.
    __metadata_request__fit = {"annotators": True}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ESTIMATORS[cls.__name__] = cls
        if cls.__doc__ and "%(shared_parameters)s" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("%(shared_parameters)s", SHARED_PARAMETERS)

    def __init__(self, *, meta_learning="fomaml", tasks="auto", n_episodes=2000,
                 tasks_per_step=16, n_support=1, n_query=15, inner_steps=16, inner_lr=5e-3,
                 outer_lr=5e-5, inner_params="all", train_window=60, validation_fraction=0.1,
                 validation_interval=50, checkpoint_path=None, checkpoint_interval=100,
                 predict_batch_size=8, features=None, device="auto", mixed_precision=True,
                 random_state=None, verbose=0):
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
        """The network sizes after applying the ``size`` preset and the overrides."""
        if self.size not in self._sizes:
            raise ValueError(f"size must be one of {tuple(self._sizes)}; got {self.size!r}.")
        sizes = dict(self._sizes[self.size])
        for name in sizes:
            value = getattr(self, name)
            if value is not None:
                # Lists come back from JSON (pdmer.load) where tuples went in.
                sizes[name] = tuple(value) if isinstance(value, list) else value
        return sizes

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
        raise NotImplementedError

    def _forward(self, network, state, batch, context=None):
        """Return ``(prediction (B, T, 2), auxiliary loss or None, context or None)``.

        ``context`` is what the network computes before its head (or None if
        it cannot say); given back, only the head runs.
        """
        raise NotImplementedError

    # ------------------------------------------------------------- public API
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
        self._check_params()
        X = check_X(X)
        y = check_y(y, len(X))
        annotators = check_annotators(annotators, len(X))
        tasks = self.tasks if self.tasks != "auto" else (
            "annotator" if annotators is not None else "song")
        if tasks == "annotator" and annotators is None:
            raise ValueError("tasks='annotator' needs annotator ids: pass annotators=... to fit.")
        self.device_ = _resolve_device(self.device)
        self.seed_ = self._initial_seed()
        songs = self._songs(X, y)
        spec = _feature_spec(songs)
        self._check_features(spec)
        self.feature_spec_ = spec
        self.encoder_ = spec["encoder"]
        if tasks == "song":
            songs, annotators = _mean_label_rows(X, songs), None
        self.tasks_ = tasks
        train_groups, val_groups = self._split(songs, annotators)
        sampler = TaskSampler(train_groups, self.n_support, self.n_query)
        self._train(songs, sampler, val_groups, annotators)
        return self

    def adapt_listener(self, X, y, steps=None, lr=None, progress=None) -> ListenerAdaptation:
        """Adapt to one listener and return the adaptation, leaving the model as it is.

        Adaptation always starts from the meta-learned parameters; neither they
        nor the current ``listener_`` change, so one fitted model can serve
        many listeners (pass the result to :meth:`predict` as ``listener=``).

        Parameters
        ----------
        X : sequence of songs
            The listener's annotated song(s); one is enough.
        y : sequence of ndarray of shape (n_frames_i, 2)
            The listener's labels of those songs.
        steps : int, optional
            Gradient steps; defaults to ``inner_steps``.
        lr : float, optional
            Step size; defaults to ``inner_lr``.
        progress : callable, optional
            Called as ``progress(step, steps)`` after every gradient step.

        Returns
        -------
        ListenerAdaptation
        """
        check_is_fitted(self, "network_")
        X = check_X(X)
        y = check_y(y, len(X))
        steps = self.inner_steps if steps is None else int(steps)
        lr = self.inner_lr if lr is None else float(lr)
        if steps < 1 or not lr > 0:
            raise ValueError(f"personalize needs steps >= 1 and lr > 0; got steps={steps}, lr={lr}.")
        support = self._songs(X, y)
        self._check_spec(support)
        with self._seeded(-1):
            params = self._adapt_from_meta(support, steps, lr, progress)
        return ListenerAdaptation(
            params={n: params[n].detach().cpu() for n in self._adapted_names()},
            model_id=self.model_id_, estimator=type(self).__name__,
            info={"n_songs": len(support), "n_frames": int(sum(s.n_frames for s in support)),
                  "steps": steps, "lr": lr},
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
            Step size; defaults to ``inner_lr``.

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
        return self._predict_songs(songs, state)

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
    def _check_params(self):
        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")

        for name in ("n_episodes", "tasks_per_step", "n_support", "n_query", "inner_steps",
                     "validation_interval", "checkpoint_interval", "predict_batch_size"):
            positive_int(name)
        for name in ("inner_lr", "outer_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a positive number; got {value!r}.")
        for name, allowed in (("meta_learning", _META_LEARNING), ("tasks", _TASKS),
                              ("inner_params", _INNER_PARAMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}.")
        if self.train_window is not None:
            positive_int("train_window")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1); got {self.validation_fraction!r}.")
        if self.random_state is not None and (
                isinstance(self.random_state, bool)
                or not isinstance(self.random_state, numbers.Integral)):
            raise ValueError(f"random_state must be None or an int; got {self.random_state!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:n]'; got {self.device!r}.")
        self.architecture()

    def _check_features(self, spec: dict) -> None:
        """Refuse features the model cannot use: raw-audio models need waveforms."""
        if self._input == "wave" and not spec["n_waveform_samples"]:
            raise ValueError(
                f"{type(self).__name__} learns from raw audio, but these features hold no "
                "waveforms. Extract them with AudioFeatures(waveform_rate="
                f"{DEFAULT_WAVEFORM_RATE}) (or pass such a front end as features=, or audio "
                "paths with features=None).")

    def _check_spec(self, songs):
        spec = _feature_spec(songs)
        if spec != self.feature_spec_:
            raise ValueError(
                f"These features do not match the ones the model was trained on: "
                f"{spec} vs {self.feature_spec_}. Extract them with the same "
                "AudioFeatures settings and global encoder."
            )

    # ------------------------------------------------------------- features
    def _front_end(self):
        front_end = self.features if self.features is not None else self._default_features()
        if front_end.global_encoder == "auto" and getattr(self, "encoder_", None) in (
                "imagebind", "logmel-stats"):
            # A fitted model extracts with the encoder it was trained with,
            # whatever weights this machine has installed since.
            front_end = clone(front_end).set_params(global_encoder=self.encoder_)
        return front_end

    def _default_features(self) -> AudioFeatures:
        """The front end used when ``features=None`` (with raw audio for waveform models)."""
        if self._input == "wave":
            return AudioFeatures(waveform_rate=DEFAULT_WAVEFORM_RATE)
        return AudioFeatures()

    def _songs(self, X, y) -> list[Song]:
        """Features of every row as tensors, extracting each distinct song once."""
        keys = [song_key(item) for item in X]
        first = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        todo = [X[i] for i in first.values()]
        if all(isinstance(item, SongFeatures) for item in todo):
            extracted = todo
        else:
            extracted = self._front_end().transform(todo)
        by_key = dict(zip(first, extracted))
        songs = []
        for i, key in enumerate(keys):
            feats = by_key[key]
            labels = None
            if y is not None:
                n = len(y[i])
                if n > feats.n_frames:
                    raise ValueError(
                        f"y[{i}] has {n} frames but song {feats.source} only has "
                        f"{feats.n_frames} frames of audio after its frame offset "
                        f"({feats.frame_offset:g} s). Labels and audio do not line up: "
                        "check the song, the labels and frame_offset."
                    )
                feats = feats.crop(0, n)
                labels = torch.from_numpy(y[i])
            songs.append(Song(torch.from_numpy(feats.local_patches),
                              torch.from_numpy(feats.global_embeddings), labels,
                              encoder=feats.encoder,
                              wave=None if feats.waveforms is None else
                              torch.from_numpy(feats.waveforms)))
        return songs

    def _split(self, songs, annotators):
        """Training task groups, and validation groups taken from the training data."""
        rng = np.random.default_rng(self._seed())
        if annotators is not None:
            ids = np.unique(annotators)
            counts = {a: int(np.sum(annotators == a)) for a in ids}
            n_val = int(math.ceil(self.validation_fraction * len(ids)))
            eligible = [a for a in ids if counts[a] >= 2]
            if self.validation_fraction == 0 or len(ids) - n_val < 2 or len(eligible) < n_val:
                n_val = 0
            val_ids = set(rng.choice(eligible, size=n_val, replace=False)) if n_val else set()
            groups = {a: np.flatnonzero(annotators == a) for a in ids}
            train = {a: g for a, g in groups.items() if a not in val_ids}
            val = {a: g for a, g in groups.items() if a in val_ids}
            return train, val
        order = rng.permutation(len(songs))
        n_val = int(math.ceil(self.validation_fraction * len(songs)))
        if self.validation_fraction == 0 or len(songs) - n_val < self.n_support + 1:
            n_val = 0
        return {"songs": np.sort(order[n_val:])}, (
            {"songs": np.sort(order[:n_val])} if n_val else {})

    # ------------------------------------------------------------- training
    def _seed(self) -> int:
        return self.seed_

    def _initial_seed(self) -> int:
        """The run's seed: random_state, or the interrupted run's, or a fresh one."""
        if self.random_state is not None:
            return int(self.random_state)
        if self.checkpoint_path and os.path.exists(self.checkpoint_path):
            return int(torch.load(self.checkpoint_path, map_location="cpu",
                                  weights_only=True)["seed"])
        return int(np.random.SeedSequence().entropy % (2**31))

    @contextlib.contextmanager
    def _seeded(self, step: int):
        """Seed torch for one step, leaving the caller's global RNG untouched."""
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self._seed() * 1_000_003 + step) % (2**63))
            yield

    def _adapted_names(self):
        names = [n for n, _ in self.network_.named_parameters()]
        if self.inner_params == "head":
            names = [n for n in names if n.startswith(self._head_prefixes)]
        return names

    def _loss(self, state, batch, buffers=None, context=None):
        return self._loss_and_context(state, batch, buffers, context)[0]

    def _loss_and_context(self, state, batch, buffers=None, context=None):
        full = state if buffers is None else {**state, **buffers}
        with self._autocast():
            prediction, aux, context = self._forward(self.network_, full, batch, context)
        loss = emotion_loss(prediction.float(), batch.y, batch.mask)
        return (loss if aux is None else loss + aux.float()), context

    def _autocast(self):
        enabled = self.mixed_precision and self.device_.type == "cuda"
        return torch.autocast(device_type=self.device_.type, dtype=torch.bfloat16,
                              enabled=enabled)

    def _inner_context(self):
        # cuDNN's LSTM has no double backward.
        second_order = self.meta_learning == "maml" and self.device_.type == "cuda"
        return torch.backends.cudnn.flags(enabled=False) if second_order else contextlib.nullcontext()

    def _support_loss(self):
        """The inner-loop loss ``(params, batch) -> loss`` for one support set."""
        # Inner loops run on copies of the BatchNorm statistics: adaptation to
        # one song must not drift the population statistics used at test time.
        buffers = {n: b.clone() for n, b in self.network_.named_buffers()}
        if self.inner_params != "head":
            return lambda state, batch: self._loss(state, batch, buffers)
        # Only the head adapts, so the rest of the network gives the same
        # context at every step: compute it once (keeping its graph for
        # second-order MAML).
        cache = {}

        def loss(state, batch):
            value, context = self._loss_and_context(state, batch, buffers, cache.get("context"))
            if "context" not in cache and context is not None:
                cache["context"] = context if self.meta_learning == "maml" else context.detach()
            return value

        return loss

    def _train(self, songs, sampler, val_groups, annotators):
        seed = self._seed()
        with self._seeded(-2):
            self.network_ = self._build_network(self.feature_spec_).to(self.device_)
        songs = [s.to(self.device_) for s in songs]
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.outer_lr)
        self.history_ = {"episode": [], "loss": [], "validation_episode": [],
                         "validation_ccc": []}
        best_state, best_score, start = None, -np.inf, 0
        checkpoint = self._load_checkpoint(songs, optimizer)
        if checkpoint is not None:
            start, best_state, best_score = checkpoint
        names = self._adapted_names()
        bar = tqdm(range(start, self.n_episodes), initial=start, total=self.n_episodes,
                   disable=not self.verbose, desc=f"{type(self).__name__} ({self.meta_learning})",
                   unit="episode")
        for episode in bar:
            rng = np.random.default_rng([seed, episode])
            tasks = sampler.sample(self.tasks_per_step, rng)
            self.network_.train()
            optimizer.zero_grad(set_to_none=True)
            params = dict(self.network_.named_parameters())
            with self._seeded(episode):
                if self.meta_learning == "none":
                    # The same songs as a meta-learning episode, one task's songs per
                    # batch with accumulated gradients: the mean loss over all of them
                    # at the memory of one task (16 x 16 songs in one batch would not
                    # fit a GPU with the paper's sizes).
                    loss = 0.0
                    for task in tasks:
                        rows = np.r_[task.support, task.query]
                        batch = collate([songs[i].window(self.train_window, rng)
                                         for i in rows], self.device_)
                        task_loss = self._loss(params, batch) / len(tasks)
                        task_loss.backward()
                        loss += float(task_loss.detach())
                else:
                    loss = 0.0
                    for task in tasks:
                        support = collate([songs[i].window(self.train_window, rng)
                                           for i in task.support], self.device_)
                        query = collate([songs[i].window(self.train_window, rng)
                                         for i in task.query], self.device_)
                        with self._inner_context():
                            loss += maml_task_backward(
                                self._support_loss(), self._loss, params, names, support,
                                query, self.inner_steps, self.inner_lr,
                                first_order=self.meta_learning == "fomaml",
                                weight=1.0 / len(tasks)) / len(tasks)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"The training loss became {loss} at episode {episode}; lower "
                    "outer_lr or inner_lr.")
            optimizer.step()
            self.history_["episode"].append(episode)
            self.history_["loss"].append(loss)
            last = episode + 1 == self.n_episodes
            if val_groups and ((episode + 1) % self.validation_interval == 0 or last):
                score = self._validate(songs, val_groups, annotators is not None)
                self.history_["validation_episode"].append(episode)
                self.history_["validation_ccc"].append(score)
                if score > best_score:
                    best_score = score
                    best_state = {k: v.detach().clone() for k, v in
                                  self.network_.state_dict().items()}
                bar.set_postfix(loss=f"{loss:.4f}", val_ccc=f"{score:.3f}")
            else:
                bar.set_postfix(loss=f"{loss:.4f}")
            if self.checkpoint_path and ((episode + 1) % self.checkpoint_interval == 0 or last):
                self._save_checkpoint(episode + 1, optimizer, best_state, best_score, songs)
        bar.close()
        if best_state is not None:
            self.network_.load_state_dict(best_state)
            self.best_episode_ = int(self.history_["validation_episode"][
                int(np.argmax(self.history_["validation_ccc"]))]) if self.history_[
                "validation_ccc"] else None
        else:
            self.best_episode_ = self.n_episodes - 1
        self.best_validation_ccc_ = None if best_state is None else float(best_score)
        self.network_.eval()
        self.model_id_ = _model_id(self.network_)
        self.listener_ = None

    def _adapt_from_meta(self, support: list[Song], steps: int, lr: float,
                         progress=None) -> dict:
        """Adapted parameters for support songs, from detached meta-parameters."""
        names = self._adapted_names()
        params = {n: p.detach().clone().requires_grad_(n in names)
                  for n, p in self.network_.named_parameters()}
        batch = collate(support, self.device_)
        was_training = self.network_.training
        self.network_.train()
        try:
            with torch.enable_grad(), self._inner_context():
                fast = adapt(self._support_loss(), params, names, batch, steps, lr,
                             progress=progress)
        finally:
            self.network_.train(was_training)
        return {n: fast[n].detach() for n in names}

    def _validate(self, songs, val_groups, personalized: bool) -> float:
        """Mean CCC on the validation split (personalized per annotator if possible)."""
        scores = []
        for key, rows in sorted(val_groups.items()):
            query = [songs[i] for i in rows]
            state = None
            if personalized:
                with self._seeded(-3):
                    state = self._adapt_from_meta([query[0]], self.inner_steps, self.inner_lr)
                query = query[1:]
            predictions = self._predict_songs(query, state)
            scores.append(ccc([s.y.cpu().numpy() for s in query], predictions))
        return float(np.mean(scores))

    @torch.no_grad()
    def _predict_songs(self, songs: list[Song], state) -> list[np.ndarray]:
        was_training = self.network_.training
        self.network_.eval()
        order = np.argsort([s.n_frames for s in songs])
        out = [None] * len(songs)
        try:
            for start in range(0, len(order), self.predict_batch_size):
                idx = order[start: start + self.predict_batch_size]
                batch = collate([songs[i] for i in idx], self.device_, labels=False)
                with self._autocast():
                    prediction, _, _ = self._forward(self.network_, state, batch)
                prediction = prediction.float().cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = prediction[j, : songs[i].n_frames]
        finally:
            self.network_.train(was_training)
        return out

    # ----------------------------------------------------------- checkpoints
    def _fingerprint(self, songs) -> str:
        skip = {"verbose", "checkpoint_path", "checkpoint_interval", "device", "n_episodes",
                "predict_batch_size", "features"}
        params = {k: repr(v) for k, v in self.get_params(deep=False).items() if k not in skip}
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
        digest.update(repr(self.feature_spec_).encode())
        for s in songs:
            for tensor in (s.local, s.glob, s.y, s.wave):
                if tensor is not None:
                    digest.update(tensor.cpu().numpy().tobytes())
        return digest.hexdigest()[:32]

    def _save_checkpoint(self, episode, optimizer, best_state, best_score, songs):
        state = {
            "fingerprint": self._fingerprint(songs),
            "seed": self.seed_,
            "episode": episode,
            "network": self.network_.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_state": best_state,
            "best_score": float(best_score),
            "history": self.history_,
        }
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(state, tmp))

    def _load_checkpoint(self, songs, optimizer):
        if not self.checkpoint_path or not os.path.exists(self.checkpoint_path):
            return None
        state = torch.load(self.checkpoint_path, map_location=self.device_, weights_only=True)
        if state.get("fingerprint") != self._fingerprint(songs):
            raise ValueError(
                f"The checkpoint {self.checkpoint_path} belongs to a run with other "
                "parameters or data. Delete it or choose another checkpoint_path.")
        self.network_.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        self.history_ = state["history"]
        if self.verbose:
            tqdm.write(f"Resuming from {self.checkpoint_path} at episode {state['episode']}.")
        return state["episode"], state["best_state"], state["best_score"]

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
            device = _resolve_device(self.device, quiet=True)
            self.network_.to(device)
            self.device_ = device


def _cpu_copy(module):
    import copy

    device = next(module.parameters()).device
    return module if device.type == "cpu" else copy.deepcopy(module).cpu()


def _resolve_device(device, quiet=False) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        if quiet:
            return torch.device("cpu")
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use "
                         "device='auto' or 'cpu'.")
    return device


def _feature_spec(songs) -> dict:
    kinds = {(tuple(s.local.shape[1:]), s.glob.shape[1], s.encoder,
              0 if s.wave is None else s.wave.shape[1]) for s in songs}
    if len(kinds) != 1:
        raise ValueError(
            f"All songs must have features of one kind; got (patch, global size, "
            f"encoder, waveform samples per frame) = {sorted(kinds)}. Extract every "
            "song with the same AudioFeatures settings.")
    (patch, global_dim, encoder, wave_samples), = kinds
    return {"n_patch_times": patch[0], "n_mels": patch[1], "global_dim": global_dim,
            "encoder": encoder, "n_waveform_samples": wave_samples}


def _mean_label_rows(X, songs) -> list[Song]:
    """One row per distinct song with labels averaged over its annotators."""
    groups: dict = {}
    for item, song in zip(X, songs):
        groups.setdefault(song_key(item), []).append(song)
    out = []
    for rows in groups.values():
        n = min(r.n_frames for r in rows)
        y = torch.stack([r.y[:n] for r in rows]).mean(0)
        first = rows[0].crop(0, n)
        out.append(Song(first.local, first.glob, y, first.encoder, first.wave))
    return out


def _model_id(network) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]

