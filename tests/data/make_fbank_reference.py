"""Write tests/data/fbank_reference.npz: torchaudio's Kaldi fbank on fixed inputs.

Run with a Python that has torchaudio (NOT a pdmer dependency), e.g. a
throwaway venv::

    python -m venv /tmp/ta-venv
    /tmp/ta-venv/bin/pip install torch==2.13.0 numpy
    /tmp/ta-venv/bin/pip install --no-deps torchaudio==2.11.0
    # torchaudio's compiled extensions do not load beside this torch; the
    # pure-Python compliance.kaldi module does not need them:
    rm /tmp/ta-venv/lib/python3.11/site-packages/torchaudio/lib/*.so
    /tmp/ta-venv/bin/python tests/data/make_fbank_reference.py

tests/features/test_fbank.py compares pdmer.features.fbank.kaldi_fbank with it.
"""

from pathlib import Path

import numpy as np
import torch
import torchaudio
from torchaudio.compliance import kaldi

SR = 16000
# ImageBind's call (imagebind/data.py, waveform2melspec).
IMAGEBIND = dict(htk_compat=True, sample_frequency=SR, use_energy=False, window_type="hanning",
                 num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10)


def inputs():
    rng = np.random.default_rng(20240611)
    t = np.arange(int(0.4 * SR)) / SR
    noisy_sine = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)
    short = 0.2 * rng.normal(size=int(0.05 * SR))  # 800 samples: 3 frames
    gap = 0.5 * np.sin(2 * np.pi * 3000 * np.arange(int(0.3 * SR)) / SR)
    gap[1200:3600] = 0.0  # digital silence in the middle: log floor rows
    return {"noisy_sine": noisy_sine, "short": short, "silence_gap": gap + 0.01}


def main():
    out = {"torchaudio_version": np.array(torchaudio.__version__),
           "torch_version": np.array(torch.__version__)}
    for name, x in inputs().items():
        x = torch.from_numpy(x.astype(np.float32))
        out[f"{name}/input"] = x.numpy()
        out[f"{name}/imagebind"] = kaldi.fbank(x[None], **IMAGEBIND).numpy()
    x = torch.from_numpy(out["noisy_sine/input"])
    out["noisy_sine/defaults"] = kaldi.fbank(x[None] * 32768).numpy()  # povey, 23 bins
    path = Path(__file__).with_name("fbank_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
