"""Reports of experiments: Markdown and CSV tables, a plot and the settings.

:func:`markdown_table` is the one Markdown table writer of pdmer (the
benchmark, the demo, ``pdmer evaluate`` and the robustness suite print with
it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import textwrap
from dataclasses import dataclass, field

import numpy as np

from pdmer.files import atomic_write
from pdmer.evaluation import COLLAPSE_RATIO
from pdmer.experiments.tables import DMER_NOTE, TITLES

__all__ = ["BenchmarkResult", "markdown_table", "seeds_summary"]


def markdown_table(rows, columns, index="", digits=3) -> str:
    """A Markdown table: one line per row, one column per key.

    Parameters
    ----------
    rows : dict of str to dict
        Row name -> {column key: value}.
    columns : sequence of str or dict of str to str
        Column keys, or {key: header}.
    index : str, default=""
        Header of the row-name column.
    digits : int, default=3
        Decimals of floats. None, NaN and missing values are left empty;
        booleans print as yes/no.

    Returns
    -------
    str

    Examples
    --------
    >>> from pdmer.experiments import markdown_table
    >>> print(markdown_table({"model": {"ccc": 0.51234, "n": 3}}, ["ccc", "n"]))
    | | ccc | n |
    |---|---:|---:|
    | model | 0.512 | 3 |
    """
    headers = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}

    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}f}"
        return str(value)

    lines = [f"| {index} | " if index else "| | ", "|---|" + "---:|" * len(headers)]
    lines[0] += " | ".join(headers.values()) + " |"
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(values.get(k)) for k in headers) + " |")
    return "\n".join(lines)


_RUN_COLUMNS = {"ccc_arousal": "CCC a", "pcc_arousal": "PCC a", "rmse_arousal": "RMSE a",
                "ccc_valence": "CCC v", "pcc_valence": "PCC v", "rmse_valence": "RMSE v"}
CHECK_COLUMNS = {"ccc_mean": "CCC mean", "spread": "pred. std / label std",
                 "collapsed": f"collapsed (< {COLLAPSE_RATIO})", "n_scored": "scored",
                 "best_episode": "best episode", "episodes_run": "episodes run",
                 "still_improving": "best = last check"}
"""Per-row checks printed under each table: mean CCC, spread, convergence."""


@dataclass
class BenchmarkResult:
    """What :func:`~pdmer.experiments.run_benchmark` measured and where it wrote it.

    Attributes
    ----------
    rows : list of dict
        One dict per table row: ``table``, ``row``, ``role``, ``model``, the
        training settings, ``personalized``, the six metrics and ``ccc_mean``,
        ``spread`` (prediction std / label std within songs) and
        ``collapsed``, ``n_scored`` (scored song-listener pairs or songs),
        convergence (``best_episode``, ``episodes_run``,
        ``best_validation_ccc``, ``still_improving``), ``paper_<metric>``
        (None where the paper has no such row), ``n_parameters`` and
        ``fit_seconds``.
    parameters : list of dict
        Parameter counts per model: this run's and the paper-size ones.
    settings : dict
        Everything needed to rerun: arguments, preset, seeds, data sizes,
        the support songs, notes, library versions, hardware.
    files : dict
        ``markdown``, ``csv``, ``plot``, ``settings`` and ``json`` paths (empty
        if no output folder was given).
    estimators : dict
        The fitted models by (model key, sorted parameter pairs); not saved.
    split : Split
        The run's training and test data; not saved.
    episodes : list of Episode
        The evaluation plan (PDMER); not saved.
    features : dict
        Extracted features by audio path; not saved.
    """

    rows: list
    parameters: list
    settings: dict
    files: dict = field(default_factory=dict)
    estimators: dict = field(default_factory=dict, repr=False)
    split: object = field(default=None, repr=False)
    episodes: list = field(default=None, repr=False)
    features: dict = field(default=None, repr=False)

    def markdown(self) -> str:
        """The tables as Markdown: settings, notes, parameter counts, results, checks."""
        s = self.settings
        out = [f"# pdmer benchmark: {s['task'].upper()} on {s['dataset']}", "",
               f"Preset `{s['preset']}`, seed {s['seed']}"
               + (f", protocol `{s['protocol']}`, split `{s['split']}`"
                  if s["task"] == "pdmer" else "")
               + f"; {s['data']['summary']}; {s['seconds']:.0f} s on "
               f"{s['hardware']['summary']}.", "", f"Command: `{s['command']}`", ""]
        out += [f"Note: {note}" for note in s["notes"]] + ([""] if s["notes"] else [])
        out += ["## Parameters", "", markdown_table(
            {p["model"]: p for p in self.parameters},
            {"input": "input", "n_parameters": "trainable parameters (this run)",
             "paper_n_parameters": "`paper` preset on the paper's inputs"}, index="model")]
        paper_columns = {f"paper_{m}": f"paper {h}" for m, h in _RUN_COLUMNS.items()}
        for table in dict.fromkeys(r["table"] for r in self.rows):
            rows = {r["row"]: r for r in self.rows if r["table"] == table}
            out += ["", f"## {table}: {TITLES[table]}", ""]
            if table in ("Table 1", "Table 3"):
                out += [DMER_NOTE, ""]
            out += [f"Run on {s['dataset']}; paper numbers ({s['paper_dataset'].upper()}) in "
                    "the right half. a = arousal, v = valence; RMSE lower is better.", "",
                    markdown_table(rows, {**_RUN_COLUMNS, **paper_columns}, index="model"),
                    "", "Checks: mean CCC, how much predictions move within songs, and "
                    "convergence of the trained model (validation CCC at its best episode "
                    "vs. the episodes run).", "",
                    markdown_table(rows, CHECK_COLUMNS, index="model")]
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        """The rows as CSV text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def to_json(self) -> str:
        """Rows, parameters and settings as JSON (what :meth:`from_json` reads)."""
        return json.dumps({"rows": self.rows, "parameters": self.parameters,
                           "settings": self.settings}, indent=1, default=_jsonable) + "\n"

    @classmethod
    def from_json(cls, text) -> "BenchmarkResult":
        """A result written by :meth:`to_json` (fitted models are not kept)."""
        data = json.loads(text)
        return cls(data["rows"], data["parameters"], data["settings"])

    @classmethod
    def read(cls, output) -> "BenchmarkResult | None":
        """The finished result :meth:`write` left in ``output``, or None if there is none."""
        files = report_files(output)
        if not os.path.exists(files["json"]):
            return None
        with open(files["json"], encoding="utf-8") as handle:
            result = cls.from_json(handle.read())
        result.files = files
        return result

    def write(self, output) -> dict:
        """Write results.md, results.csv, results.png, settings.json and result.json."""
        os.makedirs(output, exist_ok=True)
        files = report_files(output)
        write_text(files["markdown"], self.markdown())
        write_text(files["csv"], self.csv())
        write_text(files["settings"], json.dumps(self.settings, indent=2, default=_jsonable)
                   + "\n")
        _plot(self, files["plot"])
        # Last: a run counts as finished (resumable) only once this exists.
        write_text(files["json"], self.to_json())
        self.files = files
        return files


def report_files(output) -> dict:
    """The files :meth:`BenchmarkResult.write` writes into ``output``, by kind."""
    files = {name: os.path.join(output, f"results.{ext}") for name, ext in
             (("markdown", "md"), ("csv", "csv"), ("plot", "png"))}
    files["settings"] = os.path.join(output, "settings.json")
    files["json"] = os.path.join(output, "result.json")
    return files


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    atomic_write(path, write)


def seeds_summary(results) -> str:
    """Rows averaged over runs that differ only in their seed, as Markdown.

    Parameters
    ----------
    results : list of BenchmarkResult

    Returns
    -------
    str
        Per table row: mean and standard deviation over seeds of CCC arousal,
        valence and mean, the mean spread, and how many seeds collapsed or
        were still improving at their last validation.
    """
    seeds = [r.settings["seed"] for r in results]
    groups = {}
    for result in results:
        for row in result.rows:
            groups.setdefault((row["table"], row["row"]), []).append(row)
    out = [f"# pdmer benchmark over seeds {', '.join(map(str, seeds))}", ""]
    for table in dict.fromkeys(t for t, _ in groups):
        summary = {}
        for (t, name), rows in groups.items():
            if t != table:
                continue
            line = {}
            for key in ("ccc_arousal", "ccc_valence", "ccc_mean"):
                values = np.array([r[key] for r in rows], dtype=float)
                line[key] = (f"{np.mean(values):.3f} ± {np.std(values):.3f}"
                             if np.isfinite(values).all() else "")
            line["spread"] = float(np.mean([_float(r["spread"]) for r in rows]))
            line["collapsed"] = f"{sum(bool(r['collapsed']) for r in rows)}/{len(rows)}"
            line["still_improving"] = (
                f"{sum(bool(r['still_improving']) for r in rows)}/{len(rows)}"
                if rows[0]["model"] != "-" else "")
            summary[name] = line
        out += [f"## {table}: {TITLES[table]}", "", markdown_table(summary, {
            "ccc_arousal": "CCC a", "ccc_valence": "CCC v", "ccc_mean": "CCC mean",
            "spread": "pred. std / label std", "collapsed": "collapsed",
            "still_improving": "best = last check"}, index="model (mean ± sd over seeds)"), ""]
    return "\n".join(out)


def _float(value):
    return float("nan") if value is None else float(value)


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_figure(result)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")
    plt.close(fig)


def plot_figure(result):
    """The figure of results.png: this run's CCC per row, and the paper's.

    When the run used the paper's data set, the paper's numbers are marks on
    this run's bars. On other data (the synthetic set) they are drawn in a
    panel of their own, with a note, so nobody reads synthetic scores
    beside DEAM's as a comparison (synthetic songs are far easier).
    """
    import matplotlib.pyplot as plt

    s = result.settings
    paper_data = s["paper_dataset"]
    same_data = s["dataset"] == paper_data
    tables = list(dict.fromkeys(r["table"] for r in result.rows))
    heights = [sum(r["table"] == t for r in result.rows) for t in tables]
    has_paper = any(r[f"paper_ccc_{dim}"] is not None for r in result.rows
                    for dim in ("arousal", "valence"))
    columns = 1 if same_data or not has_paper else 2
    fig, axes = plt.subplots(len(tables), columns, squeeze=False, sharey="row",
                             figsize=(8 if columns == 1 else 11,
                                      1.4 + 0.45 * sum(heights) + 0.8 * len(tables)),
                             gridspec_kw={"height_ratios": heights})
    for row_axes, table in zip(axes, tables):
        rows = [r for r in result.rows if r["table"] == table]
        run_label = f"this run ({s['dataset']})"
        _bars(row_axes[0], rows, "ccc_{}", run_label)
        if same_data:
            _paper_marks(row_axes[0], rows, f"paper ({paper_data.upper()})")
        elif columns == 2:
            _bars(row_axes[1], rows, "paper_ccc_{}", f"paper ({paper_data.upper()})",
                  alpha=0.45)
            row_axes[1].set_title(f"the paper's numbers, on {paper_data.upper()}",
                                  fontsize=9)
        title = TITLES[table] if columns == 1 else "\n".join(textwrap.wrap(TITLES[table], 60))
        row_axes[0].set_title(title if same_data else f"{title}\nthis run, on {s['dataset']}",
                              fontsize=9)
        row_axes[0].set_yticks(np.arange(len(rows)), [r["row"] for r in rows], fontsize=8)
        row_axes[0].invert_yaxis()
    for ax in axes[-1]:
        ax.set_xlabel("CCC (per song, averaged)")
    fig.suptitle(f"{s['task'].upper()} on {s['dataset']}, preset {s['preset']}, seed "
                 f"{s['seed']}", fontsize=10)
    handles = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    bottom = 0.04
    if not same_data:
        # Said on the figure itself: a PNG travels without the Markdown notes.
        fig.text(0.5, 0.005, f"Different data: this run used {s['dataset']}, the paper "
                 f"{paper_data.upper()}: the scores are not comparable (synthetic songs are "
                 "far easier than real ones).", ha="center", va="bottom",
                 fontsize=7.5, style="italic", wrap=True)
        bottom = 0.07
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=7,
               bbox_to_anchor=(0.5, bottom - 0.045))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


_COLORS = (("arousal", "tab:red"), ("valence", "tab:blue"))


def _bars(ax, rows, key, label, alpha=1.0):
    y = np.arange(len(rows))
    for offset, (dim, color) in zip((-0.2, 0.2), _COLORS):
        ax.barh(y + offset, [_float(r[key.format(dim)]) for r in rows], height=0.38,
                color=color, alpha=alpha, label=f"CCC {dim}, {label}")
    ax.axvline(0, color="gray", lw=0.8)
    ax.grid(axis="x", alpha=0.3)


def _paper_marks(ax, rows, label):
    for offset, (dim, _) in zip((-0.2, 0.2), _COLORS):
        paper = [(i, r[f"paper_ccc_{dim}"]) for i, r in enumerate(rows)
                 if r[f"paper_ccc_{dim}"] is not None]
        if paper:
            ax.scatter([v for _, v in paper], [i + offset for i, _ in paper], marker="|",
                       s=160, color="black", zorder=3,
                       label=label if dim == "arousal" else None)
