"""Write tests/data/resample_reference.npz: torchaudio's resampling to 16 kHz.

ImageBind's audio loader resamples every file with
``torchaudio.functional.resample(waveform, orig_freq=sr, new_freq=16000)``
(its defaults: sinc interpolation, Hann window, lowpass_filter_width=6,
rolloff=0.99), then computes the Kaldi fbank of each 2 s clip after removing
its mean. This script stores, for inputs at 44.1, 48 and 22.05 kHz, the
resampled waveform and the fbank (ImageBind's settings) of that waveform;
``tests/features/test_resample.py`` compares ``pdmer.features.resample`` and
``pdmer.features.fbank`` with them.

The inputs are not stored: they come from a formula (:func:`signal`, which the
test repeats), and a few samples of each are stored to check that both sides
built the same signal. Run with a throwaway venv that has torchaudio (NOT a
pdmer dependency; see make_fbank_reference.py for how to get one that imports
beside torch 2.13.0)::

    /tmp/ta-venv/bin/python tests/data/make_resample_reference.py

The test imports :func:`signal` from this file, so torchaudio is imported
only in :func:`main`.
"""

from pathlib import Path

import numpy as np

TARGET = 16000
RATES = (44100, 48000, 22050)
SECONDS = 0.75
IMAGEBIND_FBANK = dict(htk_compat=True, sample_frequency=TARGET, use_energy=False,
                       window_type="hanning", num_mel_bins=128, dither=0.0, frame_length=25,
                       frame_shift=10)


def signal(rate):
    """0.75 s plus 7 samples (not a whole number of resampling blocks) at ``rate``.

    Tones below and above 8 kHz (the new Nyquist), a chirp up to 0.45 of the
    input rate (exercises the anti-aliasing filter), a click and a DC offset.
    """
    n = int(SECONDS * rate) + 7
    t = np.arange(n) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 7900 * t + 0.4)
         + 0.1 * np.sin(2 * np.pi * 9500 * t)
         + 0.15 * np.sin(2 * np.pi * (0.45 * rate / SECONDS / 2) * t ** 2) + 0.05)
    x[n // 3] += 0.8
    return x.astype(np.float32)


def main():
    import torch
    import torchaudio
    from torchaudio.compliance import kaldi

    out = {"torchaudio_version": np.array(torchaudio.__version__),
           "torch_version": np.array(torch.__version__)}
    for rate in RATES:
        x = torch.from_numpy(signal(rate))
        y = torchaudio.functional.resample(x[None], orig_freq=rate, new_freq=TARGET)[0]
        out[f"{rate}/input_head"] = x[:64].numpy()
        out[f"{rate}/resampled"] = y.numpy()
        # ImageBind's waveform2melspec: subtract the mean, then the Kaldi fbank.
        out[f"{rate}/fbank"] = kaldi.fbank((y - y.mean())[None], **IMAGEBIND_FBANK).numpy()
    path = Path(__file__).with_name("resample_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
