"""Input standardisation with statistics of the training data, kept as buffers."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


class InputNormalization(nn.Module):
    """Standardise local patches (per mel band) and global embeddings (per dimension).

    Global encoders give values on very different scales (``logmel-stats``
    spans about -14 to 6, ImageBind about -1 to 1), and unscaled they swamp
    the local branch where both are added. The means and standard
    deviations are computed once on the training songs (:meth:`fit`) and
    stored as buffers, so they travel with the network's ``state_dict``
    into model files and the model id.

    Parameters
    ----------
    n_mels : int
        Mel bands of the local patches.
    global_dim : int
        Size of the global embeddings.

    Notes
    -----
    Until :meth:`fit` (or loading fitted statistics) the transform is the
    identity and the buffers are left out of the ``state_dict``: model
    files written before this layer existed load unchanged, with the same
    model id.
    """

    def __init__(self, n_mels: int, global_dim: int) -> None:
        super().__init__()
        self.register_buffer("local_mean", torch.zeros(n_mels))
        self.register_buffer("local_scale", torch.ones(n_mels))
        self.register_buffer("global_mean", torch.zeros(global_dim))
        self.register_buffer("global_scale", torch.ones(global_dim))
        self.fitted = False

    @torch.no_grad()
    def fit(self, local_patches: Iterable[Tensor], global_embeddings: Iterable[Tensor]):
        """Compute the statistics from songs' tensors.

        Parameters
        ----------
        local_patches : iterable of Tensor of shape (n_frames, n_patch_times, n_mels)
        global_embeddings : iterable of Tensor of shape (n_frames, global_dim)

        Returns
        -------
        self
        """
        for prefix, tensors in (("local", local_patches), ("global", global_embeddings)):
            count, total, squares = 0, 0.0, 0.0
            for tensor in tensors:
                flat = tensor.detach().reshape(-1, tensor.shape[-1]).double()
                count += flat.shape[0]
                total = total + flat.sum(0)
                squares = squares + (flat * flat).sum(0)
            if not count:
                raise ValueError("InputNormalization.fit needs at least one frame.")
            mean = total / count
            std = (squares / count - mean * mean).clamp_min(0).sqrt()
            # Constant features (e.g. mel bands below the lowest FFT bin)
            # keep scale 1, as scikit-learn's StandardScaler does.
            scale = torch.where(std > 1e-6 * mean.abs().clamp_min(1.0), std,
                                torch.ones_like(std))
            getattr(self, f"{prefix}_mean").copy_(mean.float())
            getattr(self, f"{prefix}_scale").copy_(scale.float())
        self.fitted = True
        return self

    def forward(self, local_patches: Tensor, global_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """The standardised ``(local_patches, global_embeddings)``."""
        if not self.fitted:
            return local_patches, global_embeddings
        local = (local_patches - self.local_mean.to(local_patches.device)) \
            / self.local_scale.to(local_patches.device)
        glob = (global_embeddings - self.global_mean.to(global_embeddings.device)) \
            / self.global_scale.to(global_embeddings.device)
        return local, glob

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if self.fitted:
            super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        names = [prefix + name for name in self._buffers]
        present = [name in state_dict for name in names]
        if not any(present):
            # A file from before this layer, or of a model never fitted: identity.
            self.reset_statistics()
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self.fitted = all(present)

    def reset_statistics(self) -> None:
        """Back to the identity transform."""
        self.local_mean.zero_()
        self.local_scale.fill_(1.0)
        self.global_mean.zero_()
        self.global_scale.fill_(1.0)
        self.fitted = False

    def extra_repr(self) -> str:
        return (f"n_mels={self.local_mean.numel()}, global_dim={self.global_mean.numel()}, "
                f"fitted={self.fitted}")
