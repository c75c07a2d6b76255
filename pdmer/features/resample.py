"""Band-limited sinc resampling equal to ``torchaudio.functional.resample``.

ImageBind's audio loader resamples every file to 16 kHz with torchaudio's
default resampler (windowed sinc interpolation, Hann window,
``lowpass_filter_width=6``, ``rolloff=0.99``). torchaudio cannot be a pdmer
dependency (each release pins one torch build), so this module re-implements
that function in torch, with the same float32 kernel arithmetic, and
``tests/test_resample.py`` checks it against values produced by torchaudio
itself. It runs in chunks of output blocks, so a long song costs no more than
a few seconds of audio in working memory beyond its input and output.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=8)
def sinc_kernel(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """torchaudio's Hann-windowed sinc kernels for ``orig_freq -> new_freq``, float32.

    ``orig_freq`` and ``new_freq`` are already divided by their greatest
    common divisor. Returns ``(kernels, width)``: kernels of shape
    ``(new_freq, 1, 2 * width + orig_freq)`` (one filter per output phase)
    and the number of input samples of context on each side.
    """
    base_freq = min(orig_freq, new_freq) * rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base_freq)
    # float32 throughout, as torchaudio computes it for a float32 waveform.
    idx = torch.arange(-width, width + orig_freq, dtype=torch.float32)[None, None] / orig_freq
    t = torch.arange(0, -new_freq, -1, dtype=torch.float32)[:, None, None] / new_freq + idx
    t *= base_freq
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    kernels = torch.where(t == 0, torch.tensor(1.0), t.sin() / t)
    kernels *= window * (base_freq / orig_freq)
    return kernels, width


def sinc_resample(waveform, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                  rolloff: float = 0.99, chunk_seconds: float = 30.0) -> np.ndarray:
    """Resample a mono waveform as ``torchaudio.functional.resample`` does by default.

    Parameters
    ----------
    waveform : array-like of shape (n_samples,)
        float32 samples.
    orig_freq, new_freq : int
        Sample rates in Hz (whole numbers).
    lowpass_filter_width : int, default=6
        Zero crossings of the sinc on each side.
    rolloff : float, default=0.99
        Cut-off as a fraction of the lower Nyquist frequency.
    chunk_seconds : float, default=30.0
        Input processed per step; the result does not depend on it.

    Returns
    -------
    ndarray of shape (ceil(n_samples * new_freq / orig_freq),), float32

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.features.resample import sinc_resample
    >>> sinc_resample(np.ones(44100, np.float32), 44100, 16000).shape
    (16000,)
    """
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    if x.dim() != 1:
        raise ValueError(f"waveform must be 1-D; got shape {tuple(x.shape)}.")
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 \
            or new_freq <= 0:
        raise ValueError(f"sample rates must be positive whole numbers; got {orig_freq} "
                         f"and {new_freq}.")
    if orig_freq == new_freq:
        return x.numpy().copy()
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernels, width = sinc_kernel(orig, new, int(lowpass_filter_width), float(rolloff))
    length = x.shape[0]
    target = math.ceil(new * length / orig)
    # Output block p (new samples) reads input [p * orig - width, p * orig + orig + width),
    # zeros outside the waveform: torchaudio pads the whole waveform the same way.
    n_blocks = length // orig + 1
    out = torch.empty(n_blocks * new, dtype=torch.float32)
    step = max(1, int(chunk_seconds * orig_freq) // orig)
    with torch.no_grad():
        for lo in range(0, n_blocks, step):
            hi = min(n_blocks, lo + step)
            start, stop = lo * orig - width, (hi - 1) * orig + orig + width
            piece = x[max(start, 0):min(stop, length)]
            piece = torch.nn.functional.pad(piece, (max(0, -start), max(0, stop - length)))
            blocks = torch.nn.functional.conv1d(piece[None, None], kernels, stride=orig)
            out[lo * new:hi * new] = blocks[0].T.reshape(-1)
    return out[:target].numpy()
