"""Whole real songs through the command line: Debian's asc-music (three MP3s of
4.8-7.4 minutes, 44.1 kHz stereo; ``.ci/run`` installs it) decoded, predicted
frame by frame to their end, and a listener personalized from one of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import (CLI_FEATURES, DEBIAN_SONGS, reversed_listener, run_cli, tiny_audio_model,
                     write_label_csv)
from pdmer.features import AudioFeatures
from pdmer.features.audio import load_audio
from pdmer.labels import whole_frames
from pdmer.scoring import ccc
from pdmer_datasets import read_labels

# The tiny model trains for seconds, too briefly to follow its labels' spread.
pytestmark = pytest.mark.filterwarnings("ignore::pdmer.estimators.exceptions.CollapseWarning")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_audio_model(tmp_path_factory.mktemp("real-music"), AudioFeatures(**CLI_FEATURES))


def read_curves(path):
    """A song's curves from `pdmer predict`: read as a label CSV, which also
    checks that its rows are consecutive 0.5 s frames; they must start at 0."""
    curves, offset = read_labels(path)
    assert offset == 0.0
    return curves


def test_whole_songs_are_predicted_to_their_last_full_frame(debian_music, model_file, tmp_path):
    songs = [debian_music / song for song in DEBIAN_SONGS]
    result = run_cli("predict", model_file, *songs, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    for song in DEBIAN_SONGS:
        waveform, rate = load_audio(debian_music / song)
        seconds = waveform.shape[-1] / rate
        # The decoder reads the whole file: its length agrees with the header's
        # (the MP3 header's estimate is within a frame of the decoded length).
        assert abs(seconds - soundfile.info(str(debian_music / song)).duration) < 1.0
        curves = read_curves(tmp_path / f"{Path(song).stem}.csv")
        assert len(curves) == whole_frames(seconds) > 4 * 60 * 2
        assert np.isfinite(curves).all() and curves.std(axis=0).min() > 0


def test_a_listener_personalized_on_one_real_song_carries_to_another(debian_music, model_file,
                                                                    tmp_path):
    """Labels: the model's curves of one song as a listener who reads
    valence reversed reads them, plus noise. One annotated song must teach
    that reading for a song it never saw."""
    base = tmp_path / "base"
    result = run_cli("predict", model_file, debian_music / "machine_wars.mp3",
                     debian_music / "time_to_strike.mp3", "-o", base)
    assert result.exit_code == 0, result.output
    curves = read_curves(base / "machine_wars.csv")
    noise = np.random.default_rng(0).normal(0, 0.1 * curves.std(axis=0), curves.shape)
    labels = write_label_csv(tmp_path / "labels.csv", reversed_listener(curves) + noise)
    me = tmp_path / "me.safetensors"
    result = run_cli("personalize", model_file, debian_music / "machine_wars.mp3", labels,
                     "-o", me)
    assert result.exit_code == 0, result.output
    assert f"from {len(curves)} frames" in result.output

    after = tmp_path / "after"
    result = run_cli("predict", model_file, debian_music / "time_to_strike.mp3", "-l", me,
                     "-o", after)
    assert result.exit_code == 0, result.output
    population = read_curves(base / "time_to_strike.csv")
    personalized = read_curves(after / "time_to_strike.csv")
    truth = reversed_listener(population)
    before_ccc, after_ccc = ccc([truth], [population]), ccc([truth], [personalized])
    assert after_ccc > 0.8 and after_ccc > before_ccc + 0.3, (before_ccc, after_ccc)
