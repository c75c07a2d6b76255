"""Experiment presets: data, front end, training and networks, in one place.

The benchmark, the demo and the robustness suite read their settings here, so
the demo is exactly the benchmark's ``small`` preset on DSAML.

Training settings come from the estimators' presets
(:data:`pdmer.estimators.TRAINING_PRESETS`, selected by each model's
``size``); a preset here holds only the data, the front end, and what it
changes on top of the estimators' preset, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pdmer.estimators import (
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    DSAMLRegressor,
    MCRNNRegressor,
)

__all__ = ["MODELS", "PAPER_FEATURES", "PRESETS", "Preset", "parameter_counts"]

MODELS = {
    "dsaml": ("DSAML", DSAMLRegressor),
    "damff": ("DAMFF", DAMFFRegressor),
    "mcrnn": ("MCRNN", MCRNNRegressor),
    "dnn": ("DNN", DNNRegressor),
    "crnn": ("CRNN", CRNNRegressor),
}
"""Model keys accepted by ``models=``: display name and estimator class."""

PAPER_FEATURES = dict(n_patch_times=51, n_mels=128, global_dim=1024, encoder="imagebind",
                      n_waveform_samples=8000)
"""Input shapes of the paper's setting (51x128 log-mel patches at 44.1 kHz,
1024-d ImageBind embeddings, 16 kHz raw audio), for parameter counts."""


@dataclass(frozen=True)
class Preset:
    """Settings of one experiment size.

    Attributes
    ----------
    data : dict
        :func:`pdmer_datasets.synthetic.generate` parameters (synthetic only).
    features : dict
        :class:`~pdmer.features.AudioFeatures` parameters (``n_jobs`` defaults
        to -1); ``waveform_rate`` is used only when a raw-audio model runs.
    training : dict
        Estimator parameters shared by every model that change the
        estimators' training preset (empty: the preset as it is).
    models : dict
        Architecture parameters per model key.
    support_frames : int
        Support frames of the ``same-song`` protocol.
    split : dict
        Held-out fractions of the synthetic set: ``test_listeners`` (PDMER and
        DMER) and ``test_songs`` (PDMER with the song-disjoint split).
    """

    data: dict
    features: dict
    training: dict
    models: dict
    support_frames: int
    split: dict = field(default_factory=lambda: dict(test_listeners=0.25, test_songs=0.25))


PRESETS = {
    # Every listener annotates every song, so that each held-out listener keeps
    # unseen songs to score after the song-disjoint split.
    "tiny": Preset(
        data=dict(n_songs=8, n_listeners=8, songs_per_listener=8, duration=4.0,
                  sample_rate=8000),
        # One process: starting joblib workers costs more than 8 tiny songs.
        features=dict(sample_rate=8000, n_mels=16, window_seconds=0.032, hop_seconds=0.032,
                      global_window=2.0, waveform_rate=1000, n_jobs=1),
        # On top of the estimators' "small" preset: a few milliseconds per episode.
        training=dict(n_episodes=2, tasks_per_step=2, n_query=2, inner_steps=2, train_window=6,
                      validation_fraction=0.0),
        models=dict(
            dsaml=dict(size="small", d_model=16, n_heads=2, n_layers=1, d_ff=16, lstm_hidden=8,
                       head_hidden=8),
            damff=dict(size="small", conv_channels=4, scales=(3,), rnn_hidden=4),
            mcrnn=dict(size="small", view_kernels=(8, 32), conv_channels=4, fusion_dim=8,
                       rnn_hidden=4),
            dnn=dict(size="small", conv_channels=4, rnn_hidden=4),
            crnn=dict(size="small", conv_channels=4, rnn_hidden=4),
        ),
        support_frames=3,
    ),
    # The CPU preset, also the demo's: coarse 26x32 log-mel patches and
    # head-only inner loops fit 2 CPU cores; raw audio at 8 kHz for the
    # waveform models. 32 listeners of 16 songs each leave every held-out
    # listener about 4 songs nobody annotated in training.
    "small": Preset(
        data=dict(n_songs=40, n_listeners=32, songs_per_listener=16, duration=20.0,
                  sample_rate=22050),
        features=dict(sample_rate=22050, n_mels=32, window_seconds=0.04, hop_seconds=0.02,
                      global_window=10.0, waveform_rate=8000),
        # The estimators' "small" training preset, unchanged.
        training=dict(),
        models=dict(
            # Half the estimators' small DSAML (d_model 128, 2 layers): the
            # demo trains three of them and finishes in about 2 minutes on
            # 2 CPU cores.
            dsaml=dict(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                       lstm_hidden=32, head_hidden=32),
            damff=dict(size="small"),
            mcrnn=dict(size="small"),
            dnn=dict(size="small"),
            crnn=dict(size="small"),
        ),
        support_frames=12,
    ),
    # The paper's sizes and training (the estimators' defaults).
    "paper": Preset(
        data=dict(),
        features=dict(global_encoder="imagebind", waveform_rate=16000),
        training=dict(),
        models={key: dict(size="paper") for key in MODELS},
        support_frames=60,
    ),
}
"""Experiment sizes: ``tiny`` (tests), ``small`` (CPU, the demo), ``paper`` (GPU)."""


def parameter_counts(models=tuple(MODELS), preset="paper", feature_spec=None) -> dict:
    """Trainable parameters of each model at a preset's sizes, without training.

    Parameters
    ----------
    models : sequence of str, default=all
        Keys of :data:`MODELS`.
    preset : str, default="paper"
        Architecture parameters from :data:`PRESETS`.
    feature_spec : dict, optional
        Input shapes; defaults to :data:`PAPER_FEATURES`.

    Returns
    -------
    dict of str -> int

    Examples
    --------
    >>> from pdmer.experiments import parameter_counts
    >>> parameter_counts(["crnn"])
    {'crnn': 58786}
    """
    spec = dict(PAPER_FEATURES if feature_spec is None else feature_spec)
    return {key: MODELS[key][1](**PRESETS[preset].models[key]).count_parameters(spec)
            for key in models}
