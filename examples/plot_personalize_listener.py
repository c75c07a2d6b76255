"""
Personalize to a new listener from one song
===========================================

Meta-train DSAML with one task per listener, then, for listeners it has
never seen, adapt it from ONE song each and compare its predictions on their
*other* songs before and after. The synthetic listeners differ in offset,
gain, reaction lag and -- for a quarter of them -- the direction in which
they hear valence, so one model of "the average listener" fits nobody well.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pdmer import AudioFeatures, DSAMLRegressor
from pdmer.scoring import ccc
from pdmer.plotting import plot_curves, plot_trajectory
from pdmer_datasets import synthetic

root = Path(tempfile.gettempdir()) / "pdmer-examples" / "synthetic"
data = synthetic.generate(root, n_songs=24, n_listeners=16, songs_per_listener=8,
                          duration=15.0, random_state=0)
train, test = data.annotator_table().split_annotators(test_size=0.25, random_state=0)

# %%
# Extract features once
# ---------------------
# Fitting, personalizing and predicting all accept precomputed
# :class:`~pdmer.SongFeatures` in place of audio, so each song is analysed once.
front_end = AudioFeatures(sample_rate=22050, n_mels=32, window_seconds=0.04,
                          hop_seconds=0.02, global_window=10.0)
features = dict(zip(data.song_ids, front_end.transform(
    [str(data.audio_path(s)) for s in data.song_ids])))
train.X = [features[s] for s in train.song_ids]
test.X = [features[s] for s in test.song_ids]

# %%
# Meta-train
# ----------
# Each episode samples listeners; the model adapts to one song of each
# (8 gradient steps of its BiLSTM head, ``inner_params="head"``) and is
# scored on three other songs of the same listener. Training learns weights
# from which that adaptation works.
model = DSAMLRegressor(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                       lstm_hidden=32, head_hidden=32, n_episodes=60, tasks_per_step=4,
                       n_query=3, inner_steps=8, inner_lr=0.05, outer_lr=2e-3,
                       inner_params="head", train_window=30, random_state=0)
model.fit(*train)

# %%
# Each held-out listener gives one song
# -------------------------------------
# For every new listener: predict their other songs with the meta-trained
# model, personalize from their first song, predict again. CCC is computed
# per song over its frames, then averaged.
rows = []
for listener in np.unique(test.annotators):
    theirs = test.select_annotators([listener])
    support, query = slice(0, 1), slice(1, None)
    model.reset_personalization()
    before = model.predict(theirs.X[query])
    model.personalize(theirs.X[support], theirs.y[support])
    after = model.predict(theirs.X[query])
    truth = theirs.y[query]
    rows.append((listener, ccc(truth, before), ccc(truth, after)))
    print(f"{listener}: CCC {rows[-1][1]:.3f} -> {rows[-1][2]:.3f}  "
          f"(valence reversed: {data.listeners[listener].valence_reversed})")

# %%
# Mean CCC (arousal and valence) of every held-out listener, on songs that were
# not used to adapt.
names, before_scores, after_scores = zip(*rows)
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
x = np.arange(len(names))
ax.bar(x - 0.2, before_scores, 0.4, label="meta-trained, not personalized", color="tab:blue")
ax.bar(x + 0.2, after_scores, 0.4, label="personalized from 1 song", color="tab:red")
ax.set_xticks(x, names)
ax.set_xlabel("held-out listener")
ax.set_ylabel("mean CCC on their other songs")
ax.axhline(0, color="0.3", lw=0.8)
ax.legend(loc="upper left", fontsize=9)
ax.grid(axis="y", alpha=0.3)

# %%
# One listener, one song they did not use for adaptation: their curve, and
# the model before and after personalization.
listener = names[int(np.argmax(np.subtract(after_scores, before_scores)))]
theirs = test.select_annotators([listener])
model.reset_personalization()
before = model.predict(theirs.X[1:2])[0]
model.personalize(theirs.X[:1], theirs.y[:1])
after = model.predict(theirs.X[1:2])[0]
labels = {"truth": f"listener {listener}", "prediction": "not personalized",
          "personalized": "personalized from 1 song"}
plot_curves(before, truth=theirs.y[1], personalized=after, labels=labels,
            title=f"Listener {listener}, song {theirs.song_ids[1]}")

# %%
# The same song as a path through the valence-arousal plane.
plot_trajectory(before, truth=theirs.y[1], personalized=after, labels=labels)
plt.show()
