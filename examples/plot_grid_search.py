"""
Grid search with personalized cross-validation
==============================================

Choose hyper-parameters by how well the model does *after* adapting to
listeners it was not trained on -- the score that matters for PDMER. Folds
split by listener (:class:`~sklearn.model_selection.GroupKFold`), and the
scorer :func:`pdmer.evaluation.personalized_scorer` personalizes the fitted
candidate to every test listener from one of their songs before scoring
their other songs.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold

from pdmer import AudioFeatures, DSAMLRegressor
from pdmer.evaluation import personalized_scorer
from pdmer_datasets import synthetic

root = Path(tempfile.gettempdir()) / "pdmer-examples" / "synthetic"
data = synthetic.generate(root, n_songs=24, n_listeners=16, songs_per_listener=8,
                          duration=15.0, random_state=0)
table = data.annotator_table()
front_end = AudioFeatures(sample_rate=22050, n_mels=32, window_seconds=0.04,
                          hop_seconds=0.02, global_window=10.0)
features = dict(zip(data.song_ids, front_end.transform(
    [str(data.audio_path(s)) for s in data.song_ids])))
X = [features[s] for s in table.song_ids]
y, annotators = table.y, table.annotators

# %%
# The search
# ----------
# scikit-learn hands scorers only ``(estimator, X, y)``; the listener ids
# reach the estimator's ``fit`` and the scorer through *metadata routing*.
# Here the search compares two inner-loop step sizes -- the step size a
# listener's adaptation will use -- with two folds and a tiny model (20
# episodes per fit).
model = DSAMLRegressor(size="small", d_model=64, n_heads=4, n_layers=1, d_ff=128,
                       lstm_hidden=32, head_hidden=32, n_episodes=20, tasks_per_step=4,
                       n_query=3, inner_steps=8, outer_lr=2e-3, inner_params="head",
                       train_window=30, validation_fraction=0, random_state=0)
grid = {"inner_lr": [0.005, 0.05]}

with sklearn.config_context(enable_metadata_routing=True):
    search = GridSearchCV(
        model.set_fit_request(annotators=True), grid, cv=GroupKFold(n_splits=2),
        scoring=personalized_scorer(["ccc", "ccc_arousal", "ccc_valence"]), refit="ccc")
    search.fit(X, y, groups=annotators, annotators=annotators)

print("best:", search.best_params_, f"personalized CCC {search.best_score_:.3f}")

# %%
# Scores per candidate: mean over the two folds (the bars), each fold a dot.
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
x = np.arange(len(results["params"]))
for offset, metric, color in ((-0.25, "ccc_arousal", "tab:orange"),
                              (0.0, "ccc_valence", "tab:purple"), (0.25, "ccc", "tab:gray")):
    ax.bar(x + offset, results[f"mean_test_{metric}"], 0.25, color=color,
           label=metric.replace("ccc_", "CCC ").replace("ccc", "CCC mean"))
    for fold in range(2):
        ax.plot(x + offset, results[f"split{fold}_test_{metric}"], "o", color="black", ms=3)
ax.set_xticks(x, [f"inner_lr={p['inner_lr']}" for p in results["params"]])
ax.set_ylabel("personalized CCC (held-out listeners)")
ax.axhline(0, color="0.3", lw=0.8)
ax.legend(fontsize=9)
ax.grid(axis="y", alpha=0.3)
plt.show()

# %%
# Without metadata routing
# ------------------------
# :func:`pdmer.evaluation.cross_validate_personalized` runs the same protocol
# for one estimator without any routing set-up (default: 5 listener folds)::
#
#     from pdmer.evaluation import cross_validate_personalized
#     scores = cross_validate_personalized(search.best_estimator_, X, y, annotators,
#                                          cv=5, scoring=["ccc", "neg_rmse"])
#
# and :func:`pdmer.evaluation.personalized_score` scores an already fitted model
# on held-out listeners. Extracting features once (above) matters in a search:
# every candidate and fold reuses them.
