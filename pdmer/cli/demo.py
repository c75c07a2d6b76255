"""``pdmer demo``: the offline demo on synthetic listeners."""

from __future__ import annotations

import click

from pdmer.cli import main


@main.command()
@click.option("--output", "-o", default="pdmer-demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for data, plot and results.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Meta-training episodes (default: the demo preset).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(output, seed, episodes, quiet):
    """Offline demo: personalize DSAML to held-out synthetic listeners from ONE song.

    Generates synthetic songs and listeners, meta-trains a small DSAML with
    one task per listener, and prints CCC/PCC/RMSE of held-out listeners
    without and with personalization and for a mean-label model.
    """
    from pdmer.demo import run_demo

    result = run_demo(output, random_state=seed, n_episodes=episodes, verbose=0 if quiet else 1,
                      log=lambda message: click.echo(message, err=True))
    click.echo(f"\nHeld-out listeners: {', '.join(result.listeners)} (scores on the songs "
               "they annotated, except the one used to personalize)\n")
    click.echo(result.table())
    click.echo(f"\nPlot: {result.plot_path}\nTotal time: {result.seconds:.0f} s")
