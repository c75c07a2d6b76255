"""``pdmer benchmark``: the DSAML paper's experiments and fair competitors on one data set."""

from __future__ import annotations

import os

import click

from pdmer.cli._common import jobs_option, quiet_option
from pdmer.cli._group import main
from pdmer.experiments.presets import MODELS

_MODELS = tuple(MODELS)


@main.command()
@click.option("--dataset", type=click.Choice(["synthetic", "deam", "pmemo"]),
              default="synthetic", show_default=True, help="Data set to run on.")
@click.option("--task", type=click.Choice(["dmer", "pdmer"]), default="pdmer",
              show_default=True,
              help="dmer: mean labels (Table 1); pdmer: personalized labels (Table 2).")
@click.option("--models", "-m", multiple=True, callback=lambda ctx, param, value: _models(value),
              help=f"Models to run, comma-separated or repeated: {','.join(_MODELS)} "
                   "(default all).")
@click.option("--ablations", is_flag=True,
              help="Add the DSAML ablations (Table 3 for dmer, Table 4 for pdmer).")
@click.option("--protocol", type=click.Choice(["other-songs", "same-song"]),
              default="other-songs", show_default=True,
              help="pdmer: adapt on one of the listener's songs and score the others, or on "
                   "the first 30 s of a song and score the rest (the reference code's).")
@click.option("--split", type=click.Choice(["songs", "listeners"]), default="songs",
              show_default=True,
              help="Synthetic pdmer: hold out listeners and songs (only songs unseen in "
                   "training are scored), or listeners only.")
@click.option("--unseen-listeners", is_flag=True,
              help="Drop test annotators who also annotated training songs (DEAM raters).")
@click.option("--preset", type=click.Choice(["tiny", "small", "paper"]), default="small",
              show_default=True,
              help="Sizes: tiny (seconds, for tests), small (CPU), paper (GPU).")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Training episodes of every model (default: the preset's); the report "
                   "says whether each model was still improving at the end.")
@click.option("--seed", "seeds", type=click.IntRange(min=0), multiple=True, default=(0,),
              show_default=True,
              help="Seed of data, split, models and support draw. Repeat it (--seed 0 "
                   "--seed 1 --seed 2) for one run per seed in <output>/seed-<n> and a "
                   "summary over seeds.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default="pdmer-benchmark",
              show_default=True,
              help="Folder for results.md/.csv/.png, settings.json and result.json.")
@click.option("--resume", is_flag=True,
              help="Reuse the runs already finished in --output with the same settings.")
@click.option("--data-home", type=click.Path(file_okay=False), default=None,
              help="Where DEAM/PMEmo are downloaded (or the synthetic set is generated; "
                   "default <output>/data).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache extracted features here, so that reruns skip the extraction.")
@click.option("--device", default="auto", show_default=True,
              help="Torch device for the models: cpu, cuda, cuda:1, mps or auto (a GPU if "
                   "there is one).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads (default: torch's). On a shared machine use the number "
                   "of free cores.")
@jobs_option(default=1, show_default=True,
             help="Models trained at once (-1: one per core); give each --threads "
                  "cores / jobs. Results do not depend on it.")
@quiet_option
def benchmark(dataset, task, models, ablations, protocol, split, unseen_listeners, preset,
              episodes, seeds, output, resume, data_home, cache_dir, device, threads, n_jobs,
              quiet):
    """Run the DSAML paper's protocols on DSAML, its baselines and the fair competitors.

    Prints the parameter counts and the results tables (the paper's numbers
    beside the run's, then each row's spread and convergence) and writes
    results.md, results.csv, results.png, settings.json and result.json to
    --output.
    """
    import torch

    from pdmer.experiments import run_benchmark, seeds_summary
    from pdmer.experiments.reporting import write_text

    if threads is not None:
        torch.set_num_threads(threads)
    seeds = list(dict.fromkeys(seeds))
    results = []
    for seed in seeds:
        folder = output if len(seeds) == 1 else os.path.join(output, f"seed-{seed}")
        results.append(run_benchmark(
            dataset=dataset, task=task, models=list(models) or None, ablations=ablations,
            protocol=protocol, preset=preset, seed=seed, output=folder,
            data_home=_data_home(dataset, data_home, seed, several=len(seeds) > 1),
            cache_dir=cache_dir, device=device, verbose=0 if quiet else 1,
            log=(lambda message: None) if quiet else (lambda m: click.echo(m, err=True)),
            command=_command_line(dataset, task, models, ablations, protocol, split,
                                  unseen_listeners, preset, episodes, seed, data_home, device),
            split=split, unseen_listeners=unseen_listeners, resume=resume, n_jobs=n_jobs,
            estimator_params=None if episodes is None else {"n_episodes": episodes}))
    for result in results:
        click.echo(result.markdown())
    written = [result.files[k] for result in results
               for k in ("markdown", "csv", "plot", "settings")]
    if len(seeds) > 1:
        summary = seeds_summary(results)
        path = os.path.join(output, "summary.md")
        write_text(path, summary)
        click.echo(summary)
        written.append(path)
    click.echo("Wrote " + ", ".join(written))


def _data_home(dataset, data_home, seed, several):
    """Each seed generates its own synthetic set: one folder per seed."""
    if dataset == "synthetic" and data_home is not None and several:
        return os.path.join(data_home, f"seed-{seed}")
    return data_home


def _models(values):
    models = [m.strip().lower() for value in values for m in value.split(",") if m.strip()]
    unknown = [m for m in models if m not in _MODELS]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(_MODELS)}.", param_hint="'--models'")
    return models


def _command_line(dataset, task, models, ablations, protocol, split, unseen_listeners, preset,
                  episodes, seed, data_home, device):
    """The command that reruns this benchmark (output folder left out)."""
    parts = ["pdmer benchmark", f"--dataset {dataset}", f"--task {task}"]
    if models:
        parts.append(f"--models {','.join(models)}")
    if ablations:
        parts.append("--ablations")
    if task == "pdmer":
        parts.append(f"--protocol {protocol}")
        if dataset == "synthetic":
            parts.append(f"--split {split}")
    if unseen_listeners:
        parts.append("--unseen-listeners")
    parts.append(f"--preset {preset}")
    if episodes is not None:
        parts.append(f"--episodes {episodes}")
    parts.append(f"--seed {seed}")
    if data_home is not None and dataset != "synthetic":
        parts.append(f"--data-home {data_home}")
    if device != "auto":
        parts.append(f"--device {device}")
    return " ".join(parts)
