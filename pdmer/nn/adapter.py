"""The local branch of DSAML: a small CNN over each frame's log-mel patch."""

from __future__ import annotations

from torch import Tensor, nn


def _pooled_size(size: int) -> int:
    """Length of one axis after ``MaxPool2d(2, padding=1)``."""
    return size // 2 + 1


class LocalSpectrogramAdapter(nn.Module):
    """Trainable per-frame feature extractor over log-mel patches.

    The paper's "ImageBind adapter": the frozen global encoder misses fine,
    short-term changes, so every 0.5 s frame also gets features from its own
    spectrogram patch. Each patch goes through

    1. ``Conv2d(1, 8, kernel_size=(3, 1), padding=(2, 1))``, BatchNorm, ReLU,
       ``MaxPool2d(2, padding=1)``;
    2. ``Conv2d(8, 16, kernel_size=3, padding=1)``, BatchNorm, ReLU,
       ``MaxPool2d(2, padding=1)``;
    3. ``Conv2d(16, 1, kernel_size=1)``, then flattening.

    The pooling layers pad one cell on each side, as in the reference
    implementation, so no time step or mel band is dropped by flooring.
    This is what makes a 51 x 128 patch give the 476 features the reference
    hard-codes (14 x 34); unpadded pooling would give 13 x 32 = 416. pdmer
    derives :attr:`out_dim` from the patch shape, so any patch size works.

    Parameters
    ----------
    n_patch_times : int
        Number of spectrogram time steps per patch (the convolution height).
    n_mels : int
        Number of mel bands per patch (the convolution width).

    Attributes
    ----------
    out_dim : int
        Number of features per frame.
    """

    def __init__(self, n_patch_times: int, n_mels: int) -> None:
        super().__init__()
        if n_patch_times < 1 or n_mels < 1:
            raise ValueError(
                "n_patch_times and n_mels must be positive; got "
                f"{n_patch_times} and {n_mels}."
            )
        self.n_patch_times = n_patch_times
        self.n_mels = n_mels
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=(3, 1), padding=(2, 1)),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2, padding=1),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2, padding=1),
            nn.Conv2d(16, 1, kernel_size=1),
        )
        # Closed form instead of a dummy forward pass, which would update the
        # BatchNorm running statistics. The first convolution grows the
        # height by 2 (kernel 3, padding 2) and the width by 2 (kernel 1,
        # padding 1); the 3x3 convolution keeps both.
        height = _pooled_size(_pooled_size(n_patch_times + 2))
        width = _pooled_size(_pooled_size(n_mels + 2))
        self.out_dim = height * width

    def forward(self, patches: Tensor) -> Tensor:
        """Extract one feature vector per frame.

        Parameters
        ----------
        patches : Tensor of shape (batch, n_frames, n_patch_times, n_mels)
            Log-mel patches, one per frame.

        Returns
        -------
        Tensor of shape (batch, n_frames, out_dim)
            Flattened feature map of each frame.
        """
        if patches.shape[-2:] != (self.n_patch_times, self.n_mels):
            raise ValueError(
                f"Expected patches of shape (..., {self.n_patch_times}, "
                f"{self.n_mels}); got {tuple(patches.shape)}."
            )
        batch, n_frames = patches.shape[:2]
        # All frames of all sequences form one convolution batch.
        x = patches.reshape(batch * n_frames, 1, self.n_patch_times, self.n_mels)
        return self.features(x).reshape(batch, n_frames, self.out_dim)
