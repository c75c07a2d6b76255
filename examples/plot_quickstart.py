"""
Quickstart: fit, personalize, predict
=====================================

Train DSAML on simulated listeners, adapt it to a new listener from ONE song
they annotated, and predict that listener's arousal and valence for another
song. Everything runs offline on the synthetic data set, with a tiny model.
"""

# %%
# Data: songs and listeners
# -------------------------
# :func:`pdmer_datasets.synthetic.generate` writes WAV songs whose emotion
# follows known curves, and the curves that simulated listeners -- each with
# their own way of hearing music -- drew for them. A second call with the
# same parameters reuses the files.
import tempfile
from pathlib import Path

from pdmer_datasets import synthetic

root = Path(tempfile.gettempdir()) / "pdmer-examples" / "synthetic"
data = synthetic.generate(root, n_songs=24, n_listeners=16, songs_per_listener=8,
                          duration=15.0, random_state=0)
print(data)

# %%
# A table has one row per (song, listener) curve: ``X`` audio paths, ``y``
# arrays of shape (n_frames, 2) with (arousal, valence) every 0.5 s, and the
# listener ids. Split *by listener*, so the test listeners are new to the model.
table = data.annotator_table()
train, test = table.split_annotators(test_size=0.25, random_state=0)
print(train)
print(test)

# %%
# Fit
# ---
# The paper's model is ``DSAMLRegressor()`` (29 M parameters, 2000 episodes,
# a GPU job). Here: a tiny network, coarse log-mel patches and 40 episodes.
# With annotator ids, every listener is one meta-learning task.
from pdmer import AudioFeatures, DSAMLRegressor

features = AudioFeatures(sample_rate=22050, n_mels=32, window_seconds=0.04,
                         hop_seconds=0.02, global_window=10.0)
model = DSAMLRegressor(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                       lstm_hidden=32, head_hidden=32, n_episodes=40, tasks_per_step=4,
                       n_query=3, inner_steps=8, inner_lr=0.05, outer_lr=2e-3,
                       inner_params="head", train_window=30, front_end=features,
                       random_state=0)
model.fit(*train)  # X (audio paths), y, annotators

# %%
# Personalize and predict
# -----------------------
# A new listener annotates one song. :meth:`~pdmer.DSAMLRegressor.personalize`
# adapts a copy of the head to them (the meta-trained model is unchanged);
# :meth:`~pdmer.DSAMLRegressor.predict` then predicts for that listener.
listener = test.select_annotators([test.annotators[0]])
their_song, other_songs = listener.X[:1], listener.X[1:]

before = model.predict(other_songs)
model.personalize(their_song, listener.y[:1])
after = model.predict(other_songs)
print(f"listener {listener.annotators[0]}: CCC on their other songs "
      f"{model.score(other_songs, listener.y[1:]):.3f} personalized")

# %%
# Plot one song: the listener's curve, and the model before and after it
# met the listener, over time and in the valence-arousal plane.
from pdmer.plotting import plot_song

plot_song(before[0], truth=listener.y[1], personalized=after[0],
          frame_offset=test.frame_offset,
          labels={"prediction": "not personalized", "truth": "the listener"},
          title=f"Listener {listener.annotators[0]}, song {listener.song_ids[1]}")

# %%
# Save and load
# -------------
# Models are one safetensors file (no pickle); a listener is a small file of
# their adapted parameters.
model_path = root.parent / "quickstart-model.safetensors"
model.save(model_path)
model.listener_.save(root.parent / "listener.safetensors")

import pdmer

reloaded = pdmer.load(model_path).use_listener(root.parent / "listener.safetensors")
print(reloaded.listener_)
