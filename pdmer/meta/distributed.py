"""Meta-training on several processes (and machines) with :mod:`torch.distributed`.

Every process runs the same script on the same data, as ``torchrun``
launches it. Each episode, every process samples the same tasks and
computes its share of them (:meth:`Distributed.shard`); the gradients are
summed over the processes, so the optimizer sees what one process would
have accumulated over all the tasks, and the BatchNorm running statistics
are combined as if the tasks had run one after another. Parameters start
and end identical on every process; only the first process (rank 0) writes
checkpoints and shows progress.

The estimators use this by themselves under ``torchrun`` (see
:func:`join`); the docs' performance page has the launch recipe.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import nn

from pdmer.meta.running_stats import block_contribution, fold_blocks, running_stat_momenta

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""Environment variables ``torchrun`` sets for every process it starts."""


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return (all(name in os.environ for name in TORCHRUN_VARIABLES)
            and int(os.environ["WORLD_SIZE"]) > 1)


def process_device(device: torch.device) -> torch.device:
    """This process's own GPU when ``device`` is CUDA without an index (one GPU per process).

    ``LOCAL_RANK`` (set by ``torchrun``) picks it; without it, the rank
    modulo the number of visible GPUs.
    """
    device = torch.device(device)
    if device.type != "cuda" or device.index is not None:
        return device
    local = os.environ.get("LOCAL_RANK")
    index = int(local) if local is not None else dist.get_rank() % torch.cuda.device_count()
    return torch.device("cuda", index)


def join(device) -> "Distributed | None":
    """This process's place in a multi-process run, or None when it runs alone.

    Uses the default process group when the caller initialized one;
    otherwise initializes it from ``torchrun``'s environment (NCCL for a
    CUDA ``device``, else Gloo) and destroys it when the program exits.

    Parameters
    ----------
    device : torch.device
        Where the model trains (:func:`process_device` of it under
        several processes).

    Returns
    -------
    Distributed or None
        None without a process group of two or more processes.
    """
    if not dist.is_available():
        return None
    device = torch.device(device)
    if not dist.is_initialized():
        if not launched_by_torchrun():
            return None
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)
    if dist.get_world_size() < 2:
        return None
    return Distributed(process_device(device))


def _destroy():
    if dist.is_initialized():
        dist.destroy_process_group()


class Distributed:
    """Collective operations of the training loop over the default process group.

    Parameters
    ----------
    device : torch.device
        The model's device; NCCL communicates through it, Gloo through the
        CPU.

    Attributes
    ----------
    rank, world_size : int
    """

    def __init__(self, device):
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        device = torch.device(device)
        nccl = "nccl" in str(dist.get_backend()).lower()
        self.comm_device = device if device.type == "cuda" and nccl else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this is the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    def shard(self, n_items: int) -> range:
        """The contiguous share of ``n_items`` this process computes."""
        return range(self.rank * n_items // self.world_size,
                     (self.rank + 1) * n_items // self.world_size)

    # ---------------------------------------------------------------- values
    def gather(self, value: float) -> list:
        """Every process's ``value``, in rank order (the same list on every process)."""
        mine = torch.tensor([float(value)], dtype=torch.float64, device=self.comm_device)
        values = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(values, mine)
        return [float(v) for v in values]

    def sum(self, value: float) -> float:
        """The sum of every process's ``value``, added in rank order: equal on every process."""
        return float(sum(self.gather(value)))

    def broadcast(self, value: float) -> float:
        """The first process's ``value``, on every process."""
        return self.gather(value)[0]

    def agree(self, error: Exception | None) -> None:
        """Raise on every process when any of them has an ``error`` (a collective check).

        Without it, a process that raises alone leaves the others waiting
        in the next collective operation.
        """
        failed = [rank for rank, flag in enumerate(self.gather(error is not None)) if flag]
        if error is not None:
            raise error
        if failed:
            raise RuntimeError(f"Training process(es) {failed} stopped with an error (see "
                               "their output); this process stops too.")

    def check_same(self, digest: str, what: str) -> None:
        """Refuse to go on unless every process has the same hexadecimal ``digest``."""
        mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int64,
                            device=self.comm_device)
        digests = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(digests, mine)
        differ = [rank for rank, d in enumerate(digests) if not torch.equal(d, digests[0])]
        if differ:
            raise ValueError(
                f"The training processes were given different {what}: process(es) {differ} "
                "differ from process 0. Give every process the same data and parameters "
                "(each loads the whole training set; tasks are split among them).")

    # --------------------------------------------------------------- tensors
    @torch.no_grad()
    def broadcast_module(self, module: nn.Module) -> None:
        """Copy the first process's parameters and buffers into every process's ``module``."""
        tensors = [*module.parameters(), *module.buffers()]
        for group in _by_dtype(tensors):
            flat = torch.cat([t.detach().reshape(-1) for t in group]).to(self.comm_device)
            dist.broadcast(flat, src=0)
            for tensor, part in zip(group, _split(flat, group)):
                tensor.copy_(part)

    @torch.no_grad()
    def reduce_gradients(self, parameters) -> None:
        """Sum the parameters' ``.grad`` over the processes, in place.

        A parameter without a gradient counts as zeros; it is left without
        one only when no process gave it a gradient (as one process would).
        """
        parameters = list(parameters)
        present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32,
                               device=self.comm_device)
        dist.all_reduce(present)
        present = present.cpu().tolist()
        index = {id(p): i for i, p in enumerate(parameters)}
        for group in _by_dtype(parameters):
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p))
                              .reshape(-1) for p in group]).to(self.comm_device)
            dist.all_reduce(flat)
            for p, part in zip(group, _split(flat, group)):
                p.grad = part.to(p.device) if present[index[id(p)]] else None

    def running_stats(self, network: nn.Module) -> dict:
        """A copy of ``network``'s buffers before an episode (for :meth:`merge_running_stats`)."""
        return {name: b.detach().clone() for name, b in network.named_buffers()}

    @torch.no_grad()
    def merge_running_stats(self, network: nn.Module, start: dict) -> None:
        """Give every process the BatchNorm statistics of all tasks run one after another.

        Each process updated the statistics from ``start`` with its own
        tasks (ranks in task order, :meth:`shard`); the number of updates
        comes from the ``num_batches_tracked`` counters.
        """
        momenta = running_stat_momenta(network)
        buffers = dict(network.named_buffers())
        for name, buffer in buffers.items():
            if name not in momenta and not torch.equal(buffer, start[name]):
                raise NotImplementedError(
                    f"Buffer {name!r} changed in training and is not a BatchNorm statistic; "
                    "its updates cannot be combined over processes. Train on one process.")
        counters = [name for name, momentum in momenta.items() if momentum is None]
        if not counters:
            return
        updates = torch.stack([(buffers[c] - start[c]).reshape(()) for c in counters]).to(
            device=self.comm_device, dtype=torch.int64)
        every = [torch.empty_like(updates) for _ in range(self.world_size)]
        dist.all_gather(every, updates)
        every = torch.stack(every).cpu()  # (world_size, n_counters)
        names = [n for n in momenta if momenta[n] is not None] + counters
        parts, counts = [], {}
        for name in names:
            counter = _counter_of(name)
            j = counters.index(counter)
            n_updates, n_later = int(every[self.rank, j]), int(every[self.rank + 1:, j].sum())
            counts[name] = int(every[:, j].sum())
            parts.append(block_contribution(start[name].double(), buffers[name].double(),
                                            momenta[name], n_updates, n_later).reshape(-1))
        flat = torch.cat(parts).to(self.comm_device)
        dist.all_reduce(flat)
        for name, part in zip(names, _split(flat, [buffers[n] for n in names])):
            folded = fold_blocks(start[name].double(), part.to(start[name].device),
                                 momenta[name], counts[name])
            buffers[name].copy_(folded.to(buffers[name].dtype))


def _counter_of(name: str) -> str:
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
    return prefix + "num_batches_tracked"


def _by_dtype(tensors) -> list:
    groups = {}
    for tensor in tensors:
        groups.setdefault(tensor.dtype, []).append(tensor)
    return list(groups.values())


def _split(flat: torch.Tensor, like) -> list:
    """``flat`` cut into tensors shaped like ``like`` (views)."""
    parts = torch.split(flat, [t.numel() for t in like])
    return [part.view(t.shape) for part, t in zip(parts, like)]
