"""
Comparing DSAML with the baselines
==================================

The paper compares DSAML with four earlier DMER models: CRNN (Malik et al.
2017), DNN (Orjesek et al. 2019), MCRNN (He and Ferguson 2020) and DAMFF
(Zhang et al. 2023). pdmer implements them behind the same estimator API, so
one loop trains and scores them all, on the same features and the same
split (a quarter of the listeners and of the songs held out), in both
settings:

* **DMER**: trained on labels averaged over listeners, scored against the
  held-out listeners' own curves without adaptation;
* **PDMER**: meta-trained with one task per listener and personalized to each
  held-out listener from one song.

Both are scored with pdmer's one evaluation protocol
(:func:`pdmer.evaluation.plan_episodes` and
:func:`pdmer.evaluation.run_episodes`) on the same songs: each held-out
listener's songs that no training listener annotated.

Models here are the ``small`` presets, shrunk further and trained for 12
episodes: the bars show that the machinery works and how to run a
comparison, not the paper's ranking (see the DEAM example for that).
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pdmer import (AudioFeatures, CRNNRegressor, DAMFFRegressor, DNNRegressor,
                   DSAMLRegressor, MCRNNRegressor)
from pdmer.evaluation import plan_episodes, run_episodes
from pdmer.scoring import ccc
from pdmer_datasets import synthetic

root = Path(tempfile.gettempdir()) / "pdmer-examples" / "synthetic"
data = synthetic.generate(root, n_songs=24, n_listeners=16, songs_per_listener=8,
                          duration=15.0, random_state=0)
# Held-out listeners on held-out songs: each adapts on one song, the others are scored.
train, test = data.annotator_table().split_listeners_and_songs(random_state=0)
episodes = plan_episodes(test.annotators, random_state=0)

# %%
# One front end for all models: log-mel patches (DSAML, CRNN, DAMFF), a
# global embedding (DSAML) and each frame's raw audio (DNN and MCRNN learn
# from the waveform, here at 8 kHz).
front_end = AudioFeatures(sample_rate=22050, n_mels=32, window_seconds=0.04,
                          hop_seconds=0.02, global_window=10.0, waveform_rate=8000)
features = dict(zip(data.song_ids, front_end.transform(
    [str(data.audio_path(s)) for s in data.song_ids])))
train.X = [features[s] for s in train.song_ids]
test.X = [features[s] for s in test.song_ids]

# %%
# The same training settings for every model; only the networks differ.
training = dict(n_episodes=12, tasks_per_step=4, n_query=3, inner_steps=8, inner_lr=0.05,
                outer_lr=2e-3, inner_params="head", train_window=30,
                validation_fraction=0, random_state=0)
models = {
    "DSAML": DSAMLRegressor(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                            lstm_hidden=32, head_hidden=32, **training),
    "CRNN": CRNNRegressor(size="small", **training),
    "DNN": DNNRegressor(size="small", **training),
    "MCRNN": MCRNNRegressor(size="small", **training),
    "DAMFF": DAMFFRegressor(size="small", **training),
}


def mean_ccc(model, adapt):
    """Mean CCC over the planned (listener, unseen song) pairs."""
    truth, predictions, _ = run_episodes(model, test.X, test.y, episodes, adapt=adapt)
    return ccc(truth, predictions)


# %%
# Train and score
# ---------------
# Both settings are scored on the same songs; the DMER model is not adapted.
scores = {}
for name, model in models.items():
    dmer = model.set_params(meta_learning="none", tasks="song").fit(*train)
    dmer_ccc = mean_ccc(dmer, adapt=False)
    pdmer = model.set_params(meta_learning="fomaml", tasks="annotator").fit(*train)
    pdmer_ccc = mean_ccc(pdmer, adapt=True)
    scores[name] = (dmer_ccc, pdmer_ccc)
    print(f"{name:6s} {pdmer.n_parameters_ if hasattr(pdmer, 'n_parameters_') else '':>8} "
          f"parameters  CCC DMER {dmer_ccc:.3f}  PDMER {pdmer_ccc:.3f}")

# %%
# Mean CCC (arousal and valence) on the held-out listeners' songs.
names = list(scores)
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
ax.bar(x - 0.2, [scores[n][0] for n in names], 0.4, color="tab:gray",
       label="DMER: mean labels, not personalized")
ax.bar(x + 0.2, [scores[n][1] for n in names], 0.4, color="tab:red",
       label="PDMER: meta-trained, personalized from 1 song")
ax.set_xticks(x, names)
ax.set_ylabel("mean CCC, held-out listeners")
ax.axhline(0, color="0.3", lw=0.8)
ax.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
ax.grid(axis="y", alpha=0.3)
plt.show()

# %%
# For the paper's comparison on DEAM (Table 1 and 2), the benchmark runs all
# models with their paper-size presets: ``pdmer benchmark --help``.
