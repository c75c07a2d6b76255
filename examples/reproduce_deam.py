"""
Reproducing the paper on DEAM
=============================

The paper's experiments: DSAML meta-trained on DEAM's per-rater curves
(PDMER, Table 2) and trained on its mean curves (DMER, Table 1), with
ImageBind-huge global features. This script is shown but **not run** when
the documentation is built: it needs the DEAM download (1.3 GB), the
ImageBind weights (4.5 GB, CC BY-NC-SA 4.0) and a GPU -- one first-order
episode of the paper-size model takes about 2.4 minutes on 2 CPU cores, and
the paper trains for 2000 (see :doc:`/user_guide/performance`).

The same runs, for DSAML and all baselines, with the paper's numbers printed
beside yours::

    pdmer benchmark --dataset deam --task pdmer --preset paper -o deam-pdmer
    pdmer benchmark --dataset deam --task dmer --preset paper -o deam-dmer
"""

import pdmer_datasets
from pdmer import AudioFeatures, DSAMLRegressor
from pdmer.evaluation import personalized_score
from pdmer.scoring import evaluate

# %%
# Data and weights
# ----------------
# Verified (SHA-256), resumable downloads; ``--from`` installs archives you
# already have. Equivalent: ``pdmer download deam`` and
# ``pdmer download imagebind``.
deam = pdmer_datasets.initialize("deam")
deam.download()

# %%
# Features, once
# --------------
# DEAM's labels start at 15 s (``frame_offset``). Local log-mel patches at
# 44.1 kHz (60 ms windows, 10 ms hop, 128 mels) and ImageBind-huge over a
# 30 s window centred on each frame, fed 16 kHz audio. The cache keeps the
# features on disk: the expensive ImageBind pass runs once per song.
features = AudioFeatures(frame_offset=deam.frame_offset, global_encoder="imagebind",
                         global_window=30.0, cache_dir="deam-features", device="cuda")

train = deam.annotator_table(split="train")      # 2014 clips with WorkerIds
test = deam.annotator_table(split="test")        # the 58 full songs, per rater
songs = sorted(set(train.X) | set(test.X))
extracted = dict(zip(songs, features.transform(songs)))
train.X = [extracted[x] for x in train.X]
test.X = [extracted[x] for x in test.X]

# %%
# PDMER: meta-training with one task per rater (Table 2)
# ------------------------------------------------------
# The estimator's defaults are the paper's: 29 M parameters, first-order
# MAML, 16 tasks of 1 support + 15 query songs, 16 inner steps at 5e-3,
# Adam at 5e-5, 2000 episodes. The best episode is chosen on raters held
# out from the *training* data (the reference chose it on the test set).
# The checkpoint makes an interrupted run resume.
model = DSAMLRegressor(front_end=features, device="cuda", random_state=0,
                       checkpoint_path="dsaml-deam-pdmer.ckpt", verbose=1)
model.fit(*train)
model.save("dsaml-deam-pdmer.safetensors")

# Each test rater adapts from one of their songs; their other songs are scored.
names = ["ccc_arousal", "pcc_arousal", "neg_rmse_arousal",
         "ccc_valence", "pcc_valence", "neg_rmse_valence"]
pdmer_scores = personalized_score(model, test.X, test.y, test.annotators, metric=names)
print("PDMER on DEAM (paper: arousal 0.377 / 0.541 / 0.236, valence 0.092 / 0.154 / 0.245)")
for name, value in pdmer_scores.items():
    print(f"  {name.replace('neg_', ''):15s} {abs(value) if 'rmse' in name else value:.3f}")

# %%
# DMER: the mean curves (Table 1)
# -------------------------------
# The same model trained on labels averaged over raters; its tasks are songs.
mean_train = deam.mean_table(split="train")     # all 1744 clips but validation
mean_test = deam.mean_table(split="test")
missing = sorted((set(mean_train.X) | set(mean_test.X)) - set(extracted))
extracted.update(zip(missing, features.transform(missing)))
mean_train.X = [extracted[x] for x in mean_train.X]
mean_test.X = [extracted[x] for x in mean_test.X]

dmer = DSAMLRegressor(front_end=features, tasks="song", device="cuda", random_state=0,
                      checkpoint_path="dsaml-deam-dmer.ckpt", verbose=1)
dmer.fit(*mean_train)
dmer.save("dsaml-deam-dmer.safetensors")
scores = evaluate(mean_test.y, dmer.predict(mean_test.X))
print("DMER on DEAM (paper: arousal 0.390 / 0.675 / 0.202, valence 0.104 / 0.221 / 0.260)")
for dim in ("arousal", "valence"):
    print(f"  {dim}: CCC {scores[f'ccc_{dim}']:.3f}  PCC {scores[f'pcc_{dim}']:.3f}  "
          f"RMSE {scores[f'rmse_{dim}']:.3f}")

# %%
# The reference code's protocol
# -----------------------------
# The authors' code personalizes on the first 30 s of a test song and scores
# the rest of *that* song; ``pdmer benchmark --protocol same-song`` runs it.
# See :doc:`/user_guide/reference_differences` for this and the other ways
# pdmer departs from the reference implementation.
