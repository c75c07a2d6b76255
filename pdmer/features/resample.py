"""Band-limited sinc resampling equal to ``torchaudio.functional.resample``.

ImageBind's audio loader resamples every file to 16 kHz with torchaudio's
default resampler (windowed sinc interpolation, Hann window,
``lowpass_filter_width=6``, ``rolloff=0.99``). torchaudio cannot be a pdmer
dependency (each release pins one torch build), so this module re-implements
that function in torch, with the same float32 kernel arithmetic, and
``tests/features/test_resample.py`` checks it against values produced by torchaudio
itself. It runs on streamed blocks (:class:`SincResampler`), so a long file
can be resampled while it is decoded, and only the output is kept.
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


class SincResampler:
    """Streaming form of :func:`sinc_resample`: push blocks, get what is ready.

    The output equals resampling the concatenated input at once: output block
    ``p`` (``new`` samples, after dividing both rates by their gcd) reads
    input ``[p * orig - width, p * orig + orig + width)``, zeros before the
    start and after the end, as torchaudio pads the whole waveform. Only the
    input that a later block still needs is kept.

    Parameters
    ----------
    orig_freq, new_freq : int
    lowpass_filter_width : int, default=6
    rolloff : float, default=0.99

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.features.resample import SincResampler
    >>> stream = SincResampler(44100, 16000)
    >>> parts = [stream.push(np.ones(22050, np.float32)) for _ in range(2)]
    >>> sum(map(len, parts + [stream.finish()]))
    16000
    """

    def __init__(self, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                 rolloff: float = 0.99):
        if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 \
                or new_freq <= 0:
            raise ValueError(f"sample rates must be positive whole numbers; got {orig_freq} "
                             f"and {new_freq}.")
        gcd = math.gcd(int(orig_freq), int(new_freq))
        self.orig, self.new = int(orig_freq) // gcd, int(new_freq) // gcd
        self.kernels, self.width = sinc_kernel(self.orig, self.new, int(lowpass_filter_width),
                                               float(rolloff))
        self._buffer = torch.zeros(self.width)  # the zero padding before the start
        self._offset = -self.width  # input index of _buffer[0]
        self._block = 0  # next output block
        self._length = 0  # input samples pushed
        self._produced = 0

    def _run(self, last_block: int) -> np.ndarray:
        """Output blocks ``_block .. last_block`` (their input is in the buffer)."""
        if last_block < self._block:
            return np.zeros(0, np.float32)
        orig, width = self.orig, self.width
        lo = self._block * orig - width - self._offset
        hi = last_block * orig + orig + width - self._offset
        with torch.no_grad():
            blocks = torch.nn.functional.conv1d(self._buffer[lo:hi][None, None], self.kernels,
                                                stride=orig)
        self._block = last_block + 1
        keep = self._block * orig - width - self._offset  # what the next block reads first
        self._buffer, self._offset = self._buffer[keep:], self._offset + keep
        out = blocks[0].T.reshape(-1).numpy()
        self._produced += len(out)
        return out

    def push(self, samples) -> np.ndarray:
        """Feed the next input samples; returns the output samples now complete."""
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32))
        if x.dim() != 1:
            raise ValueError(f"waveform must be 1-D; got shape {tuple(x.shape)}.")
        self._buffer = torch.cat([self._buffer, x])
        self._length += len(x)
        return self._run((self._length - self.orig - self.width) // self.orig)

    def finish(self) -> np.ndarray:
        """The remaining output, with zeros after the end; the total has
        ``ceil(n_input * new_freq / orig_freq)`` samples."""
        last = self._length // self.orig  # torchaudio's last block
        need = last * self.orig + self.orig + self.width - self._offset
        self._buffer = torch.nn.functional.pad(self._buffer, (0, need - len(self._buffer)))
        before = self._produced
        out = self._run(last)
        target = math.ceil(self.new * self._length / self.orig)
        return out[:max(0, target - before)]


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
        Input processed per step (see :class:`SincResampler`); the result does
        not depend on it.

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
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"waveform must be 1-D; got shape {x.shape}.")
    stream = SincResampler(orig_freq, new_freq, lowpass_filter_width, rolloff)
    if orig_freq == new_freq:
        return x.copy()
    step = max(1, int(chunk_seconds * orig_freq))
    parts = [stream.push(x[lo:lo + step]) for lo in range(0, len(x), step)]
    return np.concatenate(parts + [stream.finish()])
