"""
Global features: ImageBind and your own encoders
================================================

DSAML's global branch gives every 0.5 s frame an embedding of the music
*around* it: in the paper, ImageBind-huge's audio encoder over a 30 s window
centred on the frame (three 2 s clips, averaged). pdmer runs ImageBind's
audio branch itself; only the weights are needed:

.. code-block:: bash

   pdmer download imagebind     # ~4.5 GB checkpoint -> audio-only safetensors
                                # weights licensed CC BY-NC-SA 4.0 (non-commercial)

.. code-block:: python

   from pdmer import AudioFeatures
   features = AudioFeatures(global_encoder="imagebind", frame_offset=15.0,
                            cache_dir="features/")   # extract once, reuse

The weights cannot be downloaded where this documentation is built, and a
4.5 GB model would not fit its time budget, so this example runs the same
ImageBind architecture **shrunk and with random weights** through the same
code path (:class:`~pdmer.features.ClipEncoder`), next to the weight-free
default encoder. The figures show how the features are laid out in time,
not what the real weights encode.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from pdmer import AudioFeatures
from pdmer.features import ClipEncoder, available_encoders
from pdmer.features.imagebind import ImageBindAudio
from pdmer_datasets import synthetic

# %%
# Which encoders this machine has
# -------------------------------
# ``"auto"`` picks ImageBind when its weights are installed. ``pdmer info``
# prints the same list.
for name, status in available_encoders().items():
    print(f"{name:13s} {status}")

# %%
# A clip model as the global encoder
# ----------------------------------
# Any callable that maps a batch of 2 s mono clips at 16 kHz to embeddings
# plugs in through :class:`~pdmer.features.ClipEncoder`, which applies
# ImageBind's recipe: three evenly spaced clips per window, averaged, windows
# centred on each frame. Here: ImageBind's audio architecture (fbank input,
# patch embedding, transformer, L2-normalised output scaled by 20) with 2
# layers of width 64 instead of 12 of width 768, and random weights.
torch.manual_seed(0)
tiny_imagebind = ImageBindAudio(dim=64, depth=2, n_heads=4, out_dim=128).eval()
encoder = ClipEncoder(tiny_imagebind.embed_waveforms, name="imagebind-tiny-random", dim=128)

root = Path(tempfile.gettempdir()) / "pdmer-examples" / "synthetic"
data = synthetic.generate(root, n_songs=24, n_listeners=16, songs_per_listener=8,
                          duration=15.0, random_state=0)
song = str(data.audio_path("S000"))
common = dict(sample_rate=22050, n_mels=32, window_seconds=0.04, hop_seconds=0.02,
              global_window=10.0)
[clip_features] = AudioFeatures(global_encoder=encoder, **common).transform([song])
[stats_features] = AudioFeatures(global_encoder="logmel-stats", **common).transform([song])
print(f"{clip_features.n_frames} frames: local patches {clip_features.local_patches.shape[1:]}, "
      f"global embeddings of {clip_features.global_embeddings.shape[1]} dims "
      f"from {clip_features.encoder!r}")

# %%
# What "global" means
# -------------------
# Correlation between the global embeddings of every pair of frames of one
# song (each dimension standardised over the song's frames, so that a
# constant offset does not hide the changes). Each embedding summarises 10 s
# of audio here (30 s with the paper's settings): neighbouring frames share
# most of their window, so the similarity decays slowly away from the
# diagonal. The local log-mel patches, one per 0.5 s, carry the fast changes.


def similarity(embeddings):
    z = (embeddings - embeddings.mean(0)) / (embeddings.std(0) + 1e-8)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    return unit @ unit.T


fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
extent = [0, data.n_frames * 0.5, data.n_frames * 0.5, 0]
for ax, (title, feats) in zip(axes, [("logmel-stats (no weights)", stats_features),
                                     ("ImageBind architecture, tiny, random weights",
                                      clip_features)]):
    image = ax.imshow(similarity(feats.global_embeddings), cmap="RdBu_r", extent=extent,
                      vmin=-1, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("frame time (s)")
    ax.set_ylabel("frame time (s)")
fig.colorbar(image, ax=axes, label="correlation between frames", shrink=0.85)
plt.show()

# %%
# Training with it
# ----------------
# Estimators see only the embeddings' size, so any encoder works with any
# model; all songs of one model must use the same encoder (the model refuses
# features of another kind). A model trained with a custom encoder needs it
# again when loaded, since code is never stored in model files::
#
#     model = pdmer.load("model.safetensors",
#                        front_end=AudioFeatures(global_encoder=encoder))
#
# For a catalogue, extract once into the feature cache (``cache_dir=`` or
# ``pdmer extract --encoder imagebind songs/``): ImageBind-huge costs far
# more than the rest of the front end.
