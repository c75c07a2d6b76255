"""
Personalize to a new listener from one song
===========================================

Meta-train a small DSAML on simulated listeners, then adapt it to a listener
it has never seen from ONE song they annotated, and compare that listener's
curve on another song with the prediction before and after personalization.
"""

import matplotlib.pyplot as plt
import numpy as np

from pdmer import DSAMLRegressor
from pdmer.demo import FEATURES, MODEL
from pdmer.features import AudioFeatures
from pdmer_datasets import synthetic

data = synthetic.generate("synthetic-example", n_songs=24, n_listeners=16,
                          songs_per_listener=8, duration=15.0)
train, test = data.annotator_table().split_annotators(test_size=0.25, random_state=0)

# Extract features once; every fit, personalization and prediction reuses them.
features = dict(zip(data.song_ids, AudioFeatures(**FEATURES).transform(
    [str(data.audio_path(s)) for s in data.song_ids])))
train.X = [features[s] for s in train.song_ids]
test.X = [features[s] for s in test.song_ids]

model = DSAMLRegressor(**dict(MODEL, n_episodes=60, random_state=0)).fit(*train)

listener = test.select_annotators([test.annotators[0]])
before = model.predict(listener.X[1:2])[0]
model.personalize(listener.X[:1], listener.y[:1])  # one annotated song
after = model.predict(listener.X[1:2])[0]

time = 0.5 * np.arange(len(after))
fig, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
for dim, (ax, name) in enumerate(zip(axes, ("arousal", "valence"))):
    ax.plot(time, listener.y[1][:, dim], "k", lw=2, label="the listener")
    ax.plot(time, after[:, dim], "tab:red", label="personalized")
    ax.plot(time, before[:, dim], "tab:blue", ls="--", label="not personalized")
    ax.set_ylabel(name)
axes[0].legend(fontsize=8)
axes[1].set_xlabel("time (s)")
plt.show()
