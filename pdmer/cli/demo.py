"""``pdmer demo``: the offline demo on synthetic listeners."""

from __future__ import annotations

import click

from pdmer.cli._common import quiet_option
from pdmer.cli._group import main


@main.command()
@click.option("--output", "-o", default="pdmer-demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for data, plot and results.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Meta-training episodes (default: the demo preset).")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Torch device for the models: cpu, cuda, cuda:1, mps or auto (a GPU if "
                   "there is one).")
@quiet_option
def demo(output, seed, episodes, device, quiet):
    """Offline demo: personalize DSAML to held-out synthetic listeners from ONE song.

    Generates synthetic songs and listeners, holds out a quarter of the
    listeners and of the songs, meta-trains a small DSAML with one task per
    listener, and prints CCC/PCC/RMSE on the held-out listeners' unseen songs
    without and with personalization, beside the same network trained plainly
    (not adapted, and fine-tuned on the same song) and a mean-label model, with
    how much each row's predictions move (spread) and each model's convergence.
    """
    from pdmer.demo import run_demo

    result = run_demo(output, random_state=seed, n_episodes=episodes, verbose=0 if quiet else 1,
                      log=(lambda message: None) if quiet else (
                          lambda message: click.echo(message, err=True)),
                      device=device)
    click.echo(f"\nHeld-out listeners: {', '.join(result.listeners)} (scored on their songs "
               "that no training listener annotated; one of their songs is the support)\n")
    click.echo(result.table())
    click.echo("\nspread: prediction std / label std within songs (below 0.5: collapsed).")
    click.echo("Convergence:\n" + "\n".join(f"  {line}" for line in result.convergence_lines()))
    click.echo(f"\nPlot: {result.plot_path}\nTotal time: {result.seconds:.0f} s")
