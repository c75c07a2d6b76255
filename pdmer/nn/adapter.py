"""The local branch of DSAML: a small CNN over each frame's log-mel patch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pdmer.nn.recurrent import is_vmappable

# Frames per chunk of the first convolution and pooling, whose output
# (8 x (P + 2) x (M + 2) values per frame) is the adapter's largest map. In
# chunks it stays in the CPU's caches from the convolution to the pooling
# and back (900 frames in training mode under bf16: 578 -> 434 ms forward
# and backward); without gradients the whole adapter runs in chunks, so its
# memory does not grow with the song.
_CHUNK_FRAMES = 64


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
    convolutions; in training mode the first one is too, with its batch
    statistics computed from the input in closed form (see
    :func:`_batch_folded`). The first convolution and pooling run in chunks
    of frames, and without gradients the whole adapter does, so memory does
    not grow with the song.

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
        elif torch.is_grad_enabled():
            out = self._eval_forward(x)
        else:
            out = torch.cat([self._eval_forward(chunk) for chunk in x.split(_CHUNK_FRAMES)])
        return out.reshape(batch, n_frames, self.out_dim)

    def _train_forward(self, x: Tensor, valid: Tensor | None) -> Tensor:
        conv1, norm1, _, pool1, conv2, norm2, _, pool2, conv3 = self.features
        if is_vmappable():
            x = pool1(_batch_norm(norm1, conv1(x), valid)).relu()
        else:
            weight, bias = _batch_folded(conv1, norm1, x, valid)
            x = _first_block(x, weight, bias, conv1.padding, pool1)
            if not (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
                # PyTorch's CPU channels-last BatchNorm sums its statistics
                # with errors of ~1e-3, far above float32 rounding (1e-6 in
                # NCHW) but below bfloat16's: keep the second one in NCHW.
                x = x.contiguous()
        x = pool2(_batch_norm(norm2, conv2(x), valid)).relu()
        return conv3(x)

    def _eval_forward(self, x: Tensor) -> Tensor:
        conv1, norm1, _, pool1, conv2, norm2, _, pool2, conv3 = self.features
        if is_vmappable():  # vmap batches neither memory formats nor strided views
            x = pool1(conv1._conv_forward(x, *_folded(conv1, norm1))).relu()
        else:
            x = _first_block(x, *_folded(conv1, norm1), conv1.padding, pool1)
        x = pool2(conv2._conv_forward(x, *_folded(conv2, norm2))).relu()
        return conv3(x)


def _channels_last_view(x: Tensor) -> Tensor:
    """The single-channel ``x`` with channels-last strides, without copying.

    With one channel both layouts hold the same bytes, but only these
    strides make the convolution return its output channels-last, the
    layout in which the CPU max-pooling runs 2x faster (the whole adapter's
    forward and backward pass -45% on 60 frames) and no copy to another
    layout is needed.
    """
    return x.as_strided(x.shape, (x.stride(0), 1, x.stride(2), x.stride(3)))


def _batch_folded(conv: nn.Conv2d, norm: nn.BatchNorm2d, x: Tensor,
                  valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``norm(conv(x))`` in training mode, batch statistics taken from ``x``.

    The first convolution has one input channel, a ``(k, 1)`` kernel and
    ``k - 1`` rows of padding, so every output is ``w . (k vertically
    adjacent input values) + b`` and every input row meets every kernel row
    once. The mean and variance of each output channel over the batch are
    then a function of the kernel and of four sums over the input: its sum
    and its products with itself shifted by 0 to ``k - 1`` rows. BatchNorm
    becomes a per-channel rescaling of the kernel and bias, so the
    convolution writes the normalized map directly: no pass of BatchNorm
    over the largest feature map (8 x (P + 2) x (M + 2) per frame) forward
    or backward. The statistics are differentiable functions of the
    parameters, so gradients are BatchNorm's own. Running statistics are
    updated as :class:`torch.nn.BatchNorm2d` does; frames where ``valid``
    is False are left out, as in :func:`_batch_norm`.
    """
    height = conv.kernel_size[0]
    if (conv.in_channels != 1 or conv.kernel_size[1] != 1 or conv.stride != (1, 1)
            or conv.dilation != (1, 1) or conv.padding[0] != height - 1):
        raise ValueError("_batch_folded needs one input channel, a (k, 1) kernel, "
                         "stride 1 and k - 1 rows of padding.")
    n_frames, _, n_rows, n_cols = x.shape
    # Output positions per frame: every row offset, and the padding columns
    # (kernel width 1: their outputs are the bias alone).
    positions = (n_rows + height - 1) * (n_cols + 2 * conv.padding[1])
    # Per frame in float32 (blocked dot products, no temporaries), across
    # frames in float64.
    frames = x.float().reshape(n_frames, n_rows * n_cols)
    sums = [frames.sum(1)]
    for shift in range(height):
        sums.append(torch.linalg.vecdot(frames[:, shift * n_cols:],
                                        frames[:, : (n_rows - shift) * n_cols], dim=1))
    per_frame = torch.stack(sums, 1).double()  # (frames, 1 + height)
    if valid is not None:
        # torch.where, not a product: padding frames may hold any value.
        per_frame = torch.where(valid[:, None], per_frame, 0.0)
        count = valid.sum() * positions
    else:
        count = torch.tensor(n_frames * positions, device=x.device)
    totals = per_frame.sum(0) / count
    mean_input, lagged = totals[0], totals[1:]
    # Covariance of the k input values an output sees (Toeplitz in the lag),
    # centred here, in float64, before any cancellation in float32.
    rows = torch.arange(height, device=x.device)
    covariance = lagged[(rows[:, None] - rows[None, :]).abs()] - mean_input.square()
    kernel = conv.weight.reshape(conv.out_channels, height).double()
    mean = (kernel.sum(1) * mean_input + conv.bias.double()).float()
    var = torch.einsum("ck,kl,cl->c", kernel, covariance, kernel).clamp_min(0).float()
    _update_running_stats(norm, mean, var, count)
    scale = norm.weight * torch.rsqrt(var + norm.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (conv.bias - mean) * scale + norm.bias
    return weight, bias


def _first_block(x: Tensor, weight: Tensor, bias: Tensor, padding, pool: nn.Module) -> Tensor:
    """``relu(pool(first convolution of x))``, in chunks of frames (see ``_CHUNK_FRAMES``)."""
    blocks = [pool(_first_conv(chunk, weight, bias, padding)).relu()
              for chunk in x.split(_CHUNK_FRAMES)]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


def _first_conv(x: Tensor, weight: Tensor, bias: Tensor, padding) -> Tensor:
    """The first convolution of single-channel ``x`` with ``weight`` and ``bias``.

    The output is channels-last. Under bfloat16 autocast on the CPU, oneDNN
    computes this convolution's weight gradient (the 32 values of a
    ``(8, 1, 3, 1)`` kernel and its bias, from the largest feature map) 2-4x
    slower than one matrix product over the input's windows does; then
    :class:`_BF16FirstConvolution` computes it that way.
    """
    x = _channels_last_view(x)
    if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and torch.is_grad_enabled() and not x.requires_grad):
        return _BF16FirstConvolution.apply(x, weight, bias, padding)
    return F.conv2d(x, weight, bias, padding=padding)


class _BF16FirstConvolution(torch.autograd.Function):
    """``conv2d`` in bfloat16 of an input that needs no gradient; see :func:`_first_conv`.

    The backward pass is made of differentiable operations, so second-order
    gradients pass through it.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x)
        ctx.padding = padding
        ctx.kernel_shape = weight.shape
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(x.to(torch.bfloat16), weight.to(torch.bfloat16),
                            bias.to(torch.bfloat16), padding=padding)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        channels, _, height, _ = ctx.kernel_shape
        frames, _, out_rows, out_cols = grad.shape
        rows, cols = ctx.padding
        padded = F.pad(x[:, 0].to(torch.bfloat16), (cols, cols, rows, rows))
        # Each output's input window, and a 1 for the bias.
        windows = grad.new_empty(frames, out_rows, out_cols, height + 1)
        for row in range(height):
            windows[..., row] = padded[:, row: row + out_rows]
        windows[..., height] = 1
        sums = (grad.permute(0, 2, 3, 1).reshape(-1, channels).t()
                @ windows.reshape(-1, height + 1)).float()
        return None, sums[:, :height].reshape(ctx.kernel_shape), sums[:, height], None


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``norm(conv(x))`` with the running statistics folded into ``conv``."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (conv.bias - norm.running_mean) * scale + norm.bias
    return weight, bias


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
    _update_running_stats(norm, mean, var, count)
    out = (values - mean[:, None, None]) * torch.rsqrt(var + norm.eps)[:, None, None]
    return (out * norm.weight[:, None, None] + norm.bias[:, None, None]).to(x.dtype)


def _update_running_stats(norm: nn.BatchNorm2d, mean: Tensor, var: Tensor,
                          count: Tensor) -> None:
    """Update ``norm``'s running statistics from a batch as BatchNorm does.

    ``var`` is the biased batch variance over ``count`` values per channel.
    """
    if not (norm.track_running_stats and norm.running_mean is not None):
        return
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / norm.num_batches_tracked
        unbiased = var * count / (count - 1).clamp_min(1)
        norm.running_mean.mul_(1 - momentum).add_(momentum * mean)
        norm.running_var.mul_(1 - momentum).add_(momentum * unbiased)
