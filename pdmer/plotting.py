"""Plots of arousal and valence curves (matplotlib).

Two views of one song's emotion:

* :func:`plot_curves` -- arousal and valence over time, one panel each, with
  the prediction and, optionally, the listener's labels (ground truth), a
  personalized prediction and further curves to compare;
* :func:`plot_trajectory` -- the path the song takes through the
  valence-arousal plane, with the four quadrants named (happy, tense, sad,
  calm);

and :func:`plot_song`, both side by side in one figure (what
``pdmer predict --plot`` writes).

Every array has shape ``(n_frames, 2)`` with columns
:data:`pdmer.DIMENSIONS` (arousal, valence). Frame ``i`` is drawn at
``frame_offset + 0.5 i`` seconds, the start of the 0.5 s of audio it
describes (DEAM's ``sample_15000ms`` column is frame 0 of a song with
``frame_offset=15``).

The functions work with any matplotlib backend (``Agg`` included), return
the :class:`~matplotlib.figure.Figure`, draw into given axes when asked, and
write the figure to ``path`` when one is given, atomically (a temporary file,
then a rename), in the format its extension names.
"""

from __future__ import annotations

import os

import numpy as np

from pdmer.files import atomic_write
from pdmer.labels import AROUSAL, DIMENSIONS, FRAME_SECONDS, QUADRANTS, VALENCE, frame_times

__all__ = ["QUADRANTS", "plot_curves", "plot_song", "plot_trajectory"]

# Styles of the named curves; further curves (``others``) cycle through _OTHER.
_STYLE = {
    "truth": dict(color="black", lw=2.2, zorder=4),
    "personalized": dict(color="tab:red", lw=1.8, zorder=5),
    "prediction": dict(color="tab:blue", lw=1.5, ls="--", zorder=3),
}
_DEFAULT_LABELS = {"truth": "listener's labels", "personalized": "personalized",
                   "prediction": "prediction"}
_OTHER = [dict(color="tab:gray", lw=1.3, ls=":"), dict(color="tab:green", lw=1.3, ls="-."),
          dict(color="tab:purple", lw=1.3, ls=":"), dict(color="tab:orange", lw=1.3, ls="-.")]


def plot_curves(prediction=None, truth=None, personalized=None, *, others=None,
                frame_offset=0.0, value_range=(-1.0, 1.0), labels=None, title=None,
                axes=None, path=None, dpi=120):
    """Arousal and valence over time, one panel per dimension.

    Parameters
    ----------
    prediction : array-like of shape (n_frames, 2), optional
        A model's (arousal, valence) prediction (dashed blue).
    truth : array-like of shape (n_frames, 2), optional
        The listener's labels (thick black).
    personalized : array-like of shape (n_frames, 2), optional
        The prediction after personalization (red).
    others : dict of str to array-like of shape (n_frames, 2), optional
        Further curves by legend label, e.g. a baseline model.
    frame_offset : float, default=0.0
        Time in seconds of frame 0 (15.0 for DEAM).
    value_range : (float, float) or None, default=(-1, 1)
        Limits of the value axis: (-1, 1) for DEAM and the synthetic set,
        (0, 1) for PMEmo; None scales to the data.
    labels : dict of str to str, optional
        Legend labels replacing the defaults of ``"prediction"``,
        ``"truth"`` and ``"personalized"``.
    title : str, optional
    axes : sequence of two Axes, optional
        Draw arousal into ``axes[0]`` and valence into ``axes[1]`` instead
        of a new figure.
    path : str or os.PathLike, optional
        Also save the figure here (format from the extension, PNG if none).
    dpi : int, default=120
        Resolution of the saved file.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure; ``fig.axes[:2]`` are the arousal and valence panels.

    Raises
    ------
    ValueError
        If no curve is given, or a curve is not of shape (n_frames, 2).

    See Also
    --------
    plot_trajectory, plot_song

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.plotting import plot_curves
    >>> t = np.linspace(0, 6, 40)
    >>> truth = np.column_stack([np.sin(t), np.cos(t)]) * 0.8
    >>> fig = plot_curves(0.7 * truth, truth=truth, frame_offset=15.0)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['arousal', 'valence']
    """
    curves = _named_curves(prediction, truth, personalized, others, labels)
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    else:
        if len(axes) != 2:
            raise ValueError(f"axes must be two Axes (arousal, valence); got {len(axes)}.")
        fig = axes[0].figure
    for dim, ax in zip((AROUSAL, VALENCE), axes):
        for label, curve, style in curves:
            ax.plot(frame_times(len(curve), frame_offset), curve[:, dim], label=label, **style)
        ax.set_ylabel(DIMENSIONS[dim])
        if value_range is not None:
            low, high = value_range
            pad = 0.04 * (high - low)
            ax.set_ylim(low - pad, high + pad)
            ax.axhline(0.5 * (low + high), color="0.6", lw=0.8, zorder=1)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    first, last = frame_offset, max(frame_times(len(c), frame_offset)[-1] for _, c, _ in curves)
    axes[-1].set_xlim(first, max(last, first + FRAME_SECONDS))
    axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, 1.0), fontsize=8,
                   ncol=min(len(curves), 4), framealpha=0.85)
    if title:
        axes[0].set_title(title)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_trajectory(prediction=None, truth=None, personalized=None, *, others=None,
                    frame_offset=0.0, value_range=(-1.0, 1.0), labels=None, title=None,
                    ax=None, path=None, dpi=120):
    """The song's path through the valence-arousal plane.

    Valence is the horizontal axis, arousal the vertical one; the quadrants
    are named after :data:`pdmer.labels.QUADRANTS` (happy, tense, sad, calm),
    as the listener app names them. With a single curve the path is coloured by time (with a colour
    bar); with several, each has its own colour. A circle marks where a path
    starts and a triangle where it ends.

    Parameters
    ----------
    prediction, truth, personalized : array-like of shape (n_frames, 2), optional
        As in :func:`plot_curves`.
    others : dict of str to array-like of shape (n_frames, 2), optional
        Further curves by legend label.
    frame_offset : float, default=0.0
        Time in seconds of frame 0 (for the colour bar).
    value_range : (float, float) or None, default=(-1, 1)
        Limits of both axes; the quadrants meet at its middle. None scales
        to the data and puts the centre at 0.
    labels : dict of str to str, optional
        Legend labels replacing the defaults.
    title : str, optional
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    path : str or os.PathLike, optional
        Also save the figure here.
    dpi : int, default=120

    Returns
    -------
    fig : matplotlib.figure.Figure

    See Also
    --------
    plot_curves, plot_song

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.plotting import plot_trajectory
    >>> t = np.linspace(0, 6, 40)
    >>> fig = plot_trajectory(np.column_stack([np.sin(t), np.cos(t)]) * 0.8)
    >>> fig.axes[0].get_xlabel()
    'valence'
    """
    from matplotlib.collections import LineCollection

    curves = _named_curves(prediction, truth, personalized, others, labels)
    if ax is None:
        import matplotlib.pyplot as plt

        single = len(curves) == 1
        fig, ax = plt.subplots(figsize=(6.6 if single else 7.4, 5.4))
        # Room on the right for the colour bar or the legend (see below).
        fig.subplots_adjust(left=0.1, bottom=0.1, top=0.92, right=0.86 if single else 0.72)
    fig = ax.figure
    if value_range is not None:
        low, high = value_range
        centre = 0.5 * (low + high)
        pad = 0.04 * (high - low)
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
    else:
        centre = 0.0
    ax.axhline(centre, color="0.55", lw=0.9, zorder=1)
    ax.axvline(centre, color="0.55", lw=0.9, zorder=1)
    for name, (sx, sy) in QUADRANTS.items():
        ax.text(0.5 + 0.47 * sx, 0.5 + 0.47 * sy, name, transform=ax.transAxes,
                ha="right" if sx > 0 else "left", va="top" if sy > 0 else "bottom",
                fontsize=11, color="0.45", style="italic", zorder=1)
    if len(curves) == 1:
        label, curve, _ = curves[0]
        times = frame_times(len(curve), frame_offset)
        points = curve[:, [VALENCE, AROUSAL]]
        segments = np.stack([points[:-1], points[1:]], axis=1)
        line = LineCollection(segments, cmap="viridis", lw=2.2, zorder=3)
        line.set_array(0.5 * (times[:-1] + times[1:]) if len(times) > 1 else times)
        ax.add_collection(line)
        fig.colorbar(line, ax=ax, label="time (s)", fraction=0.046, pad=0.03)
        ax.plot(*points[0], "o", ms=7, color="black", mfc="white", zorder=4, label="start")
        ax.plot(*points[-1], "^", ms=8, color="black", zorder=4, label="end")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.1), fontsize=8,
                  title=label, title_fontsize=8, framealpha=0.85)
    else:
        for label, curve, style in curves:
            style = {k: v for k, v in style.items() if k != "zorder"}
            valence, arousal = curve[:, VALENCE], curve[:, AROUSAL]
            line, = ax.plot(valence, arousal, label=label, alpha=0.9, zorder=3, **style)
            ax.plot(valence[0], arousal[0], "o", ms=6, color=line.get_color(),
                    mfc="white", zorder=4)
            ax.plot(valence[-1], arousal[-1], "^", ms=7, color=line.get_color(), zorder=4)
        # Outside the plane: inside, it would hide a path or a quadrant name.
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, framealpha=0.85)
    if value_range is None:
        ax.autoscale_view()
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_aspect("equal", adjustable="box")
    ax.grid(alpha=0.25)
    if title:
        ax.set_title(title)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_song(prediction=None, truth=None, personalized=None, *, others=None,
              frame_offset=0.0, value_range=(-1.0, 1.0), labels=None, title=None,
              path=None, dpi=120):
    """Curves over time (left) and the valence-arousal trajectory (right).

    Parameters are those of :func:`plot_curves`; the trajectory shows the
    same curves.

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``fig.axes[:2]`` are the arousal and valence panels, ``fig.axes[2]``
        the valence-arousal plane.

    Examples
    --------
    >>> import numpy as np
    >>> from pdmer.plotting import plot_song
    >>> t = np.linspace(0, 6, 40)
    >>> fig = plot_song(np.column_stack([np.sin(t), np.cos(t)]) * 0.8, title="a song")
    >>> len(fig.axes) >= 3
    True
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 5.2), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(1.75, 1))
    curve_axes = [fig.add_subplot(grid[0, 0])]
    curve_axes.append(fig.add_subplot(grid[1, 0], sharex=curve_axes[0]))
    plane = fig.add_subplot(grid[:, 1])
    common = dict(others=others, frame_offset=frame_offset, value_range=value_range,
                  labels=labels)
    plot_curves(prediction, truth, personalized, axes=curve_axes, **common)
    plot_trajectory(prediction, truth, personalized, ax=plane, **common)
    if len(_named_curves(prediction, truth, personalized, others, labels)) > 1:
        plane.get_legend().remove()  # the curves' legend names them already
    curve_axes[0].tick_params(labelbottom=False)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def save_figure(fig, path, dpi=120) -> None:
    """Write ``fig`` to ``path`` atomically, in the format of its extension (PNG if none).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
    dpi : int, default=120
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1]
    fmt = suffix[1:].lower() if suffix else "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt,
                                               bbox_inches="tight"),
                 suffix=suffix or ".png")


# ---------------------------------------------------------------------------



def _check_curve(curve, name):
    try:
        array = np.asarray(curve, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (n_frames, 2).") from None
    if array.ndim != 2 or array.shape[1] != len(DIMENSIONS) or len(array) == 0:
        raise ValueError(f"{name} must have shape (n_frames, 2) with columns {DIMENSIONS}; "
                         f"got shape {array.shape}.")
    return array


def _named_curves(prediction, truth, personalized, others, labels):
    """[(legend label, array, style)] in drawing order: truth, prediction, personalized, others."""
    labels = dict(_DEFAULT_LABELS, **(labels or {}))
    unknown = set(labels) - set(_DEFAULT_LABELS)
    if unknown:
        raise ValueError(f"labels keys must be among {sorted(_DEFAULT_LABELS)}; "
                         f"got {sorted(unknown)}.")
    curves = []
    for key, value in (("truth", truth), ("prediction", prediction),
                       ("personalized", personalized)):
        if value is not None:
            curves.append((labels[key], _check_curve(value, key), _STYLE[key]))
    for i, (label, value) in enumerate((others or {}).items()):
        curves.append((str(label), _check_curve(value, f"others[{label!r}]"),
                       _OTHER[i % len(_OTHER)]))
    if not curves:
        raise ValueError("Nothing to plot: give prediction, truth, personalized or others.")
    return curves
