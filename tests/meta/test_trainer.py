"""Tests of the training loop and its callbacks (pdmer.meta.trainer, pdmer.meta.callbacks).

The loop is tested on a toy linear model; its use by the estimators
(checkpoints that resume exactly, early stopping, clipping) on the tiny
DSAML of the other estimator tests.
"""

from __future__ import annotations

import math
import os
import functools
import time

import numpy as np
import pytest
import torch

from pdmer import DSAMLRegressor, SongFeatures
from pdmer.estimators.exceptions import CollapseWarning
from pdmer.meta.callbacks import Callback, Checkpoint, Validation
from pdmer.meta.trainer import Trainer

from helpers import TINY_MODEL, tiny as tiny_model, make_annotator_table

pytestmark = pytest.mark.filterwarnings("ignore::pdmer.estimators.exceptions.CollapseWarning")


# Adapting every parameter (the reference), unless a test says otherwise.
tiny = functools.partial(tiny_model, inner_params="all")


def assert_predictions_equal(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


@pytest.fixture(scope="module")
def table():
    return make_annotator_table()


def toy_trainer(n_episodes=5, scores=None, patience=0, max_grad_norm=None, lr=0.1, scale=1.0):
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    x, target = torch.randn(16, 3), torch.randn(16, 1)

    def step(episode):
        loss = scale * ((network(x) - target) ** 2).mean()
        loss.backward()
        return float(loss)

    callbacks = []
    if scores is not None:
        values = iter(scores)
        callbacks.append(Validation(lambda: next(values), interval=1, patience=patience))
    optimizer = torch.optim.SGD(network.parameters(), lr=lr)
    return Trainer(network, optimizer, step, n_episodes, max_grad_norm=max_grad_norm,
                   callbacks=callbacks)


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


def test_trainer_records_history_and_ends_in_eval_mode():
    trainer = toy_trainer(n_episodes=4).fit()
    assert trainer.episode == 4
    assert trainer.history["episode"] == [0, 1, 2, 3]
    assert len(trainer.history["loss"]) == len(trainer.history["grad_norm"]) == 4
    assert trainer.history["loss"][-1] < trainer.history["loss"][0]
    assert not trainer.network.training


def test_gradient_clipping_bounds_every_step():
    # With SGD at lr 1 a step moves the parameters by exactly the gradient:
    # clipped, by at most max_grad_norm, while the recorded norm is the raw one.
    trainer = toy_trainer(n_episodes=1, max_grad_norm=0.5, lr=1.0, scale=1000.0)
    before = torch.cat([p.detach().reshape(-1).clone() for p in trainer.network.parameters()])
    trainer.fit()
    after = torch.cat([p.detach().reshape(-1) for p in trainer.network.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.5, rel=1e-4)
    assert trainer.history["grad_norm"][0] > 100
    unclipped = toy_trainer(n_episodes=1, lr=1.0, scale=1000.0).fit()
    moved = torch.cat([p.detach().reshape(-1) for p in unclipped.network.parameters()])
    assert float((moved - before).norm()) > 100


def test_non_finite_loss_or_gradient_stops_training():
    trainer = toy_trainer(n_episodes=3)
    trainer.step = lambda episode: math.nan
    with pytest.raises(FloatingPointError, match="training loss became nan at episode 0"):
        trainer.fit()
    trainer = toy_trainer(n_episodes=3, scale=math.inf)
    with pytest.raises(FloatingPointError, match="became"):
        trainer.fit()


def test_early_stopping_keeps_the_best_state():
    kept = {}

    class Snapshot(Callback):
        def on_episode_end(self, trainer, episode):
            kept[episode] = {k: v.clone() for k, v in trainer.network.state_dict().items()}

    trainer = toy_trainer(n_episodes=10, scores=[0.1, 0.5, 0.4, 0.3, 0.2, 0.9], patience=3)
    trainer.callbacks.append(Snapshot())
    trainer.fit()
    validation = trainer.callbacks[0]
    assert trainer.episode == 5  # three validations without improvement after episode 1
    assert validation.stopped_early and validation.best_episode == 1
    assert validation.best_score == 0.5
    assert trainer.history["validation_ccc"] == [0.1, 0.5, 0.4, 0.3, 0.2]
    for name, value in trainer.network.state_dict().items():
        assert torch.equal(value, kept[1][name])


def test_patience_zero_never_stops():
    trainer = toy_trainer(n_episodes=6, scores=[0.5, 0.4, 0.3, 0.2, 0.1, 0.0], patience=0)
    trainer.fit()
    assert trainer.episode == 6 and not trainer.callbacks[0].stopped_early


# ---------------------------------------------------------------------------
# Checkpoints (moved from test_estimator.py, plus the leftovers of killed runs)
# ---------------------------------------------------------------------------


def test_checkpoint_written(table, tmp_path):
    X, y, annotators = table
    path = tmp_path / "run" / "checkpoint.pt"
    est = tiny(n_episodes=4, checkpoint_path=str(path), checkpoint_interval=2)
    est.fit(X, y, annotators=annotators)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temp files
    state = torch.load(path, weights_only=True)
    assert state["episode"] == 4
    assert state["history"] == est.history_


def test_checkpoint_resume_equals_uninterrupted_run(table, tmp_path):
    X, y, annotators = table
    path = str(tmp_path / "checkpoint.pt")
    full = tiny(n_episodes=4).fit(X, y, annotators=annotators)
    tiny(n_episodes=2, checkpoint_path=path, checkpoint_interval=2).fit(
        X, y, annotators=annotators)
    resumed = tiny(n_episodes=4, checkpoint_path=path, checkpoint_interval=2)
    resumed.fit(X, y, annotators=annotators)
    assert resumed.history_["episode"] == [0, 1, 2, 3]
    assert resumed.history_ == full.history_
    assert resumed.best_validation_ccc_ == full.best_validation_ccc_
    assert resumed.model_id_ == full.model_id_
    assert_predictions_equal(resumed.predict(X), full.predict(X))
    # A finished run's checkpoint: fitting again changes nothing.
    again = tiny(n_episodes=4, checkpoint_path=path, checkpoint_interval=2)
    again.fit(X, y, annotators=annotators)
    assert again.history_ == full.history_
    assert again.model_id_ == full.model_id_


def test_checkpoint_resume_after_a_crash(table, tmp_path, monkeypatch):
    X, y, annotators = table
    path = str(tmp_path / "checkpoint.pt")
    full = tiny(n_episodes=5).fit(X, y, annotators=annotators)
    original = Checkpoint.save

    def save_then_die(self, trainer):
        original(self, trainer)
        if trainer.episode == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        tiny(n_episodes=5, checkpoint_path=path, checkpoint_interval=2).fit(
            X, y, annotators=annotators)
    monkeypatch.setattr(Checkpoint, "save", original)
    assert torch.load(path, weights_only=True)["history"]["episode"] == [0, 1]
    resumed = tiny(n_episodes=5, checkpoint_path=path, checkpoint_interval=2)
    resumed.fit(X, y, annotators=annotators)
    assert resumed.history_ == full.history_
    assert resumed.best_episode_ == full.best_episode_
    assert_predictions_equal(resumed.predict(X), full.predict(X))


def test_checkpoint_of_another_run_is_refused(table, tmp_path):
    X, y, annotators = table
    path = str(tmp_path / "checkpoint.pt")
    tiny(n_episodes=2, checkpoint_path=path, checkpoint_interval=2).fit(
        X, y, annotators=annotators)
    other_labels = [np.clip(labels + 0.1, -1, 1) for labels in y]
    with pytest.raises(ValueError, match="belongs to a run with other parameters or data"):
        tiny(n_episodes=4, checkpoint_path=path).fit(X, other_labels, annotators=annotators)
    with pytest.raises(ValueError, match="belongs to a run with other parameters or data"):
        tiny(n_episodes=4, checkpoint_path=path, inner_lr=0.01).fit(
            X, y, annotators=annotators)
    # Parameters that do not change training may differ.
    tiny(n_episodes=3, checkpoint_path=path, checkpoint_interval=1, verbose=0,
         predict_batch_size=3).fit(X, y, annotators=annotators)


def test_checkpoint_of_other_features_is_refused(table, tmp_path):
    X, y, annotators = table
    path = str(tmp_path / "checkpoint.pt")
    tiny(n_episodes=2, checkpoint_path=path).fit(X, y, annotators=annotators)
    shuffled = [SongFeatures(x.local_patches[::-1].copy(), x.global_embeddings[::-1].copy(),
                             source=x.source + "-reversed") for x in X]
    with pytest.raises(ValueError, match="belongs to a run with other parameters or data"):
        tiny(n_episodes=4, checkpoint_path=path).fit(shuffled, y, annotators=annotators)


def test_checkpoint_resume_without_random_state_keeps_the_seed(table, tmp_path):
    X, y, annotators = table
    path = str(tmp_path / "checkpoint.pt")
    first = tiny(random_state=None, n_episodes=2, checkpoint_path=path)
    first.fit(X, y, annotators=annotators)
    resumed = tiny(random_state=None, n_episodes=4, checkpoint_path=path)
    resumed.fit(X, y, annotators=annotators)
    assert resumed.seed_ == first.seed_


def test_checkpoint_of_a_longer_run_is_refused(table, tmp_path):
    # A leftover 4-episode checkpoint must not become a "2-episode" model.
    X, y, annotators = table
    path = tmp_path / "checkpoint.pt"
    tiny(n_episodes=4, checkpoint_path=str(path)).fit(X, y, annotators=annotators)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"holds 4 episodes of training, more than "
                                         r"n_episodes=2.*Delete it"):
        tiny(n_episodes=2, checkpoint_path=str(path)).fit(X, y, annotators=annotators)
    assert path.read_bytes() == before  # left as it was


def test_checkpoint_removes_temporary_files_of_a_killed_write(table, tmp_path):
    X, y, annotators = table
    folder = tmp_path / "run"
    folder.mkdir()
    old = time.time() - 3600
    orphans = [folder / "tmpab12cd.tmp", folder / ".checkpoint.pt.x1y2.tmp"]
    recent = folder / "tmprecent.tmp"  # maybe another process's write in progress
    others = [folder / "notes.txt", folder / "tmp-data.csv", folder / ".other.pt.x1.tmp"]
    for path in orphans + [recent] + others:
        path.write_bytes(b"partial")
    for path in orphans + others[:2]:
        os.utime(path, (old, old))
    tiny(n_episodes=2, checkpoint_path=str(folder / "checkpoint.pt")).fit(
        X, y, annotators=annotators)
    assert not any(p.exists() for p in orphans)
    assert recent.exists() and all(p.exists() for p in others)
    assert (folder / "checkpoint.pt").is_file()


# ---------------------------------------------------------------------------
# Training settings of the estimators
# ---------------------------------------------------------------------------


def test_early_stopping_in_fit(table):
    X, y, annotators = table
    est = tiny(n_episodes=30, validation_interval=1, patience=2, outer_lr=0.03)
    est.fit(X, y, annotators=annotators)
    history = est.history_
    assert est.stopped_early_ and est.n_episodes_run_ < 30
    assert history["episode"] == list(range(est.n_episodes_run_))
    scores = history["validation_ccc"]
    assert est.best_validation_ccc_ == max(scores)
    best = int(np.argmax(scores))
    assert est.best_episode_ == history["validation_episode"][best]
    # Stopped after exactly `patience` validations without improvement.
    assert len(scores) - 1 - best == 2
    assert all(s <= scores[best] for s in scores[best + 1:])
    # Without patience the same run goes on.
    longer = tiny(n_episodes=est.n_episodes_run_ + 2, validation_interval=1, patience=0,
                  outer_lr=0.03).fit(X, y, annotators=annotators)
    assert not longer.stopped_early_ and longer.n_episodes_run_ == est.n_episodes_run_ + 2
    assert longer.history_["loss"][: est.n_episodes_run_] == history["loss"]


def test_max_grad_norm_clips_training(table):
    X, y, annotators = table
    clipped = tiny(max_grad_norm=1e-3).fit(X, y, annotators=annotators)
    free = tiny(max_grad_norm=0).fit(X, y, annotators=annotators)
    # Same gradients at the first episode (same start); the steps differ after.
    assert clipped.history_["grad_norm"][0] == pytest.approx(free.history_["grad_norm"][0])
    assert clipped.history_["grad_norm"][0] > 1e-3
    assert clipped.history_["loss"][1:] != free.history_["loss"][1:]
    assert clipped.resolved_params_["max_grad_norm"] == 1e-3


def test_collapse_warning_on_a_forced_collapse(table):
    # The output head starts at zero and one tiny step keeps the predictions
    # nearly constant: the fitted model must say so.
    X, y, annotators = table
    with pytest.warns(CollapseWarning, match="collapsed to a near-constant output.*vary"):
        est = tiny(n_episodes=1, outer_lr=1e-6).fit(X, y, annotators=annotators)
    assert min(est.prediction_std_ratio_) < 0.5


def test_no_collapse_warning_when_the_model_follows_the_labels(recwarn):
    # Labels are a fixed function of the global embeddings: a model trained
    # plainly for long enough tracks them, and no warning is given.
    from helpers import make_songs

    X, y = make_songs(12, n_frames=16, seed=3)
    est = DSAMLRegressor(**{**TINY_MODEL, "meta_learning": "none", "n_episodes": 150,
                            "outer_lr": 1e-2, "validation_fraction": 0.0})
    est.fit(X, y)
    assert not [w for w in recwarn if issubclass(w.category, CollapseWarning)]
    assert min(est.prediction_std_ratio_) >= 0.5
