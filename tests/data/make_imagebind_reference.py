"""Write tests/data/imagebind_reference.npz with Meta's own ImageBind code.

A tiny audio branch (width 16, 2 blocks, output 8; other modalities tiny too)
is built with ImageBind's ``ImageBindModel`` and random weights; the file
holds its audio state dict (official key names) and its embeddings of a
synthetic 7 s window computed through ImageBind's own input code
(``waveform2melspec`` with torchaudio's Kaldi fbank, Normalize(-4.268,
9.138), three evenly spaced 2 s clips, mean). ``tests/features/test_imagebind.py``
loads the state dict strictly into pdmer's ImageBindAudio and must
reproduce the embeddings.

Run in a throwaway venv that has torch, torchaudio (see
make_fbank_reference.py) and einops, with ImageBind's source unpacked
somewhere (e.g. ``pip download --no-deps imagebind-unofficial==0.1.1``, a
packaging of facebookresearch/ImageBind, then unzip it)::

    /tmp/ta-venv/bin/pip install einops
    /tmp/ta-venv/bin/python tests/data/make_imagebind_reference.py /path/to/unpacked

ImageBind's model code imports timm, iopath, ftfy and regex for parts the
audio branch does not use (text tokenizer, initialisers, drop path): this
script puts minimal stand-ins for them on the path.
"""

import ast
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

STUBS = {
    "timm/__init__.py": "",
    "timm/layers.py": (
        "import torch\n"
        "trunc_normal_ = torch.nn.init.trunc_normal_\n"
        "class DropPath(torch.nn.Module):  # identity in eval mode, all that is used here\n"
        "    def __init__(self, drop_prob=0.0):\n"
        "        super().__init__()\n"
        "    def forward(self, x):\n"
        "        return x\n"),
    "iopath/__init__.py": "",
    "iopath/common/__init__.py": "",
    "iopath/common/file_io.py": "g_pathmgr = None\n",
    "ftfy.py": "",
    "regex.py": "from re import *\n",
}
SR = 16000
WINDOW = 7.0  # three 2 s clips at 0, 2.5, 5 s: no overlap (see the test)
TINY = dict(out_embed_dim=8, audio_embed_dim=16, audio_num_blocks=2, audio_num_heads=2,
            vision_embed_dim=16, vision_num_blocks=1, vision_num_heads=2, text_embed_dim=16,
            text_num_blocks=1, text_num_heads=2, depth_embed_dim=16, depth_num_blocks=1,
            depth_num_heads=2, thermal_embed_dim=16, thermal_num_blocks=1,
            thermal_num_heads=2, imu_embed_dim=16, imu_num_blocks=1, imu_num_heads=2)


def window_waveform():
    """The test regenerates this: 7 s at 16 kHz, from a formula."""
    t = np.arange(int(WINDOW * SR)) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
         + 0.1 * np.sin(2 * np.pi * 97 * t) * np.sin(2 * np.pi * 0.7 * t) + 0.05)
    return x.astype(np.float32)


def waveform2melspec_from(source: Path):
    """ImageBind's waveform2melspec, taken from its data.py without its other imports."""
    import logging

    import torchaudio

    tree = ast.parse(source.read_text())
    [func] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name == "waveform2melspec"]
    namespace = {"torch": torch, "torchaudio": torchaudio, "logging": logging,
                 "DEFAULT_AUDIO_FRAME_SHIFT_MS": 10}
    exec(compile(ast.Module([func], []), str(source), "exec"), namespace)
    return namespace["waveform2melspec"]


def main(root):
    root = Path(root)
    stubs = Path(tempfile.mkdtemp())
    for name, text in STUBS.items():
        (stubs / name).parent.mkdir(parents=True, exist_ok=True)
        (stubs / name).write_text(text)
    sys.path[:0] = [str(stubs), str(root)]
    # The package's __init__ imports its data module (pytorchvideo, torchvision,
    # ...): register the package without running it.
    import types

    package = types.ModuleType("imagebind")
    package.__path__ = [str(root / "imagebind")]
    sys.modules["imagebind"] = package
    from imagebind.models.imagebind_model import ImageBindModel

    torch.manual_seed(0)
    model = ImageBindModel(**TINY).eval()
    # Zero-initialised parameters (cls token, bias_k/v, ...) get values too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".audio." in name:
                p.normal_(0, 0.2 if p.dim() > 1 else 0.05).add_(1.0 if "norm" in name
                                                                 and name.endswith("weight")
                                                                 else 0.0)
    waveform2melspec = waveform2melspec_from(root / "imagebind" / "data.py")
    wave = torch.from_numpy(window_waveform())[None]  # (channels, samples)
    # ConstantClipsPerVideoSampler at the pytorchvideo commit ImageBind pins:
    # starts j * (duration - 2) / (3 - 1), as exact fractions.
    step = Fraction(max(wave.shape[1] / SR - 2, 0)) / 2
    clips = []
    for j in range(3):
        start, end = step * j, step * j + 2
        clip = wave[:, int(start * SR):int(end * SR)].clone()
        clips.append((waveform2melspec(clip, SR, 128, 204) - (-4.268)) / 9.138)
    images = torch.stack(clips)  # (3, 1, 128, 204)
    with torch.no_grad():
        window = model({"audio": images[None]})["audio"]  # (1, 8): mean of the clips
        per_clip = model({"audio": images[:, None]})["audio"]  # (3, 8)
    out = {f"state/{k}": v.numpy() for k, v in model.state_dict().items() if ".audio." in k}
    out.update({"window_embedding": window.numpy(), "clip_embeddings": per_clip.numpy(),
                "clip_images_subsampled": images[:, 0, ::16, ::17].numpy(),
                "clip_starts_samples": np.array([int(step * j * SR) for j in range(3)])})
    path = Path(__file__).with_name("imagebind_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    main(sys.argv[1])
