"""Model sizes: every setting a ``size`` needs, in one place.

An estimator's ``size`` selects one preset: its architecture (per model,
defined beside each estimator) and the training settings here. Parameters
left at None take the preset's value when the model is fitted; the values
used are recorded in the fitted ``resolved_params_``. Read them with
``DSAMLRegressor.presets()`` (or any estimator's ``presets()``).
"""

from __future__ import annotations

import copy

from pdmer.meta.methods import CalibrateThenAdapt

TRAINING_PRESETS = {
    # The paper's training (method.md): first-order MAML, 2000 episodes of 16
    # annotator tasks (1 support + 15 query songs), 16 inner SGD steps at
    # 5e-3 on every parameter, Adam at 5e-5, 30 s windows. No input
    # normalisation, clipping or early stopping: the paper has none.
    "paper": dict(meta_learning="fomaml", n_episodes=2000, tasks_per_step=16, n_query=15,
                  inner_steps=16, inner_lr=5e-3, outer_lr=5e-5, inner_params="all", train_window=60,
                  validation_interval=50, patience=0, max_grad_norm=0.0,
                  input_normalization=False),
    # For CPUs. Chosen on synthetic data sets of several sample rates,
    # lengths, label offsets and seeds (benchmarks/bench_training.py):
    # head-only inner loops, standardised inputs, clipped gradients and
    # early stopping keep training from collapsing to a constant. Personalization
    # fits the listener's delay and calibration in closed form around the inner steps,
    # from the training listeners' mean adaptation, in 4 steps (CalibrateThenAdapt;
    # chosen on the robustness suite's dev conditions, docs/user_guide/evaluation.rst).
    "small": dict(meta_learning=CalibrateThenAdapt(recenter=8, recentered_steps=4), n_episodes=500, tasks_per_step=4, n_query=3,
                  inner_steps=8, inner_lr=0.05, outer_lr=1e-3, inner_params="head", train_window=30,
                  validation_interval=20, patience=10, max_grad_norm=1.0,
                  input_normalization=True),
}
"""Training settings per preset, shared by every estimator."""


def merge_presets(architectures: dict) -> dict:
    """Full presets of one estimator: its architectures plus the training settings."""
    return {size: {**copy.deepcopy(TRAINING_PRESETS[size]), **copy.deepcopy(arch)}
            for size, arch in architectures.items()}
