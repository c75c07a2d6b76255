"""Draw the user guide's explanatory figures into docs/user_guide/images/.

Run from the repository root after changing what a figure shows::

    python docs/_figures/make_figures.py

The PNGs are committed (the documentation build does not run this), so
these figures cost nothing at build time. They are diagrams, not results:
no model is trained and no data are read. The label grid and the quadrant
names come from :mod:`pdmer.labels`, so a change there shows here when the
script is run again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from pdmer.files import atomic_write  # noqa: E402
from pdmer.labels import DATASET_FRAME_OFFSET, FRAME_SECONDS, QUADRANTS, frame_times  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "user_guide" / "images"
DPI = 130

# One colour per kind of thing, the same in every figure.
AUDIO, LOCAL, GLOBAL, FUSED, HEAD, META = ("#dfe7f2", "#f7d9a8", "#c9e4c5", "#e3d3ee",
                                           "#f4c2c2", "#fff3b0")


def _box(ax, x, y, w, h, text, color, fontsize=8.5):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                                fc=color, ec="#444444", lw=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, wrap=True)


def _arrow(ax, start, end, text=None, rad=0.0, color="#333333"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, lw=1.0,
                                 color=color, connectionstyle=f"arc3,rad={rad}",
                                 shrinkA=2, shrinkB=2))
    if text:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx, my + 0.12, text, ha="center", va="bottom", fontsize=7, color="#333333")


def dsaml_diagram():
    """The network (top) and the meta-learning loop that trains it (bottom)."""
    fig, (net, meta) = plt.subplots(2, 1, figsize=(10, 7.2),
                                    gridspec_kw={"height_ratios": [1.35, 1]})
    for ax in (net, meta):
        ax.set_xlim(0, 10)
        ax.set_axis_off()
    net.set_ylim(0.2, 5)
    net.set_title("DSAML: one (arousal, valence) pair every 0.5 s", fontsize=11, loc="left")
    _box(net, 1.0, 4.3, 1.7, 0.7, "song audio", AUDIO)
    _box(net, 3.1, 4.3, 2.0, 0.7, "log-mel patch\nof each 0.5 s frame", LOCAL)
    _box(net, 5.4, 4.3, 1.8, 0.7, "adapter\n(CNN on the patch)", LOCAL)
    _box(net, 3.1, 3.1, 2.0, 0.7, "global embedding\n(window around the frame)", GLOBAL)
    _box(net, 7.6, 3.7, 1.9, 0.9, "fusion\nW(sigmoid(local + global))", FUSED)
    _arrow(net, (1.85, 4.3), (2.1, 4.3))
    _arrow(net, (1.0, 3.95), (2.1, 3.15), rad=0.15)
    _arrow(net, (4.1, 4.3), (4.5, 4.3))
    _arrow(net, (6.3, 4.3), (6.65, 3.9))
    _arrow(net, (4.1, 3.1), (6.65, 3.5), text="ImageBind, or log-mel statistics")
    # One transformer runs twice over the fused sequence, under two band masks.
    _box(net, 4.6, 1.9, 3.0, 0.8, "transformer, local band:\nframe i attends to |i - j| <= "
         "local_context", FUSED, 8)
    _box(net, 4.6, 0.75, 3.0, 0.8, "the same transformer, global band:\n|i - j| <= "
         "global_context", FUSED, 8)
    _arrow(net, (7.1, 3.25), (5.6, 2.3))
    _arrow(net, (7.4, 3.25), (6.1, 0.95), rad=-0.15)
    _box(net, 7.9, 1.35, 1.4, 1.0, "sum, sigmoid,\nBiLSTM head", HEAD, 8)
    _arrow(net, (6.1, 1.9), (7.2, 1.55))
    _arrow(net, (6.1, 0.75), (7.2, 1.15))
    _box(net, 9.4, 1.35, 1.1, 1.0, "arousal,\nvalence\nevery 0.5 s", AUDIO, 8)
    _arrow(net, (8.6, 1.35), (8.85, 1.35))
    for width, y in ((2, 1.9), (7, 0.75)):
        # Which frames (columns) each frame (row) may attend to.
        inset = net.inset_axes([2.35, y - 0.37, 0.6, 0.74], transform=net.transData)
        n = 24
        i, j = np.indices((n, n))
        inset.imshow(np.abs(i - j) <= width, cmap="Purples", vmin=0, vmax=1.6,
                     interpolation="nearest", aspect="auto")
        inset.set_xticks([])
        inset.set_yticks([])
    net.text(2.05, 1.33, "band\nmasks", ha="right", va="center", fontsize=7.5)
    meta.set_ylim(0, 3.6)
    meta.set_title("Meta-learning: every training task is one annotator", fontsize=11,
                   loc="left")
    _box(meta, 1.3, 2.5, 2.1, 0.95, "meta-parameters θ\n(the shared model)", META)
    _box(meta, 4.1, 2.5, 2.3, 0.95, "support song\nof annotator A\n(their curve)", AUDIO)
    _box(meta, 7.0, 2.5, 2.5, 0.95, "inner steps: a few gradient\nsteps on the support song\nθ -> θ_A", LOCAL)
    _box(meta, 7.0, 0.8, 2.5, 0.95, "query songs of A:\nloss of θ_A on A's curves", GLOBAL)
    _box(meta, 3.0, 0.8, 3.0, 0.95, "outer step: move θ so that\nadapting helps (first-order MAML)", HEAD)
    _arrow(meta, (2.35, 2.5), (2.95, 2.5))
    _arrow(meta, (5.25, 2.5), (5.75, 2.5))
    _arrow(meta, (7.0, 2.02), (7.0, 1.28))
    _arrow(meta, (5.75, 0.8), (4.5, 0.8))
    _arrow(meta, (1.7, 1.28), (1.3, 2.02), rad=-0.2)
    meta.text(1.15, 1.62, "next task", ha="right", va="center", fontsize=7.5)
    meta.text(9.9, 1.7, "A new listener: annotate one song,\n`personalize` runs the inner "
              "steps once,\nthen predicts their curves for any song.", ha="right",
              va="center", fontsize=7.5, style="italic")
    fig.tight_layout()
    return fig


def label_grid():
    """Audio time, the frame offset and the 0.5 s frames labels and predictions share."""
    offset, n = DATASET_FRAME_OFFSET, 8
    starts = frame_times(n, offset)
    fig, ax = plt.subplots(figsize=(10, 2.9))
    ax.set_xlim(-0.5, starts[-1] + FRAME_SECONDS + 1.9)
    ax.set_ylim(-1.35, 1.55)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("audio time (s)")
    # The waveform: the whole song, including the unlabelled start.
    t = np.linspace(0, starts[-1] + FRAME_SECONDS + 0.8, 2000)
    wave = 0.35 * np.sin(2 * np.pi * 1.7 * t) * (0.6 + 0.4 * np.sin(0.9 * t)) + 0.8
    ax.fill_between(t, 0.8 - np.abs(wave - 0.8), 0.8 + np.abs(wave - 0.8), color="#9fb7d6",
                    lw=0)
    ax.text(0.1, 1.35, "song audio", fontsize=8.5, va="center")
    ax.axvspan(0, offset, ymin=0.05, ymax=0.62, color="#eeeeee")
    ax.text(offset / 2, -0.35, f"not annotated\n(frame_offset = {offset:g} s in DEAM "
            "and PMEmo;\n0 s for your own labels by default)", ha="center", va="center",
            fontsize=8)
    ax.annotate("", xy=(offset, -1.0), xytext=(0, -1.0),
                arrowprops=dict(arrowstyle="<->", color="#555555"))
    ax.text(offset / 2, -1.2, "frame_offset", ha="center", fontsize=8, family="monospace")
    for i, start in enumerate(starts):
        ax.add_patch(plt.Rectangle((start, -0.7), FRAME_SECONDS, 1.0, fc=LOCAL if i % 2 else
                                   "#fbe6c2", ec="#555555", lw=0.8))
        ax.text(start + FRAME_SECONDS / 2, -0.45, f"{i}", ha="center", fontsize=8)
        ax.text(start + FRAME_SECONDS / 2, 0.05, "a, v", ha="center", fontsize=7)
    ax.text(starts[-1] + FRAME_SECONDS + 0.15, -0.45, "frame i", fontsize=8, va="center")
    ax.text(starts[-1] + FRAME_SECONDS + 0.15, 0.05, "label", fontsize=8, va="center")
    ax.annotate(f"frame i: [{offset:g} + 0.5 i, {offset:g} + 0.5 (i + 1)) s,\n"
                "one log-mel patch, one label row",
                xy=(starts[2] + 0.25, 0.3), xytext=(starts[2] - 2.2, 1.35), fontsize=8,
                arrowprops=dict(arrowstyle="->", color="#555555"))
    # Cut the long unlabelled stretch visually: the axis is continuous, the
    # point is where frame 0 starts.
    ax.set_xticks([0, 5, 10, offset] + list(starts[2::2]))
    fig.tight_layout()
    return fig


def va_plane():
    """The valence-arousal plane with pdmer's quadrant names."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.axhline(0, color="#777777", lw=0.8)
    ax.axvline(0, color="#777777", lw=0.8)
    ax.set_xlabel("valence: unpleasant  ->  pleasant")
    ax.set_ylabel("arousal: calm  ->  energetic")
    ax.set_aspect("equal")
    colors = {(1, 1): "#fde3b0", (-1, 1): "#f4c2c2", (-1, -1): "#c9d7ef", (1, -1): "#c9e4c5"}
    for name, (valence, arousal) in QUADRANTS.items():
        ax.add_patch(plt.Rectangle((min(0, valence), min(0, arousal)), 1, 1,
                                   fc=colors[(valence, arousal)], ec="none", zorder=0))
        ax.text(0.55 * valence, 0.78 * arousal, name, ha="center", va="center", fontsize=14,
                weight="bold", color="#333333")
    # One listener's curve through a song: where the model's output lives.
    t = np.linspace(0, 1, 60)
    ax.plot(0.38 * np.cos(5 * t) + 0.02, 0.4 * np.sin(3.2 * t + 0.4) - 0.02, "o-",
            color="#333333", lw=1.0, ms=2.2, alpha=0.8)
    ax.annotate("one song, one point\nevery 0.5 s", xy=(0.40, 0.14), xytext=(0.22, -0.5),
                fontsize=7.5, arrowprops=dict(arrowstyle="->", color="#555555"))
    ax.set_title("Valence-arousal plane (pdmer.labels.QUADRANTS)", fontsize=9)
    fig.tight_layout()
    return fig


FIGURES = {"dsaml_diagram.png": dsaml_diagram, "label_grid.png": label_grid,
           "va_plane.png": va_plane}


def main(names=None):
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names or FIGURES:
        fig = FIGURES[name]()
        atomic_write(OUT / name, lambda tmp: fig.savefig(tmp, dpi=DPI), suffix=".png")
        plt.close(fig)
        print(OUT / name)


if __name__ == "__main__":
    main(sys.argv[1:])
