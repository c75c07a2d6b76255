"""The local branch of DSAML: a small CNN over each frame's log-mel patch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pdmer.nn.recurrent import is_vmappable

# Frames per chunk when the adapter runs without gradients: bounds the
# memory of the first convolution's output (8 x (P + 2) x (M + 2) floats per
# frame) for songs of any length.
_CHUNK_FRAMES = 256


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

    The ReLUs are applied after the max-pooling: both orders give the same
    values and gradients (max-pooling commutes with any non-decreasing
    function) and pooling first leaves a quarter of the elements to the ReLU.
    In evaluation mode the BatchNorm layers are folded into the
    convolutions, and without gradients long songs go through in chunks of
    frames, so memory does not grow with the song.

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

    def forward(self, patches: Tensor, valid: Tensor | None = None) -> Tensor:
        """Extract one feature vector per frame.

        Parameters
        ----------
        patches : Tensor of shape (batch, n_frames, n_patch_times, n_mels)
            Log-mel patches, one per frame.
        valid : Tensor of shape (batch, n_frames), dtype bool, default=None
            False at padding frames, which are kept out of the BatchNorm
            batch statistics in training mode. None means all frames are
            valid. Features of padding frames are meaningless.

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
        if valid is not None:
            valid = valid.reshape(batch * n_frames)
        if self.training:
            out = self._train_forward(x, valid)
        elif torch.is_grad_enabled() or x.shape[0] <= _CHUNK_FRAMES:
            out = self._eval_forward(x)
        else:
            out = torch.cat([self._eval_forward(chunk) for chunk in x.split(_CHUNK_FRAMES)])
        return out.reshape(batch, n_frames, self.out_dim)

    def _train_forward(self, x: Tensor, valid: Tensor | None) -> Tensor:
        conv1, norm1, _, pool1, conv2, norm2, _, pool2, conv3 = self.features
        x = conv1(x)
        if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and not is_vmappable()):  # vmap cannot batch memory formats
            # Under bfloat16 the channels-last layout makes the CPU max-pooling
            # 2.5x faster (adapter -17%). Not in float32: PyTorch's CPU
            # channels-last BatchNorm sums its statistics with errors of
            # ~1e-3, far above float32 rounding but below bfloat16's.
            x = x.contiguous(memory_format=torch.channels_last)
        x = pool1(_batch_norm(norm1, x, valid)).relu()
        x = pool2(_batch_norm(norm2, conv2(x), valid)).relu()
        return conv3(x)

    def _eval_forward(self, x: Tensor) -> Tensor:
        conv1, norm1, _, pool1, conv2, norm2, _, pool2, conv3 = self.features
        x = pool1(_folded_conv(conv1, norm1, x)).relu()
        x = pool2(_folded_conv(conv2, norm2, x)).relu()
        return conv3(x)


def _folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """``norm(conv(x))`` with the running statistics folded into the convolution."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (conv.bias - norm.running_mean) * scale + norm.bias
    return conv._conv_forward(x, weight, bias)


def _batch_norm(norm: nn.BatchNorm2d, x: Tensor, valid: Tensor | None) -> Tensor:
    """``norm(x)`` in training mode with statistics over the ``valid`` samples only.

    Written with masks instead of indexing, so it runs under
    :func:`torch.func.vmap`; updates the running statistics as
    :class:`torch.nn.BatchNorm2d` does.
    """
    if valid is None:
        return norm(x)
    weight = valid.to(torch.float32)[:, None, None, None]
    values = x.float()
    count = weight.sum() * x.shape[2] * x.shape[3]
    # torch.where, not a product: padding may hold any value.
    mean = torch.where(valid[:, None, None, None], values, 0.0).sum((0, 2, 3)) / count
    centred = torch.where(valid[:, None, None, None], values - mean[:, None, None], 0.0)
    var = centred.square().sum((0, 2, 3)) / count
    if norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = norm.momentum
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / norm.num_batches_tracked
            unbiased = var * count / (count - 1).clamp_min(1)
            norm.running_mean.mul_(1 - momentum).add_(momentum * mean)
            norm.running_var.mul_(1 - momentum).add_(momentum * unbiased)
    out = (values - mean[:, None, None]) * torch.rsqrt(var + norm.eps)[:, None, None]
    return (out * norm.weight[:, None, None] + norm.bias[:, None, None]).to(x.dtype)
