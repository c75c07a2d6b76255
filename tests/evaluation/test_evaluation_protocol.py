"""The one evaluation protocol (pdmer.evaluation): planning, running, and that
every caller uses it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import TINY_MODEL, make_annotator_table, write_label_csv

from pdmer import DSAMLRegressor
from pdmer.evaluation import (
    Episode,
    personalized_score,
    plan_episodes,
    run_episodes,
    scored_rows,
)

PDMER = Path(__file__).resolve().parents[2] / "pdmer"


# --------------------------------------------------------------------- planning
def test_plan_other_songs_draws_one_support_and_scores_the_rest():
    annotators = np.array(["a", "a", "a", "b", "c", "c"])
    episodes = plan_episodes(annotators, random_state=0)
    assert [e.listener for e in episodes] == ["a", "c"]  # b has one song: skipped
    for e in episodes:
        rows = set(np.flatnonzero(annotators == e.listener))
        assert len(e.support) == 1 and set(e.support) | set(e.query) == rows
        assert not set(e.support) & set(e.query) and e.support_frames is None
    assert scored_rows(episodes) == [r for e in episodes for r in e.query]


def test_plan_draws_like_check_random_state():
    # An int seeds a RandomState: the same draw as sklearn's check_random_state,
    # listener by listener in sorted order.
    annotators = np.repeat(["x", "y", "z"], 5)
    rng = np.random.RandomState(7)
    expected = [int(rng.choice(np.flatnonzero(annotators == a), size=1, replace=False)[0])
                for a in ("x", "y", "z")]
    assert [e.support[0] for e in plan_episodes(annotators, random_state=7)] == expected
    assert plan_episodes(annotators, random_state=7) == plan_episodes(annotators, random_state=7)
    assert (plan_episodes(annotators, random_state=7)
            != plan_episodes(annotators, random_state=8))


def test_plan_scores_only_marked_rows_and_keeps_something_to_score():
    annotators = np.repeat(["a", "b"], 4)
    scored = np.array([0, 0, 1, 1, 0, 0, 0, 1], dtype=bool)
    for seed in range(20):
        episodes = plan_episodes(annotators, scored=scored, random_state=seed)
        assert len(episodes) == 2
        for e in episodes:
            assert e.query and all(scored[r] for r in e.query)
            assert not set(e.support) & set(e.query)
        # b has one scored row: its support must come from the others.
        assert episodes[1].query == (7,) and not scored[episodes[1].support[0]]
    none = plan_episodes(annotators, scored=np.zeros(8, dtype=bool))
    assert none == []


def test_plan_same_song_protocol():
    annotators = np.array(["a", "a", "a", "b", "c", "c"])
    lengths = [10, 4, 8, 10, 10, 10]
    episodes = plan_episodes(annotators, protocol="same-song", support_frames=3,
                             lengths=lengths)
    # Songs need support_frames + 2 frames: row 1 (4 frames) is skipped.
    assert [(e.support, e.query, e.query_start) for e in episodes] == [
        ((r,), (r,), 3) for r in (0, 2, 3, 4, 5)]
    assert plan_episodes(annotators, protocol="same-song", support_frames=10,
                         lengths=lengths) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(protocol="frames"), "protocol must be one of"),
    (dict(n_support=0), "n_support must be an integer >= 1"),
    (dict(protocol="same-song"), "needs lengths"),
    (dict(scored=[True]), "scored must have one entry per row"),
])
def test_plan_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_episodes(["a", "a"], **kwargs)


# ---------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def fitted():
    X, y, annotators = make_annotator_table()
    model = DSAMLRegressor(**{**TINY_MODEL, "validation_fraction": 0.0}, precision="fp32")
    return model.fit(X, y, annotators=annotators), X, y, annotators


def test_run_episodes_never_changes_a_pdmer_model(fitted):
    model, X, y, annotators = fitted
    before = {k: v.clone() for k, v in model.network_.state_dict().items()}
    episodes = plan_episodes(annotators, random_state=0)
    truth, adapted, listeners = run_episodes(model, X, y, episodes)
    _, plain, _ = run_episodes(model, X, y, episodes, adapt=False)
    assert model.listener_ is None
    for k, v in model.network_.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(truth) == len(adapted) == len(listeners) == len(scored_rows(episodes))
    assert any(not np.allclose(a, p) for a, p in zip(adapted, plain))
    # Not adapted = the meta-parameters, even while a listener is in use.
    model.personalize([X[0]], [y[0]])
    try:
        _, again, _ = run_episodes(model, X, y, episodes, adapt=False)
        assert model.listener_ is not None
    finally:
        model.reset_personalization()
    for a, b in zip(plain, again):
        np.testing.assert_array_equal(a, b)


def test_run_episodes_uses_adaptation_steps_and_lr(fitted):
    model, X, y, annotators = fitted
    episodes = plan_episodes(annotators, random_state=0)[:1]
    _, default, _ = run_episodes(model, X, y, episodes)
    _, same, _ = run_episodes(model, X, y, episodes, steps=model.personalization_steps_,
                              lr=model.inner_lr)
    _, more, _ = run_episodes(model, X, y, episodes, steps=6, lr=0.2)
    np.testing.assert_array_equal(default[0], same[0])
    assert not np.allclose(default[0], more[0])


def test_run_episodes_same_song_scores_the_rest(fitted):
    model, X, y, annotators = fitted
    episodes = plan_episodes(annotators, protocol="same-song", support_frames=4,
                             lengths=[len(v) for v in y])
    truth, predictions, _ = run_episodes(model, X, y, episodes)
    for e, t, p in zip(episodes, truth, predictions):
        np.testing.assert_array_equal(t, y[e.query[0]][4:])
        assert p.shape == t.shape


def test_run_episodes_duck_typed_estimator_is_reset_even_on_errors():
    class Flaky:
        resets = 0

        def personalize(self, X, y):
            raise RuntimeError("boom")

        def predict(self, X):
            return [np.zeros((2, 2)) for _ in X]

        def reset_personalization(self):
            self.resets += 1

    model = Flaky()
    episode = Episode("a", (0,), None, (1,))
    with pytest.raises(RuntimeError, match="boom"):
        run_episodes(model, [0, 1], [np.zeros((2, 2))] * 2, [episode])
    assert model.resets == 1
    # Not adapted: only predict is needed, nothing to reset.
    truth, _, _ = run_episodes(model, [0, 1], [np.zeros((2, 2))] * 2, [episode], adapt=False)
    assert len(truth) == 1 and model.resets == 1
    with pytest.raises(TypeError, match="has no personalize"):
        run_episodes(object(), [0, 1], [np.zeros((2, 2))] * 2, [episode])


# --------------------------------------------- the protocol module is the only one
ADAPT = {"adapt_listener", "personalize", "_adapt_from_meta"}
PREDICT = {"predict", "_predict_songs"}
RANDOM = {"choice", "permutation", "shuffle", "integers"}
# Random draws in pdmer outside pdmer/evaluation, and why they are not support songs.
RANDOM_ALLOWED = {
    ("meta/batch.py", "window"): "training crops",
    ("meta/tasks.py", "split_tasks"): "validation listeners taken from training data",
    ("meta/tasks.py", "sample"): "meta-training tasks",
    ("meta/learner.py", "episode_backward"): "dropout seeds of meta-training tasks",
    ("experiments/splits.py", "load_split"): "held-out songs of the DMER split",
}


def _called(function) -> set:
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            names.add(node.func.attr if isinstance(node.func, ast.Attribute)
                      else getattr(node.func, "id", None))
    return names


def protocol_violations(source, where):
    """Functions that adapt-and-predict, or draw at random, outside the protocol module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        called = _called(node)
        key = (where, node.name)
        if called & ADAPT and called & PREDICT:
            found.append(f"{where}::{node.name} adapts and predicts")
        if called & RANDOM and key not in RANDOM_ALLOWED:
            found.append(f"{where}::{node.name} draws at random ({sorted(called & RANDOM)})")
    return found


def test_only_the_protocol_module_picks_support_songs():
    violations = []
    for path in sorted(PDMER.rglob("*.py")):
        where = path.relative_to(PDMER).as_posix()
        if where.startswith("evaluation/"):
            continue
        violations += protocol_violations(path.read_text(encoding="utf-8"), where)
    assert not violations, (
        "Support songs are picked and adapted on only in pdmer.evaluation "
        "(plan_episodes / run_episodes); use them, or list a random draw that picks no "
        f"support song in RANDOM_ALLOWED with its reason: {violations}")


def test_the_check_finds_a_hand_written_protocol():
    # What the demo and the benchmark did before they used pdmer.evaluation.
    demo = '''
def run(meta, test):
    for listener in np.unique(test.annotators):
        rows = np.flatnonzero(test.annotators == listener)
        support, query = rows[:1], rows[1:]
        meta.personalize([test.X[i] for i in support], [test.y[i] for i in support])
        after = meta.predict([test.X[i] for i in query])
'''
    plan = '''
def _plan(test, seed):
    rng = np.random.default_rng(seed)
    return [int(rng.choice(np.flatnonzero(test.annotators == a))) for a in test.annotators]
'''
    assert protocol_violations(demo, "demo.py") == ["demo.py::run adapts and predicts"]
    assert protocol_violations(plan, "benchmark.py") == [
        "benchmark.py::_plan draws at random (['choice'])"]


def test_callers_plan_identically(fitted, tmp_path):
    """personalized_score, pdmer evaluate and the plan agree for the same seed."""
    model, X, y, annotators = fitted
    episodes = plan_episodes(annotators, random_state=3)
    truth, predictions, listeners = run_episodes(model, X, y, episodes)
    from pdmer.evaluation import score_episodes

    assert personalized_score(model, X, y, annotators, metric="ccc", random_state=3) == (
        pytest.approx(score_episodes(truth, predictions, listeners), abs=0))

    # pdmer evaluate --personalize --seed 3 on the same rows.
    import csv

    from pdmer_datasets import synthetic

    data = synthetic.generate(tmp_path / "data", n_songs=4, n_listeners=3,
                              songs_per_listener=3, duration=3.0, sample_rate=16000)
    table = data.annotator_table()
    model_path = tmp_path / "model.safetensors"
    from pdmer import AudioFeatures

    features = AudioFeatures(sample_rate=16000, n_mels=16, global_window=2.0)
    DSAMLRegressor(**TINY_MODEL, front_end=features, precision="fp32").fit(
        *table).save(model_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    with open(tmp_path / "data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("audio", "labels", "annotator"))
        for i, (x, curve, who) in enumerate(zip(*table)):
            writer.writerow((x, write_label_csv(labels / f"{i}.csv", curve, clock="frame"), who))
    from pdmer.cli import main

    result = CliRunner().invoke(main, ["evaluate", str(model_path), str(tmp_path / "data.csv"),
                                       "--personalize", "--seed", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)["personalized (1 song)"]
    from pdmer import load

    loaded = load(model_path)
    X_songs = features.transform([str(x) for x in table.X])
    expected = personalized_score(loaded, X_songs, table.y, table.annotators,
                                  metric=["ccc", "neg_rmse"], random_state=3)
    assert cli["ccc_mean"] == pytest.approx(expected["ccc"], abs=1e-6)
    assert cli["rmse_mean"] == pytest.approx(-expected["neg_rmse"], abs=1e-6)
