"""The demo is the benchmark's run on DSAML: same preset, split, plan and rows."""

from __future__ import annotations

import pytest

from pdmer.demo import ROWS, run_demo
from pdmer.experiments import run_benchmark


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    return run_demo(str(output), random_state=1, n_episodes=2, verbose=0,
                    log=lambda message: None, preset="tiny"), output


def test_demo_prints_every_competitor_with_spread_and_convergence(demo):
    result, output = demo
    table = result.table()
    for name in ROWS.values():
        assert f"\n| {name} |" in table, name
    assert table.startswith("| model | ccc_arousal |") and "| spread |" in table
    assert list(result.convergence) == ["meta-trained", "plain, same tasks", "mean-label model"]
    lines = result.convergence_lines()
    # The tiny preset has no validation split: the last episode is kept.
    assert lines[0] == "meta-trained: no validation split, kept episode 2 of 2"
    assert all(c["episodes_run"] == 2 for c in result.convergence.values())
    assert (output / "personalization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (output / "results.md").is_file()  # the benchmark's report beside the plot


def test_demo_scores_unseen_songs_of_held_out_listeners(demo):
    result, _ = demo
    split = result.benchmark.split
    assert not set(split.train.annotators) & set(result.listeners)
    scored = {split.test.song_ids[r] for e in result.benchmark.episodes for r in e.query}
    assert scored and not scored & set(split.train.song_ids)


def test_demo_and_benchmark_plan_and_score_identically(demo, tmp_path):
    result, output = demo
    bench = run_benchmark(models=["dsaml"], preset="tiny", seed=1, verbose=0,
                          log=lambda message: None, data_home=str(output / "data"),
                          estimator_params={"n_episodes": 2})
    assert bench.episodes == result.benchmark.episodes
    assert bench.settings["support"] == result.benchmark.settings["support"]
    by_role = {r["role"]: r for r in bench.rows}
    for role, name in ROWS.items():
        for key in ("ccc_arousal", "ccc_valence", "spread"):
            assert result.scores[name][key] == by_role[role][key], (name, key)
