"""The offline demo: does one annotated song personalize the model?

Generates synthetic songs and listeners and runs the benchmark's ``small``
preset on DSAML (:func:`pdmer.experiments.run_benchmark`): listeners AND songs
are held out, and on the held-out listeners' unseen songs it compares

- the meta-trained model, not personalized and personalized from ONE song
  of each held-out listener,
- the same network trained plainly on the same tasks, not adapted,
  fine-tuned on that one song with the personalization's steps and step size,
  fine-tuned with the settings that served held-out training listeners best,
  and calibrated to the listener in closed form (as is the meta-trained model:
  :mod:`pdmer.evaluation.competitors`),
- a model trained without meta-learning on mean labels (traditional DMER),

with how much each row's predictions move and whether training converged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import numpy as np

from pdmer.evaluation import run_episodes
from pdmer.experiments import markdown_table, run_benchmark
from pdmer.experiments.tables import MAML, PLAIN

ROWS = {
    "not personalized": "meta-trained, not personalized",
    "personalized": "meta-trained + personalized (1 song)",
    "plain": "plain training, same tasks, not adapted",
    "plain + fine-tuned": "plain training + fine-tuned on the same song",
    "plain + tuned fine-tune": "plain training + fine-tuned, settings tuned on training listeners",
    "plain + calibration": "plain training + listener calibration (closed form)",
    "not personalized + calibration": "meta-trained + listener calibration (closed form)",
    "mean labels": "mean-label model (no meta-learning)",
    "mean labels + fine-tuned": "mean-label model + fine-tuned on the same song",
}
"""The demo's name of each benchmark row (by role), in print order."""

COLUMNS = ("ccc_arousal", "ccc_valence", "pcc_arousal", "pcc_valence", "rmse_arousal",
           "rmse_valence", "ccc_mean", "spread")


@dataclass
class DemoResult:
    """Scores per model row, convergence per trained model, and where the plot is.

    Attributes
    ----------
    scores : dict
        Demo row name -> the benchmark row (scores, ``spread``, ``collapsed``,
        convergence).
    convergence : dict
        Trained model -> ``best_episode``, ``episodes_run``,
        ``best_validation_ccc``, ``still_improving``.
    listeners : list of str
        Held-out listeners that were scored.
    plot_path : str
    seconds : float
    benchmark : BenchmarkResult
        The underlying run (also written to the output folder).
    """

    scores: dict
    convergence: dict
    listeners: list
    plot_path: str
    seconds: float
    benchmark: object = None

    def table(self) -> str:
        """The scores as a Markdown table (``spread``: prediction std / label std)."""
        return markdown_table(self.scores, COLUMNS, index="model")

    def convergence_lines(self) -> list:
        """One line per trained model: best validation episode against episodes run."""
        lines = []
        for name, c in self.convergence.items():
            best = (f"no validation split, kept episode {c['best_episode']} of "
                    f"{c['episodes_run']}" if c["best_validation_ccc"] is None else
                    f"best validation at episode {c['best_episode']} of {c['episodes_run']}")
            if c["still_improving"]:
                best += " (still improving at the end: more episodes may help)"
            lines.append(f"{name}: {best}")
        return lines


def run_demo(output_dir="pdmer-demo", random_state=0, n_episodes=None, verbose=1,
             log=print, preset="small", n_jobs=-1, device="auto") -> DemoResult:
    """Run the demo end to end and write ``personalization.png`` to ``output_dir``.

    Parameters
    ----------
    output_dir : str
        Folder for the synthetic data set, the benchmark files and the plot.
    random_state : int, default=0
    n_episodes : int, optional
        Training episodes (default: the preset's).
    verbose : int, default=1
        Progress bars for feature extraction and training.
    log : callable, default=print
        Receives progress messages.
    preset : {"small", "tiny"}, default="small"
        The benchmark preset (``"tiny"`` for tests).
    n_jobs : int, default=-1
        Models trained at once, one torch thread each (-1: one per core).
    device : str, default="auto"
        Torch device of the models ("auto": a GPU if there is one).

    Returns
    -------
    DemoResult
    """
    import torch

    started = time.perf_counter()
    n_threads = torch.get_num_threads()
    # This model's tensors are small: extra intra-op threads cost more in
    # synchronisation than they give, and a loaded machine makes it far worse.
    torch.set_num_threads(1)
    try:
        result = run_benchmark(
            dataset="synthetic", task="pdmer", models=["dsaml"], preset=preset,
            seed=random_state, output=output_dir, verbose=verbose, log=log, n_jobs=n_jobs,
            device=device,
            estimator_params=None if n_episodes is None else {"n_episodes": n_episodes},
            command=f"pdmer demo --seed {random_state}"
                    + ("" if n_episodes is None else f" --episodes {n_episodes}"))
        plot_path = os.path.join(output_dir, "personalization.png")
        _plot(result, plot_path)
    finally:
        torch.set_num_threads(n_threads)
    by_role = {row["role"]: row for row in result.rows}
    scores = {name: by_role[role] for role, name in ROWS.items() if role in by_role}
    convergence = {}
    for name, role in (("meta-trained", "personalized"), ("plain, same tasks", "plain"),
                       ("mean-label model", "mean labels")):
        row = by_role[role]
        convergence[name] = {k: row[k] for k in ("best_episode", "episodes_run",
                                                  "best_validation_ccc", "still_improving")}
    listeners = sorted({e.listener for e in result.episodes})
    return DemoResult(scores, convergence, listeners, plot_path,
                      time.perf_counter() - started, result)


def _plot(result, path):
    """One held-out listener's unseen song: truth, meta-trained before and after, plain + FT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdmer.plotting import plot_curves

    test = result.split.test
    X = [result.features[str(x)] for x in test.X]
    episode = result.episodes[0]
    example = [replace(episode, query=episode.query[:1])]
    meta = result.estimators[("dsaml", tuple(sorted(MAML.items())))]
    plain = result.estimators[("dsaml", tuple(sorted(PLAIN.items())))]
    truth, (before,), _ = run_episodes(meta, X, test.y, example, adapt=False)
    _, (after,), _ = run_episodes(meta, X, test.y, example)
    _, (fine_tuned,), _ = run_episodes(plain, X, test.y, example,
                                       steps=meta.personalization_steps_,
                                       lr=meta.resolved_params_["inner_lr"])
    song = test.song_ids[episode.query[0]]
    fig = plot_curves(
        before, np.asarray(truth[0]), after,
        others={"plain training + fine-tuned": fine_tuned},
        labels={"truth": f"listener {episode.listener}",
                "personalized": "personalized from 1 song",
                "prediction": "meta-trained, not personalized"},
        title=f"Held-out listener {episode.listener}, song {song} (unseen in training)",
        path=path)
    plt.close(fig)
