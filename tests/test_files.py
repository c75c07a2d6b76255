"""Files pdmer writes and reads (issue 12): permissions and temporary files of
atomic_write, the output check before long work, listener files that must be
finite, labels and annotator ids. (Model files: cli/test_cli_errors.py.)"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helpers import TINY_MODEL, make_annotator_table
from pdmer import DSAMLRegressor, ListenerAdaptation
from pdmer.files import atomic_write, check_writable, remove_stale_temp_files
from pdmer.estimators.validation import check_annotators, check_y

TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.tmp(?P<suffix>\..*)?")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ---------------------------------------------------------------- atomic_write


def test_atomic_write_follows_the_umask(tmp_path, umask_022):
    target = tmp_path / "model.safetensors"
    atomic_write(target, lambda tmp: open(tmp, "w").write("x"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_keeps_the_permissions_of_the_file_it_replaces(tmp_path, umask_022):
    target = tmp_path / "private.csv"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write(target, lambda tmp: open(tmp, "w").write("new"), suffix=".csv")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_writers_that_replace_the_temporary_file_keep_its_mode(tmp_path, umask_022):
    # safetensors.save_file writes a file of its own (0600) over the one
    # atomic_write prepared (issue 19).
    listener = ListenerAdaptation({"w": torch.ones(3)}, model_id="m", estimator="DSAMLRegressor")
    target = tmp_path / "listener.safetensors"
    listener.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o640)
    listener.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    model = DSAMLRegressor(**dict(TINY_MODEL, n_episodes=1))
    X, y, annotators = make_annotator_table(n_songs=2, n_annotators=1, songs_per_annotator=2)
    model.fit(X, y, annotators=annotators).save(tmp_path / "model.safetensors")
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644


@pytest.mark.parametrize("suffix, ending", [(".tmp", ".tmp"), (".png", ".tmp.png")])
def test_temporary_files_are_named_after_their_target(tmp_path, suffix, ending):
    seen = []
    atomic_write(tmp_path / "plot.png", lambda tmp: seen.append(os.path.basename(tmp)),
                 suffix=suffix)
    [name] = seen
    match = TEMP_NAME.fullmatch(name)
    assert match and match["target"] == "plot.png" and name.endswith(ending)
    assert os.listdir(tmp_path) == ["plot.png"]


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "checkpoint.pt"
    # A writer killed by SIGKILL in the middle of atomic_write.
    # (files.py alone, without importing torch through the pdmer package).
    import pdmer.files

    script = (f"import importlib.util, os, signal\n"
              f"spec = importlib.util.spec_from_file_location('f', {pdmer.files.__file__!r})\n"
              f"files = importlib.util.module_from_spec(spec); spec.loader.exec_module(files)\n"
              f"def write(tmp):\n    open(tmp, 'w').write('half')\n"
              f"    os.kill(os.getpid(), signal.SIGKILL)\n"
              f"files.atomic_write({str(target)!r}, write)\n")
    subprocess.run([sys.executable, "-c", script], check=False)
    [leftover] = os.listdir(tmp_path)
    assert TEMP_NAME.fullmatch(leftover)
    others = [".checkpoint.pt.notes", "tmpab12cd34.tmp", ".other.pt.0123abcd.tmp",
              "checkpoint.pt"]
    for name in others:
        (tmp_path / name).write_text("keep")
    assert remove_stale_temp_files(target, min_age=3600) == []  # too recent
    assert remove_stale_temp_files(target) == [tmp_path / leftover]
    assert sorted(os.listdir(tmp_path)) == sorted(others)
    assert remove_stale_temp_files(tmp_path / "missing" / "x.pt") == []


def test_long_target_names_get_short_temporary_names(tmp_path):
    target = tmp_path / ("x" * 240 + ".csv")
    seen = []
    atomic_write(target, lambda tmp: seen.append(tmp) or open(tmp, "w").write("1"))
    assert len(os.path.basename(seen[0])) < 255 and target.read_text() == "1"


# -------------------------------------------------------------- check_writable


def test_check_writable_accepts_a_new_file_and_leaves_nothing(tmp_path):
    assert check_writable(tmp_path / "m.safetensors") == tmp_path / "m.safetensors"
    check_writable(tmp_path / "new" / "sub" / "m.safetensors")
    assert os.listdir(tmp_path) == []  # no probe file, no folder created


@pytest.mark.parametrize("make, error, message", [
    (lambda p: (p / "file").write_text("x") and p / "file" / "m.safetensors",
     NotADirectoryError, "is a file, not a folder"),
    (lambda p: (p / "file").write_text("x") and p / "file" / "a" / "m.safetensors",
     NotADirectoryError, "is a file, not a folder"),
    (lambda p: (p / "dir").mkdir() or p / "dir", IsADirectoryError, "it is a folder"),
])
def test_check_writable_refuses(tmp_path, make, error, message):
    with pytest.raises(error, match=f"Cannot write the model to .*: .*{message}"):
        check_writable(make(tmp_path), what="the model")


def test_check_writable_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    # Root ignores permission bits, so the refusal of the system is simulated.
    import pdmer.files as files

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "open", refuse)
    with pytest.raises(PermissionError, match="no file can be created in .*Permission denied"):
        check_writable(tmp_path / "m.safetensors")


# -------------------------------------------------------------- listener files


def test_listener_files_must_be_finite(tmp_path):
    good = ListenerAdaptation({"w": torch.ones(3)}, model_id="m", estimator="DSAMLRegressor")
    bad = ListenerAdaptation({"w": torch.tensor([1.0, float("nan"), 2.0]),
                              "b": torch.tensor([float("inf")])},
                             model_id="m", estimator="DSAMLRegressor")
    with pytest.raises(ValueError, match="w, b hold NaN or infinite values"):
        bad.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
    # A file written by someone else (or by an older pdmer) is refused on load.
    good.save(tmp_path / "l.safetensors")
    with safe_open(tmp_path / "l.safetensors", framework="pt") as handle:
        metadata = handle.metadata()
    save_file({"w": torch.full((3,), float("nan"))}, tmp_path / "nan.safetensors",
              metadata=metadata)
    with pytest.raises(ValueError, match="nan.safetensors is not a usable listener file"):
        ListenerAdaptation.load(tmp_path / "nan.safetensors")


# ------------------------------------------------------- labels and annotators


@pytest.mark.parametrize("scale", [lambda y: 10 * y, lambda y: y + 100, lambda y: 4 * y + 5])
def test_labels_far_outside_the_documented_range_warn(scale):
    y = [np.full((4, 2), 0.5), np.full((3, 2), -0.2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_y(y, 2)  # inside [-1, 1]: silent
        check_y([np.full((4, 2), 1.4)], 1)  # small overshoot: silent
    with pytest.warns(UserWarning, match=r"y\[0\], y\[1\] have labels outside the documented "
                                         r"range \[-1, 1\] \(y spans \[-?\d"):
        check_y([scale(v) for v in y], 2)


def test_label_warning_reaches_the_caller_of_fit():
    X, y, annotators = make_annotator_table(n_songs=4, n_annotators=2, songs_per_annotator=2)
    model = DSAMLRegressor(**dict(TINY_MODEL, n_episodes=1))
    with pytest.warns(UserWarning, match="outside the documented range") as record:
        model.fit(X, [10 * v for v in y], annotators=annotators)
    assert any(w.filename == __file__ for w in record)


@pytest.mark.parametrize("ids", [[1, None, 2], np.array(["a", None, "b"], dtype=object),
                                 [1.0, float("nan"), 2.0]])
def test_missing_annotator_ids_are_refused(ids):
    with pytest.raises(ValueError, match=r"annotators contains (None|NaN) at row\(s\) \[1\]; "
                                         "give every row an annotator id"):
        check_annotators(ids, 3)


def test_annotator_ids_are_compared_as_strings():
    with pytest.warns(UserWarning, match="holds the id '1' as int and as str"):
        ids = check_annotators(np.array([1, "1", 2], dtype=object), 3)
    assert ids.tolist() == ["1", "1", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_annotators([3, 4], 2).tolist() == ["3", "4"]
        assert check_annotators(np.array(["a", "b"]), 2).tolist() == ["a", "b"]
