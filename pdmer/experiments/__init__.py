"""Experiments: the DSAML paper's tables, the fair competitors, and their reports.

:func:`run_benchmark` (and ``pdmer benchmark``) trains every model on one data
set and scores it with the one evaluation protocol of :mod:`pdmer.evaluation`,
writing Markdown and CSV tables with the paper's numbers beside the run's,
the run's settings (``settings.json``), a JSON copy for resuming and a PNG
plot. The demo (``pdmer demo``) is the ``small`` preset of the same run on
DSAML, and ``benchmarks/bench_robustness.py`` runs it over data conditions.

Layout: :mod:`~pdmer.experiments.presets` (sizes, shared with the demo),
:mod:`~pdmer.experiments.tables` (the paper's numbers and each table's rows),
:mod:`~pdmer.experiments.splits` (held-out listeners and songs),
:mod:`~pdmer.experiments.runner`, :mod:`~pdmer.experiments.hardware` and
:mod:`~pdmer.experiments.reporting`.

Tasks
-----
``"dmer"`` (Table 1; Table 3 with ``ablations``)
    Every model is trained without meta-learning on mean labels (labels
    averaged over annotators) and scored on the test songs' mean labels,
    without adaptation. The reference code adapts on the first 30 s of each
    test song here; pdmer does not, and every report says so beside Table 1.
``"pdmer"`` (Table 2; Table 4 with ``ablations``)
    Models are trained on per-annotator labels of training listeners and
    scored on held-out listeners' own labels. Per model:

    * ``DSAML`` / ``<model>†``: meta-trained with first-order MAML, one task
      per annotator, personalized to each test listener (the paper's rows);
    * ``... not personalized``: the same meta-trained model, not adapted;
    * ``<model> plain (same tasks)``: the same network trained plainly
      (``meta_learning="none"``) on the same per-annotator tasks and batches,
      not adapted, and ``+ fine-tuned`` on the support song with the
      personalization's steps and step size;
    * ``<model>`` (``DSAML (mean labels)``): trained plainly on mean labels
      (the paper's plain rows), not adapted and ``+ fine-tuned``;
    * the training listeners' mean curve of each scored song, when the
      scored songs were in the training data (listener-only split);
    * Table 4: DSAML without MAML (†), without personalized task
      construction (‡) and without both; every row personalized.

    Every row also reports how much its predictions move within songs
    (``spread``; below 0.5 it is marked collapsed) and each trained model's
    convergence (best validation episode against the episodes run).

Protocols and splits
--------------------
See :func:`pdmer.evaluation.plan_episodes` (``"other-songs"``, the paper's
text, and ``"same-song"``, the reference implementation's) and
:mod:`pdmer.experiments.splits` (listeners and songs held out).
"""

from pdmer.experiments.presets import MODELS, PAPER_FEATURES, PRESETS, Preset, parameter_counts
from pdmer.experiments.reporting import BenchmarkResult, markdown_table, seeds_summary
from pdmer.experiments.runner import convergence, run_benchmark
from pdmer.experiments.splits import Split, load_split, seen_listeners
from pdmer.experiments.tables import DMER_NOTE, PAPER, RowSpec, table_rows

__all__ = ["DMER_NOTE", "MODELS", "PAPER", "PAPER_FEATURES", "PRESETS", "BenchmarkResult",
           "Preset", "RowSpec", "Split", "convergence", "load_split", "markdown_table",
           "parameter_counts", "run_benchmark", "seeds_summary", "seen_listeners",
           "table_rows"]
