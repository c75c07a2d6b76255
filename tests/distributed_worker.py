"""Fits a tiny DSAML and saves what it learned; run alone or under torchrun.

``python distributed_worker.py OUT [meta_learning] [--other-data-on-rank-1]
[--episodes=N] [--checkpoint=PATH] [--verbose=1]``:
the first (or only) process writes OUT (safetensors): the network's
parameters and buffers, the predictions on the training songs and the
training history.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import TINY_MODEL, make_annotator_table  # noqa: E402

from pdmer import DSAMLRegressor  # noqa: E402


def main(out, meta_learning="fomaml", *flags):
    torch.set_num_threads(1)
    X, y, annotators = make_annotator_table(n_songs=8, n_annotators=6)
    rank = int(os.environ.get("RANK", "0"))
    if "--other-data-on-rank-1" in flags and rank == 1:
        y = [v * 0.5 for v in y]
    options = dict(flag[2:].split("=", 1) for flag in flags if "=" in flag)
    model = DSAMLRegressor(**{**TINY_MODEL, "n_episodes": int(options.get("episodes", 4)),
                              "tasks_per_step": 4, "validation_interval": 2,
                              "meta_learning": meta_learning,
                              "checkpoint_path": options.get("checkpoint"),
                              "checkpoint_interval": 1,
                              "verbose": int(options.get("verbose", 0))})
    model.fit(X, y, annotators=annotators)
    if rank != 0:
        return
    tensors = {f"state.{k}": v.detach().contiguous()
               for k, v in model.network_.state_dict().items()}
    tensors["predictions"] = torch.from_numpy(np.concatenate(model.predict(X)))
    tensors["loss"] = torch.tensor(model.history_["loss"], dtype=torch.float64)
    tensors["validation_ccc"] = torch.tensor(model.history_["validation_ccc"],
                                             dtype=torch.float64)
    save_file(tensors, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
