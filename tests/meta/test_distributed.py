"""Training on several processes (torchrun, Gloo on the CPU) gives the model one process trains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn

from pdmer.meta.running_stats import block_contribution, fold_blocks, running_stat_momenta

WORKER = Path(__file__).resolve().parents[1] / "distributed_worker.py"

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is absent")


def _fit(out, *args, processes=1):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    return subprocess.run([*launcher, str(WORKER), str(out), *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("meta_learning", ["fomaml", "none"])
def test_two_processes_train_what_one_trains(tmp_path, meta_learning):
    one, two = _fit(tmp_path / "one", meta_learning), _fit(tmp_path / "two", meta_learning,
                                                           processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    alone, together = load_file(tmp_path / "one"), load_file(tmp_path / "two")
    assert alone.keys() == together.keys()
    # Summed gradients differ from accumulated ones by float rounding only,
    # which Adam's normalisation lifts to ~1e-4 after a few steps on tiny
    # gradients; a missing task, a wrong dropout draw or unmerged BatchNorm
    # statistics differ by orders of magnitude more.
    for name in alone:
        if name.startswith("state.") and "num_batches_tracked" not in name:
            torch.testing.assert_close(together[name], alone[name], atol=1e-3, rtol=0,
                                       msg=lambda m: f"{name}: {m}")
    for name in ("state.adapter.features.1.num_batches_tracked", "loss", "validation_ccc"):
        torch.testing.assert_close(together[name], alone[name], atol=1e-5, rtol=0)
    torch.testing.assert_close(together["predictions"], alone["predictions"], atol=1e-3, rtol=0)


def test_two_processes_resume_from_one_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    first = _fit(tmp_path / "half", "fomaml", "--episodes=2", f"--checkpoint={checkpoint}",
                 processes=2)
    assert first.returncode == 0, first.stderr
    assert checkpoint.exists()
    resumed = _fit(tmp_path / "resumed", "fomaml", f"--checkpoint={checkpoint}", "--verbose=1",
                   processes=2)
    assert resumed.returncode == 0, resumed.stderr
    # Both processes resumed; only the first one says so.
    assert (resumed.stdout + resumed.stderr).count(f"Resuming from {checkpoint} at episode 2") == 1
    alone = _fit(tmp_path / "alone", "fomaml")
    assert alone.returncode == 0, alone.stderr
    resumed, alone = load_file(tmp_path / "resumed"), load_file(tmp_path / "alone")
    torch.testing.assert_close(resumed["loss"], alone["loss"], atol=1e-5, rtol=0)
    torch.testing.assert_close(resumed["predictions"], alone["predictions"], atol=1e-3, rtol=0)


def test_processes_given_different_data_refuse_to_train(tmp_path):
    run = _fit(tmp_path / "out", "fomaml", "--other-data-on-rank-1", processes=2)
    assert run.returncode != 0
    assert "different data or parameters" in run.stderr
    assert not (tmp_path / "out").exists()


def test_folded_blocks_equal_batchnorm_updates_one_after_another():
    torch.manual_seed(0)
    norm = nn.BatchNorm1d(3, momentum=0.3)
    start = {k: v.clone() for k, v in norm.state_dict().items()}
    batches = [torch.randn(5, 3) * (i + 1) + i for i in range(5)]
    for batch in batches:  # one process, all batches in order
        norm(batch)
    sequential = {k: v.clone() for k, v in norm.state_dict().items()}

    momenta = running_stat_momenta(norm)
    blocks, ends = [batches[:2], batches[2:3], batches[3:]], []
    for block in blocks:  # three processes, each from the same start
        norm.load_state_dict(start)
        for batch in block:
            norm(batch)
        ends.append({k: v.clone() for k, v in norm.state_dict().items()})
    sizes = [len(b) for b in blocks]
    for name, momentum in momenta.items():
        contributions = sum(
            block_contribution(start[name].double(), end[name].double(), momentum, n,
                               sum(sizes[i + 1:]))
            for i, (end, n) in enumerate(zip(ends, sizes)))
        folded = fold_blocks(start[name].double(), contributions, momentum, sum(sizes))
        torch.testing.assert_close(folded.to(sequential[name].dtype), sequential[name])


def test_cumulative_batchnorm_is_refused_with_the_way_out():
    with pytest.raises(NotImplementedError, match="momentum=None.*one process"):
        running_stat_momenta(nn.Sequential(nn.BatchNorm1d(2, momentum=None)))
