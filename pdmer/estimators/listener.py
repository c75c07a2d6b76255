"""One listener's adaptation, stored apart from the meta-trained model."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file

from pdmer.files import atomic_write, safetensors_metadata


@dataclass
class ListenerAdaptation:
    """The parameters one listener's personalization changed.

    Only the adapted tensors are kept, so one meta-trained model can serve
    many listeners, each from a small file.

    Attributes
    ----------
    params : dict of str -> Tensor
        Adapted parameters by name (on the CPU).
    model_id : str
        Fingerprint of the meta-trained model the adaptation started from;
        :meth:`BaseEmotionRegressor.use_listener` refuses another model's.
    estimator : str
        Class name of that model.
    info : dict
        How the adaptation was made (songs, frames, steps, learning rate).
    """

    params: dict
    model_id: str
    estimator: str
    info: dict = field(default_factory=dict)

    @property
    def n_parameters(self) -> int:
        """Number of adapted scalars."""
        return sum(t.numel() for t in self.params.values())

    def save(self, path):
        """Write a safetensors file (atomically: a temporary file, then a rename).

        Raises
        ------
        ValueError
            An adapted parameter holds NaN or infinite values (a diverged
            adaptation); nothing is written.
        """
        _check_finite(self.params, f"Refusing to write {os.fspath(path)}")
        metadata = {"pdmer_listener": "1", "model_id": self.model_id,
                    "estimator": self.estimator, "info": json.dumps(self.info)}
        tensors = {n: t.contiguous() for n, t in self.params.items()}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path) -> "ListenerAdaptation":
        """Read a file written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not a listener file, or holds NaN or infinite values.
        """
        path = os.fspath(path)
        metadata = safetensors_metadata(path, "Listener")
        if metadata.get("pdmer_listener") != "1":
            raise ValueError(f"{path} is not a pdmer listener file (pdmer.personalize writes them).")
        # Copies: safetensors' tensors sit at unaligned offsets of the file's
        # buffer, and BLAS kernels round differently there than on the aligned
        # memory of the adaptation that was saved (last-bit differences).
        params = {name: tensor.clone() for name, tensor in load_file(path).items()}
        _check_finite(params, f"{path} is not a usable listener file")
        return cls(params=params, model_id=metadata["model_id"],
                   estimator=metadata["estimator"], info=json.loads(metadata.get("info", "{}")))

    def __repr__(self) -> str:
        return (f"ListenerAdaptation({self.n_parameters:,} adapted parameters, "
                f"model {self.model_id}, {self.info})")


def _check_finite(params: dict, context: str) -> None:
    bad = [name for name, tensor in params.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ValueError(
            f"{context}: the adapted parameters {shown} hold NaN or infinite values (the "
            "adaptation diverged). Personalize again with a smaller lr or fewer steps.")
