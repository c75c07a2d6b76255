"""The paper's tables: its numbers, and the rows a run of each task fills.

A run's rows carry the key of the paper row they reproduce (``paper``), so
reports print the paper's numbers beside the run's. Rows the paper does not
have are the fair competitors every PDMER table shows: the meta-trained
model not personalized, the same network trained plainly on the same tasks
(not adapted; fine-tuned on the support song with the personalization's
steps and step size; fine-tuned with the settings that served the training
listeners held out for validation best; calibrated to the listener in
closed form), the meta-trained model calibrated the same way and, where the
scored songs were in the training data, the training listeners' mean curve
of the song. No row's settings are chosen on the listeners it scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdmer.experiments.presets import MODELS

__all__ = ["DMER_NOTE", "METRICS", "PAPER", "TITLES", "RowSpec", "table_rows"]

METRICS = ("ccc_arousal", "pcc_arousal", "rmse_arousal", "ccc_valence", "pcc_valence",
           "rmse_valence")
"""Scores of every row, in the paper's column order."""

PAPER = {
    "Table 1": {
        "deam": {"DSAML": (0.390, 0.675, 0.202, 0.104, 0.221, 0.260),
                 "DAMFF": (0.354, 0.621, 0.217, 0.055, 0.043, 0.299),
                 "MCRNN": (0.227, 0.374, 0.265, 0.029, -0.005, 0.297),
                 "DNN": (0.188, 0.362, 0.261, 0.033, 0.003, 0.281),
                 "CRNN": (0.244, 0.517, 0.218, 0.017, -0.039, 0.270)},
        "pmemo": {"DSAML": (0.186, 0.386, 0.112, 0.108, 0.260, 0.122),
                  "DAMFF": (0.175, 0.378, 0.118, 0.091, 0.335, 0.134),
                  "MCRNN": (0.104, 0.266, 0.168, 0.038, 0.154, 0.169),
                  "DNN": (0.087, 0.217, 0.151, 0.030, 0.134, 0.159),
                  "CRNN": (0.076, 0.231, 0.183, 0.034, 0.224, 0.169)},
    },
    "Table 2": {
        "deam": {"DSAML": (0.377, 0.541, 0.236, 0.092, 0.154, 0.245),
                 "DAMFF†": (0.220, 0.414, 0.319, 0.035, 0.069, 0.344),
                 "DAMFF": (0.232, 0.478, 0.342, 0.035, 0.008, 0.390),
                 "MCRNN†": (0.173, 0.312, 0.332, 0.022, 0.021, 0.348),
                 "MCRNN": (0.176, 0.301, 0.364, 0.015, -0.002, 0.391),
                 "DNN†": (0.138, 0.273, 0.350, 0.010, -0.009, 0.367),
                 "DNN": (0.153, 0.286, 0.361, 0.016, -0.004, 0.385),
                 "CRNN†": (0.113, 0.290, 0.310, 0.008, -0.009, 0.337),
                 "CRNN": (0.131, 0.365, 0.350, -0.001, -0.021, 0.366)},
    },
    "Table 3": {
        "deam": {"DSAML": (0.402, 0.633, 0.196, 0.117, 0.182, 0.267),
                 "DSAML w/o local attention": (0.385, 0.624, 0.215, 0.077, 0.134, 0.268),
                 "DSAML w/o global attention": (0.370, 0.594, 0.207, 0.084, 0.148, 0.283),
                 "DSAML w/o attention loss": (0.338, 0.564, 0.221, 0.103, 0.185, 0.279),
                 "DSAML w/o adapter": (0.329, 0.529, 0.221, 0.083, 0.120, 0.272)},
        "pmemo": {"DSAML": (0.186, 0.386, 0.112, 0.108, 0.260, 0.122),
                  "DSAML w/o local attention": (0.167, 0.341, 0.112, 0.087, 0.213, 0.123),
                  "DSAML w/o global attention": (0.157, 0.352, 0.123, 0.075, 0.214, 0.132),
                  "DSAML w/o attention loss": (0.148, 0.353, 0.135, 0.098, 0.254, 0.139),
                  "DSAML w/o adapter": (0.138, 0.318, 0.121, 0.077, 0.247, 0.125)},
    },
    "Table 4": {
        "deam": {"DSAML": (0.377, 0.541, 0.236, 0.092, 0.154, 0.245),
                 "DSAML †": (0.305, 0.518, 0.332, 0.062, 0.095, 0.383),
                 "DSAML ‡": (0.357, 0.533, 0.236, 0.080, 0.129, 0.256),
                 "DSAML †‡": (0.332, 0.566, 0.309, 0.061, 0.132, 0.359)},
    },
}
"""The paper's numbers (CCC, PCC, RMSE of arousal, then of valence) by table,
data set and row. The run's rows carry the key of their paper row."""

TITLES = {
    "Table 1": "DMER, mean labels (paper Table 1)",
    "Table 2": "PDMER, personalized labels, models with (†) and without MAML (paper Table 2)",
    "Table 3": "DMER ablations of DSAML (paper Table 3)",
    "Table 4": "PDMER ablations of DSAML: † without MAML, ‡ without personalized task "
               "construction (paper Table 4)",
}
"""Section title of each table in the reports."""

DMER_NOTE = (
    "The reference code's DMER evaluation adapts the model on the first 30 s of each "
    "test song's labels before scoring the song, and the paper's Table 1 may include that "
    "adaptation; pdmer's `dmer` task does not adapt (the clean protocol), so its numbers "
    "are not directly comparable with the paper's.")
"""Printed beside Table 1 (and Table 3) in every report."""

ABLATIONS = (("w/o local attention", dict(local_attention=False)),
             ("w/o global attention", dict(global_attention=False)),
             ("w/o attention loss", dict(attention_loss_weight=0.0)),
             ("w/o adapter", dict(adapter=False)))
# The meta-trained rows use the size preset's method (the paper's: first-order MAML).
MAML = dict(tasks="annotator")
PLAIN = dict(meta_learning="none", tasks="annotator")
MEAN_LABELS = dict(meta_learning="none", tasks="song")

ROLES = ("personalized", "not personalized", "plain", "plain + fine-tuned",
         "plain + tuned fine-tune", "plain + calibration", "not personalized + calibration",
         "mean labels", "mean labels + fine-tuned", "song mean curve", "ablation", "variant")
"""What a row is, whatever its model: the robustness suite and the demo pick rows by it."""


@dataclass(frozen=True)
class RowSpec:
    """One row of a table: which fitted model, adapted or not, and its paper row.

    ``model`` is None for the training listeners' mean curve (no model);
    ``params`` are sorted (name, value) pairs on top of the preset.
    ``competitor`` names how a row is personalized when not by the model's
    own adaptation: "calibration" or "tuned fine-tune"
    (:mod:`pdmer.evaluation.competitors`, settings chosen on training
    listeners).
    """

    table: str
    label: str
    model: str | None
    params: tuple
    adapt: bool
    paper: str | None
    role: str
    competitor: str | None = None


def table_rows(task, models, ablations=False, mean_label_rows=True, variants=None) -> list:
    """The rows of a run, table by table.

    Parameters
    ----------
    task : {"dmer", "pdmer"}
    models : list of str
        Keys of :data:`~pdmer.experiments.MODELS`.
    ablations : bool, default=False
        Add Table 3 (dmer) or Table 4 (pdmer).
    mean_label_rows : bool, default=True
        PDMER: also the paper's plain rows (trained on mean labels), not
        adapted and fine-tuned.
    variants : dict of str -> dict, optional
        PDMER: more personalized rows of every model, one per named set of
        estimator parameters on top of the meta-trained row's (e.g.
        ``{"MAML": {"meta_learning": "maml"}}``); role "variant".

    Returns
    -------
    list of RowSpec
    """
    rows = []

    def add(table, label, model, params, adapt, paper, role, competitor=None):
        rows.append(RowSpec(table, label, model, tuple(sorted(params.items())), adapt, paper,
                            role, competitor))

    if task == "dmer":
        for key in models:
            name = MODELS[key][0]
            add("Table 1", name, key, MEAN_LABELS, False, name, "mean labels")
        if ablations:
            add("Table 3", "DSAML", "dsaml", MEAN_LABELS, False, "DSAML", "mean labels")
            for label, extra in ABLATIONS:
                add("Table 3", f"DSAML {label}", "dsaml", {**MEAN_LABELS, **extra}, False,
                    f"DSAML {label}", "ablation")
        return rows
    for key in models:
        name = MODELS[key][0]
        meta = "DSAML" if key == "dsaml" else f"{name}†"
        add("Table 2", meta, key, MAML, True, meta, "personalized")
        add("Table 2", f"{meta} not personalized", key, MAML, False, None, "not personalized")
        add("Table 2", f"{name} plain (same tasks)", key, PLAIN, False, None, "plain")
        add("Table 2", f"{name} plain (same tasks) + fine-tuned", key, PLAIN, True, None,
            "plain + fine-tuned")
        add("Table 2", f"{name} plain (same tasks) + fine-tuned, settings tuned", key, PLAIN,
            True, None, "plain + tuned fine-tune", "tuned fine-tune")
        add("Table 2", f"{name} plain (same tasks) + calibration", key, PLAIN, True, None,
            "plain + calibration", "calibration")
        add("Table 2", f"{meta} not personalized + calibration", key, MAML, True, None,
            "not personalized + calibration", "calibration")
        for label, params in (variants or {}).items():
            add("Table 2", f"{meta} {label}", key, {**MAML, **params}, True, None, "variant")
        if mean_label_rows:
            plain = "DSAML (mean labels)" if key == "dsaml" else name
            add("Table 2", plain, key, MEAN_LABELS, False, None if key == "dsaml" else name,
                "mean labels")
            add("Table 2", f"{plain} + fine-tuned", key, MEAN_LABELS, True, None,
                "mean labels + fine-tuned")
    add("Table 2", "training listeners' mean curve of the song", None, {}, False, None,
        "song mean curve")
    if ablations:
        add("Table 4", "DSAML", "dsaml", MAML, True, "DSAML", "personalized")
        add("Table 4", "DSAML †", "dsaml", PLAIN, True, "DSAML †", "ablation")
        add("Table 4", "DSAML ‡", "dsaml", dict(tasks="song"), True,
            "DSAML ‡", "ablation")
        add("Table 4", "DSAML †‡", "dsaml", MEAN_LABELS, True, "DSAML †‡", "ablation")
    return rows
